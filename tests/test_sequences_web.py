"""The sequences pages: the list and new from a template, the editor (refusals on their field, nothing
saved), the live preview (escaped, template errors shown), enrolling from a card, the customers
list, a saved segment and a lapsed queue, stopping, who may do what, and the figures page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from crm import clock, customer_list, customers, saved_segments, sequences, settings
from crm.extensions import db
from crm.models import (
    Channel,
    Customer,
    Enrolment,
    EnrolmentState,
    Lapse,
    Message,
    MessageState,
    Sequence,
    Status,
    StepChannel,
    User,
)
from crm.settings import Messaging
from tests.conftest import page_token, reload
from tests.factories import customer, order

EMAIL_URL = "mailto://127.0.0.1:2525?from=a@b.c&to={email}&mode=insecure"


@pytest.fixture
def email_on(app):
    """Email is set up as a channel (nothing is sent in these tests)."""
    with app.app_context():
        settings.save(Messaging(urls={"email": EMAIL_URL}))
        db.session.commit()


def reachable(name: str, email: str | None = None, consent: bool = True, **fields) -> int:
    """A customer with an email address and (unless told otherwise) consent to email; their id."""
    made = customer(name, emails=[email or name.split()[0].lower() + "@example.com"], **fields)
    if consent:
        customers.set_consent(made, Channel.EMAIL, True, "test", None)
    db.session.flush()
    return made.id


def make_sequence(app, owner, length: int = 3, name: str = "Win back", **changes) -> int:
    with app.app_context():
        sequence = sequences.create(length, name, db.session.get(User, owner.id))
        for key, value in changes.items():
            setattr(sequence, key, value)
        db.session.commit()
        return sequence.id


def _htmx(client, path="/sequences"):
    return {"HX-Request": "true", "X-CSRFToken": page_token(client, path)}


def _editor_form(sequence: Sequence, token: str, **changes) -> dict:
    """The editor's form as the page posts it, with some fields changed."""
    form = {"csrf_token": token, "name": sequence.name, "window_start": "9", "window_end": "20",
            "weekdays": ["1", "2", "3", "4", "5"], "grace_days": "7", "holdout_percent": "10", "return_days": "30",
            "link_url": "https://shop.example.com/", "discount_code": "BACK10"}
    for step in sequence.steps:
        prefix = f"step-{step.position}-"
        form.update({prefix + "delay_days": str(step.delay_days), prefix + "delay_hours": "0",
                     prefix + "channel": "preferred", prefix + "subject": step.subject, prefix + "body": step.body})
    form.update(changes)
    return form


def _running(app, customer_id: int) -> Enrolment | None:
    with app.app_context():
        found = db.session.scalar(select(Enrolment).where(Enrolment.customer_id == customer_id,
                                                          Enrolment.state == EnrolmentState.ACTIVE))
        db.session.expunge_all()
        return found


# --- list and new ------------------------------------------------------------------------------------

def test_the_empty_list_explains_what_a_sequence_is_and_offers_owners_a_new_one(owner_client, manager_client):
    html = owner_client.get("/sequences").get_data(as_text=True)
    assert "No sequences yet. A sequence is a short series of messages" in html
    assert 'action="/sequences"' in html and 'name="length" value="7"' in html
    assert 'href="/sequences" aria-current="page"' in html  # the navigation points here
    theirs = manager_client.get("/sequences").get_data(as_text=True)
    assert "No sequences yet." in theirs and 'action="/sequences"' not in theirs


@pytest.mark.parametrize("length", [3, 5, 7])
def test_an_owner_creates_a_sequence_from_each_template_and_lands_in_the_editor(app, owner_client, length):
    response = owner_client.post("/sequences", data={"csrf_token": page_token(owner_client, "/sequences"),
                                                      "name": f"  Come   back {length} ", "length": str(length)})
    assert response.status_code == 302
    with app.app_context():
        sequence = db.session.scalar(select(Sequence))
        assert sequence.name == f"Come back {length}" and sequence.length == length
        assert response.location == f"/sequences/{sequence.id}/edit"
    html = owner_client.get(response.location).get_data(as_text=True)
    assert f"Step {length} of {length}" in html and f'name="step-{length}-body"' in html
    assert f"created from the {length}-step template" in html
    listing = owner_client.get("/sequences").get_data(as_text=True)
    assert f"Come back {length}</a>" in listing


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"name": "   ", "length": "5"}, "name", "Give the sequence a name."),
    ({"name": "Fine", "length": "4"}, "length", "Choose 3, 5 or 7 steps."),
    ({"name": "Fine", "length": "x"}, "length", "Choose 3, 5 or 7 steps."),
])
def test_a_bad_new_sequence_is_refused_on_its_field(app, owner_client, data, field, message):
    response = owner_client.post("/sequences", data={"csrf_token": page_token(owner_client, "/sequences"), **data})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f'<small id="f-{field}-error" class="field-error">{message}</small>' in html
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Sequence)) == 0


# --- editor ------------------------------------------------------------------------------------------

def test_the_editor_saves_settings_and_steps(app, owner_client, owner):
    sequence_id = make_sequence(app, owner, 3)
    token = page_token(owner_client, f"/sequences/{sequence_id}/edit")
    with app.app_context():
        form = _editor_form(db.session.get(Sequence, sequence_id), token, **{
            "name": "Spring win-back", "step-2-channel": "sms", "step-2-delay_days": "4", "step-3-delay_hours": "6",
            "step-3-subject": "Last call", "step-3-body": "Bye {{ first_name }}: {{ link }}"})
    response = owner_client.post(f"/sequences/{sequence_id}/edit", data=form)
    assert response.status_code == 302 and response.location == f"/sequences/{sequence_id}/edit"
    with app.app_context():
        saved = db.session.get(Sequence, sequence_id)
        assert saved.name == "Spring win-back" and saved.weekdays == [1, 2, 3, 4, 5]
        assert (saved.holdout_percent, saved.link_url, saved.discount_code) == (10, "https://shop.example.com/",
                                                                                 "BACK10")
        assert saved.steps[1].channel is StepChannel.SMS and saved.steps[1].delay_days == 4
        assert (saved.steps[2].delay_hours, saved.steps[2].subject) == (6, "Last call")
    html = owner_client.get(f"/sequences/{sequence_id}/edit").get_data(as_text=True)
    assert "Sequence saved." in html and 'value="Spring win-back"' in html
    assert "<code>{{ first_name }}</code>" in html  # the side list of personal fields


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"window_start": "20", "window_end": "9"}, "window_end", "The window must end after it starts."),
    ({"holdout_percent": "80"}, "holdout_percent", "Enter a number from 0 to 50."),
    ({"weekdays": []}, "weekdays", "Pick at least one day."),
    ({"link_url": "javascript:alert(1)"}, "link_url", "Enter a web address starting with https://."),
    ({"step-2-delay_days": "soon"}, "step-2-delay_days", "Enter a whole number."),
    ({"step-2-channel": "pigeon"}, "step-2-channel", "Choose one of the offered channels."),
    ({"step-3-body": "Hello {{ nickname }}"}, "step-3-body", "This template cannot be used"),
    ({"step-1-body": "   "}, "step-1-body", "Write the message."),
])
def test_a_bad_field_is_shown_on_that_field_what_was_typed_stays_and_nothing_is_saved(app, owner_client, owner,
                                                                                       changes, field, message):
    sequence_id = make_sequence(app, owner, 3)
    token = page_token(owner_client, f"/sequences/{sequence_id}/edit")
    with app.app_context():
        before = db.session.get(Sequence, sequence_id)
        old = (before.name, before.holdout_percent, [s.body for s in before.steps],
               [s.delay_days for s in before.steps])
        form = _editor_form(before, token, name="Typed but refused", **changes)
    response = owner_client.post(f"/sequences/{sequence_id}/edit", data=form)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f'aria-describedby="f-{field}-error"' in html
    assert f'<small id="f-{field}-error" class="field-error">{message}' in html
    assert 'value="Typed but refused"' in html  # what the user typed is kept
    with app.app_context():
        after = db.session.get(Sequence, sequence_id)
        assert (after.name, after.holdout_percent, [s.body for s in after.steps],
                [s.delay_days for s in after.steps]) == old


def test_the_preview_renders_a_step_for_a_real_customer_as_escaped_text(app, owner_client, owner):
    sequence_id = make_sequence(app, owner, 3)
    with app.app_context():
        villain = reachable("<script>alert(1)</script> Bob", "bob@example.com")
        db.session.commit()
    headers = _htmx(owner_client, f"/sequences/{sequence_id}/edit")
    response = owner_client.post(f"/sequences/{sequence_id}/preview", headers=headers, data={
        "step": "1", "preview_customer": str(villain), "discount_code": "SPRING",
        "step-1-subject": "Hi {{ first_name }}", "step-1-body": "Dear {{ name }}, use {{ discount_code }}: {{ link }}"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<script>" not in html
    assert "Dear &lt;script&gt;alert(1)&lt;/script&gt; Bob, use SPRING: http://127.0.0.1:5000/l/preview" in html
    assert "Unsubscribe: http://127.0.0.1:5000/u/preview" in html  # added when the body lacks it
    assert "Hi &lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_preview_shows_a_template_error_and_works_without_customers(owner_client, app, owner):
    sequence_id = make_sequence(app, owner, 3)
    headers = _htmx(owner_client, f"/sequences/{sequence_id}/edit")
    broken = owner_client.post(f"/sequences/{sequence_id}/preview", headers=headers, data={
        "step": "2", "step-2-subject": "x", "step-2-body": "Hi {{ nickname }}"})
    assert broken.status_code == 200 and "This template cannot be used" in broken.get_data(as_text=True)
    sample = owner_client.post(f"/sequences/{sequence_id}/preview", headers=headers, data={"step": "3"})
    assert "[First name]" in sample.get_data(as_text=True)  # the stored text, with sample values
    assert owner_client.post(f"/sequences/{sequence_id}/preview", headers=headers,
                             data={"step": "9"}).status_code == 400


def test_the_preview_picker_searches_customers_by_name(app, owner_client, owner):
    sequence_id = make_sequence(app, owner, 3)
    with app.app_context():
        reachable("Anna Ivanova")
        reachable("Boris Petrov")
        db.session.commit()
    editor = owner_client.get(f"/sequences/{sequence_id}/edit").get_data(as_text=True)
    assert ">Anna Ivanova</option>" in editor and ">Boris Petrov</option>" in editor
    found = owner_client.get(f"/sequences/{sequence_id}/preview/customers?q=bor", headers={"HX-Request": "true"})
    assert ">Boris Petrov</option>" in found.get_data(as_text=True)
    assert "Anna" not in found.get_data(as_text=True) and found.headers["HX-Trigger"] == "preview-customer"


def test_an_owner_pauses_and_resumes_a_sequence(app, owner_client, owner):
    sequence_id = make_sequence(app, owner, 3)
    token = page_token(owner_client, f"/sequences/{sequence_id}")
    response = owner_client.post(f"/sequences/{sequence_id}/pause", data={"csrf_token": token, "paused": "1"})
    assert response.status_code == 302 and response.location == f"/sequences/{sequence_id}"
    assert reload(app, Sequence, sequence_id).paused is True
    assert "Paused</span>" in owner_client.get("/sequences").get_data(as_text=True)
    owner_client.post(f"/sequences/{sequence_id}/pause", data={"csrf_token": token, "paused": "0", "back": "edit"})
    assert reload(app, Sequence, sequence_id).paused is False


def test_a_manager_sees_sequences_but_may_not_create_edit_or_pause_them(app, manager_client, owner):
    sequence_id = make_sequence(app, owner, 3)
    token = page_token(manager_client, "/sequences")
    assert manager_client.get("/sequences").status_code == 200
    assert manager_client.get(f"/sequences/{sequence_id}").status_code == 200
    created = manager_client.post("/sequences", data={"csrf_token": token, "name": "Mine", "length": "3"})
    assert created.status_code == 403
    assert manager_client.get(f"/sequences/{sequence_id}/edit").status_code == 403
    assert manager_client.post(f"/sequences/{sequence_id}/edit", data={"csrf_token": token,
                                                                       "name": "Taken over"}).status_code == 403
    assert manager_client.post(f"/sequences/{sequence_id}/pause", data={"csrf_token": token,
                                                                        "paused": "1"}).status_code == 403
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Sequence)) == 1
        assert db.session.get(Sequence, sequence_id).paused is False
        assert db.session.get(Sequence, sequence_id).name == "Win back"


# --- enrolling -----------------------------------------------------------------------------------------

def test_a_manager_enrols_from_the_card_and_then_stops_the_sequence(app, manager_client, owner, email_on):
    sequence_id = make_sequence(app, owner, 3)
    with app.app_context():
        anna = reachable("Anna Ivanova")
        db.session.commit()
    card = manager_client.get(f"/customers/{anna}").get_data(as_text=True)
    assert 'id="enrol-panel"' in card and f'<option value="{sequence_id}">Win back</option>' in card
    headers = _htmx(manager_client, f"/customers/{anna}")
    response = manager_client.post("/sequences/enrol", headers=headers, data={
        "sequence_id": str(sequence_id), "customer_ids": str(anna), "source": "card"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "customer-changed"
    assert "Enrolled 1, held out 0, not enrolled 0." in html
    assert "In “Win back” since" in html and "Stop the sequence" in html and "hx-confirm=" in html
    running = _running(app, anna)
    assert running.source == "card" and running.sequence_id == sequence_id
    assert reload(app, Customer, anna).status is Status.IN_SEQUENCE

    again = manager_client.post("/sequences/enrol", headers=headers, data={
        "sequence_id": str(sequence_id), "customer_ids": str(anna), "source": "card"})
    assert "Enrolled 0, held out 0, not enrolled 1." in again.get_data(as_text=True)

    stopped = manager_client.post(f"/sequences/stop/{anna}", headers=headers)
    assert stopped.status_code == 200 and "Stopped “Win back” for this customer." in stopped.get_data(as_text=True)
    assert _running(app, anna) is None
    with app.app_context():
        assert db.session.scalar(select(Enrolment.state)) is EnrolmentState.STOPPED
    # Without JavaScript the card comes back with the message.
    plain = manager_client.post(f"/sequences/stop/{anna}", data={"csrf_token": headers["X-CSRFToken"]})
    assert plain.status_code == 302 and plain.location == f"/customers/{anna}"
    assert "not in a running sequence any more" in manager_client.get(plain.location).get_data(as_text=True)


def test_the_card_says_why_a_customer_cannot_be_enrolled(app, owner_client, owner, email_on):
    make_sequence(app, owner, 3)
    with app.app_context():
        quiet = reachable("Quiet Customer")
        db.session.get(Customer, quiet).do_not_contact = True
        unreachable = reachable("No Consent", consent=False)
        db.session.commit()
    assert "Cannot be enrolled: The customer is marked do-not-contact." in owner_client.get(
        f"/customers/{quiet}").get_data(as_text=True)
    html = owner_client.get(f"/customers/{unreachable}").get_data(as_text=True)
    assert "Cannot be enrolled: No consent and contact on any channel this sequence uses" in html


def test_the_card_without_sequences_points_to_the_sequences_page(app, owner_client):
    with app.app_context():
        anna = reachable("Anna Ivanova")
        db.session.commit()
    html = owner_client.get(f"/customers/{anna}").get_data(as_text=True)
    assert "No sequences yet." in html and 'href="/sequences"' in html


def test_bulk_enrol_from_the_customers_list_counts_who_went_in_and_why_not(app, manager_client, owner, email_on):
    sequence_id = make_sequence(app, owner, 3)
    with app.app_context():
        ids = [reachable("Anna Ivanova"), reachable("Boris Petrov"), reachable("Vera Lapina", consent=False)]
        db.session.commit()
    listing = manager_client.get("/customers").get_data(as_text=True)
    assert "Enrol in sequence</button>" in listing and f'<option value="{sequence_id}">Win back</option>' in listing
    response = manager_client.post("/sequences/enrol?source=bulk&target=ids", headers=_htmx(manager_client),
                                   data={"sequence_id": str(sequence_id), "ids": [str(i) for i in ids]})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "sequence-enrolled"
    assert ("Enrolled 2, held out 0, not enrolled 1. "
            "(no consent and contact on any channel this sequence uses: 1)") in html
    with app.app_context():
        assert set(db.session.scalars(select(Enrolment.source))) == {"bulk"}
    nothing = manager_client.post("/sequences/enrol?source=bulk&target=ids", headers=_htmx(manager_client),
                                  data={"sequence_id": str(sequence_id)})
    assert nothing.status_code == 422 and "Tick at least one customer." in nothing.get_data(as_text=True)
    # Without JavaScript: back to the list with the message.
    plain = manager_client.post(f"/sequences/{sequence_id}/enrol", data={
        "csrf_token": page_token(manager_client), "customer_ids": [str(ids[0])], "source": "bulk"})
    assert plain.status_code == 302 and plain.location == "/customers"
    assert "Enrolled 0, held out 0, not enrolled 1." in manager_client.get("/customers").get_data(as_text=True)


def test_a_holdout_share_is_reported_as_held_out(app, owner_client, owner, email_on):
    sequence_id = make_sequence(app, owner, 3, holdout_percent=50)
    with app.app_context():
        ids = [reachable(f"Person {n}", f"p{n}@example.com") for n in range(4)]
        db.session.commit()
    response = owner_client.post(f"/sequences/{sequence_id}/enrol", headers=_htmx(owner_client),
                                 data={"customer_ids": [str(i) for i in ids]})
    assert "Enrolled 2, held out 2, not enrolled 0." in response.get_data(as_text=True)


def test_everyone_in_a_saved_segment_is_enrolled(app, manager_client, owner, manager, email_on):
    sequence_id = make_sequence(app, owner, 5)
    with app.app_context():
        for name in ("Anna Ivanova", "Boris Petrov"):
            reachable(name, city="Kazan")
        reachable("Vera Lapina", city="Kazan", consent=False)
        reachable("Gleb Orlov", city="Omsk")
        segment = saved_segments.create("Kazan", customer_list.Filters(city="Kazan"), db.session.get(User, manager.id))
        db.session.commit()
        segment_id = segment.id
    page = manager_client.get("/segments/").get_data(as_text=True)
    assert "Enrol everyone in this segment" in page and f'name="segment" value="{segment_id}"' in page
    response = manager_client.post("/sequences/enrol?source=segment&target=segment", headers=_htmx(manager_client),
                                   data={"sequence_id": str(sequence_id), "segment": str(segment_id)})
    assert "Enrolled 2, held out 0, not enrolled 1." in response.get_data(as_text=True)
    with app.app_context():
        assert set(db.session.scalars(select(Enrolment.source))) == {"segment"}
    gone = manager_client.post("/sequences/enrol?target=segment", headers=_htmx(manager_client),
                               data={"sequence_id": str(sequence_id), "segment": "999"})
    assert gone.status_code == 422 and "no longer exists" in gone.get_data(as_text=True)


def _lapsed_customer(name: str, at_risk: int, lapse: Lapse = Lapse.LAPSED, consent: bool = True) -> int:
    ident = reachable(name, consent=consent)
    person = db.session.get(Customer, ident)
    person.lapse, person.at_risk, person.status = lapse, at_risk, Status(lapse.value)
    db.session.flush()
    return ident


def test_the_lapsed_queue_enrols_the_ticked_rows_or_everyone_in_the_queue(app, manager_client, owner, email_on):
    sequence_id = make_sequence(app, owner, 3)
    with app.app_context():
        first = _lapsed_customer("Anna Ivanova", 900)
        second = _lapsed_customer("Boris Petrov", 800)
        third = _lapsed_customer("Vera Lapina", 700)
        lapsing = _lapsed_customer("Gleb Orlov", 600, Lapse.LAPSING)
        db.session.commit()
    page = manager_client.get("/lapsed").get_data(as_text=True)
    assert "Enrol all in this queue</button>" in page and 'id="queue-enrol-result"' in page
    headers = _htmx(manager_client, "/lapsed")
    ticked = manager_client.post("/sequences/enrol?source=lapsed&target=ids", headers=headers, data={
        "sequence_id": str(sequence_id), "ids": [str(first)], "lapse": "lapsed"})
    assert "Enrolled 1, held out 0, not enrolled 0." in ticked.get_data(as_text=True)
    assert ticked.headers["HX-Trigger"] == "sequence-enrolled"  # the queue reloads without them

    whole = manager_client.post("/sequences/enrol?source=lapsed&target=queue", headers=headers, data={
        "sequence_id": str(sequence_id), "lapse": "lapsed"})
    assert "Enrolled 2, held out 0, not enrolled 0." in whole.get_data(as_text=True)
    with app.app_context():
        enrolled = set(db.session.scalars(select(Enrolment.customer_id)))
        assert enrolled == {first, second, third} and lapsing not in enrolled
        assert set(db.session.scalars(select(Enrolment.source))) == {"lapsed"}
    # Without JavaScript: back to the same queue.
    plain = manager_client.post("/sequences/enrol?source=lapsed&target=queue", data={
        "csrf_token": headers["X-CSRFToken"], "sequence_id": str(sequence_id), "lapse": "lapsing"})
    assert plain.status_code == 302 and plain.location == "/lapsed?lapse=lapsing"
    assert _running(app, lapsing) is not None


def test_a_paused_sequence_takes_nobody(app, owner_client, owner, email_on):
    sequence_id = make_sequence(app, owner, 3, paused=True)
    with app.app_context():
        anna = reachable("Anna Ivanova")
        db.session.commit()
    response = owner_client.post(f"/sequences/{sequence_id}/enrol", headers=_htmx(owner_client),
                                 data={"customer_ids": str(anna)})
    assert response.status_code == 422 and "is paused" in response.get_data(as_text=True)
    assert _running(app, anna) is None
    assert "Every sequence is paused." in owner_client.get(f"/customers/{anna}").get_data(as_text=True)
    assert owner_client.post("/sequences/999/enrol", headers=_htmx(owner_client),
                             data={"customer_ids": str(anna)}).status_code == 404


# --- figures ---------------------------------------------------------------------------------------------

def test_a_sequence_nobody_is_in_says_how_to_enrol(app, manager_client, owner):
    sequence_id = make_sequence(app, owner, 3)
    html = manager_client.get(f"/sequences/{sequence_id}").get_data(as_text=True)
    assert "Nobody has been enrolled in this sequence yet." in html and "<svg" not in html
    assert manager_client.get("/sequences/999").status_code == 404


def test_the_figures_page_counts_enrolments_messages_returns_and_the_lift(app, owner_client, owner):
    sequence_id = make_sequence(app, owner, 3, return_days=30)
    now = clock.now()
    with app.app_context():
        people = [customer(name) for name in ("Anna Ivanova", "Boris Petrov", "Vera Lapina", "Gleb Orlov")]
        states = [EnrolmentState.ACTIVE, EnrolmentState.RESPONDED, EnrolmentState.INACTIVE, EnrolmentState.HOLDOUT]
        enrolments = [Enrolment(sequence_id=sequence_id, customer_id=p.id, state=state, source="bulk",
                                enrolled_at=now - timedelta(days=10), next_step=2)
                      for p, state in zip(people, states, strict=True)]
        db.session.add_all(enrolments)
        db.session.flush()

        def message(who: int, step: int, state: MessageState, reason: str | None = None, clicked: bool = False):
            db.session.add(Message(enrolment_id=enrolments[who].id, sequence_id=sequence_id,
                                   customer_id=people[who].id, step=step, state=state, reason=reason,
                                   clicked_at=now if clicked else None))

        message(0, 1, MessageState.SENT)
        message(1, 1, MessageState.SENT, clicked=True)
        message(2, 1, MessageState.FAILED)
        message(0, 2, MessageState.QUEUED)
        message(1, 2, MessageState.SKIPPED, "click")
        message(2, 2, MessageState.SKIPPED, "no_consent")
        message(2, 3, MessageState.UNCERTAIN)
        db.session.commit()
        order(db.session.get(Customer, people[1].id), now - timedelta(days=5), "150.00")
        db.session.commit()
    html = owner_client.get(f"/sequences/{sequence_id}").get_data(as_text=True)
    figures = {term: " ".join(value.split()) for term, value in
               re.findall(r"<dt>(.*?)</dt>\s*<dd>(.*?)</dd>", html.split('<dl class="figures">')[1], re.S)}
    assert figures["Enrolled (messaged)"] == "3" and figures["Held out"] == "1"
    assert figures["Running"] == "1" and figures["Responded"] == "1"
    assert figures["Moved to inactive"] == "1" and figures["Stopped"] == "0"
    assert figures["Returned"].startswith("1 ") and "33.3%" in figures["Returned"]
    assert figures["Revenue from returns"] == "$150.00"
    assert figures["Lift against the holdout"] == "+33.3 pp"
    rows = html.split("<tbody>")[1].split("</tbody>")[0]
    step1, step2, step3 = (r for r in rows.split("<tr>")[1:])
    cells = lambda row: [c.split("</td>")[0] for c in row.split('<td class="num">')[1:]]  # noqa: E731
    assert cells(step1) == ["2", "1", "0", "0", "1"]  # sent, failed, queued, uncertain, clicked
    assert cells(step2) == ["0", "0", "1", "0", "0"]
    assert "answered: 1" in step2 and "no consent: 1" in step2
    assert cells(step3) == ["0", "0", "0", "1", "0"]
    assert "<svg" in html and "<title>Step 1: 2 sent</title>" in html and "<title>Step 1: 1 clicked</title>" in html
    assert 'style="' not in html.split("<main")[1]


def test_without_a_holdout_the_lift_says_it_needs_one(app, manager_client, owner):
    sequence_id = make_sequence(app, owner, 3)
    with app.app_context():
        anna = customer("Anna Ivanova")
        db.session.add(Enrolment(sequence_id=sequence_id, customer_id=anna.id, state=EnrolmentState.ACTIVE,
                                 source="card", enrolled_at=clock.now()))
        db.session.commit()
    html = manager_client.get(f"/sequences/{sequence_id}").get_data(as_text=True)
    assert "needs a holdout" in html and "Per step" in html


# --- in a real browser -------------------------------------------------------------------------------------

@pytest.mark.browser
def test_in_a_browser_the_preview_follows_typing_and_the_card_enrols_without_a_page_load(app, site, page, owner,
                                                                                          email_on):
    from playwright.sync_api import expect

    from tests.conftest import browser_sign_in

    sequence_id = make_sequence(app, owner, 3)
    with app.app_context():
        anna = reachable("Anna <b>Ivanova</b>", "anna@example.com")
        db.session.commit()
    browser_sign_in(page, site, owner.email)
    page.goto(f"{site}/sequences/{sequence_id}/edit")
    preview = page.locator("#preview-1")
    expect(preview).to_contain_text("We miss you, Anna")
    page.locator("#f-step-1-body").fill("Hi {{ name }}, code {{ discount_code }}")
    page.locator("#f-discount_code").fill("MAY5")
    expect(preview.locator("pre")).to_contain_text("Hi Anna <b>Ivanova</b>, code MAY5")
    page.locator("#f-step-1-body").fill("Hi {{ nickname }}")
    expect(preview).to_contain_text("This template cannot be used")

    page.goto(f"{site}/customers/{anna}")
    page.evaluate("window.__same_document = true")
    panel = page.locator("#enrol-panel")
    panel.get_by_role("button", name="Enrol").click()
    expect(panel).to_contain_text("Enrolled 1, held out 0, not enrolled 0.")
    expect(page.locator("#customer-header")).to_contain_text("In a sequence")
    page.once("dialog", lambda dialog: dialog.accept())
    panel.get_by_role("button", name="Stop the sequence").click()
    expect(panel).to_contain_text("Stopped “Win back” for this customer.")
    assert page.evaluate("window.__same_document") is True
    assert page.problems == []


@pytest.mark.browser
def test_in_a_browser_the_lapsed_queue_drops_who_was_enrolled(app, site, page, owner, manager, email_on):
    from playwright.sync_api import expect

    from tests.conftest import browser_sign_in

    make_sequence(app, owner, 3)
    with app.app_context():
        _lapsed_customer("Anna Ivanova", 900)
        _lapsed_customer("Boris Petrov", 800)
        db.session.commit()
    browser_sign_in(page, site, manager.email)
    page.goto(f"{site}/lapsed")
    rows = page.locator("table.queue tbody tr")
    expect(rows).to_have_count(2)
    page.get_by_label("Select Anna Ivanova").check()
    page.get_by_role("button", name="Enrol in sequence").click()
    expect(page.locator("#queue-enrol-result")).to_contain_text("Enrolled 1, held out 0, not enrolled 0.")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Boris Petrov")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Enrol all in this queue").click()
    expect(page.locator("#queue-enrol-result")).to_contain_text("Enrolled 1, held out 0, not enrolled 0.")
    expect(page.locator("#results")).to_contain_text("Nobody to bring back here")
    assert page.problems == []
