"""Team members who sign in: owners and managers."""

from __future__ import annotations

import enum
import secrets
from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import String, func
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from crm.extensions import db


class Role(enum.StrEnum):
    OWNER = "owner"
    MANAGER = "manager"


def _new_session_token() -> str:
    return secrets.token_urlsafe(24)


def utcnow() -> datetime:
    return datetime.now(UTC)


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(
        db.Enum(Role, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])
    )
    active: Mapped[bool] = mapped_column(default=True)
    locale: Mapped[str] = mapped_column(String(8), default="en")
    # The id the session cookie carries. Rotating it ends every session of this user at once
    # (logout, deactivation, password change) without a server-side session store.
    session_token: Mapped[str] = mapped_column(String(64), unique=True, default=_new_session_token)
    created_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow, server_default=func.now())

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_owner(self) -> bool:
        return self.role is Role.OWNER

    def get_id(self) -> str:
        return self.session_token

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)
        self.end_sessions()

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def end_sessions(self) -> None:
        self.session_token = _new_session_token()

    def __repr__(self) -> str:
        return f"<User {self.email} {self.role.value}>"
