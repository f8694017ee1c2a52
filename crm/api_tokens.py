"""Per-team API tokens: create (the plain token is returned once), revoke, authenticate.

Only a SHA-256 hash and the first characters are stored. The tokens are long random strings,
so a plain hash is enough: there is nothing to guess that a slow hash would protect.
Plain arguments in, models out; callers commit.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from crm.errors import FieldError
from crm.extensions import db
from crm.figures import aware
from crm.models import ApiToken, User
from crm.models.user import utcnow

# Marks the string as ours, so a token pasted into the wrong place (or a leak scanner) can tell.
MARK = "crm_"
PREFIX_LENGTH = 12
MAX_NAME = 80
MAX_TOKEN_LENGTH = 200
# Writing on every request would turn each API call into a second write; a minute is precise enough.
LAST_USED_PRECISION = timedelta(minutes=1)


def hash_token(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


def create_token(name: str, acting: User | None) -> tuple[ApiToken, str]:
    """Make a token named `name`; return it and the plain token, which is never available again."""
    clean = " ".join((name or "").split())
    if not clean:
        raise FieldError("name", str(_l("Name the token after where it is used, e.g. “Online shop”.")))
    if len(clean) > MAX_NAME:
        raise FieldError("name", str(_l("Use at most %(n)d characters.", n=MAX_NAME)))
    plain = MARK + secrets.token_urlsafe(32)
    token = ApiToken(name=clean, token_hash=hash_token(plain), prefix=plain[:PREFIX_LENGTH],
                     created_by_id=acting.id if acting else None, created_at=utcnow())
    db.session.add(token)
    db.session.flush()
    return token, plain


def revoke(token: ApiToken) -> ApiToken:
    """Stop the token working from the next request on; revoking twice keeps the first time."""
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        db.session.flush()
    return token


def authenticate(plain: str | None) -> ApiToken | None:
    """Return the live token matching `plain`, noting when it was last used, or None."""
    if not plain or len(plain) > MAX_TOKEN_LENGTH:
        return None
    token = db.session.scalar(
        select(ApiToken).where(ApiToken.token_hash == hash_token(plain), ApiToken.revoked_at.is_(None)))
    if token is None:
        return None
    now = utcnow()
    if token.last_used_at is None or now - aware(token.last_used_at) >= LAST_USED_PRECISION:
        token.last_used_at = now
    return token


def listing() -> list[ApiToken]:
    """Return every token, live ones first, newest first."""
    return list(db.session.scalars(
        select(ApiToken).order_by(ApiToken.revoked_at.is_not(None), ApiToken.created_at.desc(), ApiToken.id.desc())))
