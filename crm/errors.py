"""Refusals the domain raises and the views show on the field concerned."""

from __future__ import annotations


class FieldError(ValueError):
    """Input refused; `field` names the form field (or JSON key) the message belongs to."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class StaleEdit(RuntimeError):
    """The record changed since the page was loaded; the user must reload before editing."""
