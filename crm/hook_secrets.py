"""The shared secret an inbound hook (replies and bounces from an SMS gateway, a Telegram bot,
email forwarding) must present: derived from SECRET_KEY per channel, so there is nothing to store
and rotating SECRET_KEY rotates them all."""

from __future__ import annotations

import hashlib
import hmac

from flask import current_app


def secret_for(channel: str) -> str:
    return hmac.new(current_app.config["SECRET_KEY"].encode(), f"inbound:{channel}".encode(),
                    hashlib.sha256).hexdigest()[:32]


def valid(channel: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(secret_for(channel), presented)
