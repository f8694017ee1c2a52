"""Saved segments: a filter of the customers list kept under a name, counted live whenever shown.

A segment stores the list's URL arguments, never customer ids, so it always means "whoever matches
now"; `customer_ids_query` turns it into the list's own SELECT for queues, sequences and exports.
Anyone on the team may save one; only its creator or an owner may rename or delete it.
Plain arguments in, models out; callers commit.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError

from crm import customer_list
from crm.errors import FieldError
from crm.extensions import db
from crm.models import Segment, User
from crm.models.user import utcnow

MAX_NAME = 120


class NotAllowed(PermissionError):
    """The acting user may not change this segment (only its creator or an owner may)."""


def may_change(segment: Segment, user: User) -> bool:
    return user.is_owner or (segment.created_by_id is not None and segment.created_by_id == user.id)


def filters_of(segment: Segment) -> customer_list.Filters:
    """Return the segment's filters, read as the list reads its URL (anything stale is ignored)."""
    return customer_list.Filters.from_args(segment.filters or {})


def customer_ids_query(segment: Segment) -> Select:
    """Return a SELECT of the ids of the customers in the segment now (no order, no limit)."""
    return customer_list.filtered(filters_of(segment))


def listing() -> list[Segment]:
    """Return every saved segment, by name."""
    return list(db.session.scalars(select(Segment).order_by(func.lower(Segment.name), Segment.id)))


def create(name: str, filters: customer_list.Filters, acting: User) -> Segment:
    """Save the list's filters under a name; raises FieldError on the name or on an empty filter."""
    if not filters.active or filters.ids:
        raise FieldError("filters", str(_l("Choose at least one filter on the customers list first.")))
    segment = Segment(name=_clean_name(name), filters=filters.to_args(), created_by_id=acting.id,
                      created_at=utcnow())
    db.session.add(segment)
    _flush_unique()
    return segment


def rename(segment: Segment, name: str, acting: User) -> Segment:
    """Give the segment another name; raises NotAllowed or FieldError."""
    if not may_change(segment, acting):
        raise NotAllowed
    segment.name = _clean_name(name, segment)
    _flush_unique()
    return segment


def delete(segment: Segment, acting: User) -> None:
    """Delete the segment (its customers are untouched); raises NotAllowed."""
    if not may_change(segment, acting):
        raise NotAllowed
    db.session.delete(segment)
    db.session.flush()


def _clean_name(name: str | None, segment: Segment | None = None) -> str:
    clean = " ".join((name or "").split())
    if not clean:
        raise FieldError("name", str(_l("Name the segment, e.g. “Friday wine buyers”.")))
    if len(clean) > MAX_NAME:
        raise FieldError("name", str(_l("Use at most %(n)d characters.", n=MAX_NAME)))
    # Compared with the same function on both sides: SQLite's lower() folds ASCII only.
    taken = select(Segment.id).where(func.lower(Segment.name) == func.lower(clean))
    if segment is not None and segment.id is not None:
        taken = taken.where(Segment.id != segment.id)
    if db.session.scalar(taken.limit(1)) is not None:
        raise FieldError("name", _taken())
    return clean


def _flush_unique() -> None:
    # Two people saving the same name at once: the unique constraint decides, the loser is told
    # (and, as after any FieldError, the caller rolls back).
    try:
        db.session.flush()
    except IntegrityError as exc:
        raise FieldError("name", _taken()) from exc


def _taken() -> str:
    return str(_l("A segment with this name already exists: choose another name."))
