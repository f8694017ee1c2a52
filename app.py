"""The web entry: `flask --app app ...` and `gunicorn app:app` both take `app` from here."""

import gc

from crm import create_app

app = create_app()

# Everything loaded so far (the app, its templates' modules, SQLAlchemy's mappers) lives as long as
# the process: move it out of the collector's reach, so full collections stop walking it on every
# request. Measured on the call-back queue: 200-row page p95 176-214 -> 122-131 ms (bench/callbacks.py).
gc.freeze()
