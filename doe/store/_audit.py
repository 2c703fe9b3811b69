"""The hash-chained audit trail (21 CFR 11.10(e)): who, when, what, old and new values, why.

Each record's ``hash`` is SHA-256 over the previous record's hash followed by
a canonical JSON of the record itself (sorted keys, no spaces, UTF-8), so
altering, inserting or deleting a record breaks the chain from that record on.

Tamper evidence over the data (schema 0005): a record also carries ``row_hash``, the digest
of the row it is about as it was when the change was committed (doe.store._integrity), and
the chain's head is signed with the site key at every write (doe.store._signing). ``audit
verify`` recomputes the chain, checks the head's signature and recomputes every row's digest,
so an edit of the data, of the trail (even re-hashed) or of the head is found by anyone
without the site key. Records from before 0005 have no ``row_hash`` and hash as before.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from doe.errors import DoeError
from doe.store._integrity import ENTITIES, all_rows, describe, digests_of, head_message
from doe.store._models import GENESIS_HASH, AuditHeadRow, AuditRow

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from doe.store._signing import SiteKey

ACTIONS = ("create", "modify", "delete")
_HASHED = ("seq", "ts", "user_name", "authenticated", "action", "entity", "entity_id", "study",
           "field", "old_value", "new_value", "reason")
#: Hashed too, when not None (so every record written before schema 0005 keeps its hash).
ROW_HASH = "row_hash"


@dataclass(frozen=True)
class User:
    """Who makes a change; ``authenticated`` is False for a name typed in without sign-in."""

    name: str
    authenticated: bool = False


def as_user(user: User | str) -> User:
    """A User from a User or a plain (unauthenticated) name; an empty name is refused."""
    out = user if isinstance(user, User) else User(str(user or ""))
    if not out.name.strip():
        raise DoeError("Every change needs a user name: enter who you are before saving.")
    from doe.limits import MAX_STUDY_NAME_CHARS, bad_character

    if len(out.name) > MAX_STUDY_NAME_CHARS:
        raise DoeError(f"A user name has at most {MAX_STUDY_NAME_CHARS} characters (this one has "
                       f"{len(out.name)}): enter a shorter name.")
    odd = bad_character(out.name)
    if odd:
        raise DoeError(f"The user name contains {odd}: enter the name without it.")
    return out


def utc_now() -> str:
    """Current UTC time as ISO-8601 text with microseconds and a 'Z'."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_text(value: Any) -> str | None:
    """An old/new value as JSON text (None stays None), keys sorted."""
    return None if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def record_hash(prev_hash: str, record: dict[str, Any]) -> str:
    """SHA-256 hex of the previous hash + the canonical JSON of the record's hashed fields.

    The fields are seq, ts, user_name, authenticated, action, entity, entity_id, study, field,
    old_value, new_value and reason, plus row_hash when the record has one (not None).
    """
    doc = {k: record[k] for k in _HASHED}
    if record.get(ROW_HASH) is not None:
        doc[ROW_HASH] = record[ROW_HASH]
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


class AuditWriter:
    """Collects the audit records of one write transaction, holding the locked audit head.

    :meth:`finish` (called by the store just before the commit) fills each record's ``row_hash``
    with the digest of its row as it is then, chains the records, and signs the new head with
    the site key. The head it extends must carry a valid signature of that key: a head changed
    outside the application is never signed over (the write is refused instead).
    """

    def __init__(self, session: Session, user: User, key: SiteKey | None = None) -> None:
        self.session = session
        self.user = user
        self.key = key
        self.ts = utc_now()
        self.head = session.execute(
            select(AuditHeadRow).where(AuditHeadRow.id == 1).with_for_update()).scalar_one()
        self.records: list[dict[str, Any]] = []

    def add(self, action: str, entity: str, entity_id: Any, study: str | None, *, field: str | None = None,
            old: Any = None, new: Any = None, reason: str | None = None) -> None:
        """Add one record (old/new are stored as JSON text); it is written by :meth:`finish`."""
        if action not in ACTIONS:
            raise ValueError(f"audit action must be one of {ACTIONS}, not {action!r}")
        self.records.append({"ts": self.ts, "user_name": self.user.name,
                             "authenticated": bool(self.user.authenticated), "action": action, "entity": entity,
                             "entity_id": str(entity_id), "study": study, "field": field,
                             "old_value": to_text(old), "new_value": to_text(new), "reason": reason or None})

    def finish(self) -> None:
        """Write the records with their rows' digests as of now, and sign the new head."""
        if not self.records:
            return
        if self.key is not None:
            problem = head_problem(self.head, {self.key.key_id: self.key.public}, self.key.key_id)
            if problem:
                raise DoeError(f"Nothing was saved: {problem} Run 'python -m doe audit verify' and report the "
                               "incident to QA; see docs/DEPLOY.md (tamper evidence).")
        self.session.flush()
        digests = digests_of(self.session, {(r["entity"], r["entity_id"]) for r in self.records})
        seq, prev = self.head.last_seq, self.head.last_hash
        rows = []
        for record in self.records:
            seq += 1
            record.update(seq=seq, prev_hash=prev, row_hash=digests.get((record["entity"], record["entity_id"])))
            record["hash"] = prev = record_hash(prev, record)
            rows.append(AuditRow(**record))
        self.session.add_all(rows)
        self.head.last_seq, self.head.last_hash = seq, prev
        self.records = []
        if self.key is not None:
            sign_head(self.head, self.key)


def sign_head(head: AuditHeadRow, key: SiteKey) -> None:
    """Sign the head's record number and hash with the site key, now."""
    head.signed_at, head.key_id = utc_now(), key.key_id
    head.signature = key.sign(head_message(head.last_seq, head.last_hash, head.signed_at, head.key_id))


def head_problem(head: AuditHeadRow | None, keys: dict[str, Ed25519PublicKey], own: str | None = None) -> str:
    """'' when the head carries a valid signature of one of ``keys``; else what is wrong, in plain words."""
    from doe.store._signing import verify_signature

    if head is None:
        return "the audit trail has no head record (the table audit_head was emptied outside the application)."
    if not head.signature or not head.key_id or not head.signed_at:
        return (f"the audit trail's head (record {head.last_seq}) is not signed with the site key: it was "
                "changed outside the application.")
    if head.key_id not in keys:
        return (f"the audit trail's head is signed with key {head.key_id}, not with this site's key"
                f"{' ' + own if own else ''}: the database was changed outside the application, or the site "
                "key is not the one that signed it (point DOE_SITE_KEY_FILE at the key with that id).")
    why = verify_signature(head_message(head.last_seq, head.last_hash, head.signed_at, head.key_id),
                           head.signature, head.key_id, keys)
    if why:
        return (f"the signature of the audit trail's head (record {head.last_seq}) does not match: the trail "
                "was rewritten, shortened or extended outside the application.")
    return ""


@dataclass(frozen=True)
class SignedHead:
    """The audit trail's head as stored: last record, its hash, and the site key's signature over them."""

    seq: int
    hash: str
    key_id: str | None
    signature: str | None
    signed_at: str | None

    def __str__(self) -> str:
        signed = (f"signed with key {self.key_id} at {self.signed_at}" if self.signature else "not signed")
        return f"record {self.seq}, hash {self.hash}, {signed}"


@dataclass(frozen=True)
class AuditCheck:
    """Result of :func:`verify_chain`: ``ok``, records checked, the first problem, the signed head.

    ``bad_seq`` is the first broken record (for a data row: its newest audit record; None for a
    row with none); ``entity``/``entity_id`` name the data row whose content does not match;
    ``rows_checked`` counts the data rows whose digests were recomputed.
    """

    ok: bool
    checked: int
    bad_seq: int | None = None
    problem: str = ""
    rows_checked: int = 0
    head: SignedHead | None = None
    entity: str | None = None
    entity_id: str | None = None

    def __str__(self) -> str:
        if self.ok:
            return (f"Audit trail intact: {self.checked} records, every hash link verified, the head's "
                    f"signature valid, and {self.rows_checked} stored rows match it.")
        if self.entity is not None:
            return f"Stored data do not match the audit trail: {self.problem}"
        return f"Audit trail broken at record {self.bad_seq}: {self.problem}"


def verify_chain(session: Session, keys: dict[str, Ed25519PublicKey] | None = None, own: str | None = None,
                 batch: int = 5000) -> AuditCheck:
    """Recompute every link in order, check the head (and its signature when ``keys`` are given),
    then recompute every stored row's digest; report the first problem."""
    stored = session.get(AuditHeadRow, 1)
    head = None if stored is None else SignedHead(stored.last_seq, stored.last_hash, stored.key_id,
                                                  stored.signature, stored.signed_at)
    prev, expected_seq, checked, last = GENESIS_HASH, 1, 0, 0
    latest: dict[str, dict[str, tuple[str, int, str | None]]] = {e: {} for e in ENTITIES}
    labels: dict[str, str] = {}
    while True:
        rows = session.execute(select(*AuditRow.__table__.c).where(AuditRow.seq > last).order_by(AuditRow.seq)
                               .limit(batch)).all()
        for row in rows:
            problem = _link_problem(row, prev, expected_seq)
            if problem:
                return AuditCheck(False, checked, min(row.seq, expected_seq), problem, head=head)
            if row.row_hash is not None and row.entity in latest:
                latest[row.entity][row.entity_id] = (row.row_hash, row.seq, row.study)
            if row.entity == "run" and row.field and row.field.startswith("Run "):
                labels.setdefault(row.entity_id, row.field[4:])
            prev, expected_seq, checked, last = row.hash, row.seq + 1, checked + 1, row.seq
        if len(rows) < batch:
            break
    problem, bad = _head_link_problem(stored, prev, last)
    if problem:
        return AuditCheck(False, checked, bad, problem, head=head)
    if keys is not None:
        problem = head_problem(stored, keys, own)
        if problem:
            return AuditCheck(False, checked, last, problem, head=head)
    return _check_rows(session, latest, labels, checked, head)


def _check_rows(session: Session, latest: dict[str, dict[str, tuple[str, int, str | None]]],
                labels: dict[str, str], checked: int, head: SignedHead | None) -> AuditCheck:
    """Every stored row's digest against the newest one the chain holds for it, entity by entity."""
    rows_of, n = all_rows(session), 0
    for entity in ENTITIES:
        expected = latest[entity]
        seen: set[str] = set()
        for row in rows_of(entity):
            n += 1
            seen.add(row.entity_id)
            held = expected.get(row.entity_id)
            if held is None:
                return AuditCheck(False, checked, None, f"{row.label}: it has no audit record (it was added "
                                  "outside the application).", n, head, entity, row.entity_id)
            if held[0] != row.digest:
                return AuditCheck(False, checked, held[1], f"{row.label}: its stored content does not match the "
                                  "audit trail (changed outside the application).", n, head, entity, row.entity_id)
        gone = sorted((held[1], entity_id, held[2]) for entity_id, held in expected.items() if entity_id not in seen)
        if gone:
            seq, entity_id, study = gone[0]
            what = describe(entity, entity_id, study, labels.get(entity_id) if entity == "run" else None)
            return AuditCheck(False, checked, seq, f"{what}: it is in the audit trail but no longer stored "
                              "(deleted outside the application).", n, head, entity, entity_id)
    return AuditCheck(True, checked, rows_checked=n, head=head)


def _link_problem(row: Any, prev: str, expected_seq: int) -> str:
    if row.seq != expected_seq:
        return f"record {expected_seq} is missing (the next record is {row.seq}): a row was deleted."
    if row.prev_hash != prev:
        return "its link to the previous record does not match: a record before it was altered or removed."
    record = {k: getattr(row, k) for k in (*_HASHED, ROW_HASH)}
    record["authenticated"] = bool(record["authenticated"])
    if record_hash(prev, record) != row.hash:
        return ("its content does not match its hash: the record was altered outside the application "
                f"(entity {row.entity} {row.entity_id}, field {row.field}, action {row.action}).")
    return ""


def _head_link_problem(head: AuditHeadRow | None, prev: str, last: int) -> tuple[str, int]:
    """What is wrong between the trail's end (record ``last``, hash ``prev``) and the head, and where."""
    if head is None:
        return ("the audit trail has no head record (the table audit_head was emptied outside the "
                "application).", last)
    if head.last_seq > last:
        return (f"the trail ends at record {last} but the store recorded {head.last_seq} records: the last "
                "records were deleted.", last + 1)
    if head.last_seq < last:
        return (f"the store recorded {head.last_seq} records but the trail goes on to record {last}: records "
                "were added outside the application.", head.last_seq + 1)
    if head.last_hash != prev:
        return (f"the hash of the last record ({last}) is not the one the store recorded: the trail was "
                "rewritten outside the application.", last)
    return "", 0
