"""Saved segments, the team's settings and the RFM grid summary the rebuild keeps."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.models.user import User, utcnow


class Segment(db.Model):
    """A filter of the customers list saved under a name; its count is always live."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    # The list's URL arguments (crm.customer_list.Filters.to_args), so a segment opens as a list.
    filters: Mapped[dict] = mapped_column(db.JSON, default=dict)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    created_by: Mapped[User | None] = relationship()


class TeamSetting(db.Model):
    """One group of team settings as JSON, read and validated by `crm.settings`."""

    __tablename__ = "team_settings"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[dict] = mapped_column(db.JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class RfmCell(db.Model):
    """Customers and revenue in one of the 27 RFM cells, as of the last rebuild: the grid and the
    dashboard read 27 rows instead of grouping a million customers per view."""

    __tablename__ = "rfm_cells"

    rfm: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    customers: Mapped[int] = mapped_column(Integer, default=0)
    revenue: Mapped[int] = mapped_column(BigInteger, default=0)  # minor units
