"""The settings page: segmentation settings saved or refused on the field, and the rebuild started
from the page on a real worker, with its lock and progress."""

from __future__ import annotations

import subprocess
import sys

from crm import segments, settings
from crm.extensions import db, redis
from crm.models import Customer
from tests.conftest import csrf_from
from tests.factories import customer, order, utc
from tests.runtime import ROOT, host_env

VALID = {"business_type": "weekly", "lapsing_days": "21", "lapsed_days": "60", "lapsing_factor": "1.5",
         "lapsed_factor": "3", "rfm_mode": "fixed", "r3_days": "14", "r2_days": "60", "f2_orders": "2",
         "f3_orders": "6", "m2_amount": "1000.00", "m3_amount": "5000.50", "group_champions": "Stars"}


def _post(client, **changes):
    token = csrf_from(client.get("/settings").text)
    return client.post("/settings/segmentation", data={**VALID, **changes, "csrf_token": token})


def test_owner_saves_segmentation_settings(app, owner_client):
    response = _post(owner_client)
    assert response.status_code == 200 and "Saved." in response.text
    with app.app_context():
        saved = settings.load()
    assert (saved.business_type, saved.lapsing_days, saved.rfm_mode, saved.m3_amount) == ("weekly", 21, "fixed", 500050)
    assert saved.group_name("champions") == "Stars" and saved.group_name("lost") == "Lost"


def test_unworkable_settings_are_refused_on_the_field_and_nothing_is_saved(app, owner_client):
    response = _post(owner_client, lapsing_factor="2", lapsed_factor="1.8")
    assert response.status_code == 422
    assert 'id="lapsed_factor-error"' in response.text and "above the lapsing one" in response.text
    assert _post(owner_client, lapsed_days="abc").status_code == 422
    assert "Must be more than" in _post(owner_client, m2_amount="10", m3_amount="5").text
    # Values that would break the nightly rebuild later are refused now.
    assert 'id="m3_amount-error"' in _post(owner_client, m3_amount="Infinity").text
    assert 'id="m3_amount-error"' in _post(owner_client, m3_amount="1e30").text
    assert 'id="f3_orders-error"' in _post(owner_client, f3_orders="100000000000000000000").text
    assert 'id="lapsing_factor-error"' in _post(owner_client, lapsing_factor="nan").text
    with app.app_context():
        assert settings.load() == settings.Segmentation()


def test_business_type_defaults_can_be_applied(app, owner_client):
    _post(owner_client, business_type="yearly", apply_business_type="1")
    with app.app_context():
        assert (settings.load().lapsing_days, settings.load().lapsed_days) == (450, 730)


def test_managers_cannot_open_or_change_settings(manager_client):
    assert manager_client.get("/settings").status_code == 403
    assert manager_client.post("/settings/rebuild").status_code in (400, 403)


def test_rebuild_from_the_page_runs_on_the_worker(app, owner_client, redis_url):
    with app.app_context():
        c = customer("Anna")
        order(c, utc(2020, 1, 1), "100.00")
        c.stage_id = None
        db.session.commit()
        ident = c.id
    token = csrf_from(owner_client.get("/settings").text)
    started = owner_client.post("/settings/rebuild", data={"csrf_token": token}, headers={"HX-Request": "true"})
    assert "<progress" in started.text and 'hx-trigger="every 1s"' in started.text
    # A second click while it is queued starts nothing.
    again = owner_client.post("/settings/rebuild", data={"csrf_token": token}, headers={"HX-Request": "true"})
    assert "already running" in again.text
    env = host_env(APP_ENV="testing", SECRET_KEY="s", DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
                   REDIS_URL=redis_url, INSTANCE_PATH=app.config["INSTANCE_DIR"])
    result = subprocess.run([sys.executable, "worker.py", "--burst"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    done = owner_client.get("/settings/rebuild", headers={"HX-Request": "true"})
    assert "<progress" not in done.text and "Last rebuild:" in done.text
    with app.app_context():
        assert db.session.get(Customer, ident).lapse.value == "lapsed"


def test_a_rebuild_is_refused_while_another_holds_the_lock(app, owner_client):
    with app.app_context(), segments.exclusive():
        assert segments.rebuild_running()
        token = csrf_from(owner_client.get("/settings").text)
        response = owner_client.post("/settings/rebuild", data={"csrf_token": token}, headers={"HX-Request": "true"})
        assert "already running" in response.text
        try:
            with segments.exclusive():
                raise AssertionError("a second holder got the lock")
        except segments.RebuildRunning:
            pass
        assert redis.queue().count == 0
