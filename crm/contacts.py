"""Normalising contacts, so the same person typed two ways is found as one."""

from __future__ import annotations

import re

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l

from crm.errors import FieldError
from crm.models import ContactKind

_TELEGRAM = re.compile(r"^(@[A-Za-z0-9_]{5,32}|-?\d{5,20})$")


def normalise_email(raw: str, field: str = "email") -> str:
    """Return the address lower-cased and checked, or raise FieldError."""
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise FieldError(field, str(_l("Enter a valid email address."))) from exc


def normalise_phone(raw: str, region: str, field: str = "phone") -> str:
    """Return the number in E.164 (+79161234567), or raise FieldError."""
    try:
        number = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException as exc:
        raise FieldError(field, str(_l("Enter a valid phone number, e.g. +7 916 123-45-67."))) from exc
    if not phonenumbers.is_valid_number(number):
        raise FieldError(field, str(_l("Enter a valid phone number, e.g. +7 916 123-45-67.")))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_telegram(raw: str, field: str = "telegram") -> str:
    """Return a Telegram chat id or @username, or raise FieldError."""
    value = raw.strip()
    if not _TELEGRAM.match(value):
        raise FieldError(field, str(_l("Enter a Telegram chat id (digits) or @username.")))
    return value.lower() if value.startswith("@") else value


def normalise(kind: ContactKind, raw: str, region: str) -> str:
    """Normalise a contact of any kind; WhatsApp ids are phone numbers."""
    if kind is ContactKind.EMAIL:
        return normalise_email(raw)
    if kind in (ContactKind.PHONE, ContactKind.WHATSAPP):
        return normalise_phone(raw, region, field=kind.value)
    return normalise_telegram(raw)


def display_phone(e164: str) -> str:
    """Format a stored number for reading: +7 916 123-45-67."""
    try:
        return phonenumbers.format_number(phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    except phonenumbers.NumberParseException:
        return e164
