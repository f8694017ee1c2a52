"""The owner's automatic enrolment rules: which sequence a customer goes into when something
happens to them (see crm.enrolment.apply_rules, which runs them once a day)."""

from __future__ import annotations

from collections.abc import Iterable

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from crm import rfm
from crm.errors import FieldError
from crm.extensions import db
from crm.ids import as_id
from crm.models import EnrolmentRule, Sequence, Trigger

TRIGGERS = {
    Trigger.LAPSING: _l("becomes lapsing"),
    Trigger.LAPSED: _l("becomes lapsed"),
    Trigger.BIRTHDAY: _l("N days before the birthday"),
    Trigger.AFTER_ORDER: _l("N days after an order"),
    Trigger.BEFORE_EXPECTED: _l("N days before the expected next order"),
}
# The same triggers with the number of days filled in, for the list of rules.
TRIGGERS_WITH_DAYS = {
    Trigger.BIRTHDAY: _l("%(n)s days before the birthday"),
    Trigger.AFTER_ORDER: _l("%(n)s days after an order"),
    Trigger.BEFORE_EXPECTED: _l("%(n)s days before the expected next order"),
}
MAX_DAYS = 365


def describe(rule: EnrolmentRule) -> str:
    """The rule's trigger in words, with its number of days where it has one."""
    if rule.trigger in TRIGGERS_WITH_DAYS:
        return str(TRIGGERS_WITH_DAYS[rule.trigger] % {"n": rule.days})
    return str(TRIGGERS[rule.trigger])


def listing() -> list[EnrolmentRule]:
    return db.session.scalars(select(EnrolmentRule).order_by(EnrolmentRule.id)).all()


def _days(trigger: Trigger, raw) -> int:
    if trigger not in TRIGGERS_WITH_DAYS:
        return 0  # a change of lapse happens on a day of its own: no offset to count
    text = str(raw if raw is not None else "").strip()
    if not text:
        raise FieldError("days", str(_l("Enter the number of days for this trigger.")))
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_DAYS:
        raise FieldError("days", str(_l("Enter a number of days from 0 to %(max)s.", max=MAX_DAYS)))
    return int(text)


def create_rule(sequence_id, trigger, days, groups: Iterable[str] = ()) -> EnrolmentRule:
    """Add an active rule (the caller commits); raise FieldError on the field that is wrong."""
    sequence = db.session.get(Sequence, as_id(sequence_id)) if as_id(sequence_id) else None
    if sequence is None:
        raise FieldError("sequence_id", str(_l("Choose a sequence.")))
    try:
        chosen = Trigger(trigger)
    except ValueError:
        raise FieldError("trigger", str(_l("Choose one of the listed triggers."))) from None
    count = _days(chosen, days)
    picked = list(dict.fromkeys(groups or ()))
    if any(group not in rfm.GROUPS for group in picked):
        raise FieldError("groups", str(_l("Choose among the listed RFM groups.")))
    same = db.session.scalar(select(EnrolmentRule.id).where(
        EnrolmentRule.sequence_id == sequence.id, EnrolmentRule.trigger == chosen, EnrolmentRule.days == count))
    if same is not None:
        raise FieldError("trigger", str(_l("This sequence has a rule with this trigger already.")))
    rule = EnrolmentRule(sequence_id=sequence.id, trigger=chosen, days=count,
                         groups=[group for group in rfm.GROUPS if group in picked], active=True)
    db.session.add(rule)
    db.session.flush()
    return rule


def delete_rule(rule_id: int) -> bool:
    """Remove a rule (the caller commits); False when there is no such rule. Enrolments it made stay."""
    rule = db.session.get(EnrolmentRule, rule_id)
    if rule is None:
        return False
    db.session.delete(rule)
    db.session.flush()
    return True


def toggle_rule(rule_id: int) -> EnrolmentRule | None:
    """Pause a running rule or resume a paused one (the caller commits); None when there is no such rule."""
    rule = db.session.get(EnrolmentRule, rule_id)
    if rule is None:
        return None
    rule.active = not rule.active
    db.session.flush()
    return rule
