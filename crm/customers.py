"""Customer operations: create, edit one field, note, merge, and the search terms behind them.

Plain arguments in, models out; views, CLI, imports and the API all call these. Callers commit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, insert, select, update

from crm import contacts, figures
from crm.errors import FieldError, StaleEdit
from crm.extensions import db
from crm.models import (
    CallBack,
    Channel,
    Consent,
    Contact,
    ContactKind,
    Customer,
    Gender,
    Interaction,
    Kind,
    LeaveReason,
    Order,
    SearchTerm,
    Stage,
    User,
)
from crm.models.user import utcnow

MAX_NAME = 200
MAX_TAGS = 30
_WORD = re.compile(r"[\w']+", re.UNICODE)


@dataclass
class CustomerInput:
    """What a form, an import row or the API says about a customer (raw strings are fine)."""

    name: str
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    telegram: str | None = None
    whatsapp: str | None = None
    preferred_channel: str | None = None
    birthday: date | None = None
    gender: str | None = None
    city: str | None = None
    tags: list[str] = field(default_factory=list)
    manager_id: int | None = None
    notes: str | None = None
    external_ref: str | None = None
    consents: dict[str, bool] = field(default_factory=dict)
    consent_how: str | None = None


# --- parsing one value ------------------------------------------------------------------------

def clean_name(raw: str | None) -> str:
    name = " ".join((raw or "").split())
    if not name:
        raise FieldError("name", str(_l("Enter a name.")))
    if len(name) > MAX_NAME:
        raise FieldError("name", str(_l("Use at most %(n)d characters.", n=MAX_NAME)))
    return name


def clean_tags(raw: str | Iterable[str] | None) -> list[str]:
    """Split "vip, wine" or a list into distinct lower-case tags."""
    items = raw.split(",") if isinstance(raw, str) else list(raw or [])
    tags = list(dict.fromkeys(t.strip().lower()[:40] for t in items if t and t.strip()))
    if len(tags) > MAX_TAGS:
        raise FieldError("tags", str(_l("Use at most %(n)d tags.", n=MAX_TAGS)))
    return tags


def _enum_value(enum_cls, raw: str | None, field_name: str):
    if raw in (None, ""):
        return None
    try:
        return enum_cls(raw)
    except ValueError as exc:
        raise FieldError(field_name, str(_l("Choose one of the offered values."))) from exc


def _manager(manager_id: int | str | None) -> int | None:
    if manager_id in (None, ""):
        return None
    try:
        user = db.session.get(User, int(manager_id))
    except (TypeError, ValueError):
        user = None
    if user is None or not user.active:
        raise FieldError("manager_id", str(_l("Choose an active team member.")))
    return user.id


def parse_birthday(raw: str | date | None) -> date | None:
    if raw in (None, ""):
        return None
    if isinstance(raw, date):
        value = raw
    else:
        try:
            value = date.fromisoformat(raw.strip())
        except ValueError as exc:
            raise FieldError("birthday", str(_l("Enter a date as YYYY-MM-DD."))) from exc
    if value > date.today() or value.year < 1900:
        raise FieldError("birthday", str(_l("Enter a real date of birth.")))
    return value


# --- search terms -----------------------------------------------------------------------------

def search_terms_of(name: str, contacts: Iterable[tuple[str, str]], tags: Iterable[str]) -> set[str]:
    """Return the words a search finds a customer by, from plain values: name words, contacts
    (kind, value), tags. Bulk loaders call this directly; `search_terms` for an entity."""
    terms = {word.lower()[:200] for word in _WORD.findall(name)}
    for kind, raw in contacts:
        value = raw.lower()
        terms.add(value)
        if kind in ("phone", "whatsapp"):
            digits = value.lstrip("+")
            terms.add(digits)
            # Numbers are typed without the country code as often as with it.
            terms.update(digits[i:] for i in range(1, 4) if len(digits) - i >= 6)
        if kind == "email":
            terms.add(value.split("@", 1)[0])
    for tag in tags:
        terms.add(tag)
        terms.add("#" + tag)
    return {t for t in terms if t}


def search_terms(customer: Customer) -> set[str]:
    """Return the words a search can find this customer by."""
    return search_terms_of(customer.name, [(c.kind.value, c.value) for c in customer.contacts], customer.tags or [])


def refresh_search_terms(customer: Customer) -> None:
    """Rewrite this customer's rows in the search index."""
    db.session.flush()
    db.session.execute(delete(SearchTerm).where(SearchTerm.customer_id == customer.id))
    terms = search_terms(customer)
    if terms:
        db.session.execute(insert(SearchTerm), [{"customer_id": customer.id, "term": t} for t in terms])


# --- contacts ---------------------------------------------------------------------------------

def _set_contacts(customer: Customer, kind: ContactKind, raws: Iterable[str], region: str) -> None:
    values = list(dict.fromkeys(contacts.normalise(kind, raw, region) for raw in raws if raw and raw.strip()))
    kept = [c for c in customer.contacts if c.kind is not kind]
    existing = {c.value: c for c in customer.contacts if c.kind is kind}
    customer.contacts = kept + [existing.get(v) or Contact(kind=kind, value=v) for v in values]


def find_by_contacts(emails: Iterable[str] = (), phones: Iterable[str] = ()) -> Customer | None:
    """Return the customer who already has one of these (normalised) emails or phones."""
    pairs = [(ContactKind.EMAIL, e) for e in emails] + [(ContactKind.PHONE, p) for p in phones]
    for kind, value in pairs:
        found = db.session.scalar(
            select(Contact.customer_id).where(Contact.kind == kind, Contact.value == value).limit(1))
        if found is not None:
            return db.session.get(Customer, found)
    return None


def find_duplicate(data: CustomerInput, region: str) -> Customer | None:
    """Return an existing customer with one of these emails or phones (or this external ref)."""
    if data.external_ref:
        found = db.session.scalar(select(Customer).where(Customer.external_ref == data.external_ref.strip()))
        if found is not None:
            return found
    emails = [contacts.normalise_email(e) for e in data.emails if e and e.strip()]
    phones = [contacts.normalise_phone(p, region) for p in data.phones if p and p.strip()]
    return find_by_contacts(emails, phones)


# --- timeline ---------------------------------------------------------------------------------

def record(customer: Customer, kind: Kind, acting: User | None = None, body: str | None = None,
           outcome: str | None = None, **data) -> Interaction:
    """Add an entry to the customer's timeline."""
    entry = Interaction(customer_id=customer.id, kind=kind, user_id=acting.id if acting else None, body=body,
                        outcome=outcome, data=data, at=utcnow())
    db.session.add(entry)
    return entry


def add_note(customer: Customer, body: str, acting: User) -> Interaction:
    """Put a manager's note on the timeline."""
    text = (body or "").strip()
    if not text:
        raise FieldError("body", str(_l("Write something first.")))
    if len(text) > 5000:
        raise FieldError("body", str(_l("Use at most %(n)d characters.", n=5000)))
    return record(customer, Kind.NOTE, acting, body=text)


CALL_OUTCOMES = ("reached", "no_answer", "wrong_number", "call_back", "not_interested")


def log_call(customer: Customer, outcome: str, note: str | None, acting: User) -> Interaction:
    """Record a phone call and its outcome on the timeline."""
    if outcome not in CALL_OUTCOMES:
        raise FieldError("outcome", str(_l("Choose one of the offered values.")))
    entry = record(customer, Kind.CALL, acting, body=(note or "").strip()[:5000] or None, outcome=outcome)
    if outcome == "reached":
        from crm import responses  # (responses builds on this module)

        # They picked up: a running sequence stops; the manager is already talking to them.
        responses.respond(customer, "call", acting, hand_off=False)
    return entry


def assign_manager(customer_ids: list[int], manager_id: int | str | None, acting: User) -> int:
    """Give these customers to a manager (None: to nobody); return how many changed."""
    target = _manager(manager_id)
    changed = db.session.scalars(
        select(Customer).where(Customer.id.in_(customer_ids), Customer.manager_id.is_distinct_from(target))).all()
    for customer in changed:
        before = customer.manager_id
        customer.manager_id = target
        record(customer, Kind.EDIT, acting, field="manager_id", before=str(before or ""), after=str(target or ""))
    return len(changed)


# --- create and edit --------------------------------------------------------------------------

def stage_id_of(key: str) -> int | None:
    """The id of the stage kept for `key` ("new", "inactive", ...), if the team still has it."""
    return db.session.scalar(select(Stage.id).where(Stage.key == key))


def default_stage_id() -> int | None:
    return stage_id_of("new")


def create_customer(data: CustomerInput, acting: User | None, region: str, source: str = "manual") -> Customer:
    """Add a customer with contacts and consents; raise FieldError naming the first bad field."""
    customer = Customer(
        name=clean_name(data.name),
        preferred_channel=_enum_value(Channel, data.preferred_channel, "preferred_channel"),
        birthday=parse_birthday(data.birthday),
        gender=_enum_value(Gender, data.gender, "gender"),
        city=(data.city or "").strip()[:120] or None,
        tags=clean_tags(data.tags),
        manager_id=_manager(data.manager_id),
        notes=(data.notes or "").strip() or None,
        external_ref=(data.external_ref or "").strip() or None,
        source=source,
        stage_id=default_stage_id(),
        contacts=[],
        consents=[],
    )
    customer.sort_name = customer.name.lower()
    _set_contacts(customer, ContactKind.EMAIL, data.emails, region)
    _set_contacts(customer, ContactKind.PHONE, data.phones, region)
    _set_contacts(customer, ContactKind.TELEGRAM, [data.telegram] if data.telegram else [], region)
    _set_contacts(customer, ContactKind.WHATSAPP, [data.whatsapp] if data.whatsapp else [], region)
    for channel, granted in data.consents.items():
        customer.consents.append(Consent(channel=Channel(channel), granted=bool(granted), changed_at=utcnow(),
                                         how=data.consent_how or source))
    db.session.add(customer)
    db.session.flush()
    refresh_search_terms(customer)
    record(customer, Kind.CREATED, acting, source=source)
    return customer


# The fields a card edits one at a time, and how each raw value is read.
EDITABLE = ("name", "email", "phone", "telegram", "whatsapp", "city", "birthday", "gender", "preferred_channel",
            "tags", "manager_id", "notes", "leave_reason", "leave_reason_note", "do_not_contact")


def set_field(customer: Customer, name: str, raw, expected_version: int | None, acting: User, region: str) -> Customer:
    """Change one field from a card's inline editor, refusing edits made on a stale page."""
    if name not in EDITABLE:
        raise FieldError(name, str(_l("This field cannot be edited here.")))
    if expected_version is not None and expected_version != customer.version:
        raise StaleEdit(name)
    before = _display_value(customer, name)
    if name == "name":
        customer.name = clean_name(raw)
        customer.sort_name = customer.name.lower()
    elif name in ("email", "phone", "telegram", "whatsapp"):
        values = [v for v in re.split(r"[,;\n]", raw or "") if v.strip()]
        _set_contacts(customer, ContactKind(name), values, region)
    elif name == "city":
        customer.city = (raw or "").strip()[:120] or None
    elif name == "birthday":
        customer.birthday = parse_birthday(raw)
    elif name == "gender":
        customer.gender = _enum_value(Gender, raw, name)
    elif name == "preferred_channel":
        customer.preferred_channel = _enum_value(Channel, raw, name)
    elif name == "tags":
        customer.tags = clean_tags(raw)
    elif name == "manager_id":
        customer.manager_id = _manager(raw)
    elif name == "notes":
        customer.notes = (raw or "").strip()[:5000] or None
    elif name == "leave_reason":
        customer.leave_reason = _enum_value(LeaveReason, raw, name)
    elif name == "leave_reason_note":
        customer.leave_reason_note = (raw or "").strip()[:500] or None
    elif name == "do_not_contact":
        customer.do_not_contact = raw in (True, "1", "on", "true", "yes")
    after = _display_value(customer, name)
    if before != after:
        customer.updated_at = utcnow()
        customer.version += 1
        db.session.flush()  # UPDATE ... WHERE version = old: a concurrent writer fails here, not silently
        if name in ("name", "email", "phone", "telegram", "whatsapp", "tags"):
            refresh_search_terms(customer)
        record(customer, Kind.EDIT, acting, field=name, before=before, after=after)
    return customer


def _display_value(customer: Customer, name: str) -> str:
    if name in ("email", "phone", "telegram", "whatsapp"):
        return ", ".join(c.value for c in customer.contacts if c.kind.value == name)
    if name == "manager_id":
        return str(customer.manager_id or "")
    value = getattr(customer, name)
    if isinstance(value, list):
        return ", ".join(value)
    return "" if value is None else str(value)


def set_consent(customer: Customer, channel: Channel, granted: bool, how: str, acting: User | None) -> None:
    """Record a consent given or withdrawn on one channel, with when and how."""
    consent = customer.consent_for(channel)
    if consent is None:
        consent = Consent(channel=channel)
        customer.consents.append(consent)
    if consent.granted == granted and consent.how is not None:
        return
    consent.granted, consent.how, consent.changed_at = granted, how[:200], utcnow()
    record(customer, Kind.CONSENT, acting, channel=channel.value, granted=granted, how=how[:200])


# --- merge ------------------------------------------------------------------------------------

def merge(keep: Customer, drop: Customer, acting: User) -> Customer:
    """Fold `drop` into `keep`: orders, timeline, contacts, consents and tags move; `drop` goes."""
    if keep.id == drop.id:
        raise FieldError("other", str(_l("Choose a different customer to merge.")))
    db.session.execute(update(Order).where(Order.customer_id == drop.id).values(customer_id=keep.id))
    db.session.execute(update(Interaction).where(Interaction.customer_id == drop.id).values(customer_id=keep.id))
    db.session.execute(update(CallBack).where(CallBack.customer_id == drop.id).values(customer_id=keep.id))
    have = {(c.kind, c.value) for c in keep.contacts}
    for contact in list(drop.contacts):
        if (contact.kind, contact.value) not in have:
            keep.contacts.append(Contact(kind=contact.kind, value=contact.value, invalid=contact.invalid))
    for consent in drop.consents:
        mine = keep.consent_for(consent.channel)
        # The later decision wins: a withdrawal must never be undone by merging an older yes.
        if mine is None:
            keep.consents.append(Consent(channel=consent.channel, granted=consent.granted,
                                         changed_at=consent.changed_at, how=consent.how))
        elif consent.changed_at and mine.changed_at and consent.changed_at > mine.changed_at:
            mine.granted, mine.changed_at, mine.how = consent.granted, consent.changed_at, consent.how
    keep.tags = clean_tags([*(keep.tags or []), *(drop.tags or [])])
    for attr in ("birthday", "gender", "city", "preferred_channel", "manager_id", "external_ref", "notes"):
        if getattr(keep, attr) in (None, "") and getattr(drop, attr) not in (None, ""):
            value = getattr(drop, attr)
            if attr == "external_ref":
                drop.external_ref = None
                db.session.flush()
            setattr(keep, attr, value)
    keep.do_not_contact = keep.do_not_contact or drop.do_not_contact
    keep.complainer = keep.complainer or drop.complainer
    dropped_name, dropped_id = drop.name, drop.id
    db.session.delete(drop)
    db.session.flush()
    refresh_search_terms(keep)
    # Imported here: crm.segments writes its status and stage changes through this module.
    from crm import segments

    segments.refresh(figures.refresh(keep.id))
    record(keep, Kind.MERGE, acting, merged_id=dropped_id, merged_name=dropped_name)
    return keep
