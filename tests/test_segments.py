"""Segments against hand-worked histories: cadence per customer and per business type, behaviour
classes, RFM boundaries at their edges, value at risk, statuses and automatic stages. The set-based
rebuild (SQL) and the per-customer refresh (Python) must agree on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from crm import demo, lapsed, segments, settings
from crm.errors import FieldError
from crm.extensions import db
from crm.models import Behaviour, Customer, Interaction, Kind, Lapse, RfmCell, Stage, Status
from tests.factories import customer, order, utc

TODAY = date(2026, 11, 23)
COLUMNS = ("r_score", "f_score", "m_score", "rfm", "behaviour", "lapse", "at_risk", "status", "stage_id")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def base(request):
    """A small base with one customer per case, on SQLite and on PostgreSQL; ids by case name."""
    request.getfixturevalue("ctx" if request.param == "sqlite" else "pg_ctx")
    demo.ensure_stages()
    made = {}

    def every(name, start, step_days, count, amount="1000.00"):
        c = customer(name)
        for i in range(count):
            order(c, utc(start.year, start.month, start.day, 12) + timedelta(days=step_days * i), amount)
        made[name] = c.id

    # Bought every 30 days for six years, then stopped in January 2025: far overdue on her own cadence.
    every("monthly-stopped", date(2019, 1, 10), 30, 73)
    # Once a year, last three months ago: a yearly buyer is not lapsed after three months.
    every("yearly", date(2022, 8, 23), 365, 5)
    # Weekly, last order 12 days ago: past 1.5 x 7 days -> lapsing.
    every("weekly-late", TODAY - timedelta(days=12 + 7 * 9), 7, 10)
    # Every 60 days, last one a month ago: periodic and on track.
    every("periodic", TODAY - timedelta(days=30 + 60 * 4), 60, 5)
    # One order 10 days ago; one order 100 days ago (no cadence yet: the monthly business's 60/120 days).
    every("one-off-new", TODAY - timedelta(days=10), 1, 1)
    every("one-off-100", TODAY - timedelta(days=100), 1, 1)
    # Two orders, the last 200 days ago: lapsed on the fallback, and rare.
    every("two-200", TODAY - timedelta(days=260), 60, 2)
    made["no-orders"] = customer("Без заказов").id
    # As if the history had been imported in one go: each order above was refreshed as it came, so a
    # customer whose old orders made them "lapsed" would now count as having returned.
    db.session.execute(Customer.__table__.update().values(
        stage_id=None, status=Status.ACTIVE.value, r_score=None, f_score=None, m_score=None, rfm=None,
        behaviour=None, lapse=None, at_risk=0))
    db.session.execute(Interaction.__table__.delete().where(Interaction.kind.in_([Kind.STATUS, Kind.STAGE])))
    db.session.commit()
    return made


def _state(ident: int) -> dict:
    c = db.session.get(Customer, ident)
    db.session.refresh(c)
    return {name: getattr(c, name) for name in COLUMNS}


def _stage(key: str) -> int:
    return db.session.scalar(select(Stage.id).where(Stage.key == key))


def _rebuild(**kwargs):
    report = segments.rebuild(today=TODAY, **kwargs)
    db.session.commit()
    return report


def test_cadence_classes_and_stages_worked_by_hand(base):
    _rebuild()
    expect = {
        # name: (lapse, behaviour, status, stage)
        "monthly-stopped": (Lapse.LAPSED, Behaviour.STOPPED, Status.LAPSED, "lapsed"),
        "yearly": (Lapse.ON_TRACK, Behaviour.RARE, Status.ACTIVE, "repeat"),
        "weekly-late": (Lapse.LAPSING, Behaviour.FREQUENT, Status.LAPSING, "lapsing"),
        "periodic": (Lapse.ON_TRACK, Behaviour.PERIODIC, Status.ACTIVE, "regular"),
        "one-off-new": (Lapse.ON_TRACK, Behaviour.ONE_OFF, Status.ACTIVE, "first_purchase"),
        "one-off-100": (Lapse.LAPSING, Behaviour.ONE_OFF, Status.LAPSING, "lapsing"),
        "two-200": (Lapse.LAPSED, Behaviour.RARE, Status.LAPSED, "lapsed"),
        "no-orders": (None, None, Status.ACTIVE, "new"),
    }
    for name, (lapse, behaviour, status, stage) in expect.items():
        state = _state(base[name])
        assert (state["lapse"], state["behaviour"], state["status"], state["stage_id"]) == (
            lapse, behaviour, status, _stage(stage)), name
    # The queues' tabs read these counts instead of counting per page view.
    assert segments.last_rebuild()["lapse_counts"] == {"lapsed": 2, "lapsing": 2, "on_track": 3}
    assert lapsed.sizes() == {"lapsing": 2, "lapsed": 2}


def test_value_at_risk_weights_regular_buyers_and_recoverability(base):
    _rebuild()
    # Weekly: 10 x 1000.00 spent, a cadence of her own (x2), lapsing (x3).
    assert _state(base["weekly-late"])["at_risk"] == 10 * 100_000 * 2 * 3
    # Monthly for six years, 73 x 1000.00; 3 x 30 = 90 days is the lapsed point, and she is more than
    # twice that overdue: long gone (x1), but still a regular buyer (x2).
    assert _state(base["monthly-stopped"])["at_risk"] == 73 * 100_000 * 2 * 1
    # No cadence of his own (one order): x1; lapsing: x3.
    assert _state(base["one-off-100"])["at_risk"] == 100_000 * 1 * 3
    assert _state(base["periodic"])["at_risk"] == 0


def test_business_type_moves_the_fallback_thresholds(base):
    yearly = settings.with_business_type(settings.load(), "yearly")
    settings.save(yearly)
    _rebuild()
    # 450/730 days: one order 100 days ago, or two with the last 200 days ago, are on track.
    assert _state(base["one-off-100"])["lapse"] is Lapse.ON_TRACK
    assert _state(base["two-200"])["lapse"] is Lapse.ON_TRACK
    # Personal cadence does not depend on the business type.
    assert _state(base["monthly-stopped"])["lapse"] is Lapse.LAPSED


def test_rebuild_and_refresh_agree(base):
    _rebuild()
    by_sql = {ident: _state(ident) for ident in base.values()}
    db.session.execute(Customer.__table__.update().values(
        r_score=None, f_score=None, m_score=None, rfm=None, behaviour=None, lapse=None, at_risk=0))
    db.session.commit()
    for ident in base.values():
        segments.refresh(db.session.get(Customer, ident), today=TODAY)
    db.session.commit()
    assert {ident: _state(ident) for ident in base.values()} == by_sql


def test_rebuild_is_idempotent_and_records_changes_once(base):
    first = _rebuild()
    assert first.changed > 0
    entries = db.session.scalar(select(db.func.count()).select_from(Interaction).where(
        Interaction.kind.in_([Kind.STATUS, Kind.STAGE])))
    states = {ident: _state(ident) for ident in base.values()}
    second = _rebuild()
    assert (second.changed, second.status_changes, second.stage_moves) == (0, 0, 0)
    assert {ident: _state(ident) for ident in base.values()} == states
    assert db.session.scalar(select(db.func.count()).select_from(Interaction).where(
        Interaction.kind.in_([Kind.STATUS, Kind.STAGE]))) == entries


def test_status_change_is_on_the_timeline_and_an_order_returns_the_customer(base):
    ident = base["weekly-late"]
    _rebuild()
    entry = db.session.scalars(select(Interaction).where(Interaction.customer_id == ident,
                                                         Interaction.kind == Kind.STATUS)).one()
    assert (entry.data["before"], entry.data["after"], entry.data["auto"]) == ("active", "lapsing", True)
    # A new paid order (today, as the API would send it) brings her back at once, no rebuild needed.
    order(db.session.get(Customer, ident), utc(TODAY.year, TODAY.month, TODAY.day, 9), "500.00")
    db.session.commit()
    state = _state(ident)
    assert (state["status"], state["lapse"], state["stage_id"]) == (Status.ACTIVE, Lapse.ON_TRACK, _stage("returned"))
    assert state["at_risk"] == 0


def test_pinned_cards_and_people_owned_statuses_stay(base):
    custom = Stage(name="VIP", position=20)
    db.session.add(custom)
    db.session.flush()
    pinned = db.session.get(Customer, base["monthly-stopped"])
    pinned.stage_id, pinned.stage_pinned = _stage("regular"), True
    on_custom = db.session.get(Customer, base["two-200"])
    on_custom.stage_id = custom.id
    in_sequence = db.session.get(Customer, base["weekly-late"])
    in_sequence.status, in_sequence.stage_id = Status.IN_SEQUENCE, _stage("in_reactivation")
    db.session.commit()
    _rebuild()
    assert _state(base["monthly-stopped"])["stage_id"] == _stage("regular")
    assert _state(base["monthly-stopped"])["lapse"] is Lapse.LAPSED  # the cadence still says so
    assert _state(base["two-200"])["stage_id"] == custom.id
    state = _state(base["weekly-late"])
    assert (state["status"], state["stage_id"], state["lapse"]) == (
        Status.IN_SEQUENCE, _stage("in_reactivation"), Lapse.LAPSING)


def test_rfm_grid_summary_counts_every_buyer_once(base):
    _rebuild()
    cells = db.session.scalars(select(RfmCell)).all()
    assert sum(cell.customers for cell in cells) == 7  # everyone with orders
    assert sum(cell.revenue for cell in cells) == db.session.scalar(select(db.func.sum(Customer.total_spent)))
    assert _state(base["no-orders"])["rfm"] is None


# --- RFM boundaries ---------------------------------------------------------------------------------

def _probe(days: int, orders: int, spent: int) -> segments.Result:
    c = Customer(name="probe", order_count=orders, total_spent=spent, last_order_at=utc(2026, 1, 1),
                 usual_interval_days=None)
    c.last_order_at = utc(TODAY.year, TODAY.month, TODAY.day) - timedelta(days=days)
    return segments.classify(c, settings.Segmentation(), BOUNDS, TODAY, None)


BOUNDS = segments.Bounds(r3_days=30, r2_days=90, f2=2, f3=5, m2=500_000, m3=2_000_000)


@pytest.mark.parametrize(("days", "score"), [(0, 3), (30, 3), (31, 2), (90, 2), (91, 1)])
def test_recency_boundaries_are_inclusive(ctx, days, score):
    assert _probe(days, 1, 100).r_score == score


@pytest.mark.parametrize(("orders", "score"), [(1, 1), (2, 2), (4, 2), (5, 3)])
def test_frequency_boundaries(ctx, orders, score):
    assert _probe(1, orders, 100).f_score == score


@pytest.mark.parametrize(("spent", "score"), [(499_999, 1), (500_000, 2), (1_999_999, 2), (2_000_000, 3)])
def test_monetary_boundaries(ctx, spent, score):
    assert _probe(1, 1, spent).m_score == score


def test_quantile_bounds_cut_the_buyers_in_thirds(ctx):
    demo.ensure_stages()
    for i in range(9):
        c = customer(f"Buyer {i}")
        for j in range(i + 1):
            order(c, utc(2026, 11, 20 - i, 10) - timedelta(days=30 * j), f"{100 * (i + 1)}.00")
    db.session.commit()
    bounds = segments.quantile_bounds(TODAY)
    # Orders 1..9: the cuts sit at the 4th and 7th value; spend is the same shape.
    assert (bounds.f2, bounds.f3) == (4, 7)
    assert bounds.r3_days < bounds.r2_days
    _rebuild()
    scores = [c.f_score for c in db.session.scalars(select(Customer).order_by(Customer.order_count))]
    assert scores == [1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_fixed_bounds_are_used_when_the_owner_sets_them(base):
    settings.save(replace(settings.load(), rfm_mode="fixed", f2_orders=5, f3_orders=70))
    _rebuild()
    assert _state(base["monthly-stopped"])["f_score"] == 3  # 73 orders
    assert _state(base["weekly-late"])["f_score"] == 2  # 10 orders
    assert _state(base["two-200"])["f_score"] == 1


# --- settings ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("changes", "field"), [
    ({"lapsing_factor": 0.5}, "lapsing_factor"),
    ({"lapsed_factor": 1.2}, "lapsed_factor"),
    ({"lapsed_factor": -3}, "lapsed_factor"),
    ({"lapsed_days": 30}, "lapsed_days"),
    ({"r2_days": 10}, "r2_days"),
    ({"f3_orders": 2}, "f3_orders"),
    ({"m2_amount": -1}, "m2_amount"),
    ({"business_type": "hourly"}, "business_type"),
])
def test_unworkable_settings_are_refused_on_the_field(ctx, changes, field):
    with pytest.raises(FieldError) as refused:
        settings.save(replace(settings.Segmentation(), **changes))
    assert refused.value.field == field
    assert settings.load() == settings.Segmentation()  # nothing stored


def test_the_nightly_rebuild_repairs_totals_in_the_same_pass(base):
    from crm.models import Order, OrderStatus

    wrong = db.session.get(Customer, base["periodic"])
    wrong.order_count, wrong.total_spent, wrong.last_order_at = 1, 1, utc(2001, 1, 1)
    refunded = db.session.get(Customer, base["one-off-new"])
    db.session.execute(Order.__table__.update().where(Order.customer_id == refunded.id)
                       .values(status=OrderStatus.REFUNDED.value))
    db.session.commit()
    _rebuild()
    periodic = db.session.get(Customer, base["periodic"])
    db.session.refresh(periodic)
    assert (periodic.order_count, periodic.total_spent, periodic.average_check) == (5, 500_000, 100_000)
    assert periodic.last_order_at.date() == TODAY - timedelta(days=30)
    assert (periodic.lapse, periodic.behaviour) == (Lapse.ON_TRACK, Behaviour.PERIODIC)
    gone = db.session.get(Customer, base["one-off-new"])
    db.session.refresh(gone)
    assert (gone.order_count, gone.total_spent, gone.last_order_at, gone.rfm, gone.lapse) == (0, 0, None, None, None)
    assert _state(base["one-off-new"])["stage_id"] == _stage("new")


def test_a_change_made_while_the_rebuild_runs_is_not_overwritten(base):
    ident = base["weekly-late"]  # the rebuild would make her lapsing

    def meanwhile(step, _percent):
        if step == "write":  # between the classify pass and the write: a manager marks her inactive
            db.session.execute(Customer.__table__.update().where(Customer.id == ident)
                               .values(status=Status.INACTIVE.value, stage_id=_stage("inactive"), stage_pinned=True))

    _rebuild(progress=meanwhile)
    state = _state(ident)
    assert (state["status"], state["stage_id"]) == (Status.INACTIVE, _stage("inactive"))
    assert not db.session.scalars(select(Interaction).where(Interaction.customer_id == ident,
                                                            Interaction.kind == Kind.STATUS)).all()
    # Everyone else was written as usual.
    assert _state(base["monthly-stopped"])["status"] is Status.LAPSED
