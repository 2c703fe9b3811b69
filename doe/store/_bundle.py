"""Study bundles: everything stored about one study in one zip, imported elsewhere exactly.

Layout (UTF-8 text; JSON and CSV so a person can read every file)::

    manifest.json                    format, bundle schema, study, exported at/by, software,
                                     store schema revision, every data file with its SHA-256
    signature.json                   the exporting site's Ed25519 signature of manifest.json, its key
                                     id and public key (doe.store._signing)
    checksums.sha256                 the same checksums (manifest and signature included), for
                                     ``sha256sum -c``
    study/study.json                 the study (created at/by) and its versions (hash, saved at/by)
    study/v0001.yaml ...             every study version, verbatim
    designs/designs.json             each design: file, study version, kind, seed, model, frozen, created,
                                     name, current, deleted and its run sheet as stored (``run_sheet``;
                                     older bundles: named "Design N", the sheet only in the CSV file)
    designs/design_0001.csv ...      run sheets to read (bundle schema 1: the sheet verbatim)
    runs/runs.csv                    the runs now (deleted ones flagged), value columns + stored JSON
    runs/revisions.csv               every run revision (data version, row version, deleted, stored JSON)
    runs/data_versions.csv           every data version (hash, number of runs, reason, created, and
                                     ``design``: the number of its design in designs.json, or blank)
    analyses/analysis_v0001.json ... model choices, fitted summary, data version, created
    decisions/decisions.json         every design-space decision
    seed_train/passages.csv          the passage sheet's rows now (schema 0006; only when the study has
                                     passages or equivalence tests): Donor, Passage, Vessel, repeat, the
                                     values, row version, deleted (removed rows stay, flagged), stored JSON
    seed_train/passage_versions.csv  every passage data version (hash, number of passages, reason,
                                     created, ``order_json``: the rows' keys in sheet order)
    seed_train/passage_revisions.csv every passage row revision (key, version, row version, deleted,
                                     stored JSON): with passage_versions.csv it rebuilds every version
    seed_train/equivalence.json      every equivalence test kept (result, passage data version, note,
                                     created)
    lots/lots.csv                    the manufacturing lots now (schema 0007; only when the study has
                                     lots): Lot, the values, row version, deleted, stored JSON
    lots/lot_versions.csv            every lot data version (hash, number of lots, reason, created,
                                     ``columns_json``: the sheet's columns, ``order_json``: its lots)
    lots/lot_revisions.csv           every lot revision (Lot, version, row version, deleted, stored
                                     JSON): with lot_versions.csv it rebuilds every version
    audit/audit_trail.csv            the source store's audit records of the study, every column
    audit/imported_audit_trail.csv   records that earlier bundles brought into the source store

The seed_train files came with schema 0006 and keep bundle schema 2: a bundle without them (made
before, or of a study without seed-train data) imports as before. Software from before them
does not read them (it checks their checksums and imports the rest), so move a study with
seed-train data with this software or later. The lots files (schema 0007) work the same way.

Run values travel as the stored JSON text and JSON numbers are written with
Python's shortest round-trip repr, so every number comes back bit-identical.

Every CSV cell (headers too) that a spreadsheet would run as a formula (text starting with
``= + - @``, a tab or a carriage return, numbers such as ``-1.5`` aside) is written with a
leading apostrophe, and so is every cell that itself starts with an apostrophe; reading strips
one leading apostrophe, so the round trip is exact ("'-80C" is read as "-80C", "''x" as "'x").
Lines end in CRLF so that a carriage return inside a cell is quoted. Bundle schema 1 (before
this) wrote cells as they are; it is read as it was written.

Importing checks, before it writes anything: the sizes (:data:`MAX_MEMBERS`,
:data:`MAX_MEMBER_BYTES`, :data:`MAX_TOTAL_BYTES`, :data:`MAX_CELL_CHARS`,
:data:`MAX_JSON_DEPTH`), the checksums, each audit record's own hash, each study version's
hash, each data version's hash (rebuilt from the revisions), that the data agree with the
bundle's own audit trail (replayed record by record, and each row's digest where the records
carry one), and finally the signature: signed by this site's key or a key in
``DOE_TRUSTED_KEYS``. An unsigned bundle, or one signed by a key this site does not trust, is
imported only when the caller allows it explicitly, and the import's audit record says so; a
signature that does not match is always refused (the bundle was changed after it was signed).
Then it writes the study in one transaction with its original version numbers, row versions,
times and users.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
import re
import struct
import threading
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
from doe.store._integrity import passage_label
from doe.store._lots import content_hash as lot_sheet_hash
from doe.store._lots import lot_label
from doe.store._models import (
    AnalysisRow,
    AuditRow,
    DataVersionRow,
    DecisionRow,
    DesignRow,
    EquivalenceTestRow,
    ImportedAuditRow,
    LotRevisionRow,
    LotRow,
    LotVersionRow,
    PassageRevisionRow,
    PassageRow,
    PassageVersionRow,
    RunRevisionRow,
    RunRow,
    StudyRow,
    StudyVersionRow,
    study_row,
)
from doe.store._passages import PASSAGE_COLUMNS, audit_value, values_hash

if TYPE_CHECKING:
    from doe.store._signing import SiteKey
    from doe.store._store import Store

FORMAT = "doe-workbench-study-bundle"
#: 2: CSV cells neutralised (see the module docstring), run sheets in designs.json, signature.json.
SCHEMA = 2
SOFTWARE = "QbD DoE workbench"
MANIFEST = "manifest.json"
CHECKSUMS = "checksums.sha256"
SIGNATURE = "signature.json"
ALGORITHM = "Ed25519"

# -- limits: checked before anything is unpacked or parsed -----------------------------------------
#: Files in a bundle: one per study version, design and analysis plus thirteen. A study with
#: thousands of versions is far beyond any real one; the bound keeps the zip directory small.
MAX_MEMBERS = 10_000
#: Bytes of one file once unpacked (as the zip directory declares it, and as read). The largest
#: files are the audit trail and the run revisions: 10,000 runs revised 20 times with their audit
#: records are ~50 MB. A file is held in memory a few times over while it is checked.
MAX_MEMBER_BYTES = 128 * 2**20
#: Bytes of all files once unpacked, and of the zip itself: an import holds about three to four
#: times this in memory (bytes, text, parsed rows), so this keeps one import near 1 GB at most.
MAX_TOTAL_BYTES = 256 * 2**20
#: Bytes of the zip's central directory (its list of files): ~75 bytes a file, so under 1 MB for
#: MAX_MEMBERS files; checked before the directory is read.
MAX_DIRECTORY_BYTES = 2 * 2**20
#: Characters of one CSV cell. The largest cell a store writes is a study version's YAML in an
#: audit record (a study file is at most 512 KiB) or a design's run sheet; Python's csv module
#: would refuse anything over 131,072 characters, so bundles are read with this limit instead.
MAX_CELL_CHARS = 16 * 2**20
#: Nesting depth of any JSON in a bundle: stored values are at most ~6 levels deep (an analysis
#: summary); the bound stops deep nesting (e.g. 100,000 '[') before it exhausts the parser.
MAX_JSON_DEPTH = 64

AUDIT_COLUMNS = ("seq", "ts", "user_name", "authenticated", "action", "entity", "entity_id", "study",
                 "field", "old_value", "new_value", "reason", "prev_hash", "hash", "row_hash")
RUN_COLUMNS = ("row_version", "deleted", "values_json")
REVISION_COLUMNS = ("Run", "data_version", "row_version", "deleted", "values_json")
DATA_VERSION_COLUMNS = ("version", "content_hash", "n_runs", "reason", "created_at", "created_by")
SEED_TRAIN = ("seed_train/passages.csv", "seed_train/passage_versions.csv", "seed_train/passage_revisions.csv",
              "seed_train/equivalence.json")
PASSAGE_KEY_COLUMNS = ("Donor", "Passage", "Vessel", "repeat")
PASSAGE_VERSION_COLUMNS = ("version", "content_hash", "n_passages", "reason", "created_at", "created_by",
                           "order_json")
PASSAGE_REVISION_COLUMNS = (*PASSAGE_KEY_COLUMNS, "version", "row_version", "deleted", "values_json")
LOTS = ("lots/lots.csv", "lots/lot_versions.csv", "lots/lot_revisions.csv")
LOT_VERSION_COLUMNS = ("version", "content_hash", "n_lots", "reason", "created_at", "created_by", "columns_json",
                       "order_json")
LOT_REVISION_COLUMNS = ("Lot", "version", "row_version", "deleted", "values_json")
_AGAIN = "Export the study again from the source database and import the new file; nothing was written."
_LINE_END = "\r\n"


# -- export ---------------------------------------------------------------------------
def export_bundle(store: Store, study_name: str, user: User | str | None = None) -> bytes:
    """The whole study ``study_name`` as bundle zip bytes (see the module docstring for the layout).

    Everything is read in one read transaction, so the bundle is one consistent
    state of the study. ``user`` is recorded as ``exported_by`` in the manifest.
    The manifest is signed with this site's key (the store's, :func:`site_key`).
    """
    key = site_key(store)
    with store._session() as s:
        if s.get_bind().dialect.name == "postgresql":  # one snapshot for every query below
            s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        sid = store._study_id(s, study_name)
        files = _study_files(s, sid)
        revision = s.execute(text("SELECT version_num FROM alembic_version")).scalar()
    by = as_user(user).name if user else "unknown"
    manifest = _manifest(study_name, files, revision, by)
    return _zip(files, manifest, _signature(key, manifest))


def site_key(store: Store) -> SiteKey:
    """This site's signing key: the one ``store`` signs its audit head with (Store.open loads it)."""
    return store.key


def _study_files(s: Session, sid: int) -> dict[str, bytes]:
    """Every data file of the study: {path in the zip: bytes}."""
    files: dict[str, bytes] = {}
    for part in (_study_part, _design_part, _run_part, _analysis_part, _decision_part, _seed_train_part,
                 _lots_part, _audit_part):
        files.update(part(s, sid))
    return files


def _rows(s: Session, model: Any, sid: int, order: Any) -> list[Any]:
    return list(s.execute(select(model).where(model.study_id == sid).order_by(order)).scalars())


def _study_part(s: Session, sid: int) -> dict[str, bytes]:
    study = study_row(s, sid)
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
             "deleted": bool(r.deleted), "run_sheet": r.run_sheet} for i, r in enumerate(rows, 1)]
    files = {m["file"]: _sheet_csv(r.run_sheet) for m, r in zip(meta, rows)}
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


def _seed_train_part(s: Session, sid: int) -> dict[str, bytes]:
    """The passage sheet's rows, versions and revisions and the equivalence tests (none: no files)."""
    rows = _rows(s, PassageRow, sid, PassageRow.id)
    tests = _rows(s, EquivalenceTestRow, sid, EquivalenceTestRow.id)
    if not rows and not tests:
        return {}
    values = [json.loads(r.values_json) for r in rows]
    readable = [c for c in PASSAGE_COLUMNS if c not in PASSAGE_KEY_COLUMNS]
    key = {r.id: [r.donor, r.passage, r.vessel, r.repeat] for r in rows}
    revisions = s.execute(select(PassageRevisionRow).join(PassageRow, PassageRow.id == PassageRevisionRow.passage_id)
                          .where(PassageRow.study_id == sid)
                          .order_by(PassageRevisionRow.version, PassageRevisionRow.passage_id)).scalars()
    versions = _rows(s, PassageVersionRow, sid, PassageVersionRow.version)
    return {
        "seed_train/passages.csv": _csv(
            (*PASSAGE_KEY_COLUMNS, *readable, *RUN_COLUMNS),
            ([*key[r.id], *(v.get(c) for c in readable), r.row_version, bool(r.deleted), r.values_json]
             for r, v in zip(rows, values))),
        "seed_train/passage_versions.csv": _csv(PASSAGE_VERSION_COLUMNS,
                                                ([getattr(v, c) for c in PASSAGE_VERSION_COLUMNS] for v in versions)),
        "seed_train/passage_revisions.csv": _csv(PASSAGE_REVISION_COLUMNS, (
            [*key[r.passage_id], r.version, r.row_version, bool(r.deleted), r.values_json] for r in revisions)),
        "seed_train/equivalence.json": _json_file([
            {"number": i, "passage_version": t.passage_version, **_json_field("result", t.result_json),
             "note": t.note, "created_at": t.created_at, "created_by": t.created_by}
            for i, t in enumerate(tests, 1)])}


def _lots_part(s: Session, sid: int) -> dict[str, bytes]:
    """The lots, their revisions and the lot data versions (no lots: no files)."""
    rows = _rows(s, LotRow, sid, LotRow.id)
    if not rows:
        return {}
    values = [json.loads(r.values_json) for r in rows]
    readable = [c for c in dict.fromkeys(k for v in values for k in v) if c not in ("Lot", *RUN_COLUMNS)]
    lot = {r.id: r.lot for r in rows}
    revisions = s.execute(select(LotRevisionRow).join(LotRow, LotRow.id == LotRevisionRow.lot_id)
                          .where(LotRow.study_id == sid)
                          .order_by(LotRevisionRow.version, LotRevisionRow.lot_id)).scalars()
    versions = _rows(s, LotVersionRow, sid, LotVersionRow.version)
    return {
        "lots/lots.csv": _csv(("Lot", *readable, *RUN_COLUMNS),
                              ([r.lot, *(v.get(c) for c in readable), r.row_version, bool(r.deleted), r.values_json]
                               for r, v in zip(rows, values))),
        "lots/lot_versions.csv": _csv(LOT_VERSION_COLUMNS,
                                      ([getattr(v, c) for c in LOT_VERSION_COLUMNS] for v in versions)),
        "lots/lot_revisions.csv": _csv(LOT_REVISION_COLUMNS, (
            [lot[r.lot_id], r.version, r.row_version, bool(r.deleted), r.values_json] for r in revisions))}


def _audit_part(s: Session, sid: int) -> dict[str, bytes]:
    """This store's audit records of the study, and those earlier bundles brought in."""
    name = study_row(s, sid).name
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


def _signature(key: SiteKey, manifest: bytes) -> bytes:
    """signature.json: the site key's Ed25519 signature of the manifest's bytes (which list every file's
    SHA-256), its key id and public key (so a site can be told which key to trust)."""
    return _json_file({"algorithm": ALGORITHM, "signed": MANIFEST, "key_id": key.key_id,
                       "public_key": key.public_text, "signature": key.sign(manifest)})


def _zip(files: dict[str, bytes], manifest: bytes, signature: bytes) -> bytes:
    """The zip: manifest, checksums (sha256sum format), signature, then the data files by path."""
    listed = [(MANIFEST, manifest), (SIGNATURE, signature), *sorted(files.items())]
    checksums = "".join(f"{_sha(data)}  {path}\n" for path, data in listed).encode("utf-8")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in [listed[0], (CHECKSUMS, checksums), *listed[1:]]:
            z.writestr(path, data)
    return buf.getvalue()


# -- reading and checking a bundle ----------------------------------------------------------
@dataclass(frozen=True)
class RawBundle:
    """A bundle's checked data files, its manifest (parsed and as bytes), its SHA-256 and signature."""

    files: dict[str, bytes]
    manifest: dict[str, Any]
    manifest_bytes: bytes
    digest: str
    signature: bytes | None

    @property
    def schema(self) -> int:
        return int(self.manifest["bundle_schema"])


def read_bundle(data: bytes) -> RawBundle:
    """The checked data files of a bundle, its manifest and signature (not yet verified).

    Raises DoeError for a file that is not a zip, a zip that is not a bundle or is larger than
    the limits, a newer bundle schema, and any file missing, added or not matching its checksum.
    """
    members = _unzip(data)
    manifest = _read_manifest(members)
    _verify_checksums(members, manifest)
    files = {p: b for p, b in members.items() if p not in (MANIFEST, CHECKSUMS, SIGNATURE)}
    return RawBundle(files, manifest, members[MANIFEST], _sha(members[MANIFEST]), members.get(SIGNATURE))


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB"


def _unzip(data: bytes) -> dict[str, bytes]:
    """Every file of the zip; sizes and counts checked against the limits before anything is unpacked,
    and each file read with a cap (a zip can lie about its sizes)."""
    if len(data) > MAX_TOTAL_BYTES:
        raise DoeError(f"The file is {_mb(len(data))}, more than a study bundle may be ({_mb(MAX_TOTAL_BYTES)}); "
                       "nothing was read or written. Export the study again, or split it.")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise DoeError("This file is not a study bundle: it is not a zip file, or it was cut short in "
                       f"transfer (truncated). {_AGAIN}")
    _check_directory(data)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = [i for i in z.infolist() if not i.is_dir()]
            _check_infos(infos)
            members, total = {}, 0
            for info in infos:
                members[info.filename] = body = _read_member(z, info)
                total += len(body)
                if total > MAX_TOTAL_BYTES:
                    raise DoeError(_too_big_total(total))
            return members
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, OSError) as exc:  # RuntimeError: also zipfile's
        # "zip file version" and unsupported-compression errors (subclasses of it)
        raise DoeError(f"The bundle is damaged and cannot be unpacked ({exc}). {_AGAIN}") from None


def _check_directory(data: bytes) -> None:
    """The zip's end record: at most MAX_MEMBERS entries and a directory under MAX_DIRECTORY_BYTES,
    checked before Python's zipfile reads the directory into memory."""
    at = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 65535))
    if at < 0 or len(data) < at + 22:
        return  # zipfile reports it as damaged
    entries, size = struct.unpack("<HI", data[at + 10:at + 16])
    if entries > MAX_MEMBERS:  # 0xFFFF also marks a ZIP64 archive: never needed by a bundle
        raise DoeError(f"The zip holds {entries:,}{' or more' if entries == 0xFFFF else ''} files; a study bundle has at most {MAX_MEMBERS:,}. "
                       "It is not a study bundle; nothing was read or written.")
    if size > MAX_DIRECTORY_BYTES:
        raise DoeError(f"The zip's list of files is {_mb(size)}, more than a study bundle's "
                       f"({_mb(MAX_DIRECTORY_BYTES)} at most). It is not a study bundle; nothing was read or written.")


def _check_infos(infos: list[zipfile.ZipInfo]) -> None:
    if len(infos) > MAX_MEMBERS:
        raise DoeError(f"The zip holds {len(infos):,} files; a study bundle has at most {MAX_MEMBERS:,}. "
                       "It is not a study bundle; nothing was read or written.")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise DoeError(f"The bundle holds a file twice: it was edited after export. {_AGAIN}")
    for info in infos:
        if info.file_size > MAX_MEMBER_BYTES:
            raise DoeError(f"The bundle's file '{info.filename[:100]}' would unpack to {_mb(info.file_size)}, "
                           f"more than a bundle file may hold ({_mb(MAX_MEMBER_BYTES)}); nothing was unpacked "
                           "or written. It is not a bundle this software wrote.")
    total = sum(i.file_size for i in infos)
    if total > MAX_TOTAL_BYTES:
        raise DoeError(_too_big_total(total))
    odd = sorted({i.compress_type for i in infos} - {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
    if odd:
        raise DoeError(f"The zip uses a compression method bundles never use ({odd[0]}): it was "
                       f"not made by 'python -m doe export'. {_AGAIN}")


def _too_big_total(total: int) -> str:
    return (f"The bundle would unpack to {_mb(total)}, more than a study bundle may hold "
            f"({_mb(MAX_TOTAL_BYTES)}); nothing was unpacked or written. It is not a bundle this software "
            "wrote (a zip bomb), or the study is too large to move as one bundle.")


def _read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """One file, reading at most its declared size (capped) plus one byte."""
    with z.open(info) as f:
        body = f.read(min(info.file_size, MAX_MEMBER_BYTES) + 1)
    if len(body) > info.file_size:
        raise DoeError(f"The bundle's file '{info.filename[:100]}' unpacks to more than its declared size: the "
                       f"zip was altered. {_AGAIN}")
    return body


def _read_manifest(members: dict[str, bytes]) -> dict[str, Any]:
    not_bundle = ("This zip is not a DoE workbench study bundle ({}). Choose a file made by "
                  "'python -m doe export'; nothing was written.")
    if MANIFEST not in members:
        raise DoeError(not_bundle.format("it has no manifest.json"))
    try:
        manifest = _load_json(members[MANIFEST], MANIFEST)
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
    """Every file listed in checksums.sha256 and the manifest, nothing else, every SHA-256 matching.

    signature.json is listed in the checksums (not in the manifest, which it signs) when present.
    """
    if CHECKSUMS not in members:
        raise DoeError(f"The bundle has no {CHECKSUMS}, so it cannot be checked. {_AGAIN}")
    listed = _checksum_lines(members[CHECKSUMS])
    try:
        expected = {f["path"]: f["sha256"] for f in manifest["files"]}
    except (KeyError, TypeError):
        raise DoeError(f"The bundle's manifest has no valid file list. {_AGAIN}") from None
    outside = {MANIFEST: listed.get(MANIFEST)}
    if SIGNATURE in listed or SIGNATURE in members:
        outside[SIGNATURE] = listed.get(SIGNATURE)
    if {**expected, **outside} != listed or MANIFEST in expected or SIGNATURE in expected:
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
        raise DoeError(f"The bundle holds '{extra[0][:100]}', which is not in its checksums: it was edited after "
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
    passages: list[dict[str, Any]] = field(default_factory=list)
    passage_revisions: list[dict[str, Any]] = field(default_factory=list)
    passage_versions: list[dict[str, Any]] = field(default_factory=list)
    equivalence: list[dict[str, Any]] = field(default_factory=list)
    lots: list[dict[str, Any]] = field(default_factory=list)
    lot_revisions: list[dict[str, Any]] = field(default_factory=list)
    lot_versions: list[dict[str, Any]] = field(default_factory=list)


def parse_bundle(files: dict[str, bytes], schema: int = SCHEMA, *, digests_required: bool = False) -> _Content:
    """The rows in a bundle's (checksum-verified) files, checked by :func:`check_content`.

    ``digests_required``: the bundle comes from a store of schema 0005 or later, whose audit trail
    holds a row digest for every row (see :func:`digests_required`).

    Raises DoeError if a file cannot be read as the format says, a hash does not match or the
    data disagree with the bundle's own audit trail.
    """
    try:
        content = _parse(files, schema)
        check_content(content, digests_required)
    except DoeError:
        raise
    except (KeyError, ValueError, TypeError, AttributeError, UnicodeDecodeError, IndexError) as exc:
        raise DoeError(f"The bundle's content cannot be read ({type(exc).__name__}: {str(exc)[:200]}): it was "
                       f"not made by this software or is incomplete. {_AGAIN}") from None
    except RecursionError:
        raise DoeError(f"The bundle's content is nested too deeply to read: it was not made by this software. "
                       f"{_AGAIN}") from None
    return content


def _parse(files: dict[str, bytes], schema: int) -> _Content:
    """The rows of the bundle's files (unchecked)."""
    neutral = schema >= 2
    study = _load_json(files["study/study.json"], "study/study.json")
    designs = _load_json(files["designs/designs.json"], "designs/designs.json")
    decisions = _load_json(files["decisions/decisions.json"], "decisions/decisions.json")

    def rows(path: str) -> list[dict[str, str]]:
        return _read_csv(files[path], path, neutral)

    content = _Content(
        study={k: study[k] for k in ("name", "created_at", "created_by")},
        versions=[_study_version(v, files) for v in study["versions"]],
        designs=[_design(d, files, neutral) for d in designs],
        runs=[_run(r) for r in rows("runs/runs.csv")],
        revisions=[_revision(r) for r in rows("runs/revisions.csv")],
        data_versions=[_data_version(r) for r in rows("runs/data_versions.csv")],
        analyses=[_analysis(_load_json(files[p], p)) for p in sorted(files) if p.startswith("analyses/")],
        decisions=[_decision(d) for d in decisions],
        audit=[_audit_record(r) for r in rows("audit/audit_trail.csv")],
        imported=[{"bundle": r["bundle"], **_audit_record(r)} for r in rows("audit/imported_audit_trail.csv")])
    present = [p for p in SEED_TRAIN if p in files]
    if present and len(present) < len(SEED_TRAIN):
        missing = next(p for p in SEED_TRAIN if p not in files)
        raise DoeError(f"The bundle has {present[0]} but not {missing}: the seed-train files come together. {_AGAIN}")
    if present:
        content.passages = [_passage(r) for r in rows("seed_train/passages.csv")]
        content.passage_revisions = [_passage_revision(r) for r in rows("seed_train/passage_revisions.csv")]
        content.passage_versions = [_passage_version(r) for r in rows("seed_train/passage_versions.csv")]
        content.equivalence = [_equivalence(e) for e in _load_json(files["seed_train/equivalence.json"],
                                                                   "seed_train/equivalence.json")]
    present = [p for p in LOTS if p in files]
    if present and len(present) < len(LOTS):
        missing = next(p for p in LOTS if p not in files)
        raise DoeError(f"The bundle has {present[0]} but not {missing}: the lots files come together. {_AGAIN}")
    if present:
        content.lots = [_lot(r) for r in rows("lots/lots.csv")]
        content.lot_revisions = [_lot_revision(r) for r in rows("lots/lot_revisions.csv")]
        content.lot_versions = [_lot_version(r) for r in rows("lots/lot_versions.csv")]
    return content


def _lot(r: dict[str, str]) -> dict[str, Any]:
    values = _load_json(r["values_json"], "lots/lots.csv")
    if not isinstance(values, dict) or values.get("Lot") != r["Lot"]:
        raise DoeError(f"The bundle's lots/lots.csv has a row whose Lot is not that of its stored values "
                       f"(Lot {r['Lot']}). {_AGAIN}")
    return {"lot": r["Lot"], "values_json": r["values_json"], "row_version": int(r["row_version"]),
            "deleted": _bool(r["deleted"])}


def _lot_revision(r: dict[str, str]) -> dict[str, Any]:
    _load_json(r["values_json"], "lots/lot_revisions.csv")
    return {"lot": r["Lot"], "version": int(r["version"]), "row_version": int(r["row_version"]),
            "values_json": r["values_json"], "deleted": _bool(r["deleted"])}


def _lot_version(r: dict[str, str]) -> dict[str, Any]:
    for c in ("columns_json", "order_json"):
        if not isinstance(_load_json(r[c], "lots/lot_versions.csv"), list):
            raise DoeError(f"The bundle's lots/lot_versions.csv has a {c} that is not a list. {_AGAIN}")
    return {"version": int(r["version"]), "content_hash": r["content_hash"], "n_lots": int(r["n_lots"]),
            "reason": r["reason"] or None, "columns_json": r["columns_json"], "order_json": r["order_json"],
            "created_at": r["created_at"], "created_by": r["created_by"]}


def _passage_key(r: dict[str, str]) -> list[Any]:
    return [r["Donor"], int(r["Passage"]), r["Vessel"], int(r["repeat"])]


def _passage(r: dict[str, str]) -> dict[str, Any]:
    values = _load_json(r["values_json"], "seed_train/passages.csv")
    donor, passage, vessel, repeat = _passage_key(r)
    if not isinstance(values, dict) or [values.get("Donor"), values.get("Passage"), values.get("Vessel")] != [
            donor, passage, vessel]:
        raise DoeError(f"The bundle's seed_train/passages.csv has a row whose Donor, Passage and Vessel are not "
                       f"those of its stored values (Donor {donor}, passage {passage}, {vessel}). {_AGAIN}")
    return {"donor": donor, "passage": passage, "vessel": vessel, "repeat": repeat, "values_json": r["values_json"],
            "row_version": int(r["row_version"]), "deleted": _bool(r["deleted"])}


def _passage_revision(r: dict[str, str]) -> dict[str, Any]:
    _load_json(r["values_json"], "seed_train/passage_revisions.csv")
    return {"key": _passage_key(r), "version": int(r["version"]), "row_version": int(r["row_version"]),
            "values_json": r["values_json"], "deleted": _bool(r["deleted"])}


def _passage_version(r: dict[str, str]) -> dict[str, Any]:
    _load_json(r["order_json"], "seed_train/passage_versions.csv")
    return {"version": int(r["version"]), "content_hash": r["content_hash"], "n_passages": int(r["n_passages"]),
            "reason": r["reason"] or None, "order_json": r["order_json"], "created_at": r["created_at"],
            "created_by": r["created_by"]}


def _equivalence(e: dict[str, Any]) -> dict[str, Any]:
    version = e["passage_version"]
    return {"passage_version": None if version is None else int(version), "result_json": _json_text(e, "result"),
            "note": str(e["note"]), "created_at": e["created_at"], "created_by": e["created_by"]}


def _study_version(v: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
    return {"version": int(v["version"]), "yaml": files[v["file"]].decode("utf-8"),
            "content_hash": v["content_hash"], "created_at": v["created_at"], "created_by": v["created_by"]}


def _design(d: dict[str, Any], files: dict[str, bytes], neutral: bool) -> dict[str, Any]:
    """A design of the bundle; one from before designs had names is named 'Design N' (its number) and
    ``current`` is None (the importer then makes the newest current, as the schema upgrade does).

    Bundle schema 2 carries the stored run sheet in designs.json and a readable (neutralised) copy in
    the CSV file, which must be exactly the copy made from it; schema 1 carries the sheet in the file.
    """
    if neutral:
        sheet = str(d["run_sheet"])
        if files[d["file"]] != _sheet_csv(sheet):
            raise DoeError(f"The bundle's {d['file']} is not the run sheet that designs/designs.json holds for "
                           f"design {d['number']}: it was edited after export. {_AGAIN}")
    else:
        sheet = files[d["file"]].decode("utf-8")
    return {"study_version": int(d["study_version"]), "kind": d["kind"], "seed": d["seed"],
            "model": d["model"], "run_sheet": sheet, "frozen": bool(d["frozen"]),
            "created_at": d["created_at"], "created_by": d["created_by"],
            "name": str(d.get("name") or f"Design {d['number']}"),
            "current": None if "current" not in d else bool(d["current"]),
            "deleted": bool(d.get("deleted", False))}


def _run(r: dict[str, str]) -> dict[str, Any]:
    _load_json(r["values_json"], "runs/runs.csv")
    return {"label": r[V.RUN], "values_json": r["values_json"], "row_version": int(r["row_version"]),
            "deleted": _bool(r["deleted"])}


def _revision(r: dict[str, str]) -> dict[str, Any]:
    _load_json(r["values_json"], "runs/revisions.csv")
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
    out: dict[str, Any] = {c: r.get(c) for c in AUDIT_COLUMNS}
    out["seq"], out["authenticated"] = int(r["seq"]), _bool(r["authenticated"])
    for c in ("ts", "user_name", "action", "entity", "entity_id", "prev_hash", "hash"):
        out[c] = r[c]
    for c in ("study", "field", "old_value", "new_value", "reason", "row_hash"):
        out[c] = r.get(c) or None  # row_hash: absent from bundles of stores before schema 0005
    for c in ("old_value", "new_value"):
        if out[c] is not None:
            _load_json(out[c], "audit/audit_trail.csv")
    return out


# -- checks before writing -------------------------------------------------------------------
def check_content(c: _Content, digests_required: bool = False) -> None:
    """Hashes of study versions, audit records and data versions match; runs match their last revision;
    the data agree with the bundle's own audit trail (:func:`_check_against_audit`)."""
    for text_value in [*(a[k] for a in c.analyses for k in ("choices_json", "summary_json")),
                       *(d[k] for d in c.decisions for k in ("set_point_json", "ranges_json"))]:
        _load_json(text_value, "analyses and decisions")
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
    _check_passages(c)
    _check_lots(c)
    _check_against_audit(c, digests_required)


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


def _check_passages(c: _Content) -> None:
    """Rebuild the passage sheet at every passage version from the revisions: each must match its hash and
    count; each row's current values are those of its last revision; equivalence results are JSON."""
    keys = {_key_text([p_["donor"], p_["passage"], p_["vessel"], p_["repeat"]]) for p_ in c.passages}
    known = {v["version"] for v in c.passage_versions}
    stray = [r for r in c.passage_revisions if _key_text(r["key"]) not in keys or r["version"] not in known]
    if stray:
        raise DoeError(f"The bundle has a revision of the passage {_key_text(stray[0]['key'])} in passage data "
                       f"version {stray[0]['version']}, which it does not hold. {_AGAIN}")
    state: dict[str, dict[str, Any] | None] = {}
    last: dict[str, dict[str, Any]] = {}
    for v in c.passage_versions:
        for r in c.passage_revisions:
            if r["version"] == v["version"]:
                state[_key_text(r["key"])] = None if r["deleted"] else json.loads(r["values_json"])
                last[_key_text(r["key"])] = r
        order = [_key_text(k) for k in json.loads(v["order_json"])]
        live = {k for k, values in state.items() if values is not None}
        if set(order) != live or len(order) != len(live):
            raise DoeError(f"Passage data version {v['version']} in the bundle lists rows its revisions do not "
                           f"hold: seed_train/passage_revisions.csv was changed. {_AGAIN}")
        sheet = [values for k in order if (values := state[k]) is not None]
        if values_hash(sheet) != v["content_hash"] or len(order) != v["n_passages"]:
            raise DoeError(f"Passage data version {v['version']} in the bundle does not match its recorded hash: "
                           f"the passage revisions were changed. {_AGAIN}")
    for p_ in c.passages:
        k = _key_text([p_["donor"], p_["passage"], p_["vessel"], p_["repeat"]])
        rev = last.get(k)
        if rev is None or any(rev[f] != p_[f] for f in ("values_json", "row_version", "deleted")):
            raise DoeError(f"The passage {k} in the bundle's seed_train/passages.csv differs from its last revision "
                           f"in seed_train/passage_revisions.csv. {_AGAIN}")
    for e in c.equivalence:
        _load_json(e["result_json"], "seed_train/equivalence.json")
        if e["passage_version"] is not None and e["passage_version"] not in known:
            raise DoeError(f"An equivalence test in the bundle names passage data version {e['passage_version']}, "
                           f"which the bundle does not hold. {_AGAIN}")


def _check_lots(c: _Content) -> None:
    """Rebuild the lot sheet at every lot data version from the revisions: each must match its hash and
    count; each lot's current values are those of its last revision."""
    lots = {lot["lot"] for lot in c.lots}
    known = {v["version"] for v in c.lot_versions}
    stray = [r for r in c.lot_revisions if r["lot"] not in lots or r["version"] not in known]
    if stray:
        raise DoeError(f"The bundle has a revision of lot {stray[0]['lot']} in lot data version "
                       f"{stray[0]['version']}, which it does not hold. {_AGAIN}")
    state: dict[str, dict[str, Any] | None] = {}
    last: dict[str, dict[str, Any]] = {}
    for v in c.lot_versions:
        for r in c.lot_revisions:
            if r["version"] == v["version"]:
                state[r["lot"]] = None if r["deleted"] else json.loads(r["values_json"])
                last[r["lot"]] = r
        order, columns = json.loads(v["order_json"]), json.loads(v["columns_json"])
        live = {k for k, values in state.items() if values is not None}
        if set(order) != live or len(order) != len(live):
            raise DoeError(f"Lot data version {v['version']} in the bundle lists lots its revisions do not hold: "
                           f"lots/lot_revisions.csv was changed. {_AGAIN}")
        sheet = [values for k in order if (values := state[k]) is not None]
        if lot_sheet_hash(columns, sheet) != v["content_hash"] or len(order) != v["n_lots"]:
            raise DoeError(f"Lot data version {v['version']} in the bundle does not match its recorded hash: "
                           f"the lot revisions were changed. {_AGAIN}")
    for lot in c.lots:
        rev = last.get(lot["lot"])
        if rev is None or any(rev[f] != lot[f] for f in ("values_json", "row_version", "deleted")):
            raise DoeError(f"Lot {lot['lot']} in the bundle's lots/lots.csv differs from its last revision in "
                           f"lots/lot_revisions.csv. {_AGAIN}")


def _key_text(key: Sequence[Any]) -> str:
    """A passage row's key [donor, passage, vessel, repeat] as one string (its JSON), to compare and show."""
    return json.dumps(list(key), ensure_ascii=False)


# -- the data against the bundle's own audit trail ---------------------------------------------
_IMPORTED = "imported from bundle "


@dataclass
class _Replayed:
    """The study as the bundle's audit trail records it, and each row's audit key (entity id)."""

    study_id: str | None = None
    versions: dict[int, tuple[str, Any]] = field(default_factory=dict)  # version: (entity id, yaml)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # entity id: label, values, deleted
    data_versions: dict[int, tuple[str, Any]] = field(default_factory=dict)  # version: (id, content hash)
    designs: dict[str, dict[str, Any]] = field(default_factory=dict)  # entity id: run_sheet, name
    analyses: dict[int, tuple[str, Any]] = field(default_factory=dict)  # version: (id, {data_version, choices})
    decisions: dict[str, Any] = field(default_factory=dict)  # entity id: content
    passages: dict[str, dict[str, Any]] = field(default_factory=dict)  # entity id: values, deleted
    passage_versions: dict[int, tuple[str, Any]] = field(default_factory=dict)  # version: (id, content hash)
    equivalence: dict[str, Any] = field(default_factory=dict)  # entity id: content
    lots: dict[str, dict[str, Any]] = field(default_factory=dict)  # entity id: values, deleted
    lot_versions: dict[int, tuple[str, Any]] = field(default_factory=dict)  # version: (id, content hash)
    digests: dict[tuple[str, str], str] = field(default_factory=dict)  # (entity, id): newest row_hash


def _replay(records: list[dict[str, Any]]) -> _Replayed:
    """Apply the audit records in order, as each writer of the store records its change.

    Runs imported by software from before the import recorded deleted runs (a bundle record
    without ``signature``) have an unknown deleted flag (None): only later records set it.
    """
    out, legacy = _Replayed(), set()
    for r in sorted(records, key=lambda r: r["seq"]):
        entity, eid, action, name = r["entity"], r["entity_id"], r["action"], r["field"] or ""
        new = None if r["new_value"] is None else json.loads(r["new_value"])
        if r.get("row_hash"):
            out.digests[(entity, eid)] = r["row_hash"]
        if name == "row_hash" and new is None:  # schema 0005's record of a row's digest: no change of content
            continue
        if entity == "bundle" and action == "create" and not (isinstance(new, dict) and "signature" in new):
            legacy.add(r["reason"])
        elif entity == "study" and action == "create":
            out.study_id = eid
        elif entity == "study_version" and name == "yaml":
            out.versions[_version_of(eid)] = (eid, new)
        elif entity == "run":
            _replay_run(out, r, eid, action, name, new, legacy)
        elif entity == "data_version" and name == "content_hash":
            out.data_versions[_version_of(eid)] = (eid, new)
        elif entity == "design":
            record = out.designs.setdefault(eid, {})
            if name in ("run_sheet", "name"):
                record[name] = new
        elif entity == "analysis" and name == "choices":
            out.analyses[_version_of(eid)] = (eid, new)
        elif entity == "decision" and name == "decision":
            out.decisions[eid] = new
        elif entity == "passage":
            _replay_passage(out, r, eid, action, name, new)
        elif entity == "passage_version" and name == "content_hash":
            out.passage_versions[_version_of(eid)] = (eid, new)
        elif entity == "equivalence" and name == "equivalence":
            out.equivalence[eid] = new
        elif entity == "lot":
            _replay_sheet_row(out.lots, r, eid, action, name, new, "lot")
        elif entity == "lot_version" and name == "content_hash":
            out.lot_versions[_version_of(eid)] = (eid, new)
    return out


def _replay_sheet_row(rows: dict[str, dict[str, Any]], r: dict[str, Any], eid: str, action: str, name: str,
                      new: Any, what: str) -> None:
    """A sheet row's record (a lot): "create" (also of one entered again after removal), "modify", "delete"."""
    if action == "create":
        rows[eid] = {"values": dict(new or {}), "deleted": False}
        return
    row = rows.get(eid)
    if row is None:
        raise DoeError(_disagree(f"audit record {r['seq']} changes {what} id {eid}, which no record before it "
                                 "creates"))
    if action == "delete":
        row["deleted"] = True
    else:
        row["values"][name] = new


def _replay_passage(out: _Replayed, r: dict[str, Any], eid: str, action: str, name: str, new: Any) -> None:
    """A passage row's record: "create" (also of a row entered again after removal), "modify", "delete"."""
    if action == "create":
        out.passages[eid] = {"values": dict(new or {}), "deleted": False}
        return
    row = out.passages.get(eid)
    if row is None:
        raise DoeError(_disagree(f"audit record {r['seq']} changes passage row id {eid}, which no record before "
                                 "it creates"))
    if action == "delete":
        row["deleted"] = True
    else:
        row["values"][name] = new


def _replay_run(out: _Replayed, r: dict[str, Any], eid: str, action: str, name: str, new: Any,
                legacy: set[str]) -> None:
    if action == "create" and name.startswith("Run "):
        out.runs[eid] = {"label": name[4:], "values": dict(new or {}),
                         "deleted": None if r["reason"] in legacy else False}
        return
    run = out.runs.get(eid)
    if run is None:
        raise DoeError(_disagree(f"audit record {r['seq']} changes run id {eid}, which no record before it "
                                 "creates"))
    if action == "delete":
        run["deleted"] = True
    elif action == "modify":
        run["values"][name] = new


def _version_of(entity_id: str) -> int:
    """The version number in an audit key '<study id>:<version>'."""
    return int(entity_id.rsplit(":", 1)[-1])


def _disagree(what: str) -> str:
    return (f"The bundle's data disagree with its own audit trail: {what}. The bundle was changed after it was "
            f"exported (or its audit trail is incomplete). {_AGAIN}")


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON text (so 1 and 1.0, or True and 1, differ)."""
    return _stored_json(a) == _stored_json(b)


def _shown(value: Any) -> str:
    text_value = json.dumps(value, ensure_ascii=False)
    return text_value if len(text_value) <= 60 else text_value[:57] + "..."


def _check_against_audit(c: _Content, digests_required: bool = False) -> None:
    """Replay the bundle's audit trail and compare it with every data file; where the records carry
    row digests (stores from schema 0005 on), each row's digest must be the newest one recorded."""
    rp = _replay(c.audit)
    _compare_versions(c, rp)
    _compare_runs(c, rp)
    _compare_data_versions(c, rp)
    _compare_designs(c, rp)
    _compare_analyses(c, rp)
    _compare_decisions(c, rp)
    _compare_seed_train(c, rp)
    _compare_lots(c, rp)
    _compare_digests(c, rp, digests_required)


def _compare_versions(c: _Content, rp: _Replayed) -> None:
    for v in c.versions:
        recorded = rp.versions.get(v["version"])
        if recorded is None:
            raise DoeError(_disagree(f"study version {v['version']} has no audit record"))
        if recorded[1] != v["yaml"]:
            raise DoeError(_disagree(f"study version {v['version']} (study/v{v['version']:04d}.yaml) is not the "
                                     "text its audit record holds"))
    _no_extra("study version", set(rp.versions) - {v["version"] for v in c.versions})


def _no_extra(what: str, extra: set[Any]) -> None:
    if extra:
        raise DoeError(_disagree(f"the audit trail records {what} {sorted(extra)[0]}, which the bundle does not "
                                 "hold"))


def _compare_runs(c: _Content, rp: _Replayed) -> None:
    recorded = {run["label"]: run for run in rp.runs.values()}
    for run in c.runs:
        label = run["label"]
        rec = recorded.get(label)
        if rec is None:
            raise DoeError(_disagree(f"run {label} has no audit record creating it"))
        values = json.loads(run["values_json"])
        for key in dict.fromkeys([*values, *rec["values"]]):
            if not _same(values.get(key), rec["values"].get(key)):
                raise DoeError(_disagree(f"run {label}: {key} is {_shown(values.get(key))} in the runs but "
                                         f"{_shown(rec['values'].get(key))} in the audit trail"))
        if rec["deleted"] is not None and rec["deleted"] != run["deleted"]:
            state = ("deleted", "not deleted") if run["deleted"] else ("not deleted", "deleted")
            raise DoeError(_disagree(f"run {label} is {state[0]} in the runs but {state[1]} in the audit trail"))
    _no_extra("run", set(recorded) - {run["label"] for run in c.runs})


def _compare_data_versions(c: _Content, rp: _Replayed) -> None:
    for v in c.data_versions:
        recorded = rp.data_versions.get(v["version"])
        if recorded is None or recorded[1] != v["content_hash"]:
            raise DoeError(_disagree(f"data version {v['version']} has the content hash {v['content_hash'][:12]}... "
                                     "in runs/data_versions.csv but "
                                     + ("no audit record" if recorded is None else
                                        f"{str(recorded[1])[:12]}... in the audit trail")))
    _no_extra("data version", set(rp.data_versions) - {v["version"] for v in c.data_versions})


def _by_number(ids: Iterable[str]) -> list[str]:
    """Audit keys of designs or decisions in the order the store numbered them (by row id)."""
    return sorted(ids, key=lambda i: (len(i), i))


def _compare_designs(c: _Content, rp: _Replayed) -> None:
    ids = _by_number(rp.designs)
    if len(ids) != len(c.designs):
        raise DoeError(_disagree(f"the bundle holds {len(c.designs)} designs but the audit trail records "
                                 f"{len(ids)}"))
    for number, (eid, design) in enumerate(zip(ids, c.designs), 1):
        rec = rp.designs[eid]
        if rec.get("run_sheet") != design["run_sheet"]:
            raise DoeError(_disagree(f"design {number}'s run sheet is not the one its audit record holds"))
        if "name" in rec and rec["name"] != design["name"]:  # names are recorded since schema 0004
            raise DoeError(_disagree(f"design {number} is named {_shown(design['name'])} in designs.json but "
                                     f"{_shown(rec['name'])} in the audit trail"))


def _compare_analyses(c: _Content, rp: _Replayed) -> None:
    for a in c.analyses:
        recorded = rp.analyses.get(a["version"])
        rec = recorded[1] if recorded else None
        if not isinstance(rec, dict) or rec.get("data_version") != a["data_version"] or not _same(
                rec.get("choices"), json.loads(a["choices_json"])):
            raise DoeError(_disagree(f"analysis version {a['version']}'s data version or model choices are not "
                                     "those its audit record holds"))
    _no_extra("analysis version", set(rp.analyses) - {a["version"] for a in c.analyses})


def _decision_record(d: dict[str, Any]) -> dict[str, Any]:
    """A decision as its audit record holds it."""
    return {"threshold": float(d["threshold"]), "set_point": json.loads(d["set_point_json"]),
            "ranges": json.loads(d["ranges_json"]), "analysis_version": d["analysis_version"], "note": d["note"]}


def _compare_decisions(c: _Content, rp: _Replayed) -> None:
    ids = _by_number(rp.decisions)
    if len(ids) != len(c.decisions):
        raise DoeError(_disagree(f"the bundle holds {len(c.decisions)} design-space decisions but the audit "
                                 f"trail records {len(ids)}"))
    for number, (eid, d) in enumerate(zip(ids, c.decisions), 1):
        if not _same(rp.decisions[eid], _decision_record(d)):
            raise DoeError(_disagree(f"design-space decision {number} is not the one its audit record holds"))


def _compare_seed_train(c: _Content, rp: _Replayed) -> None:
    """Passage rows (by number), passage versions (by version) and equivalence tests (by number) against
    the records."""

    ids = _by_number(rp.passages)
    if len(ids) != len(c.passages):
        raise DoeError(_disagree(f"the bundle holds {len(c.passages)} passage rows but the audit trail records "
                                 f"{len(ids)}"))
    for eid, p_ in zip(ids, c.passages):
        rec, label = rp.passages[eid], passage_label((p_["donor"], p_["passage"], p_["vessel"], p_["repeat"]))
        if not _same(rec["values"], json.loads(p_["values_json"])) or rec["deleted"] != p_["deleted"]:
            raise DoeError(_disagree(f"the passage row {label} is not the one its audit records hold"))
    for v in c.passage_versions:
        recorded = rp.passage_versions.get(v["version"])
        if recorded is None or recorded[1] != v["content_hash"]:
            raise DoeError(_disagree(f"passage data version {v['version']} has no audit record with its content "
                                     "hash"))
    _no_extra("passage data version", set(rp.passage_versions) - {v["version"] for v in c.passage_versions})
    ids = _by_number(rp.equivalence)
    if len(ids) != len(c.equivalence):
        raise DoeError(_disagree(f"the bundle holds {len(c.equivalence)} equivalence tests but the audit trail "
                                 f"records {len(ids)}"))
    for number, (eid, e) in enumerate(zip(ids, c.equivalence), 1):
        if not _same(rp.equivalence[eid], audit_value(e)):
            raise DoeError(_disagree(f"equivalence test {number} is not the one its audit record holds"))


def _compare_lots(c: _Content, rp: _Replayed) -> None:
    """Lots (by number) and lot data versions (by version) against the records; blank values are left
    out of the comparison (a column added blank changes no lot and gets no record)."""
    ids = _by_number(rp.lots)
    if len(ids) != len(c.lots):
        raise DoeError(_disagree(f"the bundle holds {len(c.lots)} lots but the audit trail records {len(ids)}"))
    for eid, lot in zip(ids, c.lots):
        rec = rp.lots[eid]
        recorded = {k: v for k, v in rec["values"].items() if v is not None}
        stored = {k: v for k, v in json.loads(lot["values_json"]).items() if v is not None}
        if not _same(recorded, stored) or rec["deleted"] != lot["deleted"]:
            raise DoeError(_disagree(f"lot {lot['lot']} is not the one its audit records hold"))
    for v in c.lot_versions:
        found = rp.lot_versions.get(v["version"])
        if found is None or found[1] != v["content_hash"]:
            raise DoeError(_disagree(f"lot data version {v['version']} has no audit record with its content hash"))
    _no_extra("lot data version", set(rp.lot_versions) - {v["version"] for v in c.lot_versions})


def _compare_digests(c: _Content, rp: _Replayed, required: bool) -> None:
    """Each row's digest (doe.store._integrity.row_digest) against the newest row_hash recorded for it;
    with ``required`` every row must have one."""
    if not rp.digests and not required:
        return
    for entity, eid, what, digest in row_digests(c, rp):
        recorded = rp.digests.get((entity, eid))
        if recorded is None and required:
            raise DoeError(_disagree(f"{what} has no row digest in the audit trail, though the store it was "
                                     "exported from (schema 0005 or later) records one for every row"))
        if recorded is not None and digest != recorded:
            raise DoeError(_disagree(f"the content of {what} does not match the digest its audit record holds"))


def row_digests(c: _Content, rp: _Replayed) -> list[tuple[str, str, str, str]]:
    """(entity, audit entity id, the row in words, its digest) for every row of the bundle, the rows
    matched to their audit keys by the replay (runs by label, designs and decisions by number)."""
    from doe.store._integrity import row_digest

    name = c.study["name"]
    runs_by_label = {run["label"]: eid for eid, run in rp.runs.items()}
    revisions: dict[int, list[dict[str, Any]]] = {}
    for r in c.revisions:
        revisions.setdefault(r["data_version"], []).append(r)
    rows: list[tuple[str, str | None, str, dict[str, Any]]] = [("study", rp.study_id, "the study", c.study)]
    rows += [("study_version", rp.versions[v["version"]][0], f"study version {v['version']}", v)
             for v in c.versions]
    rows += [("design", eid, f"design {i}", d) for i, (eid, d) in enumerate(zip(_by_number(rp.designs), c.designs), 1)]
    rows += [("run", runs_by_label[r["label"]], f"run {r['label']}", r) for r in c.runs]
    rows += [("data_version", rp.data_versions[v["version"]][0], f"data version {v['version']}",
              {**v, "revisions": revisions.get(v["version"], [])}) for v in c.data_versions]
    rows += [("analysis", rp.analyses[a["version"]][0], f"analysis version {a['version']}", a) for a in c.analyses]
    rows += [("decision", eid, f"design-space decision {i}", d)
             for i, (eid, d) in enumerate(zip(_by_number(rp.decisions), c.decisions), 1)]
    rows += _seed_train_rows(c, rp)
    return [(entity, eid or "", what, row_digest(entity, {**row, "study": name})) for entity, eid, what, row in rows]


def _seed_train_rows(c: _Content, rp: _Replayed) -> list[tuple[str, str | None, str, dict[str, Any]]]:
    """(entity, audit id, the row in words, its fields) of the passage rows, versions and equivalence tests."""

    revisions: dict[int, list[dict[str, Any]]] = {}
    for r in c.passage_revisions:
        revisions.setdefault(r["version"], []).append(r)
    rows: list[tuple[str, str | None, str, dict[str, Any]]] = [
        ("passage", eid, f"the passage row {passage_label((p_['donor'], p_['passage'], p_['vessel'], p_['repeat']))}", p_)
        for eid, p_ in zip(_by_number(rp.passages), c.passages)]
    rows += [("passage_version", rp.passage_versions[v["version"]][0], f"passage data version {v['version']}",
              {**v, "passage_revisions": revisions.get(v["version"], [])}) for v in c.passage_versions]
    rows += [("equivalence", eid, f"equivalence test {i}", e)
             for i, (eid, e) in enumerate(zip(_by_number(rp.equivalence), c.equivalence), 1)]
    lot_revisions: dict[int, list[dict[str, Any]]] = {}
    for r in c.lot_revisions:
        lot_revisions.setdefault(r["version"], []).append(r)
    rows += [("lot", eid, f"lot {lot['lot']}", lot) for eid, lot in zip(_by_number(rp.lots), c.lots)]
    rows += [("lot_version", rp.lot_versions[v["version"]][0], f"lot data version {v['version']}",
              {**v, "lot_revisions": lot_revisions.get(v["version"], [])}) for v in c.lot_versions]
    return rows


def digests_required(manifest: dict[str, Any]) -> bool:
    """True when the manifest's store schema revision is 0005 or later (row digests in every store)."""
    revision = str(manifest.get("store_schema_revision") or "")
    return revision.isdigit() and int(revision) >= 5


# -- the signature ----------------------------------------------------------------------------
def _signature_status(store: Store, raw: RawBundle, who: User, allow_unsigned: bool, flag: str) -> str:
    """How the bundle is signed, in words for the import's audit record; refused when it is not signed by
    a trusted key (unless ``allow_unsigned``) and always when the signature does not match."""
    from doe.store._signing import key_id, parse_public, trusted_keys, verify_signature

    own = site_key(store)
    keys = trusted_keys(own)
    anyway = (f"import it anyway with {flag} (the import's audit record then says it was not signed by a "
              "trusted site)")
    if raw.signature is None:
        if allow_unsigned:
            return f"unsigned, imported with {flag} by {who.name}"
        raise DoeError("The bundle is not signed, so this site cannot confirm where it comes from; nothing was "
                       "written. It was exported by software from before bundles were signed, or its signature "
                       f"was removed. Export the study again with the current software, or {anyway}.")
    doc = _signature_doc(raw.signature, flag)
    signer = doc["key_id"]
    if not verify_signature(raw.manifest_bytes, doc["signature"], signer, keys):
        return f"signed by this site (key {signer})" if signer == own.key_id else f"signed by trusted key {signer}"
    if signer not in keys:
        try:
            carried = parse_public(doc["public_key"])
        except DoeError:
            carried = None
        if carried is not None and key_id(carried) == signer and not verify_signature(
                raw.manifest_bytes, doc["signature"], signer, {signer: carried}):
            if allow_unsigned:
                return f"signed by key {signer}, which this site does not trust; imported with {flag} by {who.name}"
            raise DoeError(f"The bundle is signed with key {signer} ({doc['public_key']}), which is neither this "
                           f"site's key ({own.key_id}) nor one listed in DOE_TRUSTED_KEYS, so this site cannot "
                           "confirm where it comes from; nothing was written. If you trust the site that exported "
                           "it, add its public key (as 'python -m doe keys' prints it there) as a line of the file "
                           f"that DOE_TRUSTED_KEYS names and import again; or {anyway}.")
    raise DoeError(_invalid_signature(f"key {signer}", flag))


def _invalid_signature(what: str, flag: str) -> str:
    return (f"The bundle's signature ({what}) does not match its content: the bundle was changed after it was "
            f"signed, so it is refused, also with {flag}; nothing was written. Export the study again at the "
            "source site and import the new file.")


def _signature_doc(data: bytes, flag: str) -> dict[str, str]:
    """signature.json, checked for its fields; anything else is an invalid signature."""
    try:
        doc = _load_json(data, SIGNATURE)
        ok = (isinstance(doc, dict) and doc.get("algorithm") == ALGORITHM and doc.get("signed") == MANIFEST
              and all(isinstance(doc.get(k), str) and doc[k] for k in ("key_id", "public_key", "signature")))
        if ok:
            base64.b64decode(doc["signature"], validate=True)
    except (UnicodeDecodeError, ValueError, binascii.Error, DoeError):
        ok = False
    if not ok:
        raise DoeError(_invalid_signature(f"{SIGNATURE} is not an {ALGORITHM} signature of {MANIFEST}", flag))
    checked: dict[str, str] = doc
    return checked


# -- import ----------------------------------------------------------------------------------
class ImportedStudy(str):
    """The name of the imported study (a str), with ``signature``: how the bundle was signed, in words."""

    signature: str

    def __new__(cls, name: str, signature: str) -> ImportedStudy:
        out = super().__new__(cls, name)
        out.signature = signature
        return out


def import_bundle(store: Store, data: bytes, user: User | str, *, allow_unsigned: bool = False,
                  flag: str = "allow_unsigned=True") -> ImportedStudy:
    """Import a bundle (zip bytes) as a new study in ``store``; return the study's name.

    Everything is checked first (see :func:`read_bundle`, :func:`check_content` and the
    module docstring), the signature last: a bundle not signed by this site's key or one in
    ``DOE_TRUSTED_KEYS`` is refused unless ``allow_unsigned`` (``flag`` names that choice in
    messages and in the audit record, e.g. "--allow-unsigned"); a signature that does not match
    is always refused. A study of the same name already in the store is refused. The study is
    written in one transaction with its original versions, times and users; the store's audit
    trail gets a "create" record per imported item (reason "imported from bundle <SHA-256 of
    the manifest>", the bundle record saying how it was signed; a deleted run also gets its
    "delete" record), and the source audit records are kept in ``imported_audit`` and exported
    again with the study.
    """
    who = as_user(user)
    raw = read_bundle(data)
    content = parse_bundle(raw.files, raw.schema, digests_required=digests_required(raw.manifest))
    name = content.study["name"]
    if name != raw.manifest["study"]:
        raise DoeError(f"The bundle's manifest names study '{raw.manifest['study']}' but holds '{name}'. "
                       f"{_AGAIN}")
    status = _signature_status(store, raw, who, allow_unsigned, flag)
    with store._write(who) as (s, audit):
        if s.execute(select(StudyRow.id).where(StudyRow.name == name)).scalar_one_or_none() is not None:
            raise DoeError(f"A study named '{name}' is already in this database, so the bundle was not "
                           "imported (nothing was written; the study here is unchanged). A bundle is imported "
                           "only as a new study: import it into another database (--db URL).")
        _write_content(s, audit, content, raw.manifest, raw.digest, status)
    return ImportedStudy(name, status)


def _write_content(s: Session, audit: AuditWriter, c: _Content, manifest: dict[str, Any],
                   digest: str, signature: str) -> None:
    """Insert every row of the bundle, with audit records; ids are new, everything else as exported."""
    name, why = c.study["name"], f"{_IMPORTED}{digest}"
    study = StudyRow(**c.study)
    s.add(study)
    s.flush()
    sid = study.id
    audit.add("create", "bundle", digest, name, field="study", new=_import_summary(c, manifest, signature),
              reason=why)
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
    _write_seed_train(s, audit, sid, c, why)
    _write_lots(s, audit, sid, c, why)
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
    """Runs in their exported order (so reading them back keeps it), revisions, data versions.

    A deleted run gets a "delete" record after its "create" one, so that the store's own audit trail
    replays to the runs as imported (a bundle of this study is checked that way).
    """
    name = c.study["name"]
    rows = [RunRow(study_id=sid, **r) for r in c.runs]
    s.add_all(rows)
    s.flush()
    ids = {row.label: row.id for row in rows}
    for row in rows:
        values = json.loads(row.values_json)
        audit.add("create", "run", row.id, name, field=f"Run {row.label}", new=values, reason=why)
        if row.deleted:
            audit.add("delete", "run", row.id, name, field=f"Run {row.label}", old=values, reason=why)
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


def _write_seed_train(s: Session, audit: AuditWriter, sid: int, c: _Content, why: str) -> None:
    """The passage rows (in the bundle's order, a removed one with its "delete" record after its "create"
    one), their revisions, the passage versions and the equivalence tests, each with its audit record."""

    name = c.study["name"]
    rows = [PassageRow(study_id=sid, **p_) for p_ in c.passages]
    s.add_all(rows)
    s.flush()
    ids = {_key_text([r.donor, r.passage, r.vessel, r.repeat]): r.id for r in rows}
    for row in rows:
        values, label = json.loads(row.values_json), passage_label((row.donor, row.passage, row.vessel, row.repeat))
        audit.add("create", "passage", row.id, name, field=label, new=values, reason=why)
        if row.deleted:
            audit.add("delete", "passage", row.id, name, field=label, old=values, reason=why)
    s.add_all(PassageRevisionRow(passage_id=ids[_key_text(r["key"])], **{k: v for k, v in r.items() if k != "key"})
              for r in c.passage_revisions)
    for v in c.passage_versions:
        s.add(PassageVersionRow(study_id=sid, **v))
        audit.add("create", "passage_version", f"{sid}:{v['version']}", name, field="content_hash",
                  new=v["content_hash"], reason=why)
    tests = [EquivalenceTestRow(study_id=sid, **e) for e in c.equivalence]
    s.add_all(tests)
    s.flush()
    for test in tests:
        audit.add("create", "equivalence", test.id, name, field="equivalence", new=audit_value(test), reason=why)


def _write_lots(s: Session, audit: AuditWriter, sid: int, c: _Content, why: str) -> None:
    """The lots (in the bundle's order, a removed one with its "delete" record after its "create" one),
    their revisions and the lot data versions, each with its audit record."""
    name = c.study["name"]
    rows = [LotRow(study_id=sid, **lot) for lot in c.lots]
    s.add_all(rows)
    s.flush()
    ids = {r.lot: r.id for r in rows}
    for row in rows:
        values = json.loads(row.values_json)
        audit.add("create", "lot", row.id, name, field=lot_label(row.lot), new=values, reason=why)
        if row.deleted:
            audit.add("delete", "lot", row.id, name, field=lot_label(row.lot), old=values, reason=why)
    s.add_all(LotRevisionRow(lot_id=ids[r["lot"]], **{k: v for k, v in r.items() if k != "lot"})
              for r in c.lot_revisions)
    for v in c.lot_versions:
        s.add(LotVersionRow(study_id=sid, **v))
        audit.add("create", "lot_version", f"{sid}:{v['version']}", name, field="content_hash",
                  new=v["content_hash"], reason=why)


def _import_summary(c: _Content, manifest: dict[str, Any], signature: str) -> dict[str, Any]:
    """What the import brought and how the bundle was signed, for the bundle's audit record."""
    return {"study": c.study["name"], "exported_at": manifest.get("exported_at"),
            "exported_by": manifest.get("exported_by"), "software": manifest.get("software"),
            "store_schema_revision": manifest.get("store_schema_revision"),
            "bundle_schema": manifest.get("bundle_schema"), "signature": signature,
            "counts": {"study_versions": len(c.versions), "designs": len(c.designs), "runs": len(c.runs),
                       "run_revisions": len(c.revisions), "data_versions": len(c.data_versions),
                       "analyses": len(c.analyses), "decisions": len(c.decisions),
                       "audit_records": len(c.audit) + len(c.imported),
                       **({"passages": len(c.passages), "passage_versions": len(c.passage_versions),
                           "equivalence_tests": len(c.equivalence)}
                          if c.passages or c.passage_versions or c.equivalence else {}),
                       **({"lots": len(c.lots), "lot_versions": len(c.lot_versions)} if c.lots else {})}}


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


def _load_json(data: bytes | str, where: str) -> Any:
    """JSON from a bundle, nested at most MAX_JSON_DEPTH deep; deeper nesting is a clear DoeError."""
    try:
        value = json.loads(data)
    except RecursionError:
        value = None
        depth_ok = False
    else:
        depth_ok = _depth_within(value, MAX_JSON_DEPTH)
    if not depth_ok:
        raise DoeError(f"The bundle's {where} holds JSON nested more than {MAX_JSON_DEPTH} levels deep; the "
                       f"values this software stores are a few levels deep, so it was not made by this software. "
                       f"{_AGAIN}")
    return value


def _depth_within(value: Any, limit: int) -> bool:
    """True when lists and mappings in ``value`` nest at most ``limit`` deep (without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > limit:
                return False
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return True


#: A plain number ("-1.5", "+4", "2e-3"): a spreadsheet reads it as a number, never as a formula.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
#: First characters a spreadsheet reads as the start of a formula (as doe.design marks run sheets).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _neutral(cell: str) -> str:
    """The cell as written in a bundle CSV: an apostrophe before formula-like text and before an apostrophe."""
    if cell[:1] == "'" or (cell[:1] in _FORMULA_START and not _NUMBER.fullmatch(cell)):
        return "'" + cell
    return cell


def _restore(cell: str) -> str:
    """The cell as stored: one leading apostrophe dropped (the inverse of :func:`_neutral`)."""
    return cell[1:] if cell[:1] == "'" else cell


def _csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """CSV bytes; None is empty, booleans are true/false, floats their shortest exact repr; every cell
    and header neutralised (:func:`_neutral`), lines ending in CRLF so a CR in a cell is quoted."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator=_LINE_END)
    writer.writerow([_neutral(c) for c in columns])
    writer.writerows([_neutral(_cell_text(v)) for v in row] for row in rows)
    return buf.getvalue().encode("utf-8")


def _sheet_csv(run_sheet: str) -> bytes:
    """The readable copy of a stored run sheet (CSV text): the same cells, neutralised like every bundle CSV."""
    return _csv_rows_bytes(_csv_rows(run_sheet, "a design's run sheet"))


def _csv_rows_bytes(rows: list[list[str]]) -> bytes:
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator=_LINE_END).writerows([_neutral(c) for c in row] for row in rows)
    return buf.getvalue().encode("utf-8")


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


#: Python's csv module keeps its cell size limit in one process-wide setting; bundle files are read
#: with MAX_CELL_CHARS under this lock and the setting restored at once.
_CSV_LIMIT = threading.Lock()


def _csv_rows(text_value: str, where: str) -> list[list[str]]:
    """Every row of CSV text, cells up to MAX_CELL_CHARS characters; otherwise a clear DoeError."""
    reader = csv.reader(io.StringIO(text_value, newline=""))
    with _CSV_LIMIT:
        before = csv.field_size_limit(MAX_CELL_CHARS)
        try:
            return list(reader)
        except csv.Error as exc:
            if "field limit" in str(exc):
                raise DoeError(f"A cell in {where} (line {reader.line_num}) is longer than {MAX_CELL_CHARS:,} "
                               f"characters, more than any value this software stores. {_AGAIN}") from None
            raise DoeError(f"{where} is not valid CSV at line {reader.line_num} ({exc}). {_AGAIN}") from None
        finally:
            csv.field_size_limit(before)


def _read_csv(data: bytes, path: str, neutral: bool) -> list[dict[str, str]]:
    """The rows of a bundle CSV file as {header: cell}; with ``neutral`` (schema 2) cells restored."""
    rows = [row for row in _csv_rows(data.decode("utf-8"), f"the bundle's {path}") if row]  # [] : a blank line
    if not rows:
        raise DoeError(f"The bundle's {path} is empty (not even a header line). {_AGAIN}")
    if neutral:
        rows = [[_restore(c) for c in row] for row in rows]
    header = rows[0]
    out = []
    for n, row in enumerate(rows[1:], 2):
        if len(row) != len(header):
            raise DoeError(f"Row {n} of the bundle's {path} has {len(row)} cells but its header {len(header)}. "
                           f"{_AGAIN}")
        out.append(dict(zip(header, row)))
    return out


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
