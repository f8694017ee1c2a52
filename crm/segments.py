"""Segments: RFM scores, behaviour classes, cadence (lapsing / lapsed), value at risk, the status
that follows, and the automatic funnel stage.

The rules are written twice on purpose, once in Python (`classify`, applied to one customer when an
order arrives) and once in SQL (`rebuild`, a few set-based statements for the whole base, nightly
and on demand); tests hold the two equal. Both read the same `Bounds` (the RFM cut points worked
out by the last rebuild), so a customer refreshed at noon lands in the same cell the nightly run
would put them in.

Cadence is personal: with enough orders (MIN_GAPS gaps) a customer is lapsing past
`lapsing_factor` times their own usual interval and lapsed past `lapsed_factor` times; with fewer,
the business type's thresholds in days apply. Days count in the team's calendar from the UTC date
of the last order, as `crm.figures.days_since` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime

from flask import g
from redis.exceptions import LockError
from sqlalchemy import func, select, text

from crm import clock, customers, figures, settings
from crm.extensions import db, redis
from crm.models import Behaviour, Customer, Kind, Lapse, RfmCell, Stage, Status, TeamSetting
from crm.settings import Segmentation

MIN_GAPS = 3  # gaps (orders - 1) before a customer's own median interval is trusted
FREQUENT_DAYS = 30  # a usual interval up to this is "frequent"
PERIODIC_DAYS = 120  # ... up to this "periodic"; longer is "rare"
CLASS_MIN_ORDERS = 3  # orders before a customer can be frequent or periodic
# Value at risk: lifetime spend, doubled for customers with a cadence of their own (regular buyers),
# times how recoverable they are: lapsing 3, lapsed 2, long gone (past twice the lapsed point) 1.
REGULAR_WEIGHT = 2
TIER_WEIGHTS = {"lapsing": 3, "lapsed": 2, "gone": 1}

# The statuses the cadence sets; the others (in a sequence, responded, inactive) belong to
# sequences and people, and the rebuild leaves them alone.
CADENCE_STATUSES = (Status.ACTIVE, Status.LAPSING, Status.LAPSED)
# Stages that follow from the data; cards on others (in reactivation, inactive, the team's own
# stages) or pinned by a person stay where they are.
DATA_STAGES = ("new", "first_purchase", "repeat", "regular", "lapsing", "lapsed", "returned")
REBUILD_KEY = "rebuild"
LOCK_KEY = "segments:rebuild-lock"
LOCK_SECONDS = 3600  # a crashed holder frees the lock after this


class RebuildRunning(RuntimeError):
    """Another rebuild holds the lock; running two at once would write the same rows twice."""


@contextmanager
def exclusive(wait: float = 0) -> Iterator[None]:
    """Hold the rebuild lock (in Redis, so it spans web, workers and the CLI) or raise RebuildRunning;
    `wait` seconds of patience for callers that must run after the current rebuild (an import)."""
    lock = redis.connection.lock(LOCK_KEY, timeout=LOCK_SECONDS, blocking=wait > 0, blocking_timeout=wait or None)
    if not lock.acquire():
        raise RebuildRunning
    try:
        yield
    finally:
        try:
            lock.release()
        except LockError:  # it expired meanwhile: nothing left to free
            pass


def rebuild_running() -> bool:
    return bool(redis.connection.exists(LOCK_KEY))


@dataclass(frozen=True)
class Bounds:
    """RFM cut points: recency 3 within r3_days of the last order, 2 within r2_days, else 1;
    frequency 2 from f2 orders, 3 from f3; monetary 2 from m2, 3 from m3 (minor units)."""

    r3_days: int
    r2_days: int
    f2: int
    f3: int
    m2: int
    m3: int


def fixed_bounds(config: Segmentation) -> Bounds:
    return Bounds(config.r3_days, config.r2_days, config.f2_orders, config.f3_orders, config.m2_amount,
                  config.m3_amount)


def quantile_bounds(today: date) -> Bounds | None:
    """Cut each measure at its thirds over the customers with orders (None when there are none)."""
    cuts = _quantile_cuts()
    if cuts is None:
        return None
    recent, older, f2, f3, m2, m3 = cuts
    # The most recent third scores 3: its cut is the last order of the customer a third down the list.
    r3, r2 = figures.days_since(recent, today), figures.days_since(older, today)
    # Ties (most customers have one order) can make a cut collapse onto the next: keep them apart
    # so a score of 3 always means more than a score of 2.
    return Bounds(r3_days=r3, r2_days=max(r2, r3 + 1), f2=f2, f3=max(f3, f2 + 1), m2=m2, m3=max(m3, m2 + 1))


def _quantile_cuts():
    """(last order a third and two thirds down, by recency; orders and spend at one and two thirds up)."""
    buyers = Customer.order_count > 0
    if db.engine.dialect.name == "postgresql":
        # One pass and three small sorts; reading a third of an index on PostgreSQL visits the table.
        row = db.session.execute(select(
            func.percentile_disc(2 / 3).within_group(Customer.last_order_at),
            func.percentile_disc(1 / 3).within_group(Customer.last_order_at),
            func.percentile_disc(1 / 3).within_group(Customer.order_count),
            func.percentile_disc(2 / 3).within_group(Customer.order_count),
            func.percentile_disc(1 / 3).within_group(Customer.total_spent),
            func.percentile_disc(2 / 3).within_group(Customer.total_spent),
        ).where(buyers)).one()
        return None if row[0] is None else tuple(row)
    # SQLite has no percentiles; each cut is one read at an offset of an index ((last_order_at, id),
    # (order_count, id), (total_spent, id)), milliseconds at a million customers. No other column
    # may appear in the query, or every row skipped over is looked up in the table: customers
    # without orders sort first (0 orders, 0 spent) and are stepped over by the offset instead.
    everyone = db.session.scalar(select(func.count()).select_from(Customer))
    count = db.session.scalar(select(func.count()).select_from(Customer).where(Customer.last_order_at.is_not(None)))
    if not count:
        return None

    def at(query, share: float, skip: int = 0):
        return db.session.scalar(query.offset(skip + min(int(count * share), count - 1)).limit(1))

    recent = select(Customer.last_order_at).where(Customer.last_order_at.is_not(None)) \
        .order_by(Customer.last_order_at.desc())
    orders = select(Customer.order_count).order_by(Customer.order_count)
    spent = select(Customer.total_spent).order_by(Customer.total_spent)
    others = everyone - count
    return (at(recent, 1 / 3), at(recent, 2 / 3), at(orders, 1 / 3, others), at(orders, 2 / 3, others),
            at(spent, 1 / 3, others), at(spent, 2 / 3, others))


def bounds_for(config: Segmentation, today: date) -> Bounds:
    if config.rfm_mode == "fixed":
        return fixed_bounds(config)
    return quantile_bounds(today) or fixed_bounds(config)


def current_bounds(config: Segmentation, today: date) -> Bounds:
    """The cut points of the last rebuild (what the grid shows), or fresh ones before the first."""
    row = db.session.get(TeamSetting, REBUILD_KEY)
    stored = (row.value if row else {}).get("bounds")
    if stored and (row.value.get("rfm_mode") == config.rfm_mode) and config.rfm_mode == "quantiles":
        return Bounds(**stored)
    return bounds_for(config, today)


# --- one customer ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    r_score: int | None
    f_score: int | None
    m_score: int | None
    rfm: int | None
    behaviour: Behaviour | None
    lapse: Lapse | None
    at_risk: int
    data_stage: str  # key of the stage the data points to


def _score(value: int, two: int, three: int) -> int:
    return 3 if value >= three else 2 if value >= two else 1


def classify(customer: Customer, config: Segmentation, bounds: Bounds, today: date, stage_key: str | None) -> Result:
    """Work out a customer's segments from their stored figures (the rules the SQL repeats)."""
    if not customer.order_count or customer.last_order_at is None:
        return Result(None, None, None, None, None, None, 0, "new")
    days = figures.days_since(customer.last_order_at, today)
    personal = customer.order_count - 1 >= MIN_GAPS and customer.usual_interval_days is not None
    if personal:
        gap = max(customer.usual_interval_days, 1.0)
        lapsing_after, lapsed_after = config.lapsing_factor * gap, config.lapsed_factor * gap
    else:
        lapsing_after, lapsed_after = config.lapsing_days, config.lapsed_days
    lapse = Lapse.LAPSED if days > lapsed_after else Lapse.LAPSING if days > lapsing_after else Lapse.ON_TRACK

    r = 3 if days <= bounds.r3_days else 2 if days <= bounds.r2_days else 1
    f = _score(customer.order_count, bounds.f2, bounds.f3)
    m = _score(customer.total_spent, bounds.m2, bounds.m3)

    interval = customer.usual_interval_days
    if customer.order_count == 1:
        behaviour = Behaviour.ONE_OFF
    elif customer.order_count >= CLASS_MIN_ORDERS and interval is not None and interval <= FREQUENT_DAYS:
        behaviour = Behaviour.STOPPED if lapse is Lapse.LAPSED else Behaviour.FREQUENT
    elif customer.order_count >= CLASS_MIN_ORDERS and interval is not None and interval <= PERIODIC_DAYS:
        behaviour = Behaviour.PERIODIC
    else:
        behaviour = Behaviour.RARE

    at_risk = 0
    if lapse is not Lapse.ON_TRACK:
        tier = "gone" if days > 2 * lapsed_after else lapse.value
        at_risk = customer.total_spent * (REGULAR_WEIGHT if personal else 1) * TIER_WEIGHTS[tier]

    if lapse is not Lapse.ON_TRACK:
        data_stage = lapse.value
    elif stage_key in ("lapsing", "lapsed", "returned"):
        data_stage = "returned"
    elif behaviour in (Behaviour.FREQUENT, Behaviour.PERIODIC):
        data_stage = "regular"
    elif customer.order_count >= 2:
        data_stage = "repeat"
    else:
        data_stage = "first_purchase"
    return Result(r, f, m, r * 100 + f * 10 + m, behaviour, lapse, at_risk, data_stage)


def refresh(customer: Customer, config: Segmentation | None = None, today: date | None = None) -> Customer:
    """Re-derive one customer's segments, status and automatic stage now (after an order, say);
    status and stage changes go on the timeline as the rebuild's do."""
    today = today or clock.team_today()
    # Settings, stages and cut points once per request or job: an API batch refreshes a thousand.
    cached = g.get("segments_context")
    if cached is None or cached[0] != today or (config is not None and cached[1] != config):
        config = config or settings.load()
        cached = g.segments_context = (today, config, _stage_ids(), current_bounds(config, today))
    _, config, stages, bounds = cached
    keys = {ident: key for key, ident in stages.items()}
    result = classify(customer, config, bounds, today, keys.get(customer.stage_id))
    for name in ("r_score", "f_score", "m_score", "rfm", "behaviour", "lapse", "at_risk"):
        setattr(customer, name, getattr(result, name))
    if customer.status in CADENCE_STATUSES:
        status = Status(result.lapse.value) if result.lapse in (Lapse.LAPSING, Lapse.LAPSED) else Status.ACTIVE
        if status is not customer.status:
            customers.record(customer, Kind.STATUS, None, before=customer.status.value, after=status.value,
                             auto=True)
            customer.status = status
    current_key = keys.get(customer.stage_id)
    moves = not customer.stage_pinned and (customer.stage_id is None or current_key in DATA_STAGES)
    target = stages.get(result.data_stage)
    if moves and target is not None and target != customer.stage_id:
        customers.record(customer, Kind.STAGE, None, before=customer.stage_id, after=target, auto=True)
        customer.stage_id = target
    return customer


def _stage_ids() -> dict[str, int]:
    return dict(db.session.execute(select(Stage.key, Stage.id).where(Stage.key.is_not(None))).all())


# --- the whole base -------------------------------------------------------------------------------

_SQL = {
    "sqlite": {
        "days": "CAST(julianday(:today) - julianday(substr(t.last_at, 1, 10)) AS INTEGER)",
        "distinct": "IS NOT",
        "same": "IS",
        # Keeps a subquery from being merged into the one above, where every use of its columns
        # would repeat the whole expression (the lapse CASE is read eight times per customer).
        "fence": "LIMIT -1",
        "json": "json_object",
        "empty": "'[]'",
        "true": "json('true')",
    },
    "postgresql": {
        "days": "(CAST(:today AS date) - CAST(t.last_at AS date))",
        "distinct": "IS DISTINCT FROM",
        "same": "IS NOT DISTINCT FROM",
        "fence": "OFFSET 0",
        "json": "json_build_object",
        "empty": "'[]'::json",
        "true": "true",
    },
}

# Innermost: days since the last order, whether the customer has a cadence of their own, and the
# two thresholds that follow. Then lapse and scores; then what depends on lapse. The CASEs read as
# `classify` does, branch for branch.
_CLASSIFY = """
SELECT id, r, f, m, r * 100 + f * 10 + m AS rfm,
       CASE WHEN n = 0 THEN NULL
            WHEN n = 1 THEN 'one_off'
            WHEN n >= :class_min AND gap IS NOT NULL AND gap <= :frequent
                 THEN CASE WHEN lapse = 'lapsed' THEN 'stopped' ELSE 'frequent' END
            WHEN n >= :class_min AND gap IS NOT NULL AND gap <= :periodic THEN 'periodic'
            ELSE 'rare' END AS behaviour,
       lapse,
       CASE WHEN lapse IN ('lapsing', 'lapsed')
            THEN total * (CASE WHEN personal = 1 THEN :regular_weight ELSE 1 END)
                       * (CASE WHEN days > 2 * lapsed_after THEN :w_gone
                               WHEN lapse = 'lapsed' THEN :w_lapsed ELSE :w_lapsing END)
            ELSE 0 END AS at_risk,
       CASE WHEN old_status IN ('active', 'lapsing', 'lapsed')
            THEN CASE WHEN lapse IN ('lapsing', 'lapsed') THEN lapse ELSE 'active' END
            ELSE old_status END AS status,
       CASE WHEN pinned OR (stage_id IS NOT NULL AND stage_id NOT IN ({data_stage_ids})) THEN stage_id
            WHEN n = 0 THEN COALESCE(:st_new, stage_id)
            WHEN lapse = 'lapsing' THEN COALESCE(:st_lapsing, stage_id)
            WHEN lapse = 'lapsed' THEN COALESCE(:st_lapsed, stage_id)
            WHEN stage_id IN (:st_lapsing, :st_lapsed, :st_returned) THEN COALESCE(:st_returned, stage_id)
            WHEN n >= :class_min AND gap IS NOT NULL AND gap <= :periodic THEN COALESCE(:st_regular, stage_id)
            WHEN n >= 2 THEN COALESCE(:st_repeat, stage_id)
            ELSE COALESCE(:st_first_purchase, stage_id) END AS stage_id,
       n, total, first_at, last_at, old_n, old_total, old_first, old_last, pinned,
       old_r, old_f, old_m, old_behaviour, old_lapse, old_at_risk, old_status, stage_id AS old_stage_id
FROM (
    SELECT *,
           CASE WHEN n = 0 THEN NULL WHEN days > lapsed_after THEN 'lapsed'
                WHEN days > lapsing_after THEN 'lapsing' ELSE 'on_track' END AS lapse,
           CASE WHEN n = 0 THEN NULL WHEN days <= :r3 THEN 3 WHEN days <= :r2 THEN 2 ELSE 1 END AS r,
           CASE WHEN n = 0 THEN NULL WHEN n >= :f3 THEN 3 WHEN n >= :f2 THEN 2 ELSE 1 END AS f,
           CASE WHEN n = 0 THEN NULL WHEN total >= :m3 THEN 3 WHEN total >= :m2 THEN 2 ELSE 1 END AS m
    FROM (
        SELECT *,
               CASE WHEN personal = 1 THEN :lapsing_factor * CASE WHEN gap < 1 THEN 1 ELSE gap END
                    ELSE :lapsing_days END AS lapsing_after,
               CASE WHEN personal = 1 THEN :lapsed_factor * CASE WHEN gap < 1 THEN 1 ELSE gap END
                    ELSE :lapsed_days END AS lapsed_after
        FROM (
            SELECT c.id, COALESCE(t.n, 0) AS n, COALESCE(t.total, 0) AS total, c.usual_interval_days AS gap,
                   CASE WHEN COALESCE(t.n, 0) - 1 >= :min_gaps AND c.usual_interval_days IS NOT NULL
                        THEN 1 ELSE 0 END AS personal,
                   CASE WHEN t.last_at IS NULL THEN NULL ELSE {days} END AS days,
                   t.first_at, t.last_at, c.order_count AS old_n, c.total_spent AS old_total,
                   c.first_order_at AS old_first, c.last_order_at AS old_last,
                   c.stage_pinned AS pinned, c.stage_id, c.status AS old_status,
                   c.r_score AS old_r, c.f_score AS old_f, c.m_score AS old_m, c.behaviour AS old_behaviour,
                   c.lapse AS old_lapse, c.at_risk AS old_at_risk
            FROM customers AS c LEFT JOIN totals_next AS t ON t.customer_id = c.id {fence}
        ) AS base {fence}
    ) AS thresholds {fence}
) AS scored
"""


@dataclass
class Report:
    seconds: float = 0.0
    changed: int = 0
    status_changes: int = 0
    stage_moves: int = 0
    steps: dict[str, float] | None = None


def rebuild(config: Segmentation | None = None, today: date | None = None,
            progress: Callable[[str, int], None] | None = None) -> Report:
    """Recompute every customer's totals, segments, status and automatic stage, set-based.

    Only rows whose values change are written (and put on the timeline), so a quiet night costs
    about one read of the orders and customers. The caller commits; `crm.tasks` holds the lock."""
    config = config or settings.load()
    today = today or clock.team_today()
    report, steps, started = Report(), {}, time.monotonic()

    def step(name: str, share: int, work: Callable[[], object]):
        if progress:
            progress(name, share)
        began = time.monotonic()
        result = work()
        steps[name] = round(time.monotonic() - began, 2)
        return result

    # The totals per customer from the orders, into a temporary table the classify pass joins: the
    # customers are read once for totals and segments together.
    step("totals", 5, figures.build_totals)
    bounds = step("bounds", 55, lambda: bounds_for(config, today))
    stages = _stage_ids()
    d = _SQL[db.engine.dialect.name]
    params = {
        "today": today.isoformat(), "min_gaps": MIN_GAPS, "class_min": CLASS_MIN_ORDERS, "frequent": FREQUENT_DAYS,
        "periodic": PERIODIC_DAYS, "regular_weight": REGULAR_WEIGHT, "w_gone": TIER_WEIGHTS["gone"],
        "w_lapsed": TIER_WEIGHTS["lapsed"], "w_lapsing": TIER_WEIGHTS["lapsing"],
        "lapsing_factor": config.lapsing_factor, "lapsed_factor": config.lapsed_factor,
        "lapsing_days": config.lapsing_days, "lapsed_days": config.lapsed_days,
        "r3": bounds.r3_days, "r2": bounds.r2_days, "f2": bounds.f2, "f3": bounds.f3, "m2": bounds.m2, "m3": bounds.m3,
        # A stage missing from the board (NULL) leaves the card where it is.
        **{f"st_{key}": stages.get(key) for key in DATA_STAGES},
        # SQLite keeps datetimes as text in SQLAlchemy's format; PostgreSQL takes the value.
        "now": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if db.engine.dialect.name == "sqlite"
        else datetime.now(UTC),
    }
    # Only ids this module reads from the stages table go into the SQL text; values are bound.
    data_stage_ids = ", ".join(str(int(stages[k])) for k in DATA_STAGES if k in stages) or "-1"
    classify_sql = _CLASSIFY.format(days=d["days"], data_stage_ids=data_stage_ids, fence=d["fence"])
    changed = " OR ".join(f"n.{new} {d['distinct']} n.{old}" for new, old in (
        ("n", "old_n"), ("total", "old_total"), ("first_at", "old_first"), ("last_at", "old_last"),
        ("r", "old_r"), ("f", "old_f"), ("m", "old_m"), ("behaviour", "old_behaviour"), ("lapse", "old_lapse"),
        ("at_risk", "old_at_risk"), ("status", "old_status"), ("stage_id", "old_stage_id")))
    session = db.session

    def classify_all():
        # Every customer goes into the temporary table (the grid summary is counted from it, not
        # from another pass over the customers); `changed` marks the rows to write.
        session.execute(text("DROP TABLE IF EXISTS seg_next"))
        session.execute(text(f"CREATE TEMP TABLE seg_next AS SELECT n.*, CASE WHEN {changed} THEN 1 ELSE 0 END "  # noqa: S608
                             f"AS changed FROM ({classify_sql}) AS n"), params)
        return session.scalar(text("SELECT COUNT(*) FROM seg_next WHERE changed = 1"))

    report.changed = step("classify", 60, classify_all)

    def write():
        # Totals as crm.figures.rebuild_totals writes them (a customer left without paid orders loses
        # the figures that came from them), and the segments. A row someone changed since the
        # classify pass read it (a move on the board, an order, an inactive mark) is left alone:
        # the next rebuild sees it afresh, and a person's change is never overwritten.
        session.execute(text(f"""
            UPDATE customers SET order_count = n.n, total_spent = n.total,
                   average_check = CASE WHEN n.n = 0 THEN 0 ELSE CAST(ROUND(n.total * 1.0 / n.n) AS BIGINT) END,
                   first_order_at = n.first_at, last_order_at = n.last_at,
                   usual_interval_days = CASE WHEN n.n = 0 THEN NULL ELSE customers.usual_interval_days END,
                   expected_next_order_on = CASE WHEN n.n = 0 THEN NULL ELSE customers.expected_next_order_on END,
                   favourite_products = CASE WHEN n.n = 0 THEN {d['empty']} ELSE customers.favourite_products END,
                   favourite_categories = CASE WHEN n.n = 0 THEN {d['empty']} ELSE customers.favourite_categories END,
                   r_score = n.r, f_score = n.f, m_score = n.m, rfm = n.rfm, behaviour = n.behaviour,
                   lapse = n.lapse, at_risk = n.at_risk, status = n.status, stage_id = n.stage_id
            FROM seg_next AS n
            WHERE customers.id = n.id AND n.changed = 1
              AND customers.status = n.old_status AND customers.stage_pinned = n.pinned
              AND customers.stage_id {d['same']} n.old_stage_id
              AND customers.order_count = n.old_n AND customers.total_spent = n.old_total
              AND customers.last_order_at {d['same']} n.old_last"""))  # noqa: S608
        session.execute(text("DROP TABLE totals_next"))

    step("write", 75, write)

    def timeline():
        # The same entries `refresh` writes through crm.customers.record, as JSON built in SQL; only
        # for rows the write above changed.
        status = session.execute(text(f"""
            INSERT INTO interactions (customer_id, kind, at, data)
            SELECT n.id, 'status', :now, {d['json']}('before', n.old_status, 'after', n.status, 'auto', {d['true']})
            FROM seg_next AS n JOIN customers AS c ON c.id = n.id
            WHERE n.changed = 1 AND n.status <> n.old_status AND c.status = n.status"""), params).rowcount  # noqa: S608
        stage = session.execute(text(f"""
            INSERT INTO interactions (customer_id, kind, at, data)
            SELECT n.id, 'stage', :now, {d['json']}('before', n.old_stage_id, 'after', n.stage_id, 'auto', {d['true']})
            FROM seg_next AS n JOIN customers AS c ON c.id = n.id
            WHERE n.changed = 1 AND n.stage_id {d['distinct']} n.old_stage_id
              AND c.stage_id {d['same']} n.stage_id"""), params).rowcount  # noqa: S608
        return status, stage

    report.status_changes, report.stage_moves = step("timeline", 80, timeline)

    def summary():
        session.execute(RfmCell.__table__.delete())
        session.execute(text("""
            INSERT INTO rfm_cells (rfm, customers, revenue)
            SELECT rfm, COUNT(*), SUM(total) FROM seg_next WHERE rfm IS NOT NULL GROUP BY rfm"""))
        counts = dict(session.execute(text(
            "SELECT lapse, COUNT(*) FROM seg_next WHERE lapse IS NOT NULL GROUP BY lapse")).all())
        session.execute(text("DROP TABLE seg_next"))
        return counts

    lapse_counts = step("summary", 95, summary)
    report.seconds = round(time.monotonic() - started, 2)
    report.steps = steps
    row = session.get(TeamSetting, REBUILD_KEY) or TeamSetting(key=REBUILD_KEY)
    row.value = {"finished_at": datetime.now(UTC).isoformat(), "today": today.isoformat(), "seconds": report.seconds,
                 "changed": report.changed, "rfm_mode": config.rfm_mode, "bounds": asdict(bounds), "steps": steps,
                 "lapse_counts": lapse_counts}
    session.add(row)
    g.pop("segments_context", None)  # new cut points for the refreshes that follow
    if progress:
        progress("done", 100)
    return report


def last_rebuild() -> dict:
    """What the last rebuild recorded (finished_at, seconds, changed, bounds), or {} before the first."""
    return settings.record(REBUILD_KEY, "finished_at")

