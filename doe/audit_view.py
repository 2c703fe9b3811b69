"""The audit trail as a table to read: filtered, newest first, values in full.

>>> trail = pd.DataFrame({"seq": [1, 2], "ts": ["2026-11-28T10:00:00.000001Z", "2026-11-28T10:05:00.000001Z"],
...     "user_name": ["ana", "bob"], "authenticated": [False, True], "action": ["create", "modify"],
...     "entity": ["run", "run"], "entity_id": ["7", "7"], "study": ["S", "S"], "field": ["Run 1", "Viability"],
...     "old_value": [None, "91.0"], "new_value": ['{"Viability": 91.0}', "93.5"], "reason": [None, "typo"],
...     "prev_hash": ["0", "a"], "hash": ["a", "b"]})
>>> audit_frame(trail, users=["bob"])[["seq", "user", "old value", "new value", "reason"]].to_dict("records")
[{'seq': 2, 'user': 'bob', 'old value': '91.0', 'new value': '93.5', 'reason': 'typo'}]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from doe.store import SignedHead

#: Entities of the audit trail in words (an entity not listed is shown as stored, '_' as a space).
ENTITY_LABELS = {"study_version": "study version", "data_version": "data version", "analysis": "analysis version",
                 "decision": "design-space decision", "passage": "passage",
                 "passage_version": "passage data version", "equivalence": "equivalence test",
                 "lot": "lot", "lot_version": "lot data version",
                 "bundle": "bundle import"}


def entity_label(entity: str) -> str:
    """An audit entity in words: 'passage_version' -> 'passage data version', 'equivalence' -> 'equivalence test'.

    >>> entity_label("passage_version"), entity_label("equivalence"), entity_label("run")
    ('passage data version', 'equivalence test', 'run')
    """
    return ENTITY_LABELS.get(entity, str(entity).replace("_", " "))


COLUMNS = {"seq": "seq", "ts": "time (UTC)", "user_name": "user", "authenticated": "signed in",
           "action": "action", "entity": "entity", "field": "field", "old_value": "old value",
           "new_value": "new value", "reason": "reason", "entity_id": "record", "study": "study", "hash": "hash"}


def audit_frame(trail: pd.DataFrame, *, study: str | None = None, users: Sequence[str] = (),
                actions: Sequence[str] = (), entities: Sequence[str] = ()) -> pd.DataFrame:
    """Records of ``trail`` (as :meth:`doe.store.Store.audit_trail` returns it) matching every filter given.

    Newest first; time shown to the second with 'UTC' implied; ``signed in``
    is 'yes' or 'no (unauthenticated)'; the entity in words (:func:`entity_label`; the
    ``entities`` filter takes the stored names); old and new values are shown in full.
    """
    keep = pd.Series(True, index=trail.index)
    if study is not None:
        keep &= trail["study"] == study
    for column, wanted in (("user_name", users), ("action", actions), ("entity", entities)):
        if wanted:
            keep &= trail[column].isin(list(wanted))
    out = trail.loc[keep, list(COLUMNS)].rename(columns=COLUMNS).iloc[::-1].reset_index(drop=True)
    out["time (UTC)"] = out["time (UTC)"].str.slice(0, 19).str.replace("T", " ")
    out["signed in"] = out["signed in"].map({True: "yes", False: "no (unauthenticated)"})
    out["hash"] = out["hash"].str.slice(0, 12)
    out["entity"] = out["entity"].map(entity_label)
    return out


def audit_csv(trail: pd.DataFrame) -> str:
    """The records as CSV to open in a spreadsheet: every column, text a spreadsheet would run as a
    formula (= + - @, tab, CR) neutralised with a leading apostrophe. To recompute the hashes use
    :func:`audit_jsonl`, which keeps every value exactly as hashed."""
    from doe.design import safe_csv

    return safe_csv(trail)


def audit_jsonl(trail: pd.DataFrame) -> str:
    """The records as JSON Lines, one record per line with every value exactly as stored and hashed.

    A record's ``hash`` is SHA-256 over ``prev_hash`` followed by the canonical JSON (sorted keys,
    separators ``,`` and ``:``, UTF-8) of its fields seq, ts, user_name, authenticated, action,
    entity, entity_id, study, field, old_value, new_value and reason, plus ``row_hash`` (the
    digest of the data row, doe.store._integrity) when it is not null.
    """
    import json

    lines = []
    for record in trail.to_dict(orient="records"):
        plain = {k: (None if v is None or (isinstance(v, float) and v != v) else
                     int(v) if k == "seq" else bool(v) if k == "authenticated" else v) for k, v in record.items()}
        lines.append(json.dumps(plain, ensure_ascii=False, sort_keys=True))
    return "\n".join(lines) + ("\n" if lines else "")


def head_frame(head: SignedHead) -> pd.DataFrame:
    """The signed head (:class:`doe.store.SignedHead`) as a one-row table to read and write down.

    >>> from doe.store import SignedHead
    >>> row = head_frame(SignedHead(12, "ab" * 32, "4b6ed5742d21dcaa", "c2ln", "2026-12-06T17:22:05.197150Z")).iloc[0]
    >>> int(row["last record"]), row["hash"][:8], row["site key id"], row["signed at (UTC)"]
    (12, 'abababab', '4b6ed5742d21dcaa', '2026-12-06 17:22:05')
    """
    signed = (head.signed_at or "")[:19].replace("T", " ") or "not signed"
    return pd.DataFrame({"last record": [head.seq], "hash": [head.hash], "site key id": [head.key_id or "none"],
                         "signed at (UTC)": [signed]})
