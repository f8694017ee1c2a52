# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test install lint translations

$(VENV)/.runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime

## Migrate the SQLite database under instance/, seed demo data on the first run, start web + worker + Redis.
run: $(VENV)/.runtime
	APP_ENV=development $(PY) -m crm.devserver

## The whole test suite (starts its own Redis and PostgreSQL; drives Chromium for browser tests).
test: $(VENV)/.dev
	APP_ENV=testing $(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .

## Re-extract the messages and compile the catalogues after changing user-facing text.
translations: $(VENV)/.runtime
	$(VENV)/bin/pybabel extract -F babel.cfg -k _l -k lazy_pgettext:1c,2 -o crm/translations/messages.pot .
	$(VENV)/bin/pybabel update -i crm/translations/messages.pot -d crm/translations
	$(VENV)/bin/pybabel compile -d crm/translations
