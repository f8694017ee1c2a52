"""Language and time zone choice: the user's own language, the team's time zone."""

from __future__ import annotations

from flask import current_app, has_request_context, request
from flask_login import current_user


def select_locale() -> str:
    """Return the signed-in user's language, else the browser's best supported one."""
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():  # CLI and worker: the team's default language
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    if current_user and current_user.is_authenticated and current_user.locale in languages:
        return current_user.locale
    return request.accept_languages.best_match(list(languages)) or current_app.config["BABEL_DEFAULT_LOCALE"]


def select_timezone() -> str:
    """Return the team's time zone: "today" means the same day for the whole team."""
    return current_app.config["TEAM_TIMEZONE"]
