"""A CSV import: its file, column mapping, progress and per-row errors."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from crm.extensions import db
from crm.models.customer import _enum
from crm.models.user import User, utcnow


class ImportKind(enum.StrEnum):
    CUSTOMERS = "customers"
    ORDERS = "orders"


class ImportState(enum.StrEnum):
    MAPPING = "mapping"  # uploaded, waiting for the user to confirm the columns
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ImportRun(db.Model):
    __tablename__ = "import_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ImportKind] = mapped_column(_enum(ImportKind))
    state: Mapped[ImportState] = mapped_column(_enum(ImportState), default=ImportState.MAPPING)
    filename: Mapped[str] = mapped_column(String(255))
    # The upload itself lives in the database: web and worker may run on different machines.
    content: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    encoding: Mapped[str] = mapped_column(String(20))
    delimiter: Mapped[str] = mapped_column(String(1))
    mapping: Mapped[dict] = mapped_column(db.JSON, default=dict)
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    # Rows fully handled so far; a re-run continues after them (resumable).
    processed_rows: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    # The first errors, [{"line": n, "reason": "..."}], enough to fix the file; the count is exact.
    errors: Mapped[list[dict]] = mapped_column(db.JSON, default=list)
    failure: Mapped[str | None] = mapped_column(String(500))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    created_by: Mapped[User | None] = relationship(lazy="joined")
