"""Demo data for a first look (`make run`) and for benchmarks."""

from __future__ import annotations

from crm import accounts
from crm.extensions import db
from crm.models import Role, User

# Shown by `make run` and in the README; only ever created by `flask demo seed`.
DEMO_LOGINS = (
    ("owner@example.com", "Olga Owner", "owner-demo-pass", Role.OWNER, "en"),
    ("manager@example.com", "Maxim Manager", "manager-demo-pass", Role.MANAGER, "ru"),
)


def has_users() -> bool:
    """Tell whether any account exists (a first run has none)."""
    return db.session.scalar(db.select(User.id).limit(1)) is not None


def seed_users() -> list[User]:
    """Create the demo owner and manager unless their addresses are taken."""
    created = []
    for email, name, password, role, locale in DEMO_LOGINS:
        if db.session.scalar(db.select(User.id).where(User.email == email)) is None:
            created.append(accounts.create_user(email, name, password, role, locale))
    return created
