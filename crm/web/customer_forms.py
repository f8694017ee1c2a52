"""Forms of the customer pages, and the card's editable fields (how each shows and edits)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from crm import accounts
from crm.contacts import display_phone
from crm.customers import CALL_OUTCOMES, CustomerInput
from crm.errors import FieldError
from crm.models import Channel, ContactKind, Customer
from crm.web.forms import attach_error, select_choices

CHANNEL_LABELS = {"email": _l("Email"), "sms": _l("SMS"), "telegram": _l("Telegram"), "whatsapp": _l("WhatsApp"),
                  "phone": _l("Phone call")}
GENDER_LABELS = {"female": _l("Female"), "male": _l("Male"), "other": _l("Other")}
REASON_LABELS = {"price": _l("Price"), "conditions": _l("Changed conditions (delivery, payment)"),
                 "service": _l("Service (nobody called back)"), "channel": _l("Wrong channel"),
                 "irrelevant": _l("Irrelevant offers"), "other": _l("Other")}
OUTCOME_LABELS = {"reached": _l("Reached"), "no_answer": _l("No answer"), "wrong_number": _l("Wrong number"),
                  "call_back": _l("Asked to call back"), "not_interested": _l("Not interested"),
                  "responded": _l("Reached, responded")}  # the last one from the call-back queue only
# One customer's status (badge, timeline, filter): in Russian the singular, not the queues' group names.
STATUS_LABELS = {"active": _l("Active"), "lapsing": lazy_pgettext("one customer", "Lapsing"),
                 "lapsed": lazy_pgettext("one customer", "Lapsed"),
                 "in_sequence": _l("In a sequence"), "responded": _l("Responded"), "inactive": _l("Inactive")}
YES_NO = {"0": _l("No"), "1": _l("Yes")}
ORDER_STATUS_LABELS = {"paid": _l("Paid"), "cancelled": _l("Cancelled"), "refunded": _l("Refunded")}
# The default stages' names, translated; a stage the owner renamed shows its own name.
STAGE_LABELS = {"new": _l("New"), "first_purchase": _l("First purchase"), "repeat": _l("Repeat"),
                "regular": _l("Regular"), "lapsing": _l("Lapsing"), "lapsed": _l("Lapsed"),
                "in_reactivation": _l("In reactivation"), "returned": _l("Returned"), "inactive": _l("Inactive")}
DEFAULT_STAGE_NAMES = {"new": "New", "first_purchase": "First purchase", "repeat": "Repeat", "regular": "Regular",
                       "lapsing": "Lapsing", "lapsed": "Lapsed", "in_reactivation": "In reactivation",
                       "returned": "Returned", "inactive": "Inactive"}


def stage_name(stage) -> str:
    """Return the stage's name in the user's language unless the owner renamed it."""
    if stage is None:
        return ""
    if stage.key in STAGE_LABELS and stage.name == DEFAULT_STAGE_NAMES[stage.key]:
        return str(STAGE_LABELS[stage.key])
    return stage.name


def _options(labels: dict, empty: bool = True) -> list[tuple[str, str]]:
    return ([("", "—")] if empty else []) + list(labels.items())


@dataclass
class FieldSpec:
    """One editable field of the card: its label, its input, its value as text and for the input."""

    name: str
    label: str
    input: str  # text, email, tel, date, select, textarea
    current: Callable[[Customer], str]
    options: Callable[[], list[tuple[str, str]]] | None = None
    shown: Callable[[Customer], str] | None = None

    def display(self, customer: Customer) -> str:
        return (self.shown or self.current)(customer)


def _contacts(kind: ContactKind) -> Callable[[Customer], str]:
    return lambda c: ", ".join(x.value for x in c.contacts if x.kind is kind)


def _labelled(attr: str, labels: dict) -> Callable[[Customer], str]:
    def shown(c: Customer) -> str:
        value = getattr(c, attr)
        return str(labels.get(value.value if hasattr(value, "value") else value, "")) if value else ""
    return shown


def _raw(attr: str) -> Callable[[Customer], str]:
    def current(c: Customer) -> str:
        value = getattr(c, attr)
        if value is None:
            return ""
        if isinstance(value, list):
            return ", ".join(value)
        return value.value if hasattr(value, "value") else (value.isoformat() if hasattr(value, "isoformat")
                                                             else str(value))
    return current


def _team_options() -> list[tuple[str, str]]:
    users = accounts.active_team()
    return [("", str(_l("Nobody"))), *((str(u.id), u.name) for u in users)]


def team_choices() -> list:
    """Return the active team as choices of a manager select."""
    return select_choices(_team_options())


def field_spec() -> dict[str, FieldSpec]:
    """Return the card's editable fields by name, in display order."""
    specs = [
        FieldSpec("name", _l("Name"), "text", _raw("name")),
        FieldSpec("phone", _l("Phones"), "text", _contacts(ContactKind.PHONE),
                  shown=lambda c: ", ".join(display_phone(x.value) for x in c.contacts if x.kind is ContactKind.PHONE)),
        FieldSpec("email", _l("Emails"), "text", _contacts(ContactKind.EMAIL)),
        FieldSpec("telegram", _l("Telegram"), "text", _contacts(ContactKind.TELEGRAM)),
        FieldSpec("whatsapp", _l("WhatsApp"), "text", _contacts(ContactKind.WHATSAPP)),
        FieldSpec("preferred_channel", _l("Preferred channel"), "select", _raw("preferred_channel"),
                  options=lambda: _options(CHANNEL_LABELS), shown=_labelled("preferred_channel", CHANNEL_LABELS)),
        FieldSpec("city", _l("City"), "text", _raw("city")),
        FieldSpec("birthday", _l("Birthday"), "date", _raw("birthday")),
        FieldSpec("gender", _l("Gender"), "select", _raw("gender"), options=lambda: _options(GENDER_LABELS),
                  shown=_labelled("gender", GENDER_LABELS)),
        FieldSpec("tags", _l("Tags"), "text", _raw("tags")),
        FieldSpec("manager_id", _l("Manager"), "select", lambda c: str(c.manager_id or ""), options=_team_options,
                  shown=lambda c: c.manager.name if c.manager else ""),
        FieldSpec("do_not_contact", _l("Do not contact"), "select", lambda c: "1" if c.do_not_contact else "0",
                  options=lambda: _options(YES_NO, empty=False),
                  shown=lambda c: str(YES_NO["1" if c.do_not_contact else "0"])),
        FieldSpec("leave_reason", _l("Reason for leaving"), "select", _raw("leave_reason"),
                  options=lambda: _options(REASON_LABELS), shown=_labelled("leave_reason", REASON_LABELS)),
        FieldSpec("leave_reason_note", _l("Reason, in their words"), "text", _raw("leave_reason_note")),
        FieldSpec("notes", _l("Notes"), "textarea", _raw("notes")),
    ]
    return {spec.name: spec for spec in specs}


class NewCustomerForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    email = StringField(_l("Email"), validators=[Optional(), Length(max=254)])
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=40)])
    telegram = StringField(_l("Telegram"), validators=[Optional(), Length(max=40)])
    whatsapp = StringField(_l("WhatsApp"), validators=[Optional(), Length(max=40)])
    preferred_channel = SelectField(_l("Preferred channel"), choices=select_choices(_options(CHANNEL_LABELS)),
                                    default="")
    city = StringField(_l("City"), validators=[Optional(), Length(max=120)])
    birthday = DateField(_l("Birthday"), validators=[Optional()])
    gender = SelectField(_l("Gender"), choices=select_choices(_options(GENDER_LABELS)), default="")
    tags = StringField(_l("Tags"), validators=[Optional(), Length(max=500)],
                       description=_l("Separated by commas, e.g. vip, wine"))
    manager_id = SelectField(_l("Manager"), default="")
    consent_email = BooleanField(_l("Agrees to emails"))
    consent_sms = BooleanField(_l("Agrees to SMS"))
    consent_telegram = BooleanField(_l("Agrees to Telegram messages"))
    consent_whatsapp = BooleanField(_l("Agrees to WhatsApp messages"))
    notes = TextAreaField(_l("Notes"), validators=[Optional(), Length(max=5000)])

    def to_input(self) -> CustomerInput:
        """Return what the form says as domain input."""
        consents = {c.value: getattr(self, f"consent_{c.value}").data
                    for c in (Channel.EMAIL, Channel.SMS, Channel.TELEGRAM, Channel.WHATSAPP)
                    if getattr(self, f"consent_{c.value}").data}
        return CustomerInput(
            name=self.name.data, emails=[self.email.data] if self.email.data else [],
            phones=[self.phone.data] if self.phone.data else [], telegram=self.telegram.data or None,
            whatsapp=self.whatsapp.data or None, preferred_channel=self.preferred_channel.data or None,
            city=self.city.data, birthday=self.birthday.data, gender=self.gender.data or None, tags=self.tags.data,
            manager_id=self.manager_id.data or None, notes=self.notes.data, consents=consents,
            consent_how=str(_l("Entered on the new customer form")))

    def attach(self, error: FieldError) -> None:
        """Show a domain refusal on its field (contact lists map to their single inputs)."""
        attach_error(self, error)


class CallForm(FlaskForm):
    outcome = SelectField(_l("Outcome"), choices=select_choices((k, OUTCOME_LABELS[k]) for k in CALL_OUTCOMES),
                          validators=[DataRequired()])
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=5000)])

