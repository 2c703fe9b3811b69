"""What changed between two saved versions of a study, in words (for conflict messages and the audit page).

>>> old = "name: S\\ndescription: a\\nfactors:\\n- {name: Seeding density, lower: 1000, upper: 5000}\\n"
>>> new = "name: S\\ndescription: b\\nblock: Donor\\nfactors:\\n- {name: Seeding density, lower: 1000, upper: 6000}\\n"
>>> study_changes(old, new)
["block: (none) → 'Donor'", "description: 'a' → 'b'", "factor 'Seeding density': upper 5000 → 6000"]
"""

from __future__ import annotations

from typing import Any

import yaml

_NAMED = {"factors": "factor", "responses": "response", "constraints": "constraint"}


def _load(text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _key(entry: Any, i: int) -> str:
    return str(entry.get("name")) if isinstance(entry, dict) and entry.get("name") is not None else f"#{i + 1}"


def _entries(value: Any) -> dict[str, Any]:
    return {_key(e, i): e for i, e in enumerate(value)} if isinstance(value, list) else {}


def study_changes(old_text: str, new_text: str, limit: int = 8) -> list[str]:
    """The differences from ``old_text`` to ``new_text`` (study YAML), one short line each, at most ``limit``."""
    old, new = _load(old_text), _load(new_text)
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key in _NAMED and isinstance(a or [], list) and isinstance(b or [], list):
            out.extend(_list_changes(_NAMED[key], _entries(a), _entries(b)))
        else:
            out.append(f"{key}: {_show(a)} → {_show(b)}")
    if len(out) > limit:
        out = [*out[:limit], f"and {len(out) - limit} more changes"]
    return out


def _list_changes(what: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = [f"{what} '{n}' added" for n in new if n not in old]
    out += [f"{what} '{n}' removed" for n in old if n not in new]
    for n in (n for n in new if n in old and old[n] != new[n]):
        a, b = old[n], new[n]
        if isinstance(a, dict) and isinstance(b, dict):
            parts = [f"{k} {_show(a.get(k))} → {_show(b.get(k))}" for k in sorted(set(a) | set(b))
                     if a.get(k) != b.get(k)]
            out.append(f"{what} '{n}': " + "; ".join(parts))
        else:
            out.append(f"{what} '{n}' changed")
    return out
