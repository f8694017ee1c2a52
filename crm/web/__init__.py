"""The browser-facing part: blueprints, the access check, security headers and error pages."""

from __future__ import annotations

from flask import Flask, render_template, request
from flask_babel import format_date, format_datetime, format_number, get_locale
from flask_wtf.csrf import CSRFError, generate_csrf
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from crm.ids import MAX_ID


def register_web(app: Flask) -> None:
    from crm.web import (
        access,
        account,
        api,
        auth,
        callbacks,
        customers,
        dashboard,
        formatting,
        funnel,
        health,
        imports,
        inactive,
        lapsed,
        public,
        reports,
        segments,
        sequences,
        settings,
        tokens,
        users,
    )

    # An id in a URL beyond what the database holds is a 404, not an overflow deep in the driver
    # (set before the blueprints: rules take their converters when added).
    app.url_map.converters["int"] = _BoundedInt
    for module in (auth, account, dashboard, customers, funnel, segments, lapsed, callbacks, settings, health, users,
                   tokens, api, imports, public, inactive, sequences, reports):
        app.register_blueprint(module.bp)

    app.before_request(access.enforce)
    app.after_request(_security_headers)
    app.context_processor(_template_globals)
    app.jinja_env.filters.update(date=format_date, datetime=format_datetime, money=_money, number=format_number,
                                 phone=_phone, percent=formatting.percent)

    for code in (400, 403, 404, 405, 413, 429, 500):
        app.register_error_handler(code, _error_page)
    app.register_error_handler(CSRFError, _error_page)


class _BoundedInt(IntegerConverter):
    def to_python(self, value: str) -> int:
        number = super().to_python(value)
        if number > MAX_ID:
            raise NotFound()
        return number


def _money(minor_units: int | None, currency: str | None = None) -> str:
    from flask import current_app

    from crm.web import formatting

    if minor_units is None:
        return ""
    return formatting.money(minor_units, currency or current_app.config["TEAM_CURRENCY"], str(get_locale()))


def _phone(e164: str | None) -> str:
    from crm.web import formatting

    return formatting.phone(e164) if e164 else ""


def _has_endpoint(endpoint: str) -> bool:
    from flask import current_app

    return endpoint in current_app.view_functions


def _template_globals() -> dict:
    from flask import current_app

    return {"csrf_token": generate_csrf, "get_locale": get_locale, "languages": current_app.config["LANGUAGES"],
            "has_endpoint": _has_endpoint}


# htmx needs neither inline script nor eval (includeIndicatorStyles and allowEval are off in
# base.html), so the policy can forbid both. Pico's icons are data: URIs in its stylesheet.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'self'; object-src 'none'"
)


def _security_headers(response):
    from flask import current_app

    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if current_app.config["APP_ENV"] == "production":
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    # The same URL renders a page or a fragment depending on HX-Request; caches must keep both.
    response.vary.add("HX-Request")
    return response


def _error_page(error):
    code = getattr(error, "code", 500) or 500
    if request.path.startswith("/api/"):
        # API clients get JSON whatever went wrong, even before a blueprint was matched.
        from flask import jsonify

        return jsonify(errors=[{"message": getattr(error, "name", "Error")}]), code
    template = "errors/_message.html" if request.headers.get("HX-Request") else "errors/page.html"
    return render_template(template, code=code, csrf=isinstance(error, CSRFError)), code
