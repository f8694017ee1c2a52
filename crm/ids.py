"""Database ids from user input (forms, query strings, JSON)."""

from __future__ import annotations

MAX_ID = 2**63 - 1  # the largest value a BIGINT (and SQLite's INTEGER) holds


def as_id(raw) -> int | None:
    """A positive database id from user input, or None (non-ASCII digits and 64-bit overflows too)."""
    try:
        value = int(str(raw)) if str(raw).isascii() else None
    except ValueError:
        return None
    return value if value is not None and 0 < value <= MAX_ID else None


def as_ids(raws) -> list[int]:
    """The usable ids of a list of raw values, in order, without repeats."""
    return list(dict.fromkeys(ident for ident in map(as_id, raws) if ident))
