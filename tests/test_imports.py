"""CSV import of customers and orders: decoding, mapping, dedupe, per-row errors, resuming, the
browser flow through the real worker, owner-only access and CSRF."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import date

import pytest
from flask import current_app
from redis import Redis
from rq import Queue, SimpleWorker
from sqlalchemy import func, select

from crm import figures, imports
from crm.errors import FieldError
from crm.extensions import db
from crm.models import (
    Channel,
    Contact,
    ContactKind,
    Customer,
    Gender,
    ImportKind,
    ImportRun,
    ImportState,
    Interaction,
    Kind,
    Order,
    SearchTerm,
)
from tests.conftest import page_token
from tests.factories import customer
from tests.runtime import ROOT, host_env
from worker import AppWorker

URL = "/settings/imports/"

ORDERS_CSV = """order id,date,amount,currency,customer id,email,customer name,product,category,qty
A-1,2026-01-10 12:00,100.00,RUB,C-1,anna@example.com,Anna Ivanova,Wine,Drinks,2
A-2,2026-02-10 12:00,300.00,RUB,C-1,anna@example.com,Anna Ivanova,Cheese,Food,1
A-3,2026-02-11,50.00,RUB,C-2,boris@example.com,Boris Petrov,Bread,Food,1
"""


# --- helpers ------------------------------------------------------------------------------------

def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def run_file(kind: str, content: str | bytes, overrides: dict | None = None, source: str | None = None,
             batch_size: int | None = None) -> ImportRun:
    """Upload, confirm and run an import in this process, as the CLI does."""
    data = content.encode() if isinstance(content, str) else content
    run = imports.start(ImportKind(kind), f"{kind}.csv", data, None)
    imports.confirm(run, imports.remap(run, overrides or {}), source)
    db.session.commit()
    return imports.execute(run.id, imports.Settings.from_config(current_app.config), batch_size)


def errors_by_line(run: ImportRun) -> dict[int, tuple[str | None, str]]:
    return {e["line"]: (e["field"], e["reason"]) for e in run.errors}


def by_email(value: str) -> Customer | None:
    found = db.session.scalar(select(Contact.customer_id).where(Contact.kind == ContactKind.EMAIL,
                                                                Contact.value == value))
    return db.session.get(Customer, found) if found else None


def upload(client, content: bytes | str, kind: str = "orders", filename: str = "orders.csv", token=None):
    data = content.encode() if isinstance(content, str) else content
    form = {"kind": kind, "file": (io.BytesIO(data), filename)}
    if token is not False:
        form["csrf_token"] = token or page_token(client, URL)
    return client.post(URL, data=form, content_type="multipart/form-data")


class InProcessWorker(AppWorker, SimpleWorker):
    """The project's worker (jobs inside the app context), running jobs in this process."""


def work(app, redis_url) -> None:
    """Run every queued job through the real RQ worker code, in this process."""
    InProcessWorker.app = app
    connection = Redis.from_url(redis_url)
    InProcessWorker([Queue("default", connection=connection)], connection=connection).work(burst=True)


# --- reading the file ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind, header, expected", [
    ("customers", ["ФИО", "E-mail", "Телефон", "Город", "Дата рождения", "Пол", "Теги", "Код клиента"],
     {"name": 0, "email": 1, "phone": 2, "city": 3, "birthday": 4, "gender": 5, "tags": 6, "external_ref": 7}),
    ("customers", ["Full name", "Email address", "Mobile", "Notes", "Email consent", "SMS consent"],
     {"name": 0, "email": 1, "phone": 2, "notes": 3, "consent_email": 4, "consent_sms": 5}),
    ("orders", ["Номер заказа", "Дата", "Сумма", "Клиент", "Почта", "Товар", "Кол-во"],
     {"external_id": 0, "placed_at": 1, "amount": 2, "customer_name": 3, "customer_email": 4, "item_name": 5,
      "quantity": 6}),
    ("orders", ["Order ID", "Order date", "Total", "Customer ID", "Phone", "Unrelated"],
     {"external_id": 0, "placed_at": 1, "amount": 2, "customer_ref": 3, "customer_phone": 4}),
])
def test_mapping_is_guessed_from_english_and_russian_headers(kind, header, expected):
    assert imports.guess_mapping(ImportKind(kind), header) == expected


def test_encoding_and_delimiter_are_detected():
    text = "Имя;Почта\nАнна;anna@example.com\n"
    assert imports.detect_encoding(text.encode("utf-8")) == "utf-8"
    assert imports.detect_encoding(text.encode("utf-8-sig")) == "utf-8-sig"
    assert imports.detect_encoding(text.encode("cp1251")) == "cp1251"
    assert imports.detect_delimiter("Имя;Почта;Телефон") == ";"
    assert imports.detect_delimiter("name,email") == ","
    assert imports.detect_delimiter("name\temail") == "\t"
    assert imports.detect_delimiter("email") == ","


def test_a_good_customers_file_creates_customers_with_contacts_tags_consents_and_timeline(ctx):
    content = (
        "Name,Email,Phone,City,Birthday,Gender,Tags,Customer ID,Notes,Email consent,SMS consent\n"
        "Anna Ivanova,Anna@Example.com,+7 916 123-45-67,Moscow,14.03.1990,ж,\"VIP, wine\",C-1,Likes red,yes,no\n"
        "Boris Petrov,boris@example.com,,Kazan,1985-07-01,m,,C-2,,,\n"
    )
    run = run_file("customers", content)
    assert (run.state, run.created, run.updated, run.error_count) == (ImportState.DONE, 2, 0, 0)
    anna = by_email("anna@example.com")
    assert anna.name == "Anna Ivanova" and anna.external_ref == "C-1" and anna.city == "Moscow"
    assert anna.birthday == date(1990, 3, 14) and anna.gender is Gender.FEMALE and anna.notes == "Likes red"
    assert anna.tags == ["vip", "wine"] and anna.source == "import"
    assert anna.contact(ContactKind.PHONE) == "+79161234567"
    assert anna.consent_for(Channel.EMAIL).granted is True and anna.consent_for(Channel.SMS).granted is False
    kinds = set(db.session.scalars(select(Interaction.kind).where(Interaction.customer_id == anna.id)))
    assert {Kind.CREATED, Kind.IMPORT} <= kinds
    assert db.session.get(SearchTerm, (anna.id, "ivanova")) is not None
    assert count(Customer) == 2


def test_bad_rows_are_listed_with_line_numbers_and_the_good_rows_kept(ctx):
    customer("Anna Ivanova", emails=["anna@example.com"])
    db.session.commit()
    content = (
        "order id,date,amount,email\n"
        "A-1,2026-01-10,100.00,anna@example.com\n"
        "A-2,31.02.2026,10.00,anna@example.com\n"
        "A-3,2026-01-11,-5,anna@example.com\n"
        "A-4,2026-01-12,7.00,nobody@example.com\n"
        "A-5,2026-01-13,7.00,not-an-email\n"
        "\n"
        "A-6,2026-01-14,\"1 234,50\",anna@example.com\n"
    )
    run = run_file("orders", content)
    assert run.state is ImportState.DONE
    assert (run.created, run.error_count, run.processed_rows) == (2, 4, 6)
    errors = errors_by_line(run)
    assert set(errors) == {3, 4, 5, 6}
    assert errors[3][0] == "placed_at" and "Not a date" in errors[3][1]
    assert errors[4] == ("amount", "The amount cannot be negative.")
    assert errors[5][0] == "customer_ref" and "Unknown customer" in errors[5][1]
    assert errors[6] == ("customer_email", "Enter a valid email address.")
    assert sorted(db.session.scalars(select(Order.external_id))) == ["A-1", "A-6"]
    assert db.session.scalar(select(Order.amount).where(Order.external_id == "A-6")) == 123450


def test_a_customers_file_with_a_malformed_email_and_an_unreadable_row_keeps_the_rest(ctx):
    # A UTF-8 file (its Cyrillic says so) with one row pasted in from elsewhere in another encoding.
    content = ("name,email\nАнна,anna@example.com\nБорис,anna@\n".encode()
               + b"Broken \xff\xfe name,broken@example.com\n" + "Борис,boris@example.com\n".encode())
    run = run_file("customers", content)
    assert run.encoding == "utf-8"
    assert errors_by_line(run) == {
        3: ("email", "Enter a valid email address."),
        4: (None, "Unreadable characters: save the file as UTF-8 and upload it again."),
    }
    assert (run.created, count(Customer)) == (2, 2)


def test_a_cp1251_file_with_semicolons_is_read(ctx):
    content = "ФИО;Почта;Город\nМария Петрова;maria@example.com;Тверь\n".encode("cp1251")
    run = run_file("customers", content)
    assert (run.encoding, run.delimiter, run.created) == ("cp1251", ";", 1)
    maria = by_email("maria@example.com")
    assert (maria.name, maria.city) == ("Мария Петрова", "Тверь")


def test_a_utf8_file_with_a_bom_has_its_first_column_recognised(ctx):
    content = "Email,Name\r\nolga@example.com,Ольга\r\n".encode("utf-8-sig")
    run = run_file("customers", content)
    assert (run.encoding, run.mapping["columns"]) == ("utf-8-sig", {"email": 0, "name": 1})
    assert by_email("olga@example.com").name == "Ольга"


def test_duplicates_in_the_file_and_against_the_base_update_one_customer(ctx):
    base = customer("Anna Ivanova", emails=["anna@example.com"], tags=["vip"], city="Moscow")
    db.session.commit()
    content = (
        "name,email,phone,city,tags\n"
        "Anna I.,ANNA@example.com,+7 916 123-45-67,Kazan,wine\n"  # the base's Anna: gains a phone and a tag
        "Boris,,+7 903 000-11-22,,\n"
        "Boris Petrov,boris@example.com,+7 (903) 000 11 22,Tver,\n"  # the row above, same phone
        "Anna again,,+79161234567,,\n"  # Anna by the phone she just got: nothing new
    )
    run = run_file("customers", content)
    assert (run.created, run.updated, run.unchanged, run.error_count) == (1, 2, 1, 0)
    assert count(Customer) == 2
    db.session.refresh(base)
    assert base.name == "Anna Ivanova" and base.city == "Moscow"  # filled only where empty
    assert base.tags == ["vip", "wine"]
    assert {c.value for c in base.contacts} == {"anna@example.com", "+79161234567"}
    boris = by_email("boris@example.com")
    assert (boris.name, boris.city, boris.contact(ContactKind.PHONE)) == ("Boris", "Tver", "+79030001122")
    assert run_file("customers", content).unchanged == 4


def test_reimporting_an_orders_file_changes_nothing_and_an_edited_row_updates_in_place(ctx, monkeypatch):
    monkeypatch.setattr(imports, "LOOKUP_CHUNK", 2)  # lookups split over several IN (...) queries
    first = run_file("orders", ORDERS_CSV)
    assert (first.created, first.updated, first.unchanged, first.error_count) == (3, 0, 0, 0)
    anna = db.session.scalar(select(Customer).where(Customer.external_ref == "C-1"))
    assert (anna.order_count, anna.total_spent, anna.favourite_products) == (2, 40000, ["Wine", "Cheese"])
    timeline = count(Interaction)

    again = run_file("orders", ORDERS_CSV)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert (count(Order), count(Customer), count(Interaction)) == (3, 2, timeline)

    edited = run_file("orders", ORDERS_CSV.replace("300.00", "350.00"))
    assert (edited.created, edited.updated, edited.unchanged) == (0, 1, 2)
    db.session.refresh(anna)
    assert (count(Order), anna.total_spent) == (3, 45000)


def test_an_order_repeated_in_the_file_is_one_order_and_the_last_row_wins(ctx):
    content = ("order id,date,amount,customer id,customer name\n" "A-1,2026-01-10,100,C-1,Anna\n"
               "A-2,2026-01-11,200,C-1,Anna\n" "A-1,2026-01-10,100,C-1,Anna\n" "A-1,2026-01-10,150,C-1,Anna\n")
    run = run_file("orders", content, batch_size=2)  # the repeats fall in later batches
    assert (run.created, run.unchanged, run.updated, count(Order)) == (2, 1, 1, 2)
    assert db.session.scalar(select(Order.amount).where(Order.external_id == "A-1")) == 15000


def test_an_orders_file_creates_unknown_customers_from_their_name_once_with_figures_and_timeline(ctx):
    run = run_file("orders", ORDERS_CSV)
    anna = db.session.scalar(select(Customer).where(Customer.external_ref == "C-1"))
    assert anna.name == "Anna Ivanova" and anna.contact(ContactKind.EMAIL) == "anna@example.com"
    assert db.session.get(SearchTerm, (anna.id, "anna")) is not None
    expected = figures.compute(db.session.execute(
        select(Order.placed_at, Order.amount, Order.items).where(Order.customer_id == anna.id)).all())
    assert {k: getattr(anna, k) for k in ("order_count", "total_spent", "average_check")} == {
        k: expected[k] for k in ("order_count", "total_spent", "average_check")}
    entries = db.session.execute(select(Interaction.kind, func.count()).where(Interaction.customer_id == anna.id)
                                 .group_by(Interaction.kind)).all()
    # Her orders are from long ago: the segments that follow them say so on the timeline too.
    assert dict(entries) == {Kind.CREATED: 1, Kind.IMPORT: 1, Kind.STATUS: 1}
    assert anna.lapse is not None and anna.rfm is not None
    assert db.session.scalar(select(Interaction.data).where(Interaction.kind == Kind.IMPORT,
                                                            Interaction.customer_id == anna.id)) == {
        "import_id": run.id, "source": "import"}


def test_a_big_import_rebuilds_the_figures_set_based_with_the_same_result(ctx, monkeypatch):
    monkeypatch.setattr(imports, "REFRESH_LIMIT", 0)
    run_file("orders", ORDERS_CSV)
    anna = db.session.scalar(select(Customer).where(Customer.external_ref == "C-1"))
    assert (anna.order_count, anna.total_spent, anna.average_check) == (2, 40000, 20000)
    assert anna.usual_interval_days == 31.0


def test_a_run_that_fails_midway_keeps_its_committed_batches_and_resumes_after_them(ctx, monkeypatch):
    content = "order id,date,amount,customer id,customer name\n" + "".join(
        f"A-{n},2026-01-{n:02d},10.00,C-{n % 2},Customer {n % 2}\n" for n in range(1, 8))
    real_upsert = imports._Orders.upsert
    calls = []

    def crash_on_second_batch(self, rows):
        calls.append(len(rows))
        written = real_upsert(self, rows)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return written

    monkeypatch.setattr(imports._Orders, "upsert", crash_on_second_batch)
    with pytest.raises(RuntimeError):
        run_file("orders", content, batch_size=3)
    run = db.session.scalar(select(ImportRun))
    assert (run.state, run.processed_rows, run.failure) == (ImportState.FAILED, 3, "RuntimeError: disk full")
    assert sorted(db.session.scalars(select(Order.external_id))) == ["A-1", "A-2", "A-3"]

    monkeypatch.setattr(imports._Orders, "upsert", real_upsert)
    imports.requeue(run)
    db.session.commit()
    run = imports.execute(run.id, imports.Settings.from_config(current_app.config), 3)
    assert (run.state, run.processed_rows, run.created, run.failure) == (ImportState.DONE, 7, 7, None)
    assert (count(Order), count(Customer)) == (7, 2)
    odd = db.session.scalar(select(Customer).where(Customer.external_ref == "C-1"))
    assert (odd.order_count, odd.total_spent) == (4, 4000)  # the resumed run rebuilt every figure
    assert db.session.scalar(select(func.count()).select_from(Interaction).where(
        Interaction.kind == Kind.IMPORT, Interaction.customer_id == odd.id)) == 1


def test_the_stored_error_list_is_capped_but_the_count_is_exact(ctx, monkeypatch):
    monkeypatch.setattr(imports, "MAX_ERRORS", 3)
    content = "order id,date,amount,customer id\n" + "".join(f"A-{n},someday,1,C-1\n" for n in range(5))
    run = run_file("orders", content, batch_size=2)
    assert (run.error_count, len(run.errors)) == (5, 3)
    assert [e["line"] for e in run.errors] == [2, 3, 4]


@pytest.mark.parametrize("content, message", [
    (b"", "The file is empty."),
    (b"PK\x03\x04\x14\x00\x06\x00", "This is not a CSV file"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "This is not a CSV file"),
    (b"\n\nname,email\n", "The first line must name the columns."),
])
def test_a_file_that_is_not_csv_is_refused_before_anything_is_stored(ctx, content, message):
    with pytest.raises(FieldError) as refused:
        imports.start(ImportKind.CUSTOMERS, "x.csv", content, None)
    assert refused.value.field == "file" and message in refused.value.message
    assert count(ImportRun) == 0


def test_a_required_column_left_unmapped_is_refused_before_any_write(ctx):
    run = imports.start(ImportKind.ORDERS, "o.csv", ORDERS_CSV.encode(), None)
    with pytest.raises(FieldError) as refused:
        imports.confirm(run, imports.remap(run, {"amount": ""}), None)
    assert refused.value.field == "mapping" and "Amount" in refused.value.message
    assert run.state is ImportState.MAPPING
    assert imports.execute(run.id, imports.Settings.from_config(current_app.config)).state is ImportState.MAPPING
    assert (count(Order), count(Customer)) == (0, 0)


def test_the_cli_imports_with_an_explicit_mapping_and_delimiter(app, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("Nr;Когда;Деньги;Почта;Кто\nB-1;05.03.2026 10:00;1 500,00;vera@example.com;Вера\n",
                    encoding="cp1251")
    result = app.test_cli_runner().invoke(args=[
        "customers", "import", "orders", str(path), "--delimiter", ";", "--source", "till",
        "--map", "Nr=external_id", "--map", "2=placed_at", "--map", "Деньги=amount", "--map", "Кто=customer_name"])
    assert result.exit_code == 0, result.output
    assert "created 1" in result.output
    with app.app_context():
        order = db.session.scalar(select(Order))
        assert (order.source, order.external_id, order.amount) == ("till", "B-1", 150000)
        assert by_email("vera@example.com").name == "Вера"
    refused = app.test_cli_runner().invoke(args=["customers", "import", "orders", str(path), "--map", "Nr=nonsense"])
    assert refused.exit_code != 0 and "Unknown field nonsense" in refused.output


# --- the browser --------------------------------------------------------------------------------

def test_the_owner_uploads_maps_over_a_preview_and_follows_the_import_to_the_end(app, owner_client, redis_url):
    page = owner_client.get(URL).get_data(as_text=True)
    assert "No imports yet" in page
    rows = "".join(f"A-{n},2026-01-{n:02d},{n}.00,C-{n % 3},Customer {n % 3}\n" for n in range(1, 13))
    response = upload(owner_client, "order id,date,amount,customer id,customer name\n" + rows + "A-99,never,1,C-1,X\n")
    assert response.status_code == 302
    run_url = response.location

    mapping = owner_client.get(run_url).get_data(as_text=True)
    assert mapping.count("<select") == 2 + 5  # encoding, delimiter, one per column
    assert '<option selected value="placed_at">' in mapping
    assert "A-10" in mapping and "A-11" not in mapping  # the first ten rows only
    token = page_token(owner_client, run_url)
    form = {"csrf_token": token, "encoding": "utf-8", "delimiter": "comma", "source": "import", "col_0": "external_id",
            "col_1": "placed_at", "col_2": "amount", "col_3": "customer_ref", "col_4": "customer_name"}
    assert owner_client.post(run_url, data=form).status_code == 302
    with app.app_context():
        run = db.session.scalar(select(ImportRun))
        assert run.state is ImportState.QUEUED
        assert Queue("default", connection=Redis.from_url(redis_url)).job_ids == [imports.job_id(run.id)]

    status_url = f"{run_url}/status"
    queued = owner_client.get(status_url, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in queued and 'hx-trigger="every 1s"' in queued and "<progress" in queued

    env = host_env(APP_ENV="testing", SECRET_KEY="s", DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
                   REDIS_URL=redis_url, INSTANCE_PATH=app.config["INSTANCE_DIR"])
    worker = subprocess.run([sys.executable, "worker.py", "--burst"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert worker.returncode == 0, worker.stderr

    done = owner_client.get(status_url, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "hx-trigger" not in done and "Done" in done
    assert '<progress value="13" max="13"' in done
    assert "<strong>12</strong>" in done  # created
    assert "<td>14</td>" in done and "Not a date" in done  # the bad row, by its line number
    listing = owner_client.get(URL).get_data(as_text=True)
    assert "orders.csv" in listing and run_url in listing
    with app.app_context():
        assert count(Order) == 12 and count(Customer) == 3


def test_the_status_url_opened_directly_renders_the_whole_page(app, owner_client):
    with app.app_context():
        run_file("orders", ORDERS_CSV)
    response = owner_client.get(f"{URL}1/status")
    assert response.status_code == 200 and "<html" in response.get_data(as_text=True)
    assert "HX-Request" in response.headers["Vary"]


def test_a_failed_run_offers_resume_which_finishes_it_through_the_worker(app, owner_client, redis_url, monkeypatch):
    with app.app_context():
        monkeypatch.setattr(imports._Orders, "finish", lambda self: (_ for _ in ()).throw(RuntimeError("boom")))
        with pytest.raises(RuntimeError):
            run_file("orders", ORDERS_CSV)
    monkeypatch.undo()
    page = owner_client.get(f"{URL}1").get_data(as_text=True)
    assert "The import stopped: RuntimeError: boom" in page and "Resume" in page
    response = owner_client.post(f"{URL}1/resume", data={"csrf_token": page_token(owner_client, f"{URL}1")})
    assert response.status_code == 302
    work(app, redis_url)
    done = owner_client.get(f"{URL}1/status", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Every row was imported." in done and "Resume" not in done
    with app.app_context():
        anna = db.session.scalar(select(Customer).where(Customer.external_ref == "C-1"))
        assert (count(Order), anna.order_count) == (3, 2)


def test_cells_and_headers_are_shown_as_text(owner_client):
    response = upload(owner_client, 'name,<b>email</b>\n"<script>alert(1)</script>",x@example.com\n', "customers")
    html = owner_client.get(response.location).get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "&lt;b&gt;email&lt;/b&gt;" in html


def test_mapping_mistakes_are_shown_on_the_field_and_nothing_is_queued(app, owner_client, redis_url):
    run_url = upload(owner_client, ORDERS_CSV).location
    token = page_token(owner_client, run_url)
    form = {"csrf_token": token, "encoding": "utf-8", "delimiter": "comma", "source": "import",
            "col_0": "external_id", "col_1": "placed_at", "col_2": "amount", "col_3": "amount"}
    twice = owner_client.post(run_url, data=form)
    assert twice.status_code == 422
    assert 'id="col_3-error"' in twice.get_data(as_text=True)
    assert "Amount is already chosen for another column." in twice.get_data(as_text=True)
    form["col_3"] = ""
    form["col_2"] = ""
    missing = owner_client.post(run_url, data=form)
    assert missing.status_code == 422 and "Choose a column for: Amount." in missing.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(ImportRun.state)) is ImportState.MAPPING
    assert Queue("default", connection=Redis.from_url(redis_url)).count == 0


def test_choosing_another_delimiter_reads_the_file_again(app, owner_client):
    run_url = upload(owner_client, "order id;date;amount;customer id\nA-1;2026-01-01;1;C-1\n").location
    token = page_token(owner_client, run_url)
    html = owner_client.get(run_url).get_data(as_text=True)
    assert html.count('<th scope="col">') == 4
    response = owner_client.post(run_url, data={"csrf_token": token, "encoding": "utf-8", "delimiter": "comma",
                                                "source": "import", "col_0": "external_id"})
    assert response.status_code == 200 and "The file was read again" in response.get_data(as_text=True)
    with app.app_context():
        run = db.session.scalar(select(ImportRun))
        assert (run.delimiter, run.state, run.mapping["columns"]) == (",", ImportState.MAPPING, {})


def test_an_upload_that_is_not_csv_gets_a_message_on_the_file_field(app, owner_client):
    response = upload(owner_client, b"PK\x03\x04 excel", filename="book.xlsx")
    assert response.status_code == 422
    assert 'id="file-error"' in response.get_data(as_text=True)
    assert "This is not a CSV file" in response.get_data(as_text=True)
    with app.app_context():
        assert count(ImportRun) == 0


def test_imports_are_for_owners_only(app, manager_client):
    assert manager_client.get(URL).status_code == 403
    assert upload(manager_client, ORDERS_CSV, token=page_token(manager_client, "/account/")).status_code == 403
    with app.app_context():
        run_file("orders", ORDERS_CSV)
        assert count(ImportRun) == 1
    assert manager_client.get(f"{URL}1").status_code == 403
    assert manager_client.get(f"{URL}1/status", headers={"HX-Request": "true"}).status_code == 403


def test_an_upload_without_the_csrf_token_is_refused(app, owner_client):
    assert upload(owner_client, ORDERS_CSV, token=False).status_code == 400
    with app.app_context():
        assert count(ImportRun) == 0


# --- PostgreSQL ---------------------------------------------------------------------------------

@pytest.mark.postgres
def test_orders_upsert_set_based_on_postgresql(pg_ctx, monkeypatch):
    monkeypatch.setattr(imports, "REFRESH_LIMIT", 0)  # the set-based rebuild too
    first = run_file("orders", ORDERS_CSV, batch_size=2)
    assert (first.created, first.error_count, count(Order), count(Customer)) == (3, 0, 3, 2)
    again = run_file("orders", ORDERS_CSV.replace("50.00", "55.00"), batch_size=2)
    assert (again.created, again.updated, again.unchanged, count(Order)) == (0, 1, 2, 3)
    boris = db.session.scalar(select(Customer).where(Customer.external_ref == "C-2"))
    anna = db.session.scalar(select(Customer).where(Customer.external_ref == "C-1"))
    assert (boris.total_spent, anna.order_count, anna.favourite_categories) == (5500, 2, ["Drinks", "Food"])
