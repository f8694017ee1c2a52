"""The owner's CSV import: upload, map the columns over a preview, then follow the run's progress."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from wtforms import SelectField, StringField
from wtforms.validators import Length

from crm import imports, tasks
from crm.errors import FieldError
from crm.extensions import db, htmx, redis
from crm.models import ImportKind, ImportRun, ImportState
from crm.web.access import owner_only
from crm.web.forms import attach_error, select_choices

# Under /settings with the other owner-only pages: an import writes to the whole base.
bp = Blueprint("imports", __name__, url_prefix="/settings/imports")

KIND_CHOICES = [(ImportKind.CUSTOMERS.value, _l("Customers")), (ImportKind.ORDERS.value, _l("Orders"))]
DELIMITER_CHOICES = [("semicolon", _l("Semicolon ;")), ("comma", _l("Comma ,")), ("tab", _l("Tab"))]
DELIMITER_NAMES = {char: name for name, char in imports.DELIMITERS.items()}
JOB_TIMEOUT = 4 * 3600


class UploadForm(FlaskForm):
    kind = SelectField(_l("The file holds"), choices=select_choices(KIND_CHOICES))
    file = FileField(_l("CSV file"), validators=[FileRequired(_l("Choose a CSV file."))])


def _mapping_form(run: ImportRun, header: list[str], fresh: bool = False) -> FlaskForm:
    """Build the form with one select per column, the guessed field preselected."""

    class MappingForm(FlaskForm):
        encoding = SelectField(_l("Encoding"), choices=select_choices(imports.ENCODINGS.items()), default=run.encoding)
        delimiter = SelectField(_l("Delimiter"), choices=select_choices(DELIMITER_CHOICES),
                                default=DELIMITER_NAMES.get(run.delimiter))

    if run.kind is ImportKind.ORDERS:
        MappingForm.source = StringField(_l("Source name"), validators=[Length(max=40)],
                                         default=run.mapping.get("source", imports.DEFAULT_SOURCE),
                                         description=_l("Orders with the same id and source are one order: "
                                                        "importing again updates them."))
    choices = [("", _l("— skip —")), *imports.field_labels(run.kind).items()]
    by_index = {index: key for key, index in run.mapping["columns"].items()}
    for index, name in enumerate(header):
        label = name or _l("Column %(n)d", n=index + 1)
        setattr(MappingForm, f"col_{index}", SelectField(label, choices=select_choices(choices),
                                                         default=by_index.get(index, "")))
    # A fresh form shows the guess even on a POST (after re-reading the file with other settings).
    return MappingForm(formdata=None) if fresh else MappingForm()


def _run_or_404(run_id: int) -> ImportRun:
    return db.session.get(ImportRun, run_id) or abort(404)


def _enqueue(run: ImportRun) -> None:
    redis.queue().enqueue(tasks.run_import, run.id, job_id=imports.job_id(run.id), job_timeout=JOB_TIMEOUT)


def _lost(run: ImportRun) -> bool:
    """Say whether a queued or running import has no live job (its worker died): it may be resumed."""
    if run.state not in (ImportState.QUEUED, ImportState.RUNNING):
        return False
    try:
        status = Job.fetch(imports.job_id(run.id), connection=redis.connection).get_status()
    except NoSuchJobError:
        return True
    except RedisError:
        return False  # cannot tell; say nothing rather than offer a second run beside a live one
    return status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED)


def _index(form: UploadForm, status: int = 200):
    return render_template("imports/page.html", form=form, runs=imports.recent()), status


def _run_page(run: ImportRun, form: FlaskForm | None = None, status: int = 200, message: str | None = None):
    if run.state is ImportState.MAPPING:
        header, rows = imports.preview(run)
        form = form or _mapping_form(run, header, fresh=True)
        return render_template("imports/run.html", run=run, form=form, header=header, rows=rows,
                               message=message), status
    return render_template("imports/run.html", run=run, lost=_lost(run),
                           labels=imports.field_labels(run.kind)), status


@bp.get("/")
@owner_only
def index():
    """List recent imports with a form to upload a new file."""
    return _index(UploadForm())


@bp.post("/")
@owner_only
def upload():
    """Store an uploaded CSV and show its columns for mapping."""
    form = UploadForm()
    if not form.validate_on_submit():
        return _index(form, 422)
    upload_file = form.file.data
    try:
        run = imports.start(ImportKind(form.kind.data), upload_file.filename, upload_file.read(), current_user)
    except FieldError as error:
        attach_error(form, error)
        return _index(form, 422)
    db.session.commit()
    return redirect(url_for("imports.show", run_id=run.id))


@bp.get("/<int:run_id>")
@owner_only
def show(run_id: int):
    """Show a run: the mapping form before it starts, its progress and errors after."""
    return _run_page(_run_or_404(run_id))


@bp.post("/<int:run_id>")
@owner_only
def confirm(run_id: int):
    """Start the import with the chosen columns, or re-read the file with another encoding or delimiter."""
    run = _run_or_404(run_id)
    if run.state is not ImportState.MAPPING:
        return redirect(url_for("imports.show", run_id=run.id))
    header, _ = imports.preview(run)
    form = _mapping_form(run, header)
    if not form.validate_on_submit():
        return _run_page(run, form, 422)
    delimiter = imports.DELIMITERS[form.delimiter.data]
    if (form.encoding.data, delimiter) != (run.encoding, run.delimiter):
        try:
            imports.reread(run, form.encoding.data, delimiter)
        except FieldError as error:
            attach_error(form, error)
            return _run_page(run, form, 422)
        db.session.commit()
        return _run_page(run, message=_l("The file was read again; check the columns."))
    chosen = [form[f"col_{index}"].data or None for index in range(len(header))]
    source = form.source.data if run.kind is ImportKind.ORDERS else None
    try:
        imports.confirm(run, chosen, source)
    except FieldError as error:
        attach_error(form, error)
        return _run_page(run, form, 422)
    db.session.commit()
    _enqueue(run)
    return redirect(url_for("imports.show", run_id=run.id))


@bp.get("/<int:run_id>/status")
@owner_only
def status(run_id: int):
    """Return the run's progress: the fragment htmx polls, or the whole page."""
    run = _run_or_404(run_id)
    if htmx:
        return render_template("imports/_status.html", run=run, lost=_lost(run),
                               labels=imports.field_labels(run.kind))
    return _run_page(run)


@bp.post("/<int:run_id>/resume")
@owner_only
def resume(run_id: int):
    """Run a failed or stalled import again from the first row it had not processed."""
    run = _run_or_404(run_id)
    if run.state is not ImportState.FAILED and not _lost(run):
        return redirect(url_for("imports.show", run_id=run.id))
    imports.requeue(run)
    db.session.commit()
    _enqueue(run)
    return redirect(url_for("imports.show", run_id=run.id))
