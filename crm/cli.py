"""`flask ...` commands for owners and operators: accounts, demo data and CSV imports."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from crm import accounts, delivery, demo, dispatch, imports, lapsed
from crm.errors import FieldError
from crm.extensions import db
from crm.models import ImportKind, Message, MessageState, Role

users_cli = AppGroup("users", help="Manage team accounts.")
demo_cli = AppGroup("demo", help="Demo data for a first look.")
customers_cli = AppGroup("customers", help="Customers and their orders in bulk.")
sequences_cli = AppGroup("sequences", help="Reactivation sequences.")


@users_cli.command("create-owner")
@click.argument("email")
@click.option("--name", prompt=True, help="The owner's display name.")
@click.password_option(help="Asked for when not given (keeps it out of the shell history).")
@click.option("--locale", type=click.Choice(["en", "ru"]), default="en", show_default=True)
def create_owner(email: str, name: str, password: str, locale: str) -> None:
    """Create an owner account (the first one, or another)."""
    try:
        user = accounts.create_user(email, name, password, Role.OWNER, locale)
    except accounts.AccountError as error:
        raise click.UsageError(f"{error.field}: {error.message}") from error
    db.session.commit()
    click.echo(f"Owner {user.email} created.")


@demo_cli.command("seed")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database already has users.")
@click.option("--customers", type=click.IntRange(min=0), default=demo.FIRST_RUN_CUSTOMERS, show_default=True,
              help="Customers to add, with their orders and timeline (0: the demo accounts only).")
@click.option("--locale", type=click.Choice(sorted(demo.LOCALES)), default=None,
              help="Names, cities, products and phone numbers of this locale [default: DEFAULT_LOCALE, else en].")
@click.option("--seed", "random_seed", type=int, default=None, help="Random seed, to make the same base again.")
def seed(if_empty: bool, customers: int, locale: str | None, random_seed: int | None) -> None:
    """Create the demo accounts and a demo customer base."""
    if if_empty and demo.has_users():
        click.echo("The database has users already; demo data not seeded.")
        return
    locale = locale or demo.default_locale(current_app.config.get("BABEL_DEFAULT_LOCALE"))

    def progress(done: int) -> None:
        if done % 100_000 == 0:
            click.echo(f"  {done:,} / {customers:,} customers", err=True)

    report = demo.seed(customers, locale, random_seed, progress=progress)
    click.echo(f"Demo accounts created: {report.users_created}. Customers: {report.customers:,} ({locale}), "
               f"orders: {report.orders:,}, seed {report.seed}, in {report.seconds:.1f}s "
               f"(writing {report.writing:.1f}s, figures {report.figures:.1f}s).")


def _delimiter(_ctx, _param, value: str | None) -> str | None:
    if value is None or value in imports.DELIMITERS.values():
        return value
    if value not in imports.DELIMITERS:
        raise click.BadParameter(f"use one of {', '.join(imports.DELIMITERS)} (or the character itself)")
    return imports.DELIMITERS[value]


@customers_cli.command("import")
@click.argument("kind", type=click.Choice([kind.value for kind in ImportKind]))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--map", "maps", multiple=True, metavar="COLUMN=FIELD",
              help="What a column (its name or 1-based number) holds, over the guess from its name; "
                   "an empty FIELD skips it. Repeat for more columns.")
@click.option("--encoding", type=click.Choice(sorted(imports.ENCODINGS)),
              help="Default: UTF-8 when the file is UTF-8, else Windows-1251.")
@click.option("--delimiter", callback=_delimiter, help="semicolon, comma or tab. Default: detected.")
@click.option("--source", default=imports.DEFAULT_SOURCE, show_default=True,
              help="Orders: the system the order ids come from; the same id and source is the same order.")
def import_csv(kind: str, file: Path, maps: tuple[str, ...], encoding: str | None, delimiter: str | None,
               source: str) -> None:
    """Import customers or orders from a CSV file, here rather than in the worker."""
    fields = imports.FIELDS[ImportKind(kind)]
    overrides = {}
    for item in maps:
        column, equals, field_name = item.partition("=")
        if not equals:
            raise click.BadParameter(f"{item!r}: use COLUMN=FIELD, FIELD one of {', '.join(fields)}",
                                     param_hint="--map")
        overrides[column.strip()] = field_name.strip()
    try:
        run = imports.start(ImportKind(kind), file.name, file.read_bytes(), None, encoding, delimiter)
        imports.confirm(run, imports.remap(run, overrides), source)
    except FieldError as error:
        raise click.UsageError(f"{error.message} (fields: {', '.join(fields)})") from error
    db.session.commit()
    try:
        run = imports.execute(run.id, imports.Settings.from_config(current_app.config))
    except Exception as error:
        raise click.ClickException(f"Import {run.id} failed after {run.processed_rows} rows ({error}); "
                                   "resume it from the imports page.") from error
    lapsed.forget_exclusion_counts()
    click.echo(f"Import {run.id}: {run.processed_rows} rows; created {run.created}, updated {run.updated}, "
               f"unchanged {run.unchanged}, rows with errors {run.error_count}.")
    for error in run.errors[:20]:
        where = f"{error['field']}: " if error["field"] else ""
        click.echo(f"  line {error['line']}: {where}{error['reason']}", err=True)


def _moment(_ctx, _param, value: str | None):
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("use an ISO time, e.g. 2026-12-24T10:00 or 2026-12-24T10:00+03:00") from None
    return moment.replace(tzinfo=moment.tzinfo or UTC)


@sequences_cli.command("run-due")
@click.option("--now", callback=_moment, help="Dispatch as of this ISO time (UTC unless it has an offset).")
@click.option("--deliver", is_flag=True, help="Send the messages here and now instead of through the worker.")
def run_due(now: datetime | None, deliver: bool) -> None:
    """One dispatch pass: due steps become messages (and send jobs, or sends with --deliver)."""
    report = dispatch.run_due(now, send=not deliver)
    sent = {}
    if deliver:
        ids = list(db.session.scalars(select(Message.id).where(Message.state == MessageState.QUEUED)
                                      .order_by(Message.id)))
        sent = dict(delivery.send_batch(ids).counts)
    click.echo(f"queued {report.queued}, skipped {report.skipped}, deferred {report.deferred}, "
               f"stopped {report.stopped}, finished {report.finished}, requeued {report.requeued}, "
               f"uncertain {report.uncertain}, send jobs {report.jobs}"
               + (f"; delivered: {', '.join(f'{k} {v}' for k, v in sorted(sent.items())) or 'nothing'}"
                  if deliver else ""))


def register_cli(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(customers_cli)
    app.cli.add_command(sequences_cli)
