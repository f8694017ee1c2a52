"""RFM: the 27 cells (recency, frequency, monetary each scored 1-3, 3 best) and the named groups
over them. A cell is stored as one number, r*100 + f*10 + m (333 = recent, frequent, big spender).

The boundaries that turn days, orders and spend into scores live in `crm.settings` and are applied
by `crm.segments`; this module only knows the shape of the grid.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

SCORES = (3, 2, 1)  # best first, the order the grid shows them in
CELLS = tuple(r * 100 + f * 10 + m for r in SCORES for f in SCORES for m in SCORES)

# Group keys in the order pages list them, with the default names (owners can rename them).
GROUPS = {
    "champions": _l("Champions"),
    "loyal": _l("Loyal"),
    "promising": _l("Promising"),
    "needs_attention": _l("Needs attention"),
    "at_risk": _l("At risk"),
    "cant_lose": _l("Can't lose them"),
    "hibernating": _l("Hibernating"),
    "lost": _l("Lost"),
}

DESCRIPTIONS = {
    "champions": _l("Bought recently and often."),
    "loyal": _l("Buy often; recent enough."),
    "promising": _l("Bought recently, but not often yet."),
    "needs_attention": _l("Neither recent nor frequent: a nudge now keeps them."),
    "at_risk": _l("Used to buy often; not for a while."),
    "cant_lose": _l("The best spenders who used to buy often and stopped."),
    "hibernating": _l("Bought rarely, long ago, but spent well."),
    "lost": _l("Bought once or twice, little, long ago."),
}


def split(cell: int) -> tuple[int, int, int]:
    return cell // 100, cell // 10 % 10, cell % 10


def group_of(cell: int) -> str:
    """Return the group key of an RFM cell; every one of the 27 cells belongs to exactly one."""
    r, f, m = split(cell)
    if r == 3:
        return {3: "champions", 2: "loyal", 1: "promising"}[f]
    if r == 2:
        return "loyal" if f == 3 else "needs_attention"
    if f == 3:
        return "cant_lose" if m == 3 else "at_risk"
    if f == 2:
        return "at_risk"
    return "hibernating" if m >= 2 else "lost"


def cells_of(group: str) -> list[int]:
    """Return the cells of a group (an empty list for an unknown key)."""
    return [cell for cell in CELLS if group_of(cell) == group]
