"""Typed SQLAlchemy models, one module per aggregate; imported here so Alembic sees them all."""

from crm.models.user import Role, User

__all__ = ["Role", "User"]
