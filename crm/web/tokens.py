"""The owner's page to create and revoke the API tokens that shops and tills post orders with."""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from crm import api_tokens
from crm.errors import FieldError
from crm.extensions import db, htmx
from crm.models import ApiToken
from crm.web.access import owner_only
from crm.web.forms import attach_error

bp = Blueprint("tokens", __name__, url_prefix="/settings/tokens")


class NewTokenForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=api_tokens.MAX_NAME)])


def _page(form: NewTokenForm | None = None, **extra):
    # An empty form unless one with errors is passed in: after a create, the name field starts blank.
    if form is None:
        form = NewTokenForm(formdata=None)
    return render_template("tokens/index.html", tokens=api_tokens.listing(), form=form, **extra)


@bp.get("/")
@owner_only
def index():
    """List the team's API tokens with a form to create one."""
    return _page()


@bp.post("/")
@owner_only
def create():
    """Create a token and show it in full, this once."""
    form = NewTokenForm()
    if form.validate_on_submit():
        try:
            token, plain = api_tokens.create_token(form.name.data, current_user)
        except FieldError as error:
            attach_error(form, error)
        else:
            db.session.commit()
            # Rendered, not redirected: a redirect would have to carry the token in the session cookie,
            # which is signed, not encrypted. no-store keeps it out of the browser's cache.
            return _page(created=token, plain=plain), 200, {"Cache-Control": "no-store"}
    return _page(form), 422


@bp.post("/<int:token_id>/revoke")
@owner_only
def revoke(token_id: int):
    """Revoke a token; requests carrying it are refused from now on."""
    token = db.session.get(ApiToken, token_id) or abort(404)
    api_tokens.revoke(token)
    db.session.commit()
    if htmx:
        return render_template("tokens/_row.html", token=token)
    return _page()
