"""Form helpers shared by the blueprints."""

from __future__ import annotations

from flask_wtf import FlaskForm

from crm.accounts import AccountError


def attach_error(form: FlaskForm, error: AccountError) -> None:
    """Show a domain refusal on the field it concerns (or on the form when there is no such field)."""
    field = getattr(form, error.field, None)
    if field is None:
        form.form_errors.append(error.message)
    else:
        field.errors = [*field.errors, error.message]
