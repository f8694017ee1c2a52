"""CSV import of customers and orders: decode the upload, guess the column mapping, then apply it
in batches. Each batch commits together with the run's progress, so a crash loses one batch at
most and a re-run continues after the rows already processed; the writes are idempotent anyway
(customers dedupe by external ref, email and phone; orders upsert by source and external id).

Customers go through `crm.customers` row by row: a customer base is thousands of rows and every
customer deserves the full rules. Orders are set-based, because a shop's order history can be a
million rows (bench/import_orders.py): one lookup per key type and one upsert per batch of 50,000,
the next batch parsed meanwhile by a forked child on the other core, figures rebuilt at the end.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gc
import io
import itertools
import logging
import multiprocessing
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from types import SimpleNamespace
from typing import NamedTuple

from flask_babel import lazy_gettext as _l
from sqlalchemy import insert, select, text, update
from sqlalchemy.orm import selectinload

from crm import clock, contacts, customers, figures, orders, responses, segments, summaries
from crm.errors import FieldError
from crm.extensions import db, upsert_insert
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
    User,
)
from crm.models.user import utcnow

log = logging.getLogger(__name__)

# Rows per transaction. Orders come in large batches: each new order touches a random page of the
# (customer, date) index, so a commit's write-back costs about the same for 5,000 rows as for 50,000.
BATCH = {ImportKind.CUSTOMERS: 1000, ImportKind.ORDERS: 50_000}
LOOKUP_CHUNK = 10_000  # values per IN (...): SQLite allows 32,766 parameters a statement
MAX_ERRORS = 1000  # stored with line numbers; `error_count` stays exact
MAX_UPLOAD = 200 * 1024 * 1024
MAX_COLUMNS = 100
PREVIEW_ROWS = 10
HEAD = 1 << 20  # bytes of the upload read for its header and preview
# Above this many touched customers one set-based rebuild is cheaper than refreshing each.
REFRESH_LIMIT = 200
DEFAULT_SOURCE = "import"
ENCODINGS = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8 (BOM)", "cp1251": "Windows-1251"}
DELIMITERS = {"semicolon": ";", "comma": ",", "tab": "\t"}  # names for forms and the CLI
BAD_TEXT = "\ufffd"  # what undecodable bytes become, so one bad row does not sink the file


@dataclass(frozen=True)
class Field:
    label: str
    aliases: tuple[str, ...] = ()


CUSTOMER_FIELDS = {
    "name": Field(_l("Name"), ("name", "full name", "customer name", "client name", "customer", "client", "имя",
                               "фио", "ф.и.о.", "клиент", "покупатель", "имя клиента")),
    "email": Field(_l("Email"), ("email", "e-mail", "mail", "email address", "почта", "эл. почта",
                                 "электронная почта", "емейл", "имейл")),
    "phone": Field(_l("Phone"), ("phone", "phone number", "mobile", "tel", "telephone", "телефон", "тел",
                                 "мобильный", "номер телефона")),
    "telegram": Field(_l("Telegram"), ("telegram", "tg", "телеграм", "телеграмм")),
    "whatsapp": Field(_l("WhatsApp"), ("whatsapp", "wa", "ватсап", "вотсап")),
    "city": Field(_l("City"), ("city", "town", "город")),
    "birthday": Field(_l("Birthday"), ("birthday", "birth date", "date of birth", "dob", "день рождения",
                                       "дата рождения")),
    "gender": Field(_l("Gender"), ("gender", "sex", "пол")),
    "tags": Field(_l("Tags"), ("tags", "tag", "labels", "теги", "метки")),
    "external_ref": Field(_l("Customer id in your shop"), ("customer id", "client id", "id", "external id",
                                                            "external ref", "код клиента", "id клиента",
                                                            "номер клиента")),
    "notes": Field(_l("Notes"), ("notes", "note", "comment", "comments", "заметки", "примечание", "комментарий")),
    "consent_email": Field(_l("Email consent (yes/no)"), ("email consent", "consent email", "subscribed",
                                                         "согласие email", "согласие на рассылку")),
    "consent_sms": Field(_l("SMS consent (yes/no)"), ("sms consent", "consent sms", "согласие sms")),
}

ORDER_FIELDS = {
    "external_id": Field(_l("Order id"), ("order id", "order", "order number", "order no", "id", "номер заказа",
                                          "№ заказа", "заказ", "id заказа", "номер")),
    "placed_at": Field(_l("Order date"), ("date", "order date", "placed at", "created", "created at", "дата",
                                          "дата заказа")),
    "amount": Field(_l("Amount"), ("amount", "total", "sum", "order total", "сумма", "итого", "стоимость")),
    "currency": Field(_l("Currency"), ("currency", "валюта")),
    "status": Field(_l("Status (paid, cancelled, refunded)"), ("status", "статус")),
    "customer_ref": Field(_l("Customer id in your shop"), ("customer id", "client id", "external ref", "код клиента",
                                                           "id клиента", "номер клиента")),
    "customer_email": Field(_l("Customer email"), ("email", "e-mail", "customer email", "почта", "эл. почта")),
    "customer_phone": Field(_l("Customer phone"), ("phone", "customer phone", "telephone", "телефон", "тел")),
    "customer_name": Field(_l("Customer name (creates new customers)"),
                           ("customer", "customer name", "client", "name", "клиент", "покупатель", "имя", "фио")),
    "item_name": Field(_l("Product"), ("item", "product", "product name", "item name", "товар", "наименование",
                                       "продукт")),
    "item_category": Field(_l("Product category"), ("category", "категория")),
    "quantity": Field(_l("Quantity"), ("quantity", "qty", "количество", "кол-во")),
}

FIELDS = {ImportKind.CUSTOMERS: CUSTOMER_FIELDS, ImportKind.ORDERS: ORDER_FIELDS}

# Each group needs at least one of its fields mapped; a row also needs a way to find its customer
# again, or a re-import would duplicate it.
REQUIRED = {
    ImportKind.CUSTOMERS: (("name",), ("email", "phone", "external_ref")),
    ImportKind.ORDERS: (("external_id",), ("placed_at",), ("amount",), ("customer_ref", "customer_email",
                                                                         "customer_phone")),
}

GENDERS = {**dict.fromkeys(("f", "female", "woman", "w", "ж", "жен", "женский", "женщина"), Gender.FEMALE),
           **dict.fromkeys(("m", "male", "man", "м", "муж", "мужской", "мужчина"), Gender.MALE),
           **dict.fromkeys(("other", "другой", "другое"), Gender.OTHER)}
YES = {"yes", "y", "true", "1", "+", "да", "д", "on"}
NO = {"no", "n", "false", "0", "-", "нет", "н", "off"}
CONSENTS = {"consent_email": Channel.EMAIL, "consent_sms": Channel.SMS}


@dataclass(frozen=True)
class Settings:
    """The team's defaults an import reads values with."""

    region: str
    timezone: str
    currency: str

    @classmethod
    def from_config(cls, config) -> Settings:
        return cls(config["TEAM_COUNTRY"], config["TEAM_TIMEZONE"], config["TEAM_CURRENCY"])


def job_id(run_id: int) -> str:
    """Return the RQ job id of a run, so a page can tell a lost job from a slow one."""
    return f"import-{run_id}"


# --- reading the file ---------------------------------------------------------------------------

def detect_encoding(content: bytes) -> str:
    """Return utf-8-sig, utf-8 or cp1251: strict UTF-8 first, cp1251 when most text is not UTF-8."""
    if content.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        content.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    # Cyrillic cp1251 is almost never valid UTF-8, so a mostly-valid sample means a UTF-8 file with
    # a few broken rows (reported per row) rather than a cp1251 one.
    sample = content[: 1 << 20].decode("utf-8", errors="replace")
    bad = sample.count(BAD_TEXT)
    decoded = len(sample) - len(sample.encode("ascii", errors="ignore")) - bad
    return "utf-8" if decoded > bad else "cp1251"


def detect_delimiter(header_line: str) -> str:
    """Return the delimiter used most on the header line (a comma when none is)."""
    counts = {char: header_line.count(char) for char in DELIMITERS.values()}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _pack(content: bytes) -> bytes:
    # Stored compressed (CSV shrinks about fourfold): on SQLite each progress update of the run
    # rewrites its whole row, upload included.
    return zlib.compress(content, 1)


def _unpack(run: ImportRun, limit: int = 0) -> bytes:
    """Return the upload, or only its first `limit` bytes (enough for the header and a preview)."""
    return zlib.decompressobj().decompress(run.content, limit) if limit else zlib.decompress(run.content)


def _stream(content: bytes, encoding: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(content), encoding=encoding, errors="replace", newline="")


def _records(content: bytes, encoding: str, delimiter: str) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """Yield (line number, cells, problem) for each data row; blank lines are skipped."""
    reader = csv.reader(_stream(content, encoding), delimiter=delimiter)
    next(reader, None)
    line = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The reader carries on at the next line; the broken row is reported, not fatal.
            yield line, None, str(exc)
        else:
            if any(cells):
                yield line, cells, None
        line = reader.line_num + 1


def read_header(content: bytes, encoding: str, delimiter: str) -> list[str]:
    """Return the column names of the first line, or raise FieldError when there are none."""
    reader = csv.reader(_stream(content, encoding), delimiter=delimiter)
    try:
        header = [cell.strip() for cell in next(reader, [])]
    except csv.Error as exc:
        raise FieldError("file", str(_l("The first line must name the columns."))) from exc
    if not any(header):
        raise FieldError("file", str(_l("The first line must name the columns.")))
    if len(header) > MAX_COLUMNS:
        raise FieldError("file", str(_l("The file has more than %(n)d columns: is it a CSV export?", n=MAX_COLUMNS)))
    return header


def _normal(name: str) -> str:
    return " ".join(re.sub(r"[\W_]+", " ", name.lower().replace("ё", "е")).split())


def guess_mapping(kind: ImportKind, header: list[str]) -> dict[str, int]:
    """Return {field: column index} for the columns whose names say what they hold."""
    by_alias = {}
    for key, spec in FIELDS[kind].items():
        for alias in spec.aliases:
            by_alias.setdefault(_normal(alias), key)
    mapping: dict[str, int] = {}
    for index, name in enumerate(header):
        key = by_alias.get(_normal(name))
        if key and key not in mapping:
            mapping[key] = index
    return mapping


def start(kind: ImportKind, filename: str, content: bytes, acting: User | None,
          encoding: str | None = None, delimiter: str | None = None) -> ImportRun:
    """Check the upload, detect its encoding and delimiter, guess the mapping; return the run."""
    if not content.strip():
        raise FieldError("file", str(_l("The file is empty.")))
    if len(content) > MAX_UPLOAD:
        raise FieldError("file", str(_l("The file is larger than %(n)d MB; split it into parts.",
                                        n=MAX_UPLOAD // 2**20)))
    if b"\x00" in content[: 1 << 16] or content.startswith(b"PK\x03\x04"):
        raise FieldError("file", str(_l("This is not a CSV file. In Excel, use Save as, CSV (UTF-8).")))
    encoding = encoding or detect_encoding(content)
    first_line = (content[: 1 << 16].decode(encoding, errors="replace").splitlines() or [""])[0]
    delimiter = delimiter or detect_delimiter(first_line)
    header = read_header(content, encoding, delimiter)
    run = ImportRun(kind=kind, filename=(filename or "upload.csv")[:255], content=_pack(content), encoding=encoding,
                    delimiter=delimiter, mapping={"columns": guess_mapping(kind, header), "source": DEFAULT_SOURCE},
                    errors=[], created_by_id=acting.id if acting else None)
    db.session.add(run)
    db.session.flush()
    return run


def reread(run: ImportRun, encoding: str, delimiter: str) -> None:
    """Read the file again with another encoding or delimiter and guess the mapping afresh."""
    header = read_header(_unpack(run, HEAD), encoding, delimiter)
    run.encoding, run.delimiter = encoding, delimiter
    run.mapping = {**run.mapping, "columns": guess_mapping(run.kind, header)}


def preview(run: ImportRun, rows: int = PREVIEW_ROWS) -> tuple[list[str], list[list[str]]]:
    """Return the header and the first rows, each cut or padded to the header's width."""
    head = _unpack(run, HEAD)
    header = read_header(head, run.encoding, run.delimiter)
    width = len(header)
    first = itertools.islice((cells for _, cells, _ in _records(head, run.encoding, run.delimiter)
                              if cells is not None), rows)
    return header, [(cells + [""] * width)[:width] for cells in first]


def remap(run: ImportRun, overrides: dict[str, str]) -> list[str | None]:
    """Return the per-column fields of the guess, changed by {column name or 1-based number: field}."""
    header = read_header(_unpack(run, HEAD), run.encoding, run.delimiter)
    chosen: list[str | None] = [None] * len(header)
    for key, index in run.mapping["columns"].items():
        chosen[index] = key
    names = {_normal(name): i for i, name in reversed(list(enumerate(header)))}
    for column, key in overrides.items():
        index = names.get(_normal(column), int(column) - 1 if column.isdigit() else None)
        if index is None or not 0 <= index < len(header):
            raise FieldError("map", str(_l("No column %(name)s in the file.", name=column)))
        if key and key not in FIELDS[run.kind]:
            raise FieldError("map", str(_l("Unknown field %(name)s.", name=key)))
        chosen = [None if c == key else c for c in chosen]
        chosen[index] = key or None
    return chosen


def check_mapping(kind: ImportKind, chosen: list[str | None]) -> dict[str, int]:
    """Return {field: column index}, or raise FieldError naming the column or the missing field."""
    columns: dict[str, int] = {}
    for index, key in enumerate(chosen):
        if not key:
            continue
        if key not in FIELDS[kind]:
            raise FieldError(f"col_{index}", str(_l("Choose one of the offered fields.")))
        if key in columns:
            raise FieldError(f"col_{index}", str(_l("%(field)s is already chosen for another column.",
                                                    field=FIELDS[kind][key].label)))
        columns[key] = index
    for group in REQUIRED[kind]:
        if not any(key in columns for key in group):
            labels = str(_l(" or ")).join(str(FIELDS[kind][key].label) for key in group)
            raise FieldError("mapping", str(_l("Choose a column for: %(fields)s.", fields=labels)))
    return columns


def confirm(run: ImportRun, chosen: list[str | None], source: str | None = None) -> None:
    """Fix the mapping and queue the run; refuse an incomplete mapping before anything is written."""
    if run.state is not ImportState.MAPPING:
        raise FieldError("mapping", str(_l("This import has already started.")))
    columns = check_mapping(run.kind, chosen)
    source = (source or DEFAULT_SOURCE).strip()
    if not 0 < len(source) <= 40:
        raise FieldError("source", str(_l("Use 1 to 40 characters.")))
    run.mapping = {"columns": columns, "source": source}
    run.state = ImportState.QUEUED


def requeue(run: ImportRun) -> None:
    """Queue a failed or lost run again; it continues after its processed rows."""
    if run.state in (ImportState.MAPPING, ImportState.DONE):
        raise FieldError("run", str(_l("Only an unfinished import can be resumed.")))
    run.state, run.failure = ImportState.QUEUED, None


def recent(limit: int = 20) -> list[ImportRun]:
    return list(db.session.scalars(select(ImportRun).order_by(ImportRun.id.desc()).limit(limit)))


# --- running it ---------------------------------------------------------------------------------

def execute(run_id: int, settings: Settings, batch_size: int | None = None) -> ImportRun:
    """Import the run's rows, committing batch by batch with its progress; mark it failed on a crash.

    Unlike most domain functions this one commits: progress that is not committed is not progress.
    """
    run = db.session.get(ImportRun, run_id)
    if run is None or run.state in (ImportState.MAPPING, ImportState.DONE):
        return run
    try:
        check_mapping(run.kind, _chosen(run))
        resumed = run.processed_rows > 0
        content = _unpack(run)
        run.state, run.failure = ImportState.RUNNING, None
        if not run.total_rows:
            # Lines, for the progress bar: exact unless cells hold line breaks; corrected at the end.
            run.total_rows = max(content.count(b"\n") + (not content.endswith(b"\n")) - 1, 0)
        db.session.commit()
        if db.session.get_bind().dialect.name == "sqlite":
            # The default 2 MB page cache rereads the orders indexes from disk on every batch.
            db.session.execute(text("PRAGMA cache_size = -65536"))
        importer = (_Customers if run.kind is ImportKind.CUSTOMERS else _Orders)(run, settings, resumed)
        records = itertools.islice(_records(content, run.encoding, run.delimiter), run.processed_rows, None)
        batches = _parsed(importer, records, batch_size or BATCH[run.kind])
        with _fewer_collections(), contextlib.closing(batches) as parsed:
            for size, rows, errors in parsed:
                errors = sorted(errors + importer.write(rows), key=lambda e: e["line"])
                # The run changes once per batch, in one UPDATE: on SQLite every update of the row
                # rewrites the whole upload stored in it.
                run.created += importer.counts.pop("created", 0)
                run.updated += importer.counts.pop("updated", 0)
                run.unchanged += importer.counts.pop("unchanged", 0)
                run.processed_rows += size
                run.error_count += len(errors)
                room = MAX_ERRORS - len(run.errors)
                if room > 0 and errors:
                    run.errors = [*run.errors, *errors[:room]]
                db.session.commit()
                log.info("import %s: %s of %s rows", run.id, run.processed_rows, run.total_rows)
        importer.finish()
        run.state, run.finished_at, run.total_rows = ImportState.DONE, utcnow(), run.processed_rows
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        run = db.session.get(ImportRun, run_id)
        run.state = ImportState.FAILED
        run.failure = (f"{type(exc).__name__}: " + (str(exc).splitlines() or [""])[0])[:500]
        db.session.commit()
        raise
    return run


def _parsed(importer: _Rows, records: Iterator, size: int) -> Iterator[tuple[int, list, list[dict]]]:
    """Yield (records read, rows, errors) batch by batch.

    Parsing is pure Python and half the work of a big import, so a forked child parses the next
    batch on another core while this process writes the current one. Without fork (Windows) the
    batches are parsed here in turn.
    """
    if "fork" not in multiprocessing.get_all_start_methods():
        while batch := list(itertools.islice(records, size)):
            yield (len(batch), *importer.parse_batch(batch))
        return
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_parse_into, args=(importer, records, size, sender), daemon=True)
    child.start()
    sender.close()
    try:
        while (item := receiver.recv()) is not None:
            if isinstance(item, str):
                raise RuntimeError(item)
            yield item
    finally:
        receiver.close()
        child.terminate()
        child.join()


def _parse_into(importer: _Rows, records: Iterator, size: int, sender) -> None:
    # The child: it never touches the database. A full pipe blocks it one batch ahead of the writer.
    try:
        while batch := list(itertools.islice(records, size)):
            sender.send((len(batch), *importer.parse_batch(batch)))
        sender.send(None)
    except Exception as exc:  # handed to the writer, which marks the run failed
        sender.send(f"{type(exc).__name__}: {exc}")


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    # A batch makes hundreds of thousands of small objects that all live until it is written; at the
    # default thresholds the cycle collector walks them over and over (a tenth of the import time).
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def _chosen(run: ImportRun) -> list[str | None]:
    columns = run.mapping.get("columns", {})
    chosen: list[str | None] = [None] * (max(columns.values(), default=-1) + 1)
    for key, index in columns.items():
        chosen[index] = key
    return chosen


def _error(line: int, field_name: str | None, reason: str) -> dict:
    return {"line": line, "field": field_name, "reason": reason}


# Core tables, not ORM entities: a batch's lookups skip the ORM's per-row work.
_CUSTOMERS, _CONTACTS, _ORDERS = Customer.__table__, Contact.__table__, Order.__table__


class _Refused(NamedTuple):
    field: str
    message: str


def _normalise_contact(kind: ContactKind, raw: str, region: str, field_name: str) -> str:
    try:
        return contacts.normalise(kind, raw, region)
    except FieldError as exc:
        raise FieldError(field_name, exc.message) from None


class _Rows:
    """Shared by both importers: reading cells by field, normalising contacts, finding owners."""

    def __init__(self, run: ImportRun, settings: Settings, resumed: bool):
        self.run, self.settings, self.resumed = run, settings, resumed
        self.columns = run.mapping["columns"]
        self.source = run.mapping.get("source") or DEFAULT_SOURCE
        self.acting_id = run.created_by_id
        # A file repeats each customer's contacts on many rows; validating each once is much cheaper.
        self.memo: dict[tuple, object] = {}
        # The batch's outcome, moved onto the run just before its commit (see `execute`).
        self.counts: Counter[str] = Counter()

    def parse_batch(self, batch) -> tuple[list, list[dict]]:
        """Read a batch of records into rows and errors; touches no database (runs in a child process)."""
        rows, errors = [], []
        for line, cells, problem in batch:
            try:
                if problem:
                    raise FieldError("", problem)
                rows.append(self.parse(line, self.cells(cells)))
            except FieldError as exc:
                errors.append(_error(line, exc.field or None, exc.message))
        return rows, errors

    def cells(self, cells: list[str]) -> dict[str, str]:
        width = len(cells)
        values = {key: cells[i].strip() for key, i in self.columns.items() if i < width}
        if BAD_TEXT in "".join(values.values()):
            raise FieldError("", str(_l("Unreadable characters: save the file as UTF-8 and upload it again.")))
        return values

    def contact(self, kind: ContactKind, raw: str, field_name: str) -> str:
        return self.once(_normalise_contact, kind, raw, self.settings.region, field_name)

    def once(self, parse, *args):
        """Parse a value that repeats on many rows (a contact, a currency, a status) once per run."""
        key = (parse, *args)
        if key not in self.memo:
            try:
                self.memo[key] = parse(*args)
            except FieldError as exc:
                self.memo[key] = _Refused(exc.field, exc.message)
        value = self.memo[key]
        if isinstance(value, _Refused):
            raise FieldError(value.field, value.message)  # a fresh one: a re-raised error grows its traceback
        return value

    @staticmethod
    def lookup(kind: str, values: set[str]) -> dict[tuple[str, str], int]:
        """Return {(kind, value): customer id} for the customers who already have these refs or contacts."""
        if kind == "ref":
            query = select(_CUSTOMERS.c.external_ref, _CUSTOMERS.c.id)
            column = _CUSTOMERS.c.external_ref
        else:
            # The oldest contact wins when two customers share one, as in `customers.find_by_contacts`.
            query = (select(_CONTACTS.c.value, _CONTACTS.c.customer_id).where(_CONTACTS.c.kind == ContactKind(kind))
                     .order_by(_CONTACTS.c.id.desc()))
            column = _CONTACTS.c.value
        return {(kind, value): cid for part in _chunks(values)
                for value, cid in db.session.execute(query.where(column.in_(part)))}


def _chunks(values) -> Iterator[list]:
    values = list(values)
    for start in range(0, len(values), LOOKUP_CHUNK):
        yield values[start:start + LOOKUP_CHUNK]


def _keys(ref: str | None, emails, phones) -> list[tuple[str, str]]:
    # The shop's id first, then contacts: the order `orders.resolve_customer` looks in.
    return ([("ref", ref)] if ref else []) + [("email", e) for e in emails] + [("phone", p) for p in phones]


# --- customers ----------------------------------------------------------------------------------

@dataclass
class _CustomerRow:
    line: int
    name: str
    external_ref: str | None
    emails: list[str]
    phones: list[str]
    extra: list[tuple[ContactKind, str]]  # telegram, whatsapp: not used to find anyone
    city: str | None
    birthday: date | None
    gender: Gender | None
    tags: list[str]
    notes: str | None
    consents: dict[Channel, bool] = field(default_factory=dict)

    @property
    def keys(self) -> list[tuple[str, str]]:
        return _keys(self.external_ref, self.emails, self.phones)


class _Customers(_Rows):
    @property
    def acting(self) -> User | None:
        return self.run.created_by

    def write(self, rows: list[_CustomerRow]) -> list[dict]:
        """Create or update the batch's customers; return the rows refused."""
        errors = []
        # Every key of every row: `fill` must know who owns each contact, not only the first match.
        owners: dict[tuple[str, str], int] = {}
        for kind in ("ref", "email", "phone"):
            values = {value for row in rows for k, value in row.keys if k == kind}
            if values:
                owners.update(self.lookup(kind, values))
        # One query loads the batch's known customers with their contacts and consents.
        known = {c.id: c for c in db.session.scalars(
            select(Customer).where(Customer.id.in_(set(owners.values())))
            .options(selectinload(Customer.contacts), selectinload(Customer.consents)))}
        for row in rows:
            owner_id = next((owners[k] for k in row.keys if k in owners), None)
            try:
                if owner_id is None:
                    customer = self.create(row)
                    known[customer.id] = customer
                    self.counts["created"] += 1
                elif self.fill(known[owner_id], row, owners):
                    customer = known[owner_id]
                    self.counts["updated"] += 1
                else:
                    self.counts["unchanged"] += 1
                    continue
            except FieldError as exc:
                errors.append(_error(row.line, exc.field, exc.message))
                continue
            for key in row.keys:
                owners.setdefault(key, customer.id)
            customers.record(customer, Kind.IMPORT, self.acting, outcome="created" if owner_id is None else "updated",
                             import_id=self.run.id, line=row.line)
        return errors

    def parse(self, line: int, values: dict[str, str]) -> _CustomerRow:
        get = values.get
        emails = [self.contact(ContactKind.EMAIL, e, "email") for e in re.split(r"[,;\s]+", get("email", "")) if e]
        phones = [self.contact(ContactKind.PHONE, p, "phone") for p in re.split(r"[,;]", get("phone", "")) if p.strip()]
        extra = [(kind, self.contact(kind, get(key), key))
                 for kind, key in ((ContactKind.TELEGRAM, "telegram"), (ContactKind.WHATSAPP, "whatsapp")) if get(key)]
        ref = get("external_ref") or None
        if ref and len(ref) > 80:
            raise FieldError("external_ref", str(_l("Use at most %(n)d characters.", n=80)))
        if not (ref or emails or phones):
            raise FieldError("email", str(_l("Give an email, a phone or a customer id, so a re-import finds "
                                             "this customer again.")))
        gender = get("gender", "").lower()
        if gender and gender not in GENDERS:
            raise FieldError("gender", str(_l("Use female, male or other.")))
        consents = {}
        for key, channel in CONSENTS.items():
            answer = get(key, "").lower()
            if answer in YES or answer in NO:
                consents[channel] = answer in YES
            elif answer:
                raise FieldError(key, str(_l("Use yes or no.")))
        return _CustomerRow(
            line=line, name=get("name", ""), external_ref=ref, emails=list(dict.fromkeys(emails)),
            phones=list(dict.fromkeys(phones)), extra=extra, city=get("city", "")[:120] or None,
            birthday=_birthday(get("birthday")), gender=GENDERS.get(gender), tags=customers.clean_tags(get("tags")),
            notes=get("notes", "")[:5000] or None, consents=consents)

    def create(self, row: _CustomerRow) -> Customer:
        extra = dict(row.extra)
        return customers.create_customer(
            customers.CustomerInput(
                name=row.name, emails=row.emails, phones=row.phones, telegram=extra.get(ContactKind.TELEGRAM),
                whatsapp=extra.get(ContactKind.WHATSAPP), birthday=row.birthday,
                gender=row.gender.value if row.gender else None, city=row.city, tags=row.tags, notes=row.notes,
                external_ref=row.external_ref, consents={ch.value: g for ch, g in row.consents.items()},
                consent_how=f"import {self.run.id}"),
            self.acting, self.settings.region, source=DEFAULT_SOURCE)

    def fill(self, customer: Customer, row: _CustomerRow, owners: dict) -> bool:
        """Fill the customer's empty fields and add new contacts, tags and consents; say if anything changed."""
        tags = customers.clean_tags([*(customer.tags or []), *row.tags])  # may refuse: before any change
        changed = False
        for attr in ("city", "birthday", "gender", "notes", "external_ref"):
            value = getattr(row, attr)
            if value in (None, "") or getattr(customer, attr) not in (None, ""):
                continue
            if attr == "external_ref" and owners.get(("ref", value), customer.id) != customer.id:
                continue  # the id belongs to someone else; never move it silently
            setattr(customer, attr, value)
            changed = True
        have = {(c.kind, c.value) for c in customer.contacts}
        found = [*((ContactKind.EMAIL, e) for e in row.emails), *((ContactKind.PHONE, p) for p in row.phones),
                 *row.extra]
        # A contact another customer already has stays theirs: sharing it would blur every later match.
        new = [(k, v) for k, v in found if (k, v) not in have and owners.get((k.value, v), customer.id) == customer.id]
        customer.contacts.extend(Contact(kind=k, value=v) for k, v in new)
        retag = tags != (customer.tags or [])
        if retag:
            customer.tags = tags
        for channel, granted in row.consents.items():
            current = customer.consent_for(channel)
            # A "no" always applies; a "yes" never overrides a decision already on record.
            if (not granted and (current is None or current.granted)) or (granted and current is None):
                customers.set_consent(customer, channel, granted, f"import {self.run.id}", self.acting)
                changed = True
        if new or retag:
            customers.refresh_search_terms(customer)
            changed = True
        if changed:
            customer.updated_at = utcnow()
        return changed

    def finish(self) -> None:
        """Customers' figures come from orders, which a customers file does not touch."""


def _birthday(raw: str | None) -> date | None:
    if not raw:
        return None
    for fmt in ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y"):
        try:
            return customers.parse_birthday(datetime.strptime(raw, fmt).date())
        except ValueError:
            continue
    raise FieldError("birthday", str(_l("Enter a date as YYYY-MM-DD or DD.MM.YYYY.")))


# --- orders -------------------------------------------------------------------------------------

@dataclass(slots=True)
class _OrderRow:
    line: int
    values: dict  # the order's columns, as written to the table
    ref: str | None
    email: str | None  # as written; normalised by the writer, which looks customers up by them
    phone: str | None
    name: str | None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    keys: list[tuple[str, str]] = field(default_factory=list)


UPSERT = ("customer_id", "placed_at", "amount", "currency", "status", "items")
INSERTED = ("source", "external_id", *UPSERT, "created_at")  # created_at: set once, kept on updates
SHARED = {"status", "items", "created_at"}  # one object for many rows: converted once per batch


class _Orders(_Rows):
    def __init__(self, run: ImportRun, settings: Settings, resumed: bool):
        super().__init__(run, settings, resumed)
        self.stage_id = customers.default_stage_id()
        self.upsert_sql: tuple | None = None
        # The first import of a source (a shop's whole history) needs no lookup of existing orders:
        # only rows of this run can repeat. Another writer of the same source meanwhile would only
        # make the counts call an update "created"; the upsert itself stays right.
        self.fresh = not resumed and db.session.scalar(
            select(_ORDERS.c.id).where(_ORDERS.c.source == self.source).limit(1)) is None
        self.seen: set[str] = set()
        # Customers found or created by this run; another batch naming them needs no query.
        self.owners: dict[tuple[str, str], int] = {}
        self.touched: set[int] = set()
        # One IMPORT entry per affected customer and run (an ORDER entry per order would double a
        # million-row import); a resumed run must not repeat the ones already written.
        self.recorded: set[int] = set()
        if resumed:
            self.recorded.update(db.session.scalars(
                select(Interaction.customer_id).where(Interaction.kind == Kind.IMPORT,
                                                      Interaction.data["import_id"].as_integer() == run.id)))

    def write(self, rows: list[_OrderRow]) -> list[dict]:
        """Save the batch's orders and their new customers; return the rows refused."""
        errors: list[dict] = []
        written = self.upsert(self.resolve(self.identify(rows, errors), errors))
        self.record(written)
        return errors

    def identify(self, rows: list[_OrderRow], errors: list[dict]) -> list[_OrderRow]:
        """Normalise the contacts that name each order's customer; refuse the rows with a malformed one."""
        # Done by the writer, not the parsing child: the writer waits for the child otherwise.
        kept = []
        for row in rows:
            try:
                row.emails = [self.contact(ContactKind.EMAIL, row.email, "customer_email")] if row.email else []
                row.phones = [self.contact(ContactKind.PHONE, row.phone, "customer_phone")] if row.phone else []
            except FieldError as exc:
                errors.append(_error(row.line, exc.field, exc.message))
                continue
            row.keys = _keys(row.ref, row.emails, row.phones)
            kept.append(row)
        return kept

    def parse(self, line: int, values: dict[str, str]) -> _OrderRow:
        get = values.get
        external_id = get("external_id", "")
        if not external_id or len(external_id) > 80:
            raise FieldError("external_id", str(_l("Give the order's id in your system (at most 80 characters).")))
        currency = self.once(orders.parse_currency, get("currency"), self.settings.currency)
        items = self.once(_items, get("item_name"), get("item_category"), get("quantity")) if get("item_name") else []
        order = {"source": self.source, "external_id": external_id,
                 "placed_at": orders.parse_datetime(_iso(get("placed_at", "")), self.settings.timezone),
                 "amount": orders.parse_amount(get("amount"), currency), "currency": currency,
                 "status": self.once(orders.parse_status, get("status")), "items": items}
        ref = get("customer_ref") or None
        email = get("customer_email")
        phone = get("customer_phone")
        if not (ref or email or phone):
            raise FieldError("customer_ref", str(_l("Name the customer: id, email or phone.")))
        return _OrderRow(line, order, ref[:80] if ref else None, email or None, phone or None,
                         get("customer_name") or None)

    def resolve(self, rows: list[_OrderRow], errors: list[dict]) -> list[_OrderRow]:
        """Set each order's customer: found by id, email or phone, or created from the name given."""
        owners = self.find(rows)
        new: list[SimpleNamespace] = []
        pending: dict[tuple[str, str], SimpleNamespace] = {}
        waiting: list[tuple[_OrderRow, SimpleNamespace]] = []
        resolved = []
        for row in rows:
            keys = row.keys
            owner_id = next((owners[k] for k in keys if k in owners), None)
            if owner_id is not None:
                row.values["customer_id"] = owner_id
                resolved.append(row)
                continue
            person = next((pending[k] for k in keys if k in pending), None)
            if person is None:
                if not row.name:
                    errors.append(_error(row.line, "customer_ref", str(_l(
                        "Unknown customer; map a customer name column to create them."))))
                    continue
                try:
                    name = customers.clean_name(row.name)
                except FieldError as exc:
                    errors.append(_error(row.line, "customer_name", exc.message))
                    continue
                person = SimpleNamespace(name=name, ref=row.ref, emails=row.emails, phones=row.phones, id=None)
                new.append(person)
                pending.update(dict.fromkeys(keys, person))
            waiting.append((row, person))
            resolved.append(row)
        self.create(new)
        for row, person in waiting:
            row.values["customer_id"] = person.id
            self.owners.update(dict.fromkeys(row.keys, person.id))
        return resolved

    def find(self, rows: list[_OrderRow]) -> dict[tuple[str, str], int]:
        """Return the known owners of the rows' keys, querying only each row's first undecided key."""
        # Most rows name a customer already seen in this run, or one found by the shop's id; their
        # emails and phones need no query. Rounds keep the priority ref, email, phone per row.
        missing: set[tuple[str, str]] = set()
        for _ in range(3):
            wanted: dict[str, set[str]] = {}
            for row in rows:
                for key in row.keys:
                    if key in self.owners:
                        break
                    if key not in missing:
                        wanted.setdefault(key[0], set()).add(key[1])
                        break
            if not wanted:
                break
            for kind, values in wanted.items():
                found = self.lookup(kind, values)
                self.owners.update(found)
                missing.update((kind, v) for v in values if (kind, v) not in found)
        return self.owners

    def create(self, people: list[SimpleNamespace]) -> None:
        """Insert new customers set-based, with what `customers.create_customer` gives each one."""
        if not people:
            return
        now = utcnow()
        table = _CUSTOMERS
        # RETURNING rows in parameter order costs one statement per row on SQLite; instead each new
        # customer carries a unique key (their id in the shop, or a marker cleared just after) and
        # the returned rows are matched by it.
        marks = [p.ref or f"\x1f{self.run.id}:{i}" for i, p in enumerate(people)]
        returned = db.session.execute(
            insert(table).returning(table.c.external_ref, table.c.id),
            [{"name": p.name, "sort_name": p.name.lower(), "external_ref": mark, "source": self.source,
              "stage_id": self.stage_id, "tags": [], "favourite_products": [], "favourite_categories": [],
              "created_at": now, "updated_at": now} for p, mark in zip(people, marks, strict=True)])
        by_mark = dict(returned.all())
        ids = [by_mark[mark] for mark in marks]
        unmarked = [cid for p, cid in zip(people, ids, strict=True) if not p.ref]
        if unmarked:
            db.session.execute(update(table).where(table.c.id.in_(unmarked)).values(external_ref=None))
        contact_rows, term_rows, created = [], [], []
        for person, cid in zip(people, ids, strict=True):
            person.id = cid
            person.contacts = [SimpleNamespace(kind=ContactKind.EMAIL, value=e) for e in person.emails] + \
                              [SimpleNamespace(kind=ContactKind.PHONE, value=p) for p in person.phones]
            person.tags = []
            contact_rows += [{"customer_id": cid, "kind": c.kind, "value": c.value} for c in person.contacts]
            term_rows += [{"customer_id": cid, "term": t} for t in customers.search_terms(person)]
            created.append({"customer_id": cid, "kind": Kind.CREATED, "at": now, "user_id": self.acting_id,
                            "data": {"source": self.source}})
        for model, values in ((Contact, contact_rows), (SearchTerm, term_rows), (Interaction, created)):
            if values:
                db.session.execute(insert(model.__table__), values)

    def upsert(self, rows: list[_OrderRow]) -> list[dict]:
        """Write the batch's new and changed orders in one statement; return what was written."""
        ids = {r.values["external_id"] for r in rows}
        if self.fresh:
            ids &= self.seen
        query = select(_ORDERS.c.external_id, *(_ORDERS.c[c] for c in UPSERT)).where(_ORDERS.c.source == self.source)
        known = {ext: dict(zip(UPSERT, values, strict=True)) for part in _chunks(ids)
                 for ext, *values in db.session.execute(query.where(_ORDERS.c.external_id.in_(part)))}
        for values in known.values():
            values["placed_at"] = figures.aware(values["placed_at"])
        changes: dict[str, dict] = {}
        created = updated = unchanged = 0
        for row in rows:
            values, ext = row.values, row.values["external_id"]
            before = known.get(ext)
            if before is None:
                created += 1
            elif all(before[c] == values[c] for c in UPSERT):
                unchanged += 1
                continue
            else:
                updated += 1
                self.touched.add(before["customer_id"])  # the order may have moved to another customer
            known[ext] = values
            changes[ext] = values
        self.counts.update(created=created, updated=updated, unchanged=unchanged)
        if changes:
            self.insert(list(changes.values()))
            if self.fresh:
                self.seen.update(changes)
        return list(changes.values())

    def insert(self, rows: list[dict]) -> None:
        """Upsert the orders by (source, external id), handing the driver rows ready to bind."""
        # SQLAlchemy's per-row parameter handling would double the time of a million-row import; the
        # same conversions (the columns' own bind processors) done here leave the driver the rest.
        if self.upsert_sql is None:
            dialect = db.session.get_bind().dialect
            stmt = upsert_insert(_ORDERS)
            stmt = stmt.on_conflict_do_update(index_elements=[_ORDERS.c.source, _ORDERS.c.external_id],
                                              set_={c: stmt.excluded[c] for c in UPSERT})
            compiled = stmt.compile(dialect=dialect, column_keys=list(INSERTED))
            keys = compiled.positiontup if compiled.positional else INSERTED
            processors = [_ORDERS.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in keys]
            self.upsert_sql = (str(compiled), compiled.positional, keys, itemgetter(*keys),
                               [(i, f, keys[i] in SHARED) for i, f in enumerate(processors) if f is not None])
        sql, positional, keys, pick, converters = self.upsert_sql
        now = utcnow()
        converted: dict[tuple[int, int], object] = {}  # by the id of a shared value, alive all batch
        params = []
        for values in rows:
            values["created_at"] = now
            bound = list(pick(values))
            for index, convert, shared in converters:
                if shared:
                    key = (index, id(bound[index]))
                    if key not in converted:
                        converted[key] = convert(bound[index])
                    bound[index] = converted[key]
                else:
                    bound[index] = convert(bound[index])
            params.append(tuple(bound) if positional else dict(zip(keys, bound, strict=True)))
        db.session.connection().exec_driver_sql(sql, params)

    def record(self, written: list[dict]) -> None:
        affected = {values["customer_id"] for values in written}
        self.touched |= affected
        fresh = sorted(affected - self.recorded)
        if fresh:
            now = utcnow()
            db.session.execute(insert(Interaction.__table__), [
                {"customer_id": cid, "kind": Kind.IMPORT, "at": now, "user_id": self.acting_id,
                 "data": {"import_id": self.run.id, "source": self.source}} for cid in fresh])
            self.recorded.update(fresh)

    def finish(self) -> None:
        """Bring the figures and segments of the customers whose orders changed up to date."""
        # A resumed run does not know what its first part touched; the rebuild covers everyone.
        if self.resumed or len(self.touched) > REFRESH_LIMIT:
            figures.rebuild()
            with segments.exclusive(wait=segments.LOCK_SECONDS):
                segments.rebuild()
                summaries.build(clock.team_today())
        else:
            for cid in sorted(self.touched):
                segments.refresh(figures.refresh(cid))
        responses.after_orders(sorted(self.touched))  # paid orders stop running sequences


_DAY_FIRST = re.compile(r"(\d{1,2})[./](\d{1,2})[./](\d{4})((?: \d{2}:\d{2}(?::\d{2})?)?)")


def _iso(raw: str) -> str:
    # `parse_datetime` tries ISO first and strptime's day-first formats after, five failed parses
    # per Russian-style date; rewritten as ISO, a million rows stay on the fast path.
    match = _DAY_FIRST.fullmatch(raw)
    if match is None:
        return raw
    day, month, year, time = match.groups()
    return f"{year}-{int(month):02d}-{int(day):02d}{time}"


def _items(name: str, category: str | None, quantity: str | None) -> list[dict]:
    # One list per distinct product line, shared by the rows that have it (see `_Orders.insert`).
    item = {"name": name[:200], "quantity": _quantity(quantity)}
    if category:
        item["category"] = category[:120]
    return [item]


def _quantity(raw: str | None) -> int | float:
    if not raw:
        return 1
    try:
        value = Decimal(raw.replace(",", "."))
    except InvalidOperation:
        value = Decimal(0)
    if not value.is_finite() or value <= 0 or value > 10**6:
        raise FieldError("quantity", str(_l("Quantity must be a positive number.")))
    return int(value) if value == value.to_integral_value() else float(value)


def field_labels(kind: ImportKind) -> dict[str, str]:
    """Return {field: label} for the fields of this kind of file."""
    return {key: spec.label for key, spec in FIELDS[kind].items()}
