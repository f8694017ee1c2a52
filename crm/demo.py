"""Demo data for a first look (`make run`) and for benchmarks.

`seed_users` makes the demo logins; `seed` adds a customer base in English or Russian: buyers of
every cadence (daily bread, weekly groceries, a monthly salon, quarterly shirts, yearly occasions),
regulars who stopped, one-off buyers, leads, with contacts, consents, orders and a timeline; the
worked examples of DOMAIN.md come first. Rows are generated from pools (Faker is drawn once), in
another process for big bases, and go in by bulk inserts, a batch per statement and commit (plain
executemany on SQLite, COPY on PostgreSQL); then the figures come from the set-based rebuild. A
million customers with ten million orders load in minutes.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import random
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from datetime import time as dt_time

import phonenumbers
from sqlalchemy import func, insert, select, text

from crm import accounts, callbacks, clock, figures, segments, sequences, summaries, workdays
from crm.customers import search_terms_of
from crm.extensions import db
from crm.models import (
    CallBack,
    CallReason,
    Customer,
    EnrolmentRule,
    Interaction,
    Kind,
    Lapse,
    Role,
    Sequence,
    Stage,
    Status,
    Trigger,
    User,
)

# Shown by `make run` and in the README; only ever created by `flask demo seed`.
DEMO_LOGINS = (
    ("owner@example.com", "Olga Owner", "owner-demo-pass", Role.OWNER, "en"),
    ("manager@example.com", "Maxim Manager", "manager-demo-pass", Role.MANAGER, "ru"),
)

# The funnel as migration 0002 creates it; `db.create_all()` (tests) makes the table empty.
DEFAULT_STAGES = (
    ("new", "New"), ("first_purchase", "First purchase"), ("repeat", "Repeat"), ("regular", "Regular"),
    ("lapsing", "Lapsing"), ("lapsed", "Lapsed"), ("in_reactivation", "In reactivation"),
    ("returned", "Returned"), ("inactive", "Inactive"),
)

ORDER_SOURCE = "demo"


def has_users() -> bool:
    """Tell whether any account exists (a first run has none)."""
    return db.session.scalar(db.select(User.id).limit(1)) is not None


def seed_users() -> list[User]:
    """Create the demo owner and manager unless their addresses are taken."""
    created = []
    for email, name, password, role, locale in DEMO_LOGINS:
        if db.session.scalar(db.select(User.id).where(User.email == email)) is None:
            created.append(accounts.create_user(email, name, password, role, locale))
    return created


def default_locale(configured: str | None) -> str:
    """Return the demo locale for the team's default language: itself when there is one, else English."""
    return configured if configured in LOCALES else "en"


def ensure_stages() -> dict[str, int]:
    """Insert the default funnel stages when there are none; return stage ids by key."""
    if db.session.scalar(select(Stage.id).limit(1)) is None:
        db.session.execute(insert(Stage), [{"key": key, "name": name, "position": position}
                                           for position, (key, name) in enumerate(DEFAULT_STAGES)])
    return {key: ident for key, ident in db.session.execute(select(Stage.key, Stage.id)) if key}


# --- what a demo base is made of --------------------------------------------------------------

@dataclass(frozen=True)
class Product:
    name: str
    category: str
    price: int  # minor units


@dataclass(frozen=True)
class Cadence:
    """A kind of buyer: how often they buy, what, for how long, and how many of them stopped."""

    key: str
    share: int  # customers in every 100
    lines: tuple[str, ...]  # product lines; a customer keeps to one (twice-weekly alternates two)
    gaps: tuple[int, ...]  # days between two orders, picked at random
    orders: tuple[int, int]  # fewest and most orders, skewed towards the fewest
    stopped: float  # share of these customers who stopped buying
    pause: tuple[int, int]  # days since the last order: those who stopped, or one-off and rare buyers
    items: tuple[int, int]  # products in one order


_ANY = ("groceries", "salon", "cleaning", "clothing", "occasions", "furniture")
CADENCES = (
    Cadence("lead", 3, (), (), (0, 0), 0, (0, 0), (0, 0)),
    Cadence("one_off", 27, _ANY, (), (1, 1), 0, (1, 1800), (1, 2)),
    Cadence("daily", 5, ("bakery",), (1, 1, 1, 1, 1, 2), (8, 70), 0.3, (10, 180), (1, 2)),
    Cadence("twice_weekly", 4, ("wine", "groceries"), (3, 4), (6, 40), 0.25, (14, 240), (1, 1)),
    Cadence("weekly", 14, ("groceries",), (6, 7, 7, 7, 7, 8), (4, 48), 0.3, (30, 365), (2, 4)),
    Cadence("monthly", 20, ("salon", "cleaning"), tuple(range(26, 35)), (3, 48), 0.3, (75, 540), (1, 2)),
    Cadence("quarterly", 10, ("clothing",), tuple(range(80, 101)), (2, 24), 0.25, (200, 900), (1, 3)),
    Cadence("yearly", 5, ("occasions",), tuple(range(350, 381)), (2, 8), 0.2, (420, 1100), (1, 1)),
    Cadence("rare", 12, _ANY, tuple(range(25, 401)), (2, 5), 0, (1, 700), (1, 2)),
)
_CADENCE = {c.key: c for c in CADENCES}
# The furthest back a history goes.
MAX_HISTORY_DAYS = 8 * 366


@dataclass(frozen=True)
class LocaleData:
    faker: str
    region: str  # phone numbers are valid for this country
    currency: str
    utc_offset: int  # hours; shop hours are local
    area_codes: tuple[str, ...]  # national prefixes of the phone numbers handed out
    cities: tuple[tuple[str, int], ...]  # name, weight
    tags: tuple[str, ...]  # the first marks VIPs
    wine_tag: str  # the "Friday wine buyers" segment
    catalogue: dict[str, tuple[Product, ...]]
    notes: tuple[str, ...]
    calls: tuple[tuple[str, str | None], ...]  # outcome (one of customers.CALL_OUTCOMES), what was said
    complaint: str
    do_not_contact: str
    left_for_price: str
    consent_how: tuple[str, ...]
    withdrawn_how: tuple[str, ...]
    examples: tuple[tuple[str, str], ...]  # names of the worked examples: (first, last)


def _p(category: str, *items: tuple[str, int]) -> tuple[Product, ...]:
    return tuple(Product(name, category, price) for name, price in items)


EN = LocaleData(
    faker="en_US", region="US", currency="USD", utc_offset=-5,
    area_codes=("617", "857", "781", "339", "978", "351", "508", "774"),
    cities=(("Boston", 40), ("Cambridge", 12), ("Somerville", 10), ("Brookline", 8), ("Newton", 7), ("Quincy", 6),
            ("Medford", 5), ("Arlington", 4), ("Watertown", 4), ("Salem", 2), ("Lowell", 1), ("Worcester", 1)),
    tags=("vip", "wholesale", "loyalty-card", "birthday-club", "corporate", "referral", "instagram", "newsletter",
          "delivery"),
    wine_tag="friday-wine",
    catalogue={
        "bakery": _p("Bakery", ("Sourdough loaf", 550), ("Baguette", 350), ("Croissant", 275), ("Rye bread", 500),
                     ("Cinnamon roll", 325)),
        "groceries": _p("Groceries", ("Free-range eggs, dozen", 499), ("Whole milk, 1 gal", 429),
                        ("Cheddar cheese", 699), ("Chicken breast, 2 lb", 1099), ("Vegetable box", 2499),
                        ("Coffee beans, 1 lb", 1399), ("Greek yogurt", 599), ("Apples, 3 lb", 549)),
        "wine": _p("Wine", ("House red", 1999), ("Pinot Grigio", 1799), ("Prosecco", 2199)),
        "salon": _p("Hair", ("Haircut", 4500), ("Colouring", 9500), ("Blow-dry", 3500))
        + _p("Nails", ("Manicure", 3000), ("Pedicure", 4000)),
        "cleaning": _p("Cleaning", ("Apartment cleaning", 5000), ("Deep cleaning", 12000),
                       ("Window cleaning", 4000)),
        "clothing": _p("Shirts", ("Oxford shirt", 6700), ("Linen shirt", 7400), ("Polo shirt", 4900))
        + _p("Clothing", ("Chinos", 8900), ("Sweater", 9900)),
        "occasions": _p("Gifts", ("Holiday gift box", 8900), ("Birthday cake", 6500))
        + _p("Hair", ("Evening styling", 12000),) + _p("Service", ("Bicycle tune-up", 9000),),
        "furniture": _p("Furniture", ("Oak dining table", 129900), ("Armchair", 45900), ("Bookcase", 32900)),
    },
    notes=("Prefers a call after 6 pm.", "Allergic to nuts.", "Always asks for the same stylist.",
           "Wants receipts by email.", "Interested in the loyalty programme.", "Buys gifts for her mother in December.",
           "Asked about delivery to the office.", "Moved to another part of town; may come less often.",
           "Pays by card only.", "Likes to hear about new arrivals first."),
    calls=(("reached", "Happy with the last order; asked about new arrivals."),
           ("reached", "Confirmed the next visit."),
           ("no_answer", None), ("call_back", "Asked to call back next week."),
           ("reached", "Said prices went up; offered 10% off the next order."),
           ("not_interested", "Not interested in offers for now.")),
    complaint="Complained twice: a late delivery and a wrong size. Handle with care.",
    do_not_contact="Asked not to be contacted by anyone.",
    left_for_price="Left for a competitor charging 40 a month.",
    consent_how=("checkout form", "loyalty card application", "website sign-up", "paper form in store", "by phone"),
    withdrawn_how=("unsubscribe link", "asked by phone", "replied STOP"),
    examples=(("Emily", "Carter"), ("Margaret", "Hughes"), ("David", "Miller"), ("James", "Wilson"),
              ("Robert", "Brown")),
)

RU = LocaleData(
    faker="ru_RU", region="RU", currency="RUB", utc_offset=3,
    area_codes=tuple(f"9{n:02d}" for n in (0, 1, 3, 5, 6, 9, 10, 15, 16, 19, 25, 26, 35, 50, 58, 60, 62, 63, 64,
                                           65, 67, 68, 77, 85, 91, 96, 99)),
    cities=(("Москва", 45), ("Химки", 6), ("Мытищи", 6), ("Балашиха", 6), ("Королёв", 5), ("Подольск", 5),
            ("Красногорск", 5), ("Люберцы", 5), ("Одинцово", 5), ("Зеленоград", 4), ("Долгопрудный", 4),
            ("Реутов", 4)),
    tags=("вип", "опт", "карта-лояльности", "клуб-именинников", "корпоративный", "по-рекомендации", "instagram",
          "рассылка", "доставка"),
    wine_tag="вино-по-пятницам",
    catalogue={
        "bakery": _p("Выпечка", ("Хлеб бородинский", 7500), ("Багет", 9000), ("Круассан", 12000),
                     ("Батон нарезной", 6000), ("Булочка с корицей", 8500)),
        "groceries": _p("Продукты", ("Яйца С0, 10 шт.", 13900), ("Молоко 3,2%", 9900), ("Сыр российский", 45900),
                        ("Куриное филе, 1 кг", 39900), ("Овощной набор", 69900), ("Кофе в зёрнах", 79900),
                        ("Творог 5%", 15900), ("Яблоки, 1 кг", 14900)),
        "wine": _p("Вино", ("Красное сухое, домашнее", 89900), ("Пино Гриджо", 99900), ("Игристое брют", 119900)),
        "salon": _p("Волосы", ("Стрижка", 250000), ("Окрашивание", 550000), ("Укладка", 180000))
        + _p("Ногти", ("Маникюр", 200000), ("Педикюр", 250000)),
        "cleaning": _p("Уборка", ("Уборка квартиры", 400000), ("Генеральная уборка", 950000),
                       ("Мытьё окон", 300000)),
        "clothing": _p("Рубашки", ("Рубашка оксфорд", 399000), ("Льняная рубашка", 449000), ("Поло", 299000))
        + _p("Одежда", ("Брюки чинос", 549000), ("Свитер", 599000)),
        "occasions": _p("Подарки", ("Подарочный набор", 500000), ("Торт на заказ", 350000))
        + _p("Волосы", ("Вечерняя укладка", 600000),) + _p("Сервис", ("Обслуживание велосипеда", 450000),),
        "furniture": _p("Мебель", ("Обеденный стол из дуба", 6990000), ("Кресло", 2490000), ("Стеллаж", 1590000)),
    },
    notes=("Просит звонить после 18:00.", "Аллергия на орехи.", "Всегда записывается к одному мастеру.",
           "Чеки присылать на почту.", "Интересуется программой лояльности.", "В декабре покупает подарки маме.",
           "Спрашивал о доставке в офис.", "Переехала в другой район, может приходить реже.",
           "Платит только картой.", "Любит первой узнавать о новинках."),
    calls=(("reached", "Доволен последним заказом, спросил о новинках."), ("reached", "Подтвердила следующий визит."),
           ("no_answer", None), ("call_back", "Просил перезвонить на следующей неделе."),
           ("reached", "Говорит, что цены выросли; предложили скидку 10% на следующий заказ."),
           ("not_interested", "Пока не интересуют предложения.")),
    complaint="Дважды жаловалась: опоздание доставки и не тот размер. Общаться аккуратно.",
    do_not_contact="Просил(а) не связываться.",
    left_for_price="Ушёл к конкуренту: там уборка за 3200 ₽ в месяц.",
    consent_how=("форма заказа", "анкета карты лояльности", "регистрация на сайте", "бумажная анкета в магазине",
                 "по телефону"),
    withdrawn_how=("ссылка отписки", "попросил(а) по телефону", "ответ СТОП"),
    examples=(("Ольга", "Смирнова"), ("Галина", "Орлова"), ("Андрей", "Козлов"), ("Сергей", "Волков"),
              ("Дмитрий", "Лебедев")),
)

LOCALES = {"en": EN, "ru": RU}
EMAIL_DOMAINS = ("example.com", "example.com", "example.net", "example.org")  # never deliverable

_TRANSLIT = str.maketrans({
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z", "и": "i", "й": "y",
    "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f",
    "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu",
    "я": "ya",
})
_NOT_HANDLE = re.compile(r"[^a-z0-9]")


def _handle(word: str) -> str:
    """An ASCII spelling of a name for addresses: "Щукина" -> "shchukina"."""
    return _NOT_HANDLE.sub("", word.lower().translate(_TRANSLIT))


# --- seeding ----------------------------------------------------------------------------------

FIRST_RUN_CUSTOMERS = 2000  # what `make run` seeds: enough to fill every page, made in seconds
BATCH = 5000  # customers generated, written and committed together
PARALLEL_FROM = 20_000  # customers; smaller bases are generated in this process
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# The columns written, in order; the figures keep their defaults until the rebuild fills them.
COLUMNS = {
    "customers": ("id", "external_ref", "name", "sort_name", "preferred_channel", "birthday", "gender", "city",
                  "tags", "manager_id", "stage_id", "status", "leave_reason", "leave_reason_note", "do_not_contact",
                  "complainer", "notes", "source", "created_at", "updated_at", "version", "order_count",
                  "total_spent", "average_check", "favourite_products", "favourite_categories"),
    "contacts": ("customer_id", "kind", "value", "invalid"),
    "consents": ("customer_id", "channel", "granted", "changed_at", "how"),
    "search_terms": ("customer_id", "term"),
    "orders": ("customer_id", "source", "external_id", "placed_at", "amount", "currency", "status", "items",
               "created_at"),
    "interactions": ("customer_id", "kind", "at", "user_id", "outcome", "body", "data"),
}
Rows = dict[str, list[tuple]]


@dataclass
class SeedReport:
    users_created: int
    customers: int
    orders: int
    seed: int
    seconds: float  # in all
    writing: float = 0.0  # of which waiting for the database to take the rows
    figures: float = 0.0  # of which the set-based rebuild of the figures and segments


@dataclass(frozen=True)
class _Plan:
    """Everything a generating process needs; the same plan always gives the same rows."""

    locale: str
    seed: int
    now: int  # epoch seconds, UTC
    dialect: str
    stages: dict[str, int]
    staff: tuple[tuple[int, str], ...]  # (user id, role) of the active team


def seed(customers: int = 2000, locale: str = "en", seed: int | None = None,
         progress: Callable[[int], None] | None = None, workers: int | None = None) -> SeedReport:
    """Create the demo logins and `customers` customers with orders and a timeline, then their figures.

    Commits as it goes, a batch at a time: a million customers do not fit one transaction comfortably.
    `workers` processes generate the rows while this one writes (by default two, from 20,000
    customers; none below).
    """
    started = time.monotonic()
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    created = seed_users()
    stages = ensure_stages()
    db.session.commit()
    report = SeedReport(len(created), customers, 0, seed, 0.0)
    if customers > 0:
        staff = tuple((ident, role.value) for ident, role in db.session.execute(
            select(User.id, User.role).where(User.active.is_(True)).order_by(User.id)))
        plan = _Plan(locale, seed, int(time.time()), db.engine.dialect.name, stages, staff)
        first_id = (db.session.scalar(select(func.max(Customer.id))) or 0) + 1
        batches = [(index, first_id + start, min(BATCH, customers - start))
                   for index, start in enumerate(range(0, customers, BATCH))]
        if workers is None:
            # Two generating processes keep the writer busy; more only crowd it out of its core.
            workers = min(os.cpu_count() or 1, 2) if customers >= PARALLEL_FROM else 0
        writer = _Writer(plan.dialect)
        done = 0
        try:
            if first_id == 1 and customers >= PARALLEL_FROM:
                writer.drop_indexes()
            for rows in _generate(plan, batches, workers):
                writing = time.monotonic()
                writer.write(rows)
                db.session.commit()
                report.writing += time.monotonic() - writing
                done += len(rows["customers"])
                report.orders += len(rows["orders"])
                if progress:
                    progress(done)
            writer.finish()
            rebuilding = time.monotonic()
            figures.rebuild()
            segments.rebuild()
            summaries.build(clock.team_today())
            db.session.commit()
            seed_calls(random.Random(seed))
            seed_sequences(locale)
            db.session.commit()
            report.figures = time.monotonic() - rebuilding
        finally:
            writer.restore()
    report.seconds = time.monotonic() - started
    return report


CALLS_TODAY = 30  # a morning's queue per member
CALL_HISTORY_DAYS = 14


SEQUENCE_NAMES = {"en": ("Win back the lapsed", "VIP rescue"), "ru": ("Вернуть ушедших", "Спасти VIP")}


def seed_sequences(locale: str) -> None:
    """Two sequences to start from, and a rule (off until the owner sets up a channel and turns it on)."""
    owner = db.session.scalar(select(User).where(User.role == Role.OWNER, User.active.is_(True)).order_by(User.id))
    if owner is None or db.session.scalar(select(func.count()).select_from(Sequence)):
        return
    lapsed_name, vip_name = SEQUENCE_NAMES.get(locale, SEQUENCE_NAMES["en"])
    lapsed = sequences.create(3, lapsed_name, owner)
    lapsed.discount_code, lapsed.holdout_percent = "COMEBACK10", 10
    vip = sequences.create(5, vip_name, owner)
    vip.discount_code, vip.holdout_percent = "VIP15", 10
    db.session.add(EnrolmentRule(sequence_id=lapsed.id, trigger=Trigger.LAPSED, days=0, groups=[], active=False))


def seed_calls(rng: random.Random) -> None:
    """Give every active member a queue for today (a few overdue calls and a promised one first)
    and two weeks of logged calls, from the lapsed customers most worth calling back."""
    members = accounts.active_team()
    pool = db.session.scalars(select(Customer).where(
        Customer.lapse.in_([Lapse.LAPSING, Lapse.LAPSED]), Customer.do_not_contact.is_(False),
        Customer.status.in_([Status.LAPSING, Status.LAPSED]))
        .order_by(Customer.at_risk.desc()).limit(CALLS_TODAY * len(members) + 200)).all()
    if not members or not pool:
        return
    today = clock.team_today()
    day = today if workdays.is_working_day(today) else workdays.next_working_day(today)
    now = clock.now()
    for index, member in enumerate(members):
        mine = pool[index * CALLS_TODAY:(index + 1) * CALLS_TODAY]
        callbacks.assign(mine, member.id, day, member, today=today)
        waiting = db.session.scalars(select(CallBack).where(CallBack.manager_id == member.id,
                                                            CallBack.done_at.is_(None))).all()
        for overdue in waiting[:3]:
            overdue.due_at = workdays.opening(day) - timedelta(days=1)
        if len(waiting) > 3:
            waiting[3].reason = CallReason.PROMISED
            waiting[3].due_at = workdays.local_moment(day, dt_time(15, 0))
        # Two weeks of calls already made, for the history chart.
        spare = pool[len(members) * CALLS_TODAY:]
        for back in range(CALL_HISTORY_DAYS, 0, -1):
            past = today - timedelta(days=back)
            if not workdays.is_working_day(past) or not spare:
                continue
            for _ in range(rng.randint(4, 12)):
                person = rng.choice(spare)
                outcome = rng.choices(callbacks.OUTCOMES, weights=(3, 2, 5, 1, 2))[0]
                done_at = workdays.opening(past) + timedelta(minutes=rng.randint(0, 480))
                db.session.add(CallBack(customer_id=person.id, manager_id=member.id, due_at=workdays.opening(past),
                                        reason=CallReason.LAPSED, created_by_id=member.id, created_at=done_at,
                                        done_at=min(done_at, now), outcome=outcome, handled_by_id=member.id))
                db.session.add(Interaction(customer_id=person.id, kind=Kind.CALL, at=min(done_at, now),
                                           user_id=member.id, outcome=outcome, data={}))


def _generate(plan: _Plan, batches: list[tuple[int, int, int]], workers: int) -> Iterator[Rows]:
    """Yield each batch's rows in order, made here or by `workers` processes working ahead."""
    if workers <= 0:
        generator = _Generator(plan)
        for batch in batches:
            yield generator.batch(*batch)
        return
    # Forked workers start at once and do not re-run the caller's script (spawn would, without an
    # `if __name__ == "__main__"` guard). They only generate rows: the database connections they
    # inherit are never used, and they leave by os._exit without closing them. Elsewhere (macOS:
    # fork is unsafe there), a fresh interpreter.
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(plan,)) as pool:
        todo = iter(batches)
        # A bounded window: generated rows wait in memory only a few batches ahead of the writer.
        pending = deque(pool.submit(_work, *batch) for batch in itertools.islice(todo, 2 * workers))
        while pending:
            rows = pending.popleft().result()
            following = next(todo, None)
            if following is not None:
                pending.append(pool.submit(_work, *following))
            yield rows


_worker: _Generator | None = None


def _start_worker(plan: _Plan) -> None:
    global _worker
    _worker = _Generator(plan)


def _work(index: int, first_id: int, count: int) -> Rows:
    return _worker.batch(index, first_id, count)


class _Writer:
    """Many rows per statement: executemany of plain tuples on SQLite, COPY on PostgreSQL.

    The values come ready for the database (JSON and timestamps as text), so no per-row conversion
    is left to do here; that conversion was most of the time of an ORM-typed executemany. Into an
    empty base, the secondary indexes (and PostgreSQL's foreign keys, checked row by row by triggers)
    are dropped first and made once at the end, which is faster than growing and checking them row
    by row; every row refers to a customer written before it. A seed cut short leaves a database to
    throw away anyway.
    """

    # (name, table, the statement that makes it again)
    _DROPPABLE = {
        "sqlite": ["SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                   "AND tbl_name IN ({tables})"],
        "postgresql": [
            # Indexes behind primary keys and unique constraints stay: they are constraints too.
            "SELECT indexname, tablename, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename IN ({tables}) AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            "SELECT conname, conrelid::regclass::text, 'ALTER TABLE ' || conrelid::regclass::text "
            "|| ' ADD CONSTRAINT ' || quote_ident(conname) || ' ' || pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text IN ({tables})",
        ],
    }

    def __init__(self, dialect: str) -> None:
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"demo data is written to SQLite or PostgreSQL, not {dialect}")
        self.dialect = dialect
        self.dropped: list[tuple[str, str, str]] = []
        self.sql = {}
        for name, columns in COLUMNS.items():
            names = ", ".join(columns)
            if dialect == "sqlite":
                self.sql[name] = f"INSERT INTO {name} ({names}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608
            else:
                self.sql[name] = f"COPY {name} ({names}) FROM STDIN"

    def drop_indexes(self) -> None:
        """Drop the secondary indexes (and, on PostgreSQL, the foreign keys) of the tables written."""
        tables = ", ".join(f"'{name}'" for name in COLUMNS)
        for query in self._DROPPABLE[self.dialect]:
            self.dropped += [tuple(row) for row in db.session.execute(text(query.format(tables=tables)))]
        for name, table, statement in self.dropped:
            if statement.startswith("ALTER TABLE"):
                db.session.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
            else:
                db.session.execute(text(f'DROP INDEX "{name}"'))
        db.session.commit()

    def write(self, rows: Rows) -> None:
        connection = db.session.connection()
        if self.dialect == "sqlite":
            # Demo data can be made again, so a crash mid-seed may lose it (synchronous off); a large
            # page cache keeps the growing indexes in memory, and foreign keys are not looked up row
            # by row. Set per batch: each commit may hand the next batch another pooled connection.
            for pragma in ("synchronous = OFF", "cache_size = -1000000", "temp_store = MEMORY", "foreign_keys = OFF"):
                connection.exec_driver_sql(f"PRAGMA {pragma}")
        for name in COLUMNS:
            if not rows[name]:
                continue
            if self.dialect == "sqlite":
                connection.exec_driver_sql(self.sql[name], rows[name])
            else:
                with connection.connection.driver_connection.cursor() as cursor, cursor.copy(self.sql[name]) as copy:
                    for row in rows[name]:
                        copy.write_row(row)

    def finish(self) -> None:
        """Make the indexes the figures are computed with and the foreign keys again, and move
        PostgreSQL's customer id sequence past the ids given here. The customers' own indexes wait
        for `restore`: the rebuild updates every customer, and would update them all too."""
        self._create_indexes([index for index in self.dropped if index[1] != "customers"])
        if self.dialect == "postgresql":
            db.session.execute(text(
                "SELECT setval(pg_get_serial_sequence('customers', 'id'), (SELECT MAX(id) FROM customers))"))
        db.session.commit()

    def restore(self) -> None:
        """Make whatever is still missing again and set the connection back as the app has it."""
        db.session.rollback()
        self._create_indexes(self.dropped)
        if self.dialect == "sqlite":
            for pragma in ("synchronous = NORMAL", "cache_size = -2000", "temp_store = DEFAULT", "foreign_keys = ON"):
                db.session.connection().exec_driver_sql(f"PRAGMA {pragma}")
        db.session.commit()

    def _create_indexes(self, indexes: list[tuple[str, str, str]]) -> None:
        for index in list(indexes):
            db.session.execute(text(index[2]))
            self.dropped.remove(index)
        db.session.commit()


def _phone_prefixes(data: LocaleData) -> list[str]:
    """National number prefixes (area code + 3 digits) whose numbers phonenumbers holds valid."""
    code = phonenumbers.country_code_for_region(data.region)
    step = max(1, len(data.area_codes) * 800 // 1000)  # some 1,000 prefixes: 10 million numbers
    prefixes = []
    for area in data.area_codes:
        for middle in range(200, 1000, step):
            prefix = f"{area}{middle:03d}"
            samples = (f"+{code}{prefix}{line}" for line in ("0000", "9999"))
            if all(phonenumbers.is_valid_number(phonenumbers.parse(s)) for s in samples):
                prefixes.append(prefix)
    return prefixes


def _examples(data: LocaleData) -> list[dict]:
    """The worked examples of DOMAIN.md, first in every base."""
    line = data.catalogue
    vip = [data.tags[0]]
    return [
        # A salon client, monthly for 6 years, who stopped 4 months ago: call her.
        {"cadence": "monthly", "name": data.examples[0], "sex": "female", "count": 72, "pause": 122,
         "basket": (line["salon"][0], line["salon"][1]), "tags": vip},
        # Another one yearly for 5 years, last seen 4 months ago too: not lapsed, leave her alone.
        {"cadence": "yearly", "name": data.examples[1], "sex": "female", "count": 5, "pause": 120,
         "basket": (line["occasions"][2],), "tags": []},
        # Cleaning at 50 a month, 8 orders, stopped 3 months ago for a competitor charging 40.
        {"cadence": "monthly", "name": data.examples[2], "sex": "male", "count": 8, "pause": 92,
         "basket": (line["cleaning"][0],), "tags": [], "left_for_price": True},
        # The Friday wine buyer: twice a week, one bottle on Fridays, an average check of about 20.
        {"cadence": "twice_weekly", "name": data.examples[3], "sex": "male", "count": 40, "pause": 0,
         "basket": (line["wine"][0], line["groceries"][4]), "quantity": 1, "tags": [data.wine_tag]},
        # Three shirts every three months (some 800 a year); the next purchase is due in a week or two.
        {"cadence": "quarterly", "name": data.examples[4], "sex": "male", "count": 12, "pause": 80,
         "basket": (line["clothing"][0],), "quantity": 3, "tags": vip},
    ]


_PICK = (0, 0, 0, 0, 0, 0, 1, 1, 1, 2)  # the first favourite in 6 orders of 10, the second in 3, the third in 1


class _Generator:
    """Rows of the demo base, ready for the database, from pools drawn once from Faker."""

    def __init__(self, plan: _Plan) -> None:
        from faker import Faker

        self.plan = plan
        data = self.data = LOCALES[plan.locale]
        fake = Faker(data.faker)
        fake.seed_instance(plan.seed)
        # Faker is slow per call; pools drawn from it keep its name frequencies at a fraction of the cost.
        self.first = {sex: [getattr(fake, f"first_name_{sex}")() for _ in range(2000)] for sex in ("female", "male")}
        self.last = {sex: [getattr(fake, f"last_name_{sex}")() for _ in range(2000)] for sex in ("female", "male")}
        self.cities = [name for name, weight in data.cities for _ in range(weight)]
        self.phone_prefixes = _phone_prefixes(data)
        self.country_code = phonenumbers.country_code_for_region(data.region)
        managers = [ident for ident, role in plan.staff if role == Role.MANAGER.value]
        owners = [ident for ident, role in plan.staff if role == Role.OWNER.value]
        # Managers carry most customers, the owner some; a few have nobody yet.
        self.assignees = [*managers * 6, *owners * 2, None] if plan.staff else [None]
        self.staff = managers + owners or [None]
        self.examples = _examples(data)
        offset = data.utc_offset * 3600
        local_day = (plan.now + offset) // 86400
        self.midnight = local_day * 86400 - offset  # today's local midnight, in UTC epoch seconds
        self.weekday = (local_day + 3) % 7  # 1970-01-01 was a Thursday
        self.local_today = date.fromordinal(EPOCH_ORDINAL + local_day)
        self.suffix = "+00" if plan.dialect == "postgresql" else ".000000"  # as SQLAlchemy stores it on SQLite
        self.clock = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
        self.day_text: dict[int, str] = {}
        # Per product and quantity: the item as JSON, alone as a list, and its amount.
        self.items = {}
        for line in data.catalogue.values():
            for p in line:
                self.items[p.name] = [None]
                for q in (1, 2, 3):
                    item = json.dumps({"name": p.name, "quantity": q, "category": p.category, "price": p.price})
                    self.items[p.name].append((item, f"[{item}]", p.price * q))
        self.countable = {p.category for key in ("bakery", "groceries", "wine", "clothing")
                          for p in data.catalogue[key]}
        self.tags_json: dict[tuple[str, ...], str] = {}
        self.created_json = {s: json.dumps({"source": s}) for s in ("manual", "import", "api")}

    def _at(self, epoch: int) -> str:
        day, second = divmod(epoch, 86400)
        text_ = self.day_text.get(day)
        if text_ is None:
            text_ = self.day_text[day] = date.fromordinal(EPOCH_ORDINAL + day).isoformat()
        return f"{text_} {self.clock[second]}{self.suffix}"

    def batch(self, index: int, first_id: int, count: int) -> Rows:
        rng = random.Random(f"{self.plan.seed}/{index}")
        rows: Rows = {name: [] for name in COLUMNS}
        # Cadences dealt from shuffled decks of 100, so even a small base has every kind in proportion.
        deck: list[str] = []
        for offset in range(count):
            example = self.examples[offset] if index == 0 and offset < len(self.examples) else None
            if example:
                self._customer(rows, rng, first_id + offset, **example)
                continue
            if not deck:
                deck = [c.key for c in CADENCES for _ in range(c.share)]
                rng.shuffle(deck)
            self._customer(rows, rng, first_id + offset, deck.pop())
        return rows

    def _customer(self, rows: Rows, rng: random.Random, cid: int, cadence: str, name: tuple[str, str] | None = None,
                  sex: str | None = None, count: int | None = None, pause: int | None = None,
                  basket: tuple[Product, ...] | None = None, quantity: int | None = None,
                  tags: list[str] | None = None, left_for_price: bool = False) -> None:
        data, kind, random_ = self.data, _CADENCE[cadence], rng.random
        sex = sex or ("female" if random_() < 0.55 else "male")
        first, last = name or (rng.choice(self.first[sex]), rng.choice(self.last[sex]))
        full_name = f"{first} {last}"
        if count is None:
            low, high = kind.orders
            count = low + int((high - low + 1) * random_() ** 2)  # most histories are short
        history = self._history(rng, kind, count, pause, basket, quantity)
        paid = sum(1 for order in history if order[2] == "paid")
        now = self.plan.now
        if history:
            created = history[0][0] - rng.randrange(300, 3 * 86400)
        else:
            created = now - rng.randrange(3600, 60 * 86400)
        created_at = self._at(created)
        source = rng.choice(("manual", "manual", "import", "import", "import", "api"))
        manager = rng.choice(self.assignees)
        contacts = self._contacts(rng, cid, first, last)
        if tags is None:
            tags = rng.sample(data.tags, rng.choice((0, 0, 0, 1, 1, 2)))
            if cadence == "twice_weekly" and random_() < 0.5:
                tags.append(data.wine_tag)
            if paid >= 20 and data.tags[0] not in tags and random_() < 0.5:
                tags.append(data.tags[0])
        key = tuple(tags)
        tags_json = self.tags_json.get(key) or self.tags_json.setdefault(key, json.dumps(tags))
        complainer, do_not_contact = random_() < 0.02, random_() < 0.02
        if complainer:
            notes = data.complaint
        elif do_not_contact:
            notes = data.do_not_contact
        elif left_for_price:
            notes = data.left_for_price
        else:
            notes = rng.choice(data.notes) if random_() < 0.05 else None
        channels = _channels(contacts)
        birthday = None
        if random_() < 0.65:
            birthday = date.fromordinal(self.local_today.toordinal() - rng.randrange(18 * 365, 80 * 365)).isoformat()
        gender = None if random_() < 0.1 else ("other" if random_() < 0.01 else sex)
        rows["customers"].append((
            cid, None if source == "manual" else f"SHOP-{cid:08d}", full_name, full_name.lower(),
            rng.choice(channels) if channels else None, birthday, gender,
            rng.choice(self.cities) if random_() < 0.9 else None, tags_json, manager,
            self.plan.stages[_stage_key(paid)], "active", "price" if left_for_price else None,
            data.left_for_price if left_for_price else None, do_not_contact, complainer, notes, source,
            created_at, created_at, 1, 0, 0, 0, "[]", "[]"))
        rows["contacts"].extend((cid, kind_, value, invalid) for kind_, value, invalid in contacts)
        self._consents(rows["consents"], rng, cid, channels, created, do_not_contact)
        rows["search_terms"].extend((cid, term) for term in sorted(
            search_terms_of(full_name, [(kind_, value) for kind_, value, _ in contacts], tags)))
        orders, currency, at = rows["orders"], data.currency, self._at
        for number, (placed, amount, status, items) in enumerate(history):
            placed_at = at(placed)
            orders.append((cid, ORDER_SOURCE, f"DEMO-{cid:08d}-{number:03d}", placed_at, amount, currency, status,
                           items, placed_at))
        self._timeline(rows["interactions"], rng, cid, created, created_at, source, manager, history, kind,
                       left_for_price)

    def _history(self, rng: random.Random, kind: Cadence, count: int, pause: int | None,
                 basket: tuple[Product, ...] | None, quantity: int | None) -> list[tuple[int, int, str, str]]:
        """Orders oldest first: (placed, epoch seconds; amount; status; items as JSON)."""
        if count == 0:
            return []
        random_ = rng.random
        if pause is None:
            if kind.gaps and random_() >= kind.stopped:
                pause = rng.randrange(0, max(kind.gaps) + 1)  # still buying: due about now
            else:
                pause = rng.randrange(*kind.pause)
        twice = kind.key == "twice_weekly"
        if twice:
            # Tuesdays and Fridays: the last visit falls on one of them, then 4 and 3 days alternate.
            while (self.weekday - pause) % 7 not in (1, 4):
                pause += 1
        days, day, gaps = [pause], pause, kind.gaps
        for _ in range(count - 1):
            day += (3 if (self.weekday - day) % 7 == 4 else 4) if twice else gaps[int(random_() * len(gaps))]
            if day > MAX_HISTORY_DAYS:
                break
            days.append(day)

        if basket:
            favourites = list(basket)
        elif twice:
            favourites = [rng.choice(self.data.catalogue["wine"]), *self._favourites(rng, "groceries")]
        else:
            favourites = self._favourites(rng, rng.choice(kind.lines))
        # Per favourite: its item as JSON and its amount, by quantity; a service is never bought twice over.
        entries = [self.items[p.name] for p in favourites]
        countable = [p.category in self.countable for p in favourites]
        weighted = [i for i in _PICK if i < len(favourites)]
        choices = len(weighted)
        low, high = kind.items
        single = len(favourites) == 1
        midnight, now, friday = self.midnight, self.plan.now, (self.weekday - 4) % 7
        history = []
        for day in reversed(days):
            placed = midnight - day * 86400 + 28800 + int(random_() * 46800)  # shop hours, 8:00 to 21:00
            jitter = 60 + int(random_() * 3540)  # drawn always: the same seed makes the same base all day
            if placed > now:
                placed = now - jitter
            if twice:
                # One bottle on Fridays; a small shop on Tuesdays.
                picked = (0,) if day % 7 == friday else (1,)
            elif basket:
                picked = (0,) if single or random_() < 0.7 else range(len(favourites))
            else:
                n = low if low == high else low + int(random_() * (high - low + 1))
                picked = sorted({weighted[int(random_() * choices)] for _ in range(n)})
            if len(picked) == 1:
                i = picked[0]
                _, items, amount = entries[i][quantity or (2 if countable[i] and random_() < 0.2 else 1)]
            else:
                parts, amount = [], 0
                for i in picked:
                    part, _, price = entries[i][quantity or (2 if countable[i] and random_() < 0.2 else 1)]
                    parts.append(part)
                    amount += price
                items = f"[{', '.join(parts)}]"
            roll = random_()
            status = "paid" if roll >= 0.03 else ("cancelled" if roll < 0.02 else "refunded")
            history.append((placed, amount, status, items))
        return history

    def _favourites(self, rng: random.Random, line_key: str) -> list[Product]:
        line = self.data.catalogue[line_key]
        return rng.sample(line, min(3, len(line)))

    def _contacts(self, rng: random.Random, cid: int, first: str, last: str) -> list[tuple[str, str, bool]]:
        random_ = rng.random
        contacts: list[tuple[str, str, bool]] = []
        f, l_ = _handle(first) or "client", _handle(last) or "customer"
        has_email = random_() < 0.85
        if has_email:
            # The customer id keeps the address unique across the base; 2% bounced.
            local = rng.choice((f"{f}.{l_}{cid}", f"{f[0]}{l_}{cid}", f"{l_}.{f}{cid}", f"{f}{cid}"))
            contacts.append(("email", f"{local}@{rng.choice(EMAIL_DOMAINS)}", random_() < 0.02))
        if random_() < 0.8 or not has_email:
            phone = f"+{self.country_code}{rng.choice(self.phone_prefixes)}{rng.randrange(10000):04d}"
            contacts.append(("phone", phone, False))
            if random_() < 0.12:
                contacts.append(("whatsapp", phone, False))
        if random_() < 0.08:
            contacts.append(("telegram", f"@{f}_{l_}{cid}"[:33], False))
        return contacts

    def _consents(self, out: list[tuple], rng: random.Random, cid: int, channels: list[str], created: int,
                  do_not_contact: bool) -> None:
        data, random_ = self.data, rng.random
        how, given_at = rng.choice(data.consent_how), self._at(created)
        for channel in channels:
            if channel == "phone" and random_() < 0.5:
                continue
            if not do_not_contact and random_() < 0.8:
                out.append((cid, channel, True, given_at, how))
            elif random_() < 0.5:  # said no from the start
                out.append((cid, channel, False, given_at, how))
            else:  # withdrew later
                withdrawn = created + int((self.plan.now - created) * random_())
                out.append((cid, channel, False, self._at(withdrawn), rng.choice(data.withdrawn_how)))

    def _timeline(self, out: list[tuple], rng: random.Random, cid: int, created: int, created_at: str, source: str,
                  manager: int | None, history: list, kind: Cadence, left_for_price: bool) -> None:
        data, now = self.data, self.plan.now
        out.append((cid, "created", created_at, manager if source == "manual" else None, None, None,
                    self.created_json[source]))
        staff = manager or rng.choice(self.staff)
        if rng.random() < 0.1:
            out.append((cid, "note", self._at(created + int(rng.random() * (now - created))), staff, None,
                        rng.choice(data.notes), "{}"))
        if not history:
            return
        last = history[-1][0]
        stopped = now - last > 2 * 86400 * max(kind.gaps or (30,))
        if left_for_price:
            out.append((cid, "call", self._at(min(now, last + 45 * 86400)), staff, "reached", data.left_for_price,
                        "{}"))
        elif rng.random() < (0.25 if stopped else 0.05):
            outcome, body = rng.choice(data.calls)
            out.append((cid, "call", self._at(last + int(rng.random() * (now - last))), staff, outcome, body, "{}"))


def _channels(contacts: list[tuple[str, str, bool]]) -> list[str]:
    kinds = {kind for kind, _, _ in contacts}
    channels = ["email"] if "email" in kinds else []
    if "phone" in kinds:
        channels += ["sms", "phone"]
    return channels + [k for k in ("whatsapp", "telegram") if k in kinds]


def _stage_key(paid_orders: int) -> str:
    if paid_orders == 0:
        return "new"
    if paid_orders == 1:
        return "first_purchase"
    return "repeat" if paid_orders < 4 else "regular"
