"""`flask ...` commands for owners and operators: accounts and demo data."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from crm import accounts, demo
from crm.extensions import db
from crm.models import Role

users_cli = AppGroup("users", help="Manage team accounts.")
demo_cli = AppGroup("demo", help="Demo data for a first look.")


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
def seed(if_empty: bool) -> None:
    """Create the demo accounts."""
    if if_empty and demo.has_users():
        click.echo("The database has users already; demo data not seeded.")
        return
    created = demo.seed_users()
    db.session.commit()
    click.echo(f"Demo accounts created: {len(created)}.")


def register_cli(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(demo_cli)
