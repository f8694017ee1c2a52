"""What customers and gateways reach without signing in: the tracked link, the unsubscribe page,
and the inbound hooks for replies and bounces. Each is authorised by what it carries (a signed
token, a shared secret), never by a session, so CSRF does not apply; errors say nothing about
what exists."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request

from crm import channels, links, responses
from crm.extensions import csrf, db, limiter
from crm.hook_secrets import valid
from crm.models import Message
from crm.web.access import public

bp = Blueprint("public", __name__)
csrf.exempt(bp)
MAX_HOOK_BODY = 64 * 1024
MAX_FORM_BODY = 16 * 1024  # the unsubscribe form posts a field or two


@bp.before_request
def _limit_body():
    """Cap the body a public endpoint reads."""
    # Anyone can post here, so cap what is read: Werkzeug answers 413 to a longer Content-Length
    # and stops reading a chunked body (no length to check up front) at the cap. The hook's cap is
    # one byte past its limit, so that a body over the limit can be told from one just at it.
    request.max_content_length = MAX_HOOK_BODY + 1 if request.endpoint == "public.inbound" else MAX_FORM_BODY


def _message(purpose: str, token: str) -> Message:
    ident = links.message_id(purpose, token)
    message = db.session.get(Message, ident) if ident else None
    if message is None:
        abort(404)
    return message


@bp.get("/l/<token>")
@public
@limiter.limit("60 per minute")
def click(token: str):
    """A customer opened the tracked link: that is an answer; on to where the link leads."""
    message = _message(links.CLICK, token)
    responses.click(message)
    db.session.commit()
    target = message.enrolment.sequence.link_url
    return redirect(target, 302) if target else render_template("public/thanks.html")


@bp.route("/u/<token>", methods=["GET", "POST"])
@public
@limiter.limit("30 per minute")
def unsubscribe(token: str):
    """GET asks to confirm (mail scanners open links; they must not unsubscribe anyone); POST does
    it, including the one-click POST mail programs send for the List-Unsubscribe header."""
    message = _message(links.UNSUBSCRIBE, token)
    label = channels.LABELS.get(message.channel or "", message.channel)
    if request.method == "POST":
        responses.unsubscribe(message, "one-click" if request.form.get("List-Unsubscribe") else "link")
        db.session.commit()
    return render_template("public/unsubscribe.html", token=token, channel_label=label,
                           done=request.method == "POST")


def _error(status: int, message: str, field_name: str | None = None):
    return jsonify(errors=[{"field": field_name, "message": message} if field_name else {"message": message}]), status


@bp.post("/hooks/inbound/<channel>")
@public
@limiter.limit("600 per minute")
def inbound(channel: str):
    """A reply (or a bounce report) from an SMS gateway, a Telegram bot or email forwarding:
    {"from": "...", "text": "..."} or {"from": "...", "bounce": true}, JSON or form-encoded."""
    if channel not in responses.INBOUND_KINDS:
        return _error(404, "Not found.")
    if not valid(channel, request.headers.get("X-Hook-Secret") or request.args.get("secret")):
        return _error(401, "A valid secret is required.")
    if (request.content_length or 0) > MAX_HOOK_BODY or len(request.get_data()) > MAX_HOOK_BODY:
        return _error(413, "The body is too large.")
    data = request.get_json(silent=True) if request.is_json else request.form
    if not isinstance(data, dict):
        return _error(400, "Send a JSON object or a form.")
    sender, text, bounce = data.get("from"), data.get("text"), data.get("bounce")
    if not isinstance(sender, str) or not sender.strip() or len(sender) > 320:
        return _error(422, "Give the sender's address, number or chat id.", "from")
    if text is not None and (not isinstance(text, str) or len(text) > 5000):
        return _error(422, "Text must be a string of at most 5000 characters.", "text")
    bounce = bounce in (True, "true", "1", 1, "hard")
    result = responses.inbound(channel, sender, text, current_app.config["TEAM_COUNTRY"], bounce=bounce)
    db.session.commit()
    return jsonify(result=result)
