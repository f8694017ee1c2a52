"""A new team's first weeks in a real browser, in English and in Russian (issue 8, browser journeys).

An owner signs in, imports customers and orders from CSV files through the import pages (the worker,
`python worker.py` as in the Procfile, runs them), sees the lapsed queue fill, adds a manager, points
the email channel at a local SMTP server, creates a 3-step email sequence and enrols the lapsed queue
in it. Time moves with `flask sequences run-due --now ... --deliver`, run as a host would against the
same database; the messages arrive at the SMTP server, one per enrolled customer not held out, step
after step. One customer opens the tracked link from their mail: they have responded, hear nothing
more, and the manager logs the hand-off call in one click. After the last step and the grace period
the others are on the inactive list, and the dashboard, after "Rebuild now", counts enrolled,
responded and moved to inactive. A screenshot of every step goes to test-artifacts/journeys/."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header

import pytest
from playwright.sync_api import expect
from redis import Redis

from crm import clock
from crm.models import Role
from tests.conftest import ARTIFACTS, PASSWORD, make_user, with_schema
from tests.runtime import ROOT, host_env
from tests.sinks import SmtpSink

pytestmark = pytest.mark.browser

SHOTS = ARTIFACTS / "journeys"
WAIT = 30_000  # ms: what the worker or the CLI does in another process, on a busy machine

# The labels the journey reads and clicks, as the Russian catalogue has them.
RU = {
    "Email": "Email", "Password": "Пароль", "Sign in": "Войти", "Main": "Основное меню", "Language": "Язык",
    "Save": "Сохранить", "Your account": "Ваш профиль", "Customers": "Клиенты", "Import CSV": "Импорт CSV",
    "Import customers and orders": "Импорт клиентов и заказов", "The file holds": "Содержимое файла",
    "CSV file": "CSV-файл", "Upload": "Загрузить", "Import": "Импорт", "Imports": "Импорт", "Created": "Создано",
    "Every row was imported.": "Все строки импортированы.", "Lapsed": "Ушедшие",
    "Lapsed-client queues": "Очереди уходящих и ушедших клиентов",
    "Nobody to bring back here": "Возвращать пока некого", "No consent on any channel": "Нет согласия ни на один канал",
    "Settings": "Настройки", "Users and roles": "Пользователи и роли", "Name": "Имя",
    "Initial password": "Начальный пароль", "Add": "Добавить", "%(email)s can now sign in.":
    "Теперь %(email)s может войти в систему.", "New URLs, one per line": "Новые URL, по одному на строку",
    "Saved.": "Сохранено.", "Sequences": "Цепочки", "3 steps": "Шагов: 3", "Create and edit": "Создать и настроить",
    "Send from (hour, customer's time)": "Отправлять с (час, время клиента)",
    "Send until (hour, not included)": "Отправлять до (час, не включая)",
    "Held out as a control group, %": "Контрольная группа, %", "Step %(n)d of 3": "Шаг %(n)d из 3",
    "Channel": "Канал", "Sequence saved.": "Цепочка сохранена.",
    "Select all on this page": "Выбрать все на этой странице", "Sequence": "Цепочка",
    "Enrol in sequence": "Добавить в цепочку",
    "Enrolled %(enrolled)d, held out %(held)d, not enrolled %(skipped)d.":
    "Добавлено: %(enrolled)d, в контрольной группе: %(held)d, не добавлено: %(skipped)d.",
    "We miss you": "мы скучаем!", "Thank you": "Спасибо", "Call-backs": "Перезвоны",
    "Calls for today": "Звонки на сегодня", "Sequence hand-off": "Передан из цепочки",
    "Reached, responded": "Дозвонились, откликнулся", "%(done)d of %(total)d done today":
    "Сегодня сделано %(done)d из %(total)d", "Inactive": "Неактивные", "Inactive customers": "Неактивные клиенты",
    "No response to “%(name)s”: 3 messages": "Нет ответа на «%(name)s»: 3 сообщения",
    "Rebuild now": "Пересчитать сейчас", "Last rebuild:": "Последний пересчёт:",
    "Dashboard": "Сводка", "Period": "Период", "From": "С", "To": "По", "Show": "Показать",
    "Reactivation": "Реактивация", "Enrolled": "Добавлено", "Responded": "Ответил",
    "Moved to inactive": "Перенесено в неактивные",
}


@dataclass(frozen=True)
class Person:
    key: str
    en: str
    ru: str
    kind: str  # lapsed (monthly, stopped), no_consent (the same, mail refused), lapsing, yearly, weekly

    @property
    def email(self) -> str:
        return f"{self.key}@example.com"

    def name(self, lang: str) -> str:
        return self.ru if lang == "ru" else self.en


LAPSED = [("anna", "Anna Ivanova", "Анна Иванова"), ("boris", "Boris Petrov", "Борис Петров"),
          ("vera", "Vera Sokolova", "Вера Соколова"), ("gleb", "Gleb Orlov", "Глеб Орлов"),
          ("daria", "Daria Volkova", "Дарья Волкова"), ("egor", "Egor Lebedev", "Егор Лебедев"),
          ("zhanna", "Zhanna Kozlova", "Жанна Козлова"), ("ilya", "Ilya Novikov", "Илья Новиков"),
          ("kira", "Kira Morozova", "Кира Морозова"), ("lev", "Lev Pavlov", "Лев Павлов"),
          ("maria", "Maria Fedorova", "Мария Фёдорова"), ("nikita", "Nikita Semenov", "Никита Семёнов"),
          ("olga", "Olga Egorova", "Ольга Егорова"), ("pavel", "Pavel Zaitsev", "Павел Зайцев")]
PEOPLE = ([Person(*names, "lapsed") for names in LAPSED] + [
    Person("rita", "Rita Vinogradova", "Рита Виноградова", "no_consent"),
    Person("sergey", "Sergey Bogdanov", "Сергей Богданов", "lapsing"),
    Person("tamara", "Tamara Kuznetsova", "Тамара Кузнецова", "yearly"),
    Person("ulyana", "Ulyana Smirnova", "Ульяна Смирнова", "yearly"),
    Person("fedor", "Fedor Popov", "Фёдор Попов", "weekly"),
    Person("yana", "Yana Vasilyeva", "Яна Васильева", "weekly")])
BY_EMAIL = {p.email: p for p in PEOPLE}
QUEUE = [p for p in PEOPLE if p.kind == "lapsed"]
HOLDOUT_PERCENT = 20
HELD_OUT = round(len(QUEUE) * HOLDOUT_PERCENT / 100)
ENROLLED = len(QUEUE) - HELD_OUT
# (orders, days between them, days since the last one, amount, product en / ru)
CADENCE = {"lapsed": (5, 30, 100, 1500, "Haircut", "Стрижка"), "no_consent": (5, 30, 110, 1500, "Haircut", "Стрижка"),
           "lapsing": (5, 30, 55, 1200, "Haircut", "Стрижка"), "yearly": (5, 365, 200, 9000, "Winter coat", "Пальто"),
           "weekly": (8, 7, 2, 300, "Bread", "Хлеб")}
SEQUENCE_NAME = {"en": "Win back", "ru": "Вернуть клиентов"}
GRACE_DAYS = 7  # the sequence's default wait for an answer after the last step
STEP_DAYS = (0, 3, 7)  # the 3-step template's waits


def customers_csv(lang: str) -> tuple[str, bytes]:
    """The customer list as the team's shop exports it: Russian headers, semicolons and Windows-1251
    for a Russian shop (as Excel saves it there), English headers and UTF-8 otherwise."""
    if lang == "ru":
        lines = ["Имя;Почта;Город;Согласие на рассылку"] + [
            f"{p.ru};{p.email};Казань;{'нет' if p.kind == 'no_consent' else 'да'}" for p in PEOPLE]
        return "клиенты.csv", "\r\n".join(lines).encode("cp1251")
    lines = ["name,email,city,email consent"] + [
        f"{p.en},{p.email},Boston,{'no' if p.kind == 'no_consent' else 'yes'}" for p in PEOPLE]
    return "customers.csv", "\n".join(lines).encode()


def orders_csv(lang: str, today) -> tuple[str, bytes, int]:
    """Each customer's order history at their own cadence, ending the given number of days ago."""
    rows = []
    for index, p in enumerate(PEOPLE):
        count, every, since, amount, product_en, product_ru = CADENCE[p.kind]
        since += 4 * index if p.kind == "lapsed" else 0
        for n in range(count):
            day = today - timedelta(days=since + every * (count - 1 - n))
            rows.append((f"A-{index + 1:02d}-{n + 1}", day, amount + 100 * index, p.email,
                         product_ru if lang == "ru" else product_en))
    if lang == "ru":
        lines = ["Номер заказа;Дата;Сумма;Почта;Товар"] + [
            f"{ref};{day:%d.%m.%Y} 12:00;{amount};{email};{product}" for ref, day, amount, email, product in rows]
        return "заказы.csv", "\r\n".join(lines).encode("cp1251"), len(rows)
    lines = ["order id,date,amount,email,product"] + [
        f"{ref},{day.isoformat()} 12:00,{amount},{email},{product}" for ref, day, amount, email, product in rows]
    return "orders.csv", "\n".join(lines).encode(), len(rows)


@pytest.fixture
def app(make_app):
    """The test app for a team that works every day, so the hand-off call falls due today whatever
    the weekday the suite runs on."""
    yield from with_schema(make_app(WORKDAYS="1-7"))


@pytest.fixture
def smtp():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


class Host:
    """The deployed processes beside the web server, on the same database and Redis: the worker
    (`python worker.py`, its clock included) and the `flask` command line."""

    def __init__(self, app, redis_url: str, site: str, log):
        self.env = host_env(APP_ENV="testing", SECRET_KEY=app.config["SECRET_KEY"],
                            DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"], REDIS_URL=redis_url,
                            INSTANCE_PATH=app.config["INSTANCE_DIR"], PUBLIC_URL=site, WORKDAYS="1-7")
        # The journey rebuilds with "Rebuild now" when a user would; the worker's clock must not start
        # the night's rebuild in the middle of an import (crm.tasks.nightly: once a day, keyed in Redis).
        with app.app_context():
            self.nightly = f"segments:nightly:{clock.team_today().isoformat()}"
        self.redis = Redis.from_url(redis_url)
        self.redis.set(self.nightly, "1")
        self.worker = subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=self.env, stdout=log,
                                       stderr=subprocess.STDOUT)

    def stop(self) -> None:
        self.worker.terminate()  # a warm shutdown, as a host's deploy does
        try:
            self.worker.wait(15)
        except subprocess.TimeoutExpired:
            self.worker.kill()
            self.worker.wait()
        self.redis.delete(self.nightly)

    def run_due(self, moment: datetime) -> str:
        result = subprocess.run(["flask", "--app", "app", "sequences", "run-due", "--now", moment.isoformat(),
                                 "--deliver"], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture
def host(app, redis_url, site, tmp_path):
    with open(tmp_path / "worker.log", "w") as log:
        host = Host(app, redis_url, site, log)
        yield host
        host.stop()


class Journey:
    """One browser tab with its language's labels, a screenshot per step, and every console error
    and dialog collected."""

    def __init__(self, browser, site: str, lang: str, problems: list[str], role: str):
        self.context = browser.new_context(locale="ru-RU" if lang == "ru" else "en-US")
        self.page = self.context.new_page()
        self.site, self.lang = site, lang
        self.page.on("console", lambda msg: problems.append(f"{role}: {msg.text}") if msg.type == "error" else None)
        self.page.on("pageerror", lambda exc: problems.append(f"{role}: {exc}"))
        self.page.on("dialog", lambda dialog: (problems.append(f"{role}: dialog {dialog.message!r}"), dialog.dismiss()))

    def t(self, text: str, **values) -> str:
        words = RU[text] if self.lang == "ru" else text
        return words % values if values else words

    def shot(self, number: int, step: str, at=None) -> None:
        """The whole page, or (on the long settings and dashboard pages) the screen around `at`."""
        if at is not None:
            at.scroll_into_view_if_needed()
        self.page.screenshot(path=str(SHOTS / f"{self.lang}-{number:02d}-{step}.png"), full_page=at is None)

    def nav(self, label: str) -> None:
        self.page.get_by_role("navigation", name=self.t("Main")).get_by_role("link", name=self.t(label),
                                                                              exact=True).click()

    def sign_in(self, email: str) -> None:
        page = self.page
        page.goto(f"{self.site}/login")
        page.get_by_label(self.t("Email"), exact=True).fill(email)
        page.get_by_label(self.t("Password"), exact=True).fill(PASSWORD)
        page.get_by_role("button", name=self.t("Sign in")).click()
        page.wait_for_url(f"{self.site}/dashboard")

    def heading(self, text: str):
        return self.page.get_by_role("heading", level=1, name=self.t(text))

    def import_file(self, kind: str, filename: str, content: bytes, rows: int, created: int) -> None:
        """Upload a CSV, keep the columns as guessed, start it, and follow it to the end."""
        page = self.page
        page.get_by_label(self.t("The file holds")).select_option(kind)
        page.get_by_label(self.t("CSV file")).set_input_files(
            {"name": filename, "mimeType": "text/csv", "buffer": content})
        page.get_by_role("button", name=self.t("Upload")).click()
        page.wait_for_url(re.compile(r"/settings/imports/\d+$"))
        expect(page.locator("table.import-preview tbody tr")).to_have_count(min(rows, 10))
        page.get_by_role("button", name=self.t("Import"), exact=True).click()
        status = page.locator("#import-status")
        expect(status).to_contain_text(self.t("Every row was imported."), timeout=WAIT)
        expect(status.locator(".grid > div").filter(has_text=self.t("Created")).locator("strong")).to_have_text(
            str(created))


def figure(panel, label: str):
    """The number a dashboard figure shows, found by its label (a link to the customers behind it)."""
    return panel.locator(".figure").filter(has=panel.page.get_by_role("link", name=label, exact=True)).locator(
        "dd strong")


def arrived(sink: SmtpSink, count: int, timeout: float = 30) -> None:
    """Wait until the SMTP server holds `count` mails (the worker may still be sending), never more."""
    deadline = time.monotonic() + timeout
    while len(sink.mails) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sink.mails) == count, [m.recipients for m in sink.mails]


def subject(mail) -> str:
    return str(make_header(decode_header(mail.message["Subject"])))


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_a_new_team_imports_its_base_wins_back_the_lapsed_and_reads_the_results(app, site, browser, host, smtp,
                                                                                lang):
    app.config["PUBLIC_URL"] = site  # the address customers reach; the CLI sends links to it too
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    owner_name = "Ольга Владелец" if lang == "ru" else "Olga Owner"
    make_user(app, "owner@example.com", Role.OWNER, owner_name)  # `flask users create-owner`, English by default
    owner = Journey(browser, site, lang, problems, "owner")
    page, t = owner.page, owner.t
    today = datetime.now(UTC).date()

    # 1. The owner signs in (a Russian speaker first picks Russian on their account page) and finds
    #    the lapsed queue empty.
    owner.sign_in("owner@example.com")
    if lang == "ru":  # the page is in the account's English until then
        page.get_by_role("link", name=owner_name).click()
        page.get_by_label("Language").select_option("ru")
        page.get_by_role("button", name="Save").click()
        expect(owner.heading("Your account")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", lang)
    owner.nav("Lapsed")
    expect(owner.heading("Lapsed-client queues")).to_be_visible()
    expect(page.locator("#results")).to_contain_text(t("Nobody to bring back here"))
    owner.shot(1, "empty-queue")

    # 2. Customers, then their orders, through Customers -> Import CSV; the worker runs each file.
    owner.nav("Customers")
    page.get_by_role("button", name=t("Import CSV")).click()
    expect(owner.heading("Import customers and orders")).to_be_visible()
    filename, content = customers_csv(lang)
    owner.import_file("customers", filename, content, len(PEOPLE), len(PEOPLE))
    owner.shot(2, "customers-imported")
    page.get_by_role("navigation", name="breadcrumb").get_by_role("link", name=t("Imports")).click()
    filename, content, order_count = orders_csv(lang, today)
    owner.import_file("orders", filename, content, order_count, order_count)
    owner.shot(3, "orders-imported")

    # 3. The lapsed queue has filled: the customers overdue against their own cadence, not the yearly
    #    buyers, not the lapsing one (another tab), and not the one who refused mail (counted aside).
    owner.nav("Lapsed")
    rows = page.locator("table.queue tbody tr")
    expect(rows).to_have_count(len(QUEUE))
    assert sorted(rows.locator("td:nth-child(2) a").all_inner_texts()) == sorted(p.name(lang) for p in QUEUE)
    expect(page.locator("#excluded")).to_contain_text(f"{t('No consent on any channel')} 1")
    owner.shot(4, "lapsed-queue")

    # 4. The team: a manager added under Settings -> Users and roles, in the owner's language.
    owner.nav("Settings")
    page.get_by_role("link", name=t("Users and roles")).click()
    manager_name = "Максим Менеджер" if lang == "ru" else "Maxim Manager"
    page.get_by_label(t("Name"), exact=True).fill(manager_name)
    page.get_by_label(t("Email"), exact=True).fill("manager@example.com")
    page.get_by_label(t("Initial password")).fill(PASSWORD)
    page.get_by_label(t("Language")).select_option(lang)
    page.get_by_role("button", name=t("Add"), exact=True).click()
    expect(page.get_by_role("status")).to_have_text(t("%(email)s can now sign in.", email="manager@example.com"))
    owner.shot(5, "manager-added")

    # 5. The email channel points at the shop's SMTP server (here the local sink), in Settings -> Channels.
    owner.nav("Settings")
    channels = page.locator("#channels")
    email = channels.get_by_role("group", name=t("Email"), exact=True)
    email.get_by_label(t("New URLs, one per line")).fill(smtp.url())
    channels.get_by_role("button", name=t("Save"), exact=True).click()
    expect(channels.get_by_role("status")).to_have_text(t("Saved."))
    expect(email.locator(".channel-urls li")).to_have_count(1)  # shown back masked
    owner.shot(6, "email-channel", channels)

    # 6. A 3-step sequence from the template, every step by email, a fifth held out as a control
    #    group, mail at any hour (time moves by whole days below).
    owner.nav("Sequences")
    page.get_by_label(t("Name"), exact=True).fill(SEQUENCE_NAME[lang])
    page.get_by_label(t("3 steps")).check()
    page.get_by_role("button", name=t("Create and edit")).click()
    page.wait_for_url(re.compile(r"/sequences/\d+/edit$"))
    page.get_by_label(t("Send from (hour, customer's time)")).fill("0")
    page.get_by_label(t("Send until (hour, not included)")).fill("24")
    page.get_by_label(t("Held out as a control group, %")).fill(str(HOLDOUT_PERCENT))
    for n in (1, 2, 3):
        page.get_by_role("group", name=t("Step %(n)d of 3", n=n)).get_by_label(t("Channel")).select_option("email")
    page.get_by_role("button", name=t("Save"), exact=True).click()
    expect(page.get_by_role("status")).to_have_text(t("Sequence saved."))
    for n in (1, 2, 3):
        expect(page.get_by_role("group", name=t("Step %(n)d of 3", n=n)).get_by_label(t("Channel"))).to_have_value(
            "email")
    owner.shot(7, "sequence")

    # 7. The whole queue goes in from the lapsed page; the held-out share is drawn exactly.
    owner.nav("Lapsed")
    page.get_by_label(t("Select all on this page")).check()
    page.get_by_label(t("Sequence"), exact=True).select_option(label=SEQUENCE_NAME[lang])
    page.get_by_role("button", name=t("Enrol in sequence")).click()
    expect(page.locator("#queue-enrol-result")).to_have_text(t(
        "Enrolled %(enrolled)d, held out %(held)d, not enrolled %(skipped)d.", enrolled=ENROLLED, held=HELD_OUT,
        skipped=0))
    owner.shot(8, "enrolled")

    # 8. Step 1, due at once: one mail for each enrolled customer not held out, with the template's
    #    texts in the owner's language.
    #    (The worker's own clock may get there first, as it would in production; either way once.)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    host.run_due(start)
    arrived(smtp, ENROLLED)
    mailed = [m.recipients[0] for m in smtp.mails]
    assert len(set(mailed)) == ENROLLED
    assert {BY_EMAIL[address].kind for address in mailed} == {"lapsed"}
    assert all(t("We miss you") in subject(m) for m in smtp.mails), [subject(m) for m in smtp.mails]

    # 9. One customer opens the tracked link in their mail: a thank-you page, and a call for today.
    clicker = BY_EMAIL[mailed[0]]
    link = re.search(rf"{re.escape(site)}/l/[\w.-]+", smtp.to(clicker.email)[0].text).group(0)
    customer = Journey(browser, site, lang, problems, "customer")
    customer.page.goto(link)
    expect(customer.heading("Thank you")).to_be_visible()
    customer.shot(9, "clicked")
    customer.context.close()

    # 10. Step 2, three days on (an hour more: the worker's clock may have sent step 1 a moment
    #     after `start`): everyone enrolled but the one who answered.
    second_at = start + timedelta(days=STEP_DAYS[1], hours=1)
    assert f"queued {ENROLLED - 1}, " in host.run_due(second_at)
    arrived(smtp, 2 * ENROLLED - 1)
    second = [m.recipients[0] for m in smtp.mails[ENROLLED:]]
    assert sorted(second) == sorted(set(mailed) - {clicker.email})

    # 11. The manager signs in (in their language), finds the hand-off call and logs it in one click.
    manager = Journey(browser, site, lang, problems, "manager")
    manager.sign_in("manager@example.com")
    expect(manager.page.locator("html")).to_have_attribute("lang", lang)
    manager.nav("Call-backs")
    expect(manager.heading("Calls for today")).to_be_visible()
    call = manager.page.locator("li.call-row")
    expect(call).to_have_count(1)
    expect(call).to_contain_text(clicker.name(lang))
    expect(call).to_contain_text(manager.t("Sequence hand-off"))
    call.get_by_role("button", name=manager.t("Reached, responded")).click()
    expect(call.locator(".call-logged")).to_contain_text(manager.t("Reached, responded"))
    expect(manager.page.locator("#call-progress")).to_contain_text(
        manager.t("%(done)d of %(total)d done today", done=1, total=1))
    manager.shot(10, "call-logged")
    manager.context.close()

    # 12. Step 3 a week later, then the grace period: the one who answered heard nothing more.
    third_at = second_at + timedelta(days=STEP_DAYS[2])
    assert f"queued {ENROLLED - 1}, " in host.run_due(third_at)
    arrived(smtp, 3 * ENROLLED - 2)
    assert sorted(m.recipients[0] for m in smtp.mails[2 * ENROLLED - 1:]) == sorted(second)
    end = third_at + timedelta(days=GRACE_DAYS)
    assert f"finished {ENROLLED - 1}, " in host.run_due(end)
    assert len(smtp.mails) == 3 * ENROLLED - 2
    assert len(smtp.to(clicker.email)) == 1

    # 13. The non-responders are on the inactive list, with the reason in the reader's language.
    owner.nav("Inactive")
    expect(owner.heading("Inactive customers")).to_be_visible()
    listed = page.locator("#results tbody tr")
    expect(listed).to_have_count(ENROLLED - 1)
    assert sorted(listed.locator("td:first-child a").all_inner_texts()) == sorted(
        BY_EMAIL[address].name(lang) for address in second)
    for row in listed.all():
        expect(row).to_contain_text(t("No response to “%(name)s”: 3 messages", name=SEQUENCE_NAME[lang]))
    owner.shot(11, "inactive")

    # 14. Settings -> Rebuild now (the worker builds the dashboard's summaries), then the dashboard
    #     for the days of the campaign: enrolled, responded, moved to inactive, the call logged.
    owner.nav("Settings")
    page.get_by_role("button", name=t("Rebuild now")).click()
    rebuild = page.locator("#rebuild")
    expect(rebuild.get_by_role("progressbar")).to_be_visible()  # queued; the page follows the worker
    expect(rebuild.get_by_role("progressbar")).to_have_count(0, timeout=WAIT)
    expect(rebuild).to_contain_text(t("Last rebuild:"))
    owner.nav("Dashboard")
    period = page.get_by_role("group", name=t("Period"))
    period.get_by_role("combobox").select_option("custom")
    period.get_by_label(t("From"), exact=True).fill(today.isoformat())
    period.get_by_label(t("To"), exact=True).fill(end.date().isoformat())
    period.get_by_role("button", name=t("Show")).click()
    panel = page.locator("#panel-reactivation")
    expect(panel.get_by_role("heading", name=t("Reactivation"))).to_be_visible()
    expect(figure(panel, t("Enrolled"))).to_have_text(str(ENROLLED))
    expect(figure(panel, t("Responded"))).to_have_text("1")
    expect(figure(panel, t("Moved to inactive"))).to_have_text(str(ENROLLED - 1))
    outcome = panel.get_by_role("row").filter(has=page.get_by_role("rowheader", name=t("Reached, responded")))
    expect(outcome.locator("td").first).to_have_text(re.compile(r"^\s*1\b"))
    owner.shot(12, "dashboard", panel)

    # 15. "Responded" leads to the customer who answered, and only them.
    panel.get_by_role("link", name=t("Responded"), exact=True).click()
    page.wait_for_url(re.compile(r"/customers\?status=responded"))
    answered = page.locator("#results tbody tr")
    expect(answered).to_have_count(1)
    expect(answered).to_contain_text(clicker.name(lang))
    expect(answered.locator(".badge")).to_have_text(t("Responded"))
    owner.shot(13, "responded")

    owner.context.close()
    assert problems == []
