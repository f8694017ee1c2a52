"""A base whose every name a user can type is hostile markup, made through the product's own
domain functions: what the security sweep renders on every page, partial, message and export."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from crm.models import Role

# Both payloads of the issue in one string: a tag that runs on its own, and one that first breaks
# out of an attribute.
SVG, SCRIPT = "<svg onload=alert(1)>", '"><script>alert(2)</script>'
XSS = SVG + SCRIPT
MARKERS = ("<svg onload=alert(1)>", "<script>alert(2)</script>")
ESCAPED = "&lt;svg onload=alert(1)&gt;"
ESCAPED_SCRIPT = "&lt;script&gt;alert(2)&lt;/script&gt;"
PHONE = "+7 912 345-67-89"
START = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)  # a Monday, inside the sending window (UTC team)


def seed(app, owner_id: int, channel_urls: dict | None = None) -> dict[str, int]:
    """Create one of everything named with the payloads; return the ids by kind. With `channel_urls`,
    the customer is enrolled in the sequence, its first two steps are sent through them (email, then
    SMS; run-due --deliver) and the customer's reply comes in through the inbound hook's function."""
    from crm import (
        accounts,
        api_tokens,
        callbacks,
        customer_list,
        customers,
        enrolment,
        imports,
        inactive,
        responses,
        rfm,
        rules,
        saved_segments,
        sequences,
        settings,
        stages,
        workdays,
    )
    from crm.extensions import db
    from crm.models import CallBack, Channel, ImportKind, Message, User
    from crm.settings import Messaging
    from tests import factories
    from tests.conftest import PASSWORD

    text = XSS
    with app.app_context():
        owner = db.session.get(User, owner_id)
        member = accounts.create_user("hostile@example.com", text, PASSWORD, Role.MANAGER)
        stage = stages.create_stage(SCRIPT)
        person = factories.customer(text, emails=["hostile.customer@example.com"], phones=[PHONE], city=text,
                                    tags=[SVG, SCRIPT], notes=text, manager_id=member.id)
        customers.set_consent(person, Channel.EMAIL, True, "test", None)
        customers.set_consent(person, Channel.SMS, True, "test", None)
        customers.add_note(person, text, owner)
        customers.log_call(person, "no_answer", text, owner)
        factories.order(person, datetime.now(UTC) - timedelta(days=400), "12.50",
                        items=[{"name": text, "category": text, "quantity": 1, "price": "12.50"}])
        stages.move_customer(person, stage.id, owner)
        day = workdays.next_working_day(datetime.now(UTC).date())
        callbacks.assign([person], member.id, day, owner, note=text)
        callback_id = db.session.scalar(db.select(CallBack.id).where(CallBack.customer_id == person.id))

        gone = factories.customer(text + " (gone)", phones=["+7 912 345-67-90"], city=text)
        inactive.move(gone, "manager", text, owner)

        sequence = sequences.create(3, text, owner)
        # The first two steps go out at once, one by email and one by SMS (a JSON webhook here).
        steps = [sequences.StepInput(delay_days="0" if step.position < 3 else "2",
                                     channel={1: "email", 2: "sms"}.get(step.position, "preferred"),
                                     subject=text + " {{ name }}", body=text + "\n{{ name }} {{ products }}")
                 for step in sequence.steps]
        sequences.update(sequence, sequences.SequenceInput(
            name=text, window_start="0", window_end="24", weekdays=[str(d) for d in range(1, 8)],
            link_url="https://shop.example.com/back", discount_code=text, steps=steps))
        rules.create_rule(sequence.id, "lapsed", "", [])

        segment = saved_segments.create(text, customer_list.Filters.from_args({"q": text, "city": text}), member)
        # Group names hold 40 characters: one payload each, in turn.
        names = {key: (SVG, SCRIPT)[i % 2] for i, key in enumerate(rfm.GROUPS)}
        settings.save(replace(settings.load(), group_names=names))
        token, _plain = api_tokens.create_token(text, owner)
        run = imports.start(ImportKind.CUSTOMERS, text + ".csv",
                            f"name;{text.replace(';', ',')}\n{text};{text}\n".encode(), owner)
        db.session.commit()

        ids = {"owner": owner_id, "member": member.id, "stage": stage.id, "customer": person.id,
               "inactive": gone.id, "callback": callback_id, "sequence": sequence.id, "segment": segment.id,
               "token": token.id, "run": run.id, "rule": db.session.scalar(db.select(rules.EnrolmentRule.id))}
        if channel_urls is not None:
            settings.save(Messaging(urls=channel_urls, weekly_cap=10))
            enrolment.enrol(sequence, [person.id], "test", None, now=START)
            db.session.commit()
            for moment in (START, START + timedelta(hours=1)):
                result = app.test_cli_runner().invoke(args=["sequences", "run-due", "--now", moment.isoformat(),
                                                            "--deliver"])
                assert result.exit_code == 0, result.output
            db.session.expire_all()
            # And the customer writes back with the payload: the reply lands on the timeline.
            responses.inbound("email", "hostile.customer@example.com", text, "RU")
            db.session.commit()
            ids["message"] = db.session.scalar(db.select(Message.id).where(Message.customer_id == person.id))
        db.session.remove()
    return ids
