"""Form helpers shared by the blueprints."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from flask_wtf import FlaskForm
from wtforms.fields.choices import SelectChoice

from crm.errors import FieldError


def attach_error(form: FlaskForm, error: FieldError) -> None:
    """Show a domain refusal on the field it concerns (or on the form when there is no such field)."""
    field = getattr(form, error.field, None)
    if field is None:
        form.form_errors.append(error.message)
    else:
        field.errors = [*field.errors, error.message]


def as_date(raw: str | None) -> date | None:
    """A date typed as YYYY-MM-DD (what a date input sends), or None."""
    try:
        return date.fromisoformat((raw or "").strip())
    except ValueError:
        return None


def select_choices(pairs: Iterable[tuple[str, str]]) -> list[SelectChoice]:
    """Turn (value, label) pairs into the choices a SelectField takes."""
    return [SelectChoice(value, label) for value, label in pairs]
