"""The owner's page to add team members, change their role and deactivate them."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length

from crm import accounts
from crm.extensions import db, htmx
from crm.models import Role, User
from crm.web.access import owner_only
from crm.web.forms import attach_error, select_choices

bp = Blueprint("users", __name__, url_prefix="/settings/users")

ROLE_CHOICES = [(Role.MANAGER.value, _l("Manager")), (Role.OWNER.value, _l("Owner"))]


class NewUserForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Initial password"), validators=[DataRequired()])
    role = SelectField(_l("Role"), choices=select_choices(ROLE_CHOICES), default=Role.MANAGER.value)
    locale = SelectField(_l("Language"))


def _new_user_form() -> NewUserForm:
    form = NewUserForm()
    form.locale.choices = select_choices(current_app.config["LANGUAGES"].items())
    return form


def _team() -> list[User]:
    return list(db.session.scalars(db.select(User).order_by(User.active.desc(), User.name)))


def _user_or_404(user_id: int) -> User:
    return db.session.get(User, user_id) or abort(404)


@bp.get("/")
@owner_only
def index():
    """List the team with a form to add a member."""
    return render_template("users/index.html", users=_team(), form=_new_user_form(), roles=ROLE_CHOICES)


@bp.post("/")
@owner_only
def create():
    """Add a team member."""
    form = _new_user_form()
    if form.validate_on_submit():
        try:
            user = accounts.create_user(form.email.data, form.name.data, form.password.data, form.role.data,
                                        form.locale.data)
        except accounts.AccountError as error:
            attach_error(form, error)
        else:
            db.session.commit()
            return render_template("users/index.html", users=_team(), form=_new_user_form(), roles=ROLE_CHOICES,
                                   added=user.email)
    return render_template("users/index.html", users=_team(), form=form, roles=ROLE_CHOICES), 422


def _update(user_id: int, change) -> tuple[str, int]:
    user = _user_or_404(user_id)
    error = None
    try:
        change(user)
    except accounts.AccountError as exc:
        db.session.rollback()
        error = exc.message
    else:
        db.session.commit()
    status = 422 if error else 200
    if htmx:
        return render_template("users/_row.html", user=user, roles=ROLE_CHOICES, error=error), status
    return render_template("users/index.html", users=_team(), form=_new_user_form(), roles=ROLE_CHOICES,
                           error=error), status


@bp.post("/<int:user_id>/role")
@owner_only
def change_role(user_id: int):
    """Give a team member another role."""
    _user_or_404(user_id)  # a missing user is 404 whatever the form says
    role = request.form.get("role", "")
    if role not in {r.value for r in Role}:
        abort(400)
    return _update(user_id, lambda user: accounts.change_role(user, role, current_user))


@bp.post("/<int:user_id>/active")
@owner_only
def set_active(user_id: int):
    """Deactivate or reactivate a team member."""
    active = request.form.get("active") == "1"
    return _update(user_id, lambda user: accounts.set_active(user, active, current_user))
