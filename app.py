"""The web entry: `flask --app app ...` and `gunicorn app:app` both take `app` from here."""

from crm import create_app

app = create_app()
