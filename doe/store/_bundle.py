"""Study bundles: everything stored about one study in one zip, imported elsewhere exactly.

Layout (UTF-8 text; JSON and CSV so a person can read every file)::

    manifest.json                    format, bundle schema, study, exported at/by, software,
                                     store schema revision, every file with its SHA-256
    checksums.sha256                 the same checksums (manifest included), for ``sha256sum -c``
    study/study.json                 the study (created at/by) and its versions (hash, saved at/by)
    study/v0001.yaml ...             every study version, verbatim
    designs/designs.json             each design: file, study version, kind, seed, model, frozen, created,
                                     name, current, deleted (older bundles: named "Design N")
    designs/design_0001.csv ...      run sheets, verbatim (numbered within the study)
    runs/runs.csv                    the runs now (deleted ones flagged), value columns + stored JSON
    runs/revisions.csv               every run revision (data version, row version, deleted, stored JSON)
    runs/data_versions.csv           every data version (hash, number of runs, reason, created, and
                                     ``design``: the number of its design in designs.json, or blank)
    analyses/analysis_v0001.json ... model choices, fitted summary, data version, created
    decisions/decisions.json         every design-space decision
    audit/audit_trail.csv            the source store's audit records of the study, every column
    audit/imported_audit_trail.csv   records that earlier bundles brought into the source store

Run values travel as the stored JSON text and JSON numbers are written with
Python's shortest round-trip repr, so every number comes back bit-identical.
Importing checks the checksums, each audit record's own hash, each study
version's hash and each data version's hash (rebuilt from the revisions)
before it writes anything, then writes the study in one transaction with its
original version numbers, row versions, times and users.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from doe.errors import DoeError
from doe.store import _values as V
from doe.store._audit import AuditWriter, User, as_user, record_hash, utc_now
from doe.store._models import (
    AnalysisRow,
    AuditRow,
    DataVersionRow,
    DecisionRow,
    DesignRow,
    ImportedAuditRow,
    RunRevisionRow,
    RunRow,
    StudyRow,
    StudyVersionRow,
)

if TYPE_CHECKING:
    from doe.store._store import Store

FORMAT = "doe-workbench-study-bundle"
SCHEMA = 1
SOFTWARE = "QbD DoE workbench"
MANIFEST = "manifest.json"
CHECKSUMS = "checksums.sha256"
#: Refuse bundles that would unpack to more than this (a zip bomb, or not a bundle).
MAX_BYTES = 2 * 1024**3
AUDIT_COLUMNS = ("seq", "ts", "user_name", "authenticated", "action", "entity", "entity_id", "study",
                 "field", "old_value", "new_value", "reason", "prev_hash", "hash")
RUN_COLUMNS = ("row_version", "deleted", "values_json")
REVISION_COLUMNS = ("Run", "data_version", "row_version", "deleted", "values_json")
DATA_VERSION_COLUMNS = ("version", "content_hash", "n_runs", "reason", "created_at", "created_by")
_AGAIN = "Export the study again from the source database and import the new file; nothing was written."


# -- export ---------------------------------------------------------------------------
def export_bundle(store: Store, study_name: str, user: User | str | None = None) -> bytes:
    """The whole study ``study_name`` as bundle zip bytes (see the module docstring for the layout).

    Everything is read in one read transaction, so the bundle is one consistent
    state of the study. ``user`` is recorded as ``exported_by`` in the manifest.
    """
    with store._session() as s:
        if s.get_bind().dialect.name == "postgresql":  # one snapshot for every query below
            s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        sid = store._study_id(s, study_name)
        files = _study_files(s, sid)
        revision = s.execute(text("SELECT version_num FROM alembic_version")).scalar()
    by = as_user(user).name if user else "unknown"
    return _zip(files, _manifest(study_name, files, revision, by))


def _study_files(s: Session, sid: int) -> dict[str, bytes]:
    """Every data file of the study: {path in the zip: bytes}."""
    files: dict[str, bytes] = {}
    for part in (_study_part, _design_part, _run_part, _analysis_part, _decision_part, _audit_part):
        files.update(part(s, sid))
    return files


def _rows(s: Session, model: Any, sid: int, order: Any) -> list[Any]:
    return list(s.execute(select(model).where(model.study_id == sid).order_by(order)).scalars())


def _study_part(s: Session, sid: int) -> dict[str, bytes]:
    study = s.get(StudyRow, sid)
    rows = _rows(s, StudyVersionRow, sid, StudyVersionRow.version)
    versions = [{"version": r.version, "file": f"study/v{r.version:04d}.yaml", "content_hash": r.content_hash,
                 "created_at": r.created_at, "created_by": r.created_by} for r in rows]
    files = {v["file"]: r.yaml.encode("utf-8") for v, r in zip(versions, rows)}
    files["study/study.json"] = _json_file({"name": study.name, "created_at": study.created_at,
                                            "created_by": study.created_by, "versions": versions})
    return files


def _design_part(s: Session, sid: int) -> dict[str, bytes]:
    rows = _rows(s, DesignRow, sid, DesignRow.id)
    meta = [{"number": i, "file": f"designs/design_{i:04d}.csv", "study_version": r.study_version,
             "kind": r.kind, "seed": r.seed, "model": r.model, "frozen": bool(r.frozen),
             "created_at": r.created_at, "created_by": r.created_by, "name": r.name, "current": bool(r.current),
             "deleted": bool(r.deleted)} for i, r in enumerate(rows, 1)]
    files = {m["file"]: r.run_sheet.encode("utf-8") for m, r in zip(meta, rows)}
    files["designs/designs.json"] = _json_file(meta)
    return files


def _run_part(s: Session, sid: int) -> dict[str, bytes]:
    runs = _rows(s, RunRow, sid, RunRow.id)
    label = {r.id: r.label for r in runs}
    revisions = s.execute(select(RunRevisionRow).join(RunRow, RunRow.id == RunRevisionRow.run_id)
                          .where(RunRow.study_id == sid)
                          .order_by(RunRevisionRow.data_version, RunRevisionRow.run_id)).scalars()
    versions = _rows(s, DataVersionRow, sid, DataVersionRow.version)
    number = {r.id: i for i, r in enumerate(_rows(s, DesignRow, sid, DesignRow.id), 1)}  # as in designs.json
    revision_rows = ([label[r.run_id], r.data_version, r.row_version, bool(r.deleted), r.values_json]
                     for r in revisions)
    version_rows = ([getattr(v, c) for c in DATA_VERSION_COLUMNS] + [number.get(v.design_id)] for v in versions)
    return {"runs/runs.csv": _runs_csv(runs), "runs/revisions.csv": _csv(REVISION_COLUMNS, revision_rows),
            "runs/data_versions.csv": _csv((*DATA_VERSION_COLUMNS, "design"), version_rows)}


def _runs_csv(runs: list[RunRow]) -> bytes:
    """Current runs: Run, one readable column per value, row version, deleted, the stored JSON."""
    values = [json.loads(r.values_json) for r in runs]
    readable = [c for c in dict.fromkeys(k for v in values for k in v) if c not in (V.RUN, *RUN_COLUMNS)]
    return _csv((V.RUN, *readable, *RUN_COLUMNS),
                ([r.label, *(v.get(c) for c in readable), r.row_version, bool(r.deleted), r.values_json]
                 for r, v in zip(runs, values)))


def _analysis_part(s: Session, sid: int) -> dict[str, bytes]:
    return {f"analyses/analysis_v{r.version:04d}.json": _json_file(
        {"version": r.version, "data_version": r.data_version, "created_at": r.created_at,
         "created_by": r.created_by, **_json_field("choices", r.choices_json),
         **_json_field("summary", r.summary_json)})
        for r in _rows(s, AnalysisRow, sid, AnalysisRow.version)}


def _decision_part(s: Session, sid: int) -> dict[str, bytes]:
    return {"decisions/decisions.json": _json_file([
        {"number": i, "analysis_version": r.analysis_version, "threshold": r.threshold,
         **_json_field("set_point", r.set_point_json), **_json_field("ranges", r.ranges_json),
         "note": r.note, "created_at": r.created_at, "created_by": r.created_by}
        for i, r in enumerate(_rows(s, DecisionRow, sid, DecisionRow.id), 1)])}


def _audit_part(s: Session, sid: int) -> dict[str, bytes]:
    """This store's audit records of the study, and those earlier bundles brought in."""
    name = s.get(StudyRow, sid).name
    own = s.execute(select(AuditRow).where(AuditRow.study == name).order_by(AuditRow.seq)).scalars()
    earlier = _rows(s, ImportedAuditRow, sid, ImportedAuditRow.id)
    kept = ("bundle", *AUDIT_COLUMNS)
    return {"audit/audit_trail.csv": _csv(AUDIT_COLUMNS, ([getattr(r, c) for c in AUDIT_COLUMNS]
                                                          for r in own)),
            "audit/imported_audit_trail.csv": _csv(kept, ([getattr(r, c) for c in kept] for r in earlier))}


def _manifest(study: str, files: dict[str, bytes], revision: str | None, by: str) -> bytes:
    return _json_file({"format": FORMAT, "bundle_schema": SCHEMA, "study": study, "exported_at": utc_now(),
                       "exported_by": by, "software": {"name": SOFTWARE, "version": _software_version()},
                       "store_schema_revision": revision,
                       "files": [{"path": p, "sha256": _sha(files[p]), "bytes": len(files[p])}
                                 for p in sorted(files)]})


def _zip(files: dict[str, bytes], manifest: bytes) -> bytes:
    """The zip: manifest, checksums (sha256sum format), then the data files by path."""
    listed = [(MANIFEST, manifest), *sorted(files.items())]
    checksums = "".join(f"{_sha(data)}  {path}\n" for path, data in listed).encode("utf-8")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in [listed[0], (CHECKSUMS, checksums), *listed[1:]]:
            z.writestr(path, data)
    return buf.getvalue()


# -- reading and checking a bundle ----------------------------------------------------------
def read_bundle(data: bytes) -> tuple[dict[str, bytes], dict[str, Any], str]:
    """The checked data files of a bundle, its manifest and the manifest's SHA-256.

    Raises DoeError for a file that is not a zip, a zip that is not a bundle,
    a newer bundle schema, and any file missing, added or not matching its checksum.
    """
    members = _unzip(data)
    manifest = _read_manifest(members)
    _verify_checksums(members, manifest)
    files = {p: b for p, b in members.items() if p not in (MANIFEST, CHECKSUMS)}
    return files, manifest, _sha(members[MANIFEST])


def _unzip(data: bytes) -> dict[str, bytes]:
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise DoeError("This file is not a study bundle: it is not a zip file, or it was cut short in "
                       f"transfer (truncated). {_AGAIN}")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = [i for i in z.infolist() if not i.is_dir()]
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                raise DoeError(f"The bundle holds a file twice: it was edited after export. {_AGAIN}")
            if sum(i.file_size for i in infos) > MAX_BYTES:
                raise DoeError("The zip would unpack to more than 2 GB: it is not a study bundle.")
            odd = sorted({i.compress_type for i in infos} - {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
            if odd:
                raise DoeError(f"The zip uses a compression method bundles never use ({odd[0]}): it was "
                               f"not made by 'python -m doe export'. {_AGAIN}")
            return {i.filename: z.read(i) for i in infos}
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError) as exc:
        raise DoeError(f"The bundle is damaged and cannot be unpacked ({exc}). {_AGAIN}") from None


def _read_manifest(members: dict[str, bytes]) -> dict[str, Any]:
    not_bundle = ("This zip is not a DoE workbench study bundle ({}). Choose a file made by "
                  "'python -m doe export'; nothing was written.")
    if MANIFEST not in members:
        raise DoeError(not_bundle.format("it has no manifest.json"))
    try:
        manifest = json.loads(members[MANIFEST].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DoeError(not_bundle.format("its manifest.json is not valid JSON")) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DoeError(not_bundle.format(f"its manifest does not name the format '{FORMAT}'"))
    schema = manifest.get("bundle_schema")
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise DoeError(not_bundle.format(f"its bundle schema {schema!r} is not a version number"))
    if schema > SCHEMA:
        raise DoeError(f"This bundle uses bundle schema {schema}, newer than this software reads (up to "
                       f"{SCHEMA}). Upgrade the software to import it; nothing was written.")
    if not isinstance(manifest.get("study"), str) or not manifest["study"].strip():
        raise DoeError(not_bundle.format("its manifest names no study"))
    return manifest


def _verify_checksums(members: dict[str, bytes], manifest: dict[str, Any]) -> None:
    """Every file listed in checksums.sha256 and the manifest, nothing else, every SHA-256 matching."""
    if CHECKSUMS not in members:
        raise DoeError(f"The bundle has no {CHECKSUMS}, so it cannot be checked. {_AGAIN}")
    listed = _checksum_lines(members[CHECKSUMS])
    try:
        expected = {f["path"]: f["sha256"] for f in manifest["files"]}
    except (KeyError, TypeError):
        raise DoeError(f"The bundle's manifest has no valid file list. {_AGAIN}") from None
    if {**expected, MANIFEST: listed.get(MANIFEST)} != listed:
        raise DoeError(f"The bundle's {CHECKSUMS} and manifest.json list different files or checksums: "
                       f"it was edited after export. {_AGAIN}")
    for path, digest in listed.items():
        if path not in members:
            raise DoeError(f"The bundle is incomplete: '{path}' is listed in its checksums but missing. "
                           f"{_AGAIN}")
        if _sha(members[path]) != digest:
            raise DoeError(f"The bundle is damaged or was edited after export: '{path}' does not match its "
                           f"SHA-256 checksum. {_AGAIN}")
    extra = sorted(set(members) - set(listed) - {CHECKSUMS})
    if extra:
        raise DoeError(f"The bundle holds '{extra[0]}', which is not in its checksums: it was edited after "
                       f"export. {_AGAIN}")


def _checksum_lines(data: bytes) -> dict[str, str]:
    """{path: sha256} from sha256sum lines ('<64 hex>  <path>')."""
    out: dict[str, str] = {}
    for line in data.decode("utf-8", errors="replace").splitlines():
        digest, sep, path = line.partition("  ")
        if not sep or len(digest) != 64 or not path:
            raise DoeError(f"The bundle's {CHECKSUMS} has a line that is not a SHA-256 checksum "
                           f"({line[:80]!r}). {_AGAIN}")
        out[path] = digest.lower()
    return out


# -- parsing the checked files ---------------------------------------------------------------
@dataclass
class _Content:
    """A bundle's rows, as keyword arguments of the store's models (without study ids)."""

    study: dict[str, Any]
    versions: list[dict[str, Any]]
    designs: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    revisions: list[dict[str, Any]]
    data_versions: list[dict[str, Any]]
    analyses: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    imported: list[dict[str, Any]] = field(default_factory=list)


def parse_bundle(files: dict[str, bytes]) -> _Content:
    """The rows in a bundle's (checksum-verified) files, checked by :func:`check_content`.

    Raises DoeError if a file cannot be read as the format says or a hash does not match.
    """
    try:
        content = _parse(files)
        check_content(content)
    except DoeError:
        raise
    except (KeyError, ValueError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise DoeError(f"The bundle's content cannot be read ({type(exc).__name__}: {exc}): it was not made "
                       f"by this software or is incomplete. {_AGAIN}") from None
    return content


def _parse(files: dict[str, bytes]) -> _Content:
    """The rows of the bundle's files (unchecked)."""
    study = json.loads(files["study/study.json"])
    return _Content(
        study={k: study[k] for k in ("name", "created_at", "created_by")},
        versions=[_study_version(v, files) for v in study["versions"]],
        designs=[_design(d, files) for d in json.loads(files["designs/designs.json"])],
        runs=[_run(r) for r in _read_csv(files["runs/runs.csv"])],
        revisions=[_revision(r) for r in _read_csv(files["runs/revisions.csv"])],
        data_versions=[_data_version(r) for r in _read_csv(files["runs/data_versions.csv"])],
        analyses=[_analysis(json.loads(files[p])) for p in sorted(files) if p.startswith("analyses/")],
        decisions=[_decision(d) for d in json.loads(files["decisions/decisions.json"])],
        audit=[_audit_record(r) for r in _read_csv(files["audit/audit_trail.csv"])],
        imported=[{"bundle": r["bundle"], **_audit_record(r)}
                  for r in _read_csv(files["audit/imported_audit_trail.csv"])])


def _study_version(v: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
    return {"version": int(v["version"]), "yaml": files[v["file"]].decode("utf-8"),
            "content_hash": v["content_hash"], "created_at": v["created_at"], "created_by": v["created_by"]}


def _design(d: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
    """A design of the bundle; one from before designs had names is named 'Design N' (its number) and
    ``current`` is None (the importer then makes the newest current, as the schema upgrade does)."""
    return {"study_version": int(d["study_version"]), "kind": d["kind"], "seed": d["seed"],
            "model": d["model"], "run_sheet": files[d["file"]].decode("utf-8"), "frozen": bool(d["frozen"]),
            "created_at": d["created_at"], "created_by": d["created_by"],
            "name": str(d.get("name") or f"Design {d['number']}"), "current": None if "current" not in d else bool(d["current"]),
            "deleted": bool(d.get("deleted", False))}


def _run(r: dict[str, str]) -> dict[str, Any]:
    return {"label": r[V.RUN], "values_json": r["values_json"], "row_version": int(r["row_version"]),
            "deleted": _bool(r["deleted"])}


def _revision(r: dict[str, str]) -> dict[str, Any]:
    return {"label": r[V.RUN], "data_version": int(r["data_version"]), "row_version": int(r["row_version"]),
            "values_json": r["values_json"], "deleted": _bool(r["deleted"])}


def _data_version(r: dict[str, str]) -> dict[str, Any]:
    """A data version of the bundle; ``design`` is its design's number in designs.json (None: none recorded)."""
    return {"version": int(r["version"]), "content_hash": r["content_hash"], "n_runs": int(r["n_runs"]),
            "reason": r["reason"] or None, "created_at": r["created_at"], "created_by": r["created_by"],
            "design": int(r["design"]) if r.get("design") else None}


def _analysis(a: dict[str, Any]) -> dict[str, Any]:
    return {"version": int(a["version"]), "data_version": int(a["data_version"]),
            "choices_json": _json_text(a, "choices"), "summary_json": _json_text(a, "summary"),
            "created_at": a["created_at"], "created_by": a["created_by"]}


def _decision(d: dict[str, Any]) -> dict[str, Any]:
    return {"analysis_version": d["analysis_version"], "threshold": float(d["threshold"]),
            "set_point_json": _json_text(d, "set_point"), "ranges_json": _json_text(d, "ranges"),
            "note": d["note"], "created_at": d["created_at"], "created_by": d["created_by"]}


def _audit_record(r: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {c: r[c] for c in AUDIT_COLUMNS}
    out["seq"], out["authenticated"] = int(r["seq"]), _bool(r["authenticated"])
    for c in ("study", "field", "old_value", "new_value", "reason"):
        out[c] = r[c] or None
    return out


# -- checks before writing -------------------------------------------------------------------
def check_content(c: _Content) -> None:
    """Hashes of study versions, audit records and data versions match; runs match their last revision."""
    for text_value in [*(a[k] for a in c.analyses for k in ("choices_json", "summary_json")),
                       *(d[k] for d in c.decisions for k in ("set_point_json", "ranges_json"))]:
        json.loads(text_value)
    for v in c.versions:
        if _sha(v["yaml"].encode("utf-8")) != v["content_hash"]:
            raise DoeError(f"Study version {v['version']} in the bundle does not match its recorded hash. "
                           f"{_AGAIN}")
    for r in [*c.imported, *c.audit]:
        if record_hash(r["prev_hash"], r) != r["hash"]:
            raise DoeError(f"Audit record {r['seq']} in the bundle does not match its hash: it was altered "
                           f"after it was recorded. {_AGAIN}")
    _check_data_versions(c)
    _check_current_runs(c)


def _check_data_versions(c: _Content) -> None:
    """Rebuild the runs at every data version from the revisions; each must match its hash and count."""
    labels = {r["label"] for r in c.runs}
    known = {v["version"] for v in c.data_versions}
    stray = [r for r in c.revisions if r["label"] not in labels or r["data_version"] not in known]
    if stray:
        raise DoeError(f"The bundle has a revision of run {stray[0]['label']} in data version "
                       f"{stray[0]['data_version']}, which it does not hold. {_AGAIN}")
    batches: dict[int, list[dict[str, Any]]] = {}
    for r in c.revisions:
        batches.setdefault(r["data_version"], []).append(r)
    state: dict[str, dict[str, Any] | None] = {}
    for v in c.data_versions:
        for r in batches.get(v["version"], []):
            state[r["label"]] = None if r["deleted"] else json.loads(r["values_json"])
        live = {label: values for label, values in state.items() if values is not None}
        if V.content_hash(live) != v["content_hash"] or len(live) != v["n_runs"]:
            raise DoeError(f"Data version {v['version']} in the bundle does not match its recorded hash: "
                           f"the run revisions were changed. {_AGAIN}")


def _check_current_runs(c: _Content) -> None:
    """Each run's current values, row version and deleted flag are those of its last revision."""
    last = {r["label"]: r for r in sorted(c.revisions, key=lambda r: r["data_version"])}
    for run in c.runs:
        rev = last.get(run["label"])
        if rev is None or any(rev[k] != run[k] for k in ("values_json", "row_version", "deleted")):
            raise DoeError(f"Run {run['label']} in the bundle's runs/runs.csv differs from its last revision "
                           f"in runs/revisions.csv. {_AGAIN}")


# -- import ----------------------------------------------------------------------------------
def import_bundle(store: Store, data: bytes, user: User | str) -> str:
    """Import a bundle (zip bytes) as a new study in ``store``; return the study's name.

    Everything is checked first (see :func:`read_bundle` and :func:`check_content`);
    a study of the same name already in the store is refused. The study is
    written in one transaction with its original versions, times and users;
    the store's audit trail gets a "create" record per imported item (reason
    "imported from bundle <SHA-256 of the manifest>"), and the source audit
    records are kept in ``imported_audit`` and exported again with the study.
    """
    files, manifest, digest = read_bundle(data)
    content = parse_bundle(files)
    name = content.study["name"]
    if name != manifest["study"]:
        raise DoeError(f"The bundle's manifest names study '{manifest['study']}' but holds '{name}'. "
                       f"{_AGAIN}")
    with store._write(user) as (s, audit):
        if s.execute(select(StudyRow.id).where(StudyRow.name == name)).scalar_one_or_none() is not None:
            raise DoeError(f"A study named '{name}' is already in this database, so the bundle was not "
                           "imported (nothing was written; the study here is unchanged). A bundle is imported "
                           "only as a new study: import it into another database (--db URL).")
        _write_content(s, audit, content, manifest, digest)
    return name


def _write_content(s: Session, audit: AuditWriter, c: _Content, manifest: dict[str, Any],
                   digest: str) -> None:
    """Insert every row of the bundle, with audit records; ids are new, everything else as exported."""
    name, why = c.study["name"], f"imported from bundle {digest}"
    study = StudyRow(**c.study)
    s.add(study)
    s.flush()
    sid = study.id
    audit.add("create", "bundle", digest, name, field="study", new=_import_summary(c, manifest), reason=why)
    audit.add("create", "study", sid, name, field="name", new=name, reason=why)
    for v in c.versions:
        s.add(StudyVersionRow(study_id=sid, **v))
        audit.add("create", "study_version", f"{sid}:{v['version']}", name, field="yaml", new=v["yaml"],
                  reason=why)
    design_ids = _write_designs(s, audit, sid, c, why)
    _write_runs(s, audit, sid, c, why, design_ids)
    for a in c.analyses:
        s.add(AnalysisRow(study_id=sid, **a))
        audit.add("create", "analysis", f"{sid}:{a['version']}", name, field="choices", reason=why,
                  new={"data_version": a["data_version"], "choices": json.loads(a["choices_json"])})
    _write_decisions(s, audit, sid, c, why)
    trail = [*c.imported, *({"bundle": digest, **r} for r in c.audit)]  # oldest bundles first
    s.add_all(ImportedAuditRow(study_id=sid, **r) for r in trail)


def _write_designs(s: Session, audit: AuditWriter, sid: int, c: _Content, why: str) -> dict[int, int]:
    """Insert the designs; return the new id of each design by its number in the bundle."""
    old = bool(c.designs) and all(d["current"] is None for d in c.designs)
    rows = [DesignRow(study_id=sid, **{**d, "current": bool(d["current"]) or (old and i == len(c.designs))})
            for i, d in enumerate(c.designs, 1)]
    s.add_all(rows)
    s.flush()
    for row in rows:
        audit.add("create", "design", row.id, c.study["name"], field="run_sheet", new=row.run_sheet,
                  reason=why)
        audit.add("create", "design", row.id, c.study["name"], field="name", new=row.name, reason=why)
    return {i: row.id for i, row in enumerate(rows, 1)}


def _write_runs(s: Session, audit: AuditWriter, sid: int, c: _Content, why: str,
                design_ids: dict[int, int]) -> None:
    """Runs in their exported order (so reading them back keeps it), revisions, data versions."""
    name = c.study["name"]
    rows = [RunRow(study_id=sid, **r) for r in c.runs]
    s.add_all(rows)
    s.flush()
    ids = {row.label: row.id for row in rows}
    for row in rows:
        audit.add("create", "run", row.id, name, field=f"Run {row.label}", new=json.loads(row.values_json),
                  reason=why)
    s.add_all(RunRevisionRow(run_id=ids[r["label"]], **{k: v for k, v in r.items() if k != "label"})
              for r in c.revisions)
    for v in c.data_versions:
        number = v["design"]
        if number is not None and number not in design_ids:
            raise DoeError(f"The bundle's data version {v['version']} names design {number}, which it does not "
                           f"hold. {_AGAIN}")
        s.add(DataVersionRow(study_id=sid, design_id=design_ids.get(number),
                             **{k: x for k, x in v.items() if k != "design"}))
        audit.add("create", "data_version", f"{sid}:{v['version']}", name, field="content_hash",
                  new=v["content_hash"], reason=why)


def _write_decisions(s: Session, audit: AuditWriter, sid: int, c: _Content, why: str) -> None:
    rows = [DecisionRow(study_id=sid, **d) for d in c.decisions]
    s.add_all(rows)
    s.flush()
    for row in rows:
        audit.add("create", "decision", row.id, c.study["name"], field="decision", reason=why,
                  new={"threshold": row.threshold, "set_point": json.loads(row.set_point_json),
                       "ranges": json.loads(row.ranges_json), "analysis_version": row.analysis_version,
                       "note": row.note})


def _import_summary(c: _Content, manifest: dict[str, Any]) -> dict[str, Any]:
    """What the import brought, for the bundle's audit record."""
    return {"study": c.study["name"], "exported_at": manifest.get("exported_at"),
            "exported_by": manifest.get("exported_by"), "software": manifest.get("software"),
            "store_schema_revision": manifest.get("store_schema_revision"),
            "counts": {"study_versions": len(c.versions), "designs": len(c.designs), "runs": len(c.runs),
                       "run_revisions": len(c.revisions), "data_versions": len(c.data_versions),
                       "analyses": len(c.analyses), "decisions": len(c.decisions),
                       "audit_records": len(c.audit) + len(c.imported)}}


# -- small helpers ---------------------------------------------------------------------------
def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_file(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _stored_json(value: Any) -> str:
    """JSON text exactly as the store writes analyses and decisions (sorted keys, no NaN)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, sort_keys=True)


def _json_field(key: str, stored: str) -> dict[str, Any]:
    """``{key: value}`` when writing the value back gives the stored text again, else ``{key_json: text}``."""
    value = json.loads(stored)
    try:
        same = _stored_json(value) == stored
    except ValueError:
        same = False
    return {key: value} if same else {f"{key}_json": stored}


def _json_text(doc: dict[str, Any], key: str) -> str:
    """The stored JSON text of ``key`` from a bundle document (see :func:`_json_field`)."""
    if f"{key}_json" in doc:
        return str(doc[f"{key}_json"])
    return _stored_json(doc[key])


def _csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """CSV bytes; None is empty, booleans are true/false, floats their shortest exact repr."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_cell_text(v) for v in row] for row in rows)
    return buf.getvalue().encode("utf-8")


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _read_csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def _bool(text_value: str) -> bool:
    if text_value not in ("true", "false"):
        raise ValueError(f"'{text_value}' is not true or false")
    return text_value == "true"


def _software_version() -> str:
    """The installed package version, else 'unreleased' (run from a source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("doe-workbench")
    except PackageNotFoundError:
        return "unreleased"
