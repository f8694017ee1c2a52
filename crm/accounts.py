"""Team accounts: creating, authenticating, re-roling and deactivating users.

Plain arguments in, models out; the views, the CLI and the tests all call these. Callers commit.
"""

from __future__ import annotations

from pathlib import Path

from flask_babel import lazy_gettext as _l

from crm import callbacks, contacts
from crm.errors import FieldError
from crm.extensions import db
from crm.models import Role, User

MIN_PASSWORD_LENGTH = 8
_COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")
_common_passwords: frozenset[str] | None = None


class AccountError(FieldError):
    """A refused account change."""


def _common() -> frozenset[str]:
    global _common_passwords
    if _common_passwords is None:
        lines = _COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
        _common_passwords = frozenset(line.strip().lower() for line in lines if line and not line.startswith("#"))
    return _common_passwords


def normalise_email(email: str) -> str:
    """Return the address in the form we store and look up, or raise AccountError."""
    try:
        return contacts.normalise_email(email)
    except FieldError as exc:
        raise AccountError(exc.field, exc.message) from exc


def check_password_strength(password: str) -> None:
    """Refuse passwords that are short or on the list of common passwords."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError("password", str(_l("Use at least %(n)d characters.", n=MIN_PASSWORD_LENGTH)))
    if password.lower() in _common():
        raise AccountError("password", str(_l("This password is too common; choose another.")))


def create_user(email: str, name: str, password: str, role: Role | str, locale: str = "en") -> User:
    """Add a team member; the address must be new and the password strong enough."""
    address = normalise_email(email)
    if db.session.scalar(db.select(User.id).where(User.email == address)) is not None:
        raise AccountError("email", str(_l("A user with this email already exists.")))
    if not name.strip():
        raise AccountError("name", str(_l("Enter a name.")))
    check_password_strength(password)
    user = User(email=address, name=name.strip(), role=Role(role), locale=locale, active=True)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    return user


def authenticate(email: str, password: str) -> User | None:
    """Return the active user with these credentials, or None (never saying which part was wrong)."""
    try:
        address = normalise_email(email)
    except AccountError:
        return None
    user = db.session.scalar(db.select(User).where(User.email == address))
    if user is None or not user.active:
        # Hash anyway, so the response time does not tell whether the account exists.
        User(password_hash="").set_password(password)
        return None
    return user if user.check_password(password) else None


def active_team() -> list[User]:
    """Everyone who can still sign in, by name: the choices of every "manager" menu."""
    return db.session.scalars(db.select(User).where(User.active.is_(True)).order_by(User.name, User.id)).all()


def _last_active_owner(user: User) -> bool:
    others = db.session.scalar(
        db.select(db.func.count(User.id)).where(User.role == Role.OWNER, User.active.is_(True), User.id != user.id)
    )
    return user.is_owner and user.active and others == 0


def change_role(user: User, role: Role | str, acting: User) -> User:
    """Give `user` a new role; the team always keeps at least one active owner."""
    role = Role(role)
    if role is not Role.OWNER and _last_active_owner(user):
        raise AccountError("role", str(_l("The team needs at least one active owner.")))
    user.role = role
    return user


def set_active(user: User, active: bool, acting: User) -> User:
    """Deactivate (ending every session at once) or reactivate a user."""
    if not active:
        if user.id == acting.id:
            raise AccountError("active", str(_l("You cannot deactivate yourself.")))
        if _last_active_owner(user):
            raise AccountError("active", str(_l("The team needs at least one active owner.")))
        user.end_sessions()
        callbacks.hand_over(user, acting)  # their queue goes to the others, not lost
    user.active = active
    return user


def set_locale(user: User, locale: str, languages: dict[str, str]) -> User:
    """Change the language the user sees."""
    if locale not in languages:
        raise AccountError("locale", str(_l("Unknown language.")))
    user.locale = locale
    return user
