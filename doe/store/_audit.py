"""The hash-chained audit trail (21 CFR 11.10(e)): who, when, what, old and new values, why.

Each record's ``hash`` is SHA-256 over the previous record's hash followed by
a canonical JSON of the record itself (sorted keys, no spaces, UTF-8), so
altering, inserting or deleting a row breaks the chain from that row on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from doe.errors import DoeError
from doe.store._models import GENESIS_HASH, AuditHeadRow, AuditRow

ACTIONS = ("create", "modify", "delete")
_HASHED = ("seq", "ts", "user_name", "authenticated", "action", "entity", "entity_id", "study",
           "field", "old_value", "new_value", "reason")


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
    return out


def utc_now() -> str:
    """Current UTC time as ISO-8601 text with microseconds and a 'Z'."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_text(value: Any) -> str | None:
    """An old/new value as JSON text (None stays None), keys sorted."""
    return None if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def record_hash(prev_hash: str, record: dict[str, Any]) -> str:
    """SHA-256 hex of the previous hash + the canonical JSON of the record's hashed fields."""
    canonical = json.dumps({k: record[k] for k in _HASHED}, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


class AuditWriter:
    """Appends audit records inside one write transaction, holding the locked audit head."""

    def __init__(self, session: Session, user: User) -> None:
        self.session = session
        self.user = user
        self.ts = utc_now()
        self.head = session.execute(
            select(AuditHeadRow).where(AuditHeadRow.id == 1).with_for_update()).scalar_one()

    def add(self, action: str, entity: str, entity_id: Any, study: str | None, *, field: str | None = None,
            old: Any = None, new: Any = None, reason: str | None = None) -> None:
        """Append one record (old/new are stored as JSON text) and move the head on."""
        if action not in ACTIONS:
            raise ValueError(f"audit action must be one of {ACTIONS}, not {action!r}")
        record = {"seq": self.head.last_seq + 1, "ts": self.ts, "user_name": self.user.name,
                  "authenticated": bool(self.user.authenticated), "action": action, "entity": entity,
                  "entity_id": str(entity_id), "study": study, "field": field,
                  "old_value": to_text(old), "new_value": to_text(new), "reason": reason or None}
        record["prev_hash"] = self.head.last_hash
        record["hash"] = record_hash(self.head.last_hash, record)
        self.session.add(AuditRow(**record))
        self.head.last_seq, self.head.last_hash = record["seq"], record["hash"]


@dataclass(frozen=True)
class AuditCheck:
    """Result of :func:`verify_chain`: ``ok``, records checked, and the first broken link."""

    ok: bool
    checked: int
    bad_seq: int | None = None
    problem: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"Audit trail intact: {self.checked} records, every hash link verified."
        return f"Audit trail broken at record {self.bad_seq}: {self.problem}"


def verify_chain(session: Session, batch: int = 5000) -> AuditCheck:
    """Recompute every link in order; report the first record that does not match."""
    prev, expected_seq, checked = GENESIS_HASH, 1, 0
    last = 0
    while True:
        rows = session.execute(select(AuditRow).where(AuditRow.seq > last).order_by(AuditRow.seq)
                               .limit(batch)).scalars().all()
        for row in rows:
            problem = _link_problem(row, prev, expected_seq)
            if problem:
                return AuditCheck(False, checked, min(row.seq, expected_seq), problem)
            prev, expected_seq, checked, last = row.hash, row.seq + 1, checked + 1, row.seq
        if len(rows) < batch:
            break
    return _check_head(session, prev, last, checked)


def _link_problem(row: AuditRow, prev: str, expected_seq: int) -> str:
    if row.seq != expected_seq:
        return f"record {expected_seq} is missing (the next record is {row.seq}): a row was deleted."
    if row.prev_hash != prev:
        return "its link to the previous record does not match: a record before it was altered or removed."
    record = {k: getattr(row, k) for k in _HASHED}
    record["authenticated"] = bool(record["authenticated"])
    if record_hash(prev, record) != row.hash:
        return ("its content does not match its hash: the record was altered outside the application "
                f"(entity {row.entity} {row.entity_id}, field {row.field}, action {row.action}).")
    return ""


def _check_head(session: Session, prev: str, last: int, checked: int) -> AuditCheck:
    head = session.get(AuditHeadRow, 1)
    if head is None or head.last_seq != last or head.last_hash != prev:
        seq = last + 1
        return AuditCheck(False, checked, seq, f"the trail ends at record {last} but the store recorded "
                                               f"{head.last_seq if head else '?'} records: the last "
                                               "records were deleted.")
    return AuditCheck(True, checked)
