"""A user's own settings: language and password."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField
from wtforms.validators import DataRequired

from crm import accounts
from crm.extensions import db
from crm.web.forms import attach_error, select_choices

bp = Blueprint("account", __name__, url_prefix="/account")


class LanguageForm(FlaskForm):
    locale = SelectField(_l("Language"))


class PasswordForm(FlaskForm):
    current = PasswordField(_l("Current password"), validators=[DataRequired()])
    password = PasswordField(_l("New password"), validators=[DataRequired()])


def _forms():
    language = LanguageForm(prefix="lang", data={"locale": current_user.locale})
    language.locale.choices = select_choices(current_app.config["LANGUAGES"].items())
    return language, PasswordForm(prefix="pw")


@bp.get("/")
def show():
    """Show the user's language and password forms."""
    language, password = _forms()
    return render_template("account/page.html", language=language, password=password)


@bp.post("/language")
def language():
    """Switch the language this user sees."""
    language, password = _forms()
    if language.validate_on_submit():
        try:
            accounts.set_locale(current_user, language.locale.data, current_app.config["LANGUAGES"])
        except accounts.AccountError as error:
            attach_error(language, error)
        else:
            db.session.commit()
            return redirect(url_for("account.show"))
    return render_template("account/page.html", language=language, password=password), 422


@bp.post("/password")
def password():
    """Change the password; other sessions of this user end."""
    language, password = _forms()
    if password.validate_on_submit():
        if not current_user.check_password(password.current.data):
            password.current.errors = [_("The current password is incorrect.")]
        else:
            try:
                accounts.check_password_strength(password.password.data)
            except accounts.AccountError as error:
                attach_error(password, error)
            else:
                user = current_user._get_current_object()
                user.set_password(password.password.data)
                db.session.commit()
                # The token rotated: sign this browser in again under the new one.
                login_user(user)
                flash(_("Your password is changed."), "success")
                return redirect(url_for("account.show"))
    return render_template("account/page.html", language=language, password=password), 422
