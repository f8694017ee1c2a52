"""Channels: the Apprise URLs messages go out through, and one send.

The owner keeps one or more Apprise URLs per channel with the recipient as a placeholder
(`mailtos://user:pass@smtp.host?from=shop@x.com&to={email}`, `tgram://TOKEN/{telegram}`,
`json://gateway/sms/{phone}`), in Settings or in `CHANNEL_<NAME>_URLS` for hosts that keep
secrets in the environment (those win). URLs are shown back only through Apprise's privacy mask.

Each message is sent through plugin objects built for it alone: Apprise throttles repeated sends
through one plugin instance (5.5 s for email by default), and a fresh instance has no history to
wait for, so a worker can run many sends at once. The outcome is kept per URL, with Apprise's own
log lines (captured per thread, secrets scrubbed) telling a permanent refusal from a passing fault.
"""

from __future__ import annotations

import functools
import logging
import re
import smtplib
import ssl
import threading
from dataclasses import asdict, dataclass
from urllib.parse import parse_qsl, quote, urlsplit

import apprise
from apprise.plugins.email import smtp as apprise_smtp
from apprise.plugins.email.base import NotifyEmail
from flask import current_app
from flask_babel import lazy_gettext as _l

from crm import settings
from crm.errors import FieldError
from crm.models import ContactKind
from crm.settings import CHANNELS, Messaging

PLACEHOLDERS = {"email": "{email}", "sms": "{phone}", "telegram": "{telegram}", "whatsapp": "{phone}"}
# The contacts a channel can use, best first.
CONTACT_KINDS = {
    "email": (ContactKind.EMAIL,),
    "sms": (ContactKind.PHONE,),
    "telegram": (ContactKind.TELEGRAM,),
    "whatsapp": (ContactKind.WHATSAPP, ContactKind.PHONE),
}
LABELS = {"email": _l("Email"), "sms": _l("SMS"), "telegram": _l("Telegram"), "whatsapp": _l("WhatsApp")}
SAMPLE = {"email": "someone@example.com", "sms": "+15550100", "telegram": "123456789", "whatsapp": "+15550100"}
_SECRET_KEYS = re.compile(r"pass|token|key|secret|auth|sid|pwd", re.I)


# --- configuration -------------------------------------------------------------------------------

def split_urls(raw: str | None) -> list[str]:
    """URLs one per line (or space-separated); lines starting with # are comments."""
    return [url for line in (raw or "").splitlines() if not line.strip().startswith("#") for url in line.split()]


def from_environment(channel: str) -> bool:
    return channel in current_app.config["CHANNEL_URLS"]


def urls(channel: str, messaging: Messaging | None = None) -> list[str]:
    """The channel's URL templates: the environment's when set, else the Settings'."""
    if from_environment(channel):
        return split_urls(current_app.config["CHANNEL_URLS"][channel])
    messaging = messaging or settings.load(Messaging)
    return split_urls(messaging.urls.get(channel))


def configured(messaging: Messaging | None = None) -> list[str]:
    messaging = messaging or settings.load(Messaging)
    return [channel for channel in CHANNELS if urls(channel, messaging)]


def for_recipient(template: str, channel: str, recipient: str) -> str:
    """Put the recipient into a URL template, quoted so an odd address cannot change the URL."""
    return template.replace(PLACEHOLDERS[channel], quote(recipient, safe="@"))


@functools.lru_cache(maxsize=256)
def masked(template: str, channel: str) -> str:
    """The URL as it may be shown: Apprise's privacy form, or only its scheme when unreadable.
    Kept per template: every message sent names its URL, and building it costs an Apprise plugin."""
    plugin = apprise.Apprise.instantiate(for_recipient(template, channel, SAMPLE[channel]))
    if plugin is None:
        return template.split("://", 1)[0] + "://…"
    shown = plugin.url(privacy=True)
    for form in (SAMPLE[channel], quote(SAMPLE[channel], safe=""), quote(SAMPLE[channel], safe="@")):
        shown = shown.replace(form, PLACEHOLDERS[channel])
    return shown


def check_urls(channel: str, raw: str) -> str:
    """Return the URLs one per line, or raise FieldError naming the first that Apprise cannot read."""
    lines = split_urls(raw)
    for number, template in enumerate(lines, 1):
        if apprise.Apprise.instantiate(for_recipient(template, channel, SAMPLE[channel])) is None:
            raise FieldError(f"urls_{channel}", str(_l("Line %(n)s is not an Apprise URL this server can use.",
                                                        n=number)))
    return "\n".join(lines)


def from_form(messaging: Messaging, typed: dict) -> tuple[Messaging, dict[str, str]]:
    """The settings as the channels form changes them, and every refusal by field (all at once, so
    the owner fixes them in one go). A channel set in the environment is not changed here; an empty
    field keeps the current URLs unless "remove" is ticked. A message's cost is typed in major units
    of the team's currency ("0.05"); an empty cost clears it, a cost not posted at all is kept."""
    urls, errors = dict(messaging.urls), {}
    costs = _costs_from_form(messaging.costs, typed, errors)
    for channel in CHANNELS:
        raw = typed.get(f"urls_{channel}", "")
        if from_environment(channel):
            continue
        if raw.strip():
            if len(raw) > settings.MAX_URLS_LENGTH:
                errors[f"urls_{channel}"] = str(_l("Keep it under %(max)s characters.", max=settings.MAX_URLS_LENGTH))
                continue
            try:
                urls[channel] = check_urls(channel, raw)
            except FieldError as error:
                errors[error.field] = error.message
        elif typed.get(f"remove_{channel}"):
            urls.pop(channel, None)
    cap = typed.get("weekly_cap", "")
    if not (cap.isascii() and cap.isdigit()) or len(cap) > 3:
        errors["weekly_cap"] = str(_l("Enter a number of messages from 1 to %(max)s.", max=50))
    if errors:
        return messaging, errors
    changed = Messaging(urls={c: u for c, u in urls.items() if u}, fallback=tuple(typed.get("fallback", ())),
                        weekly_cap=int(cap), costs=costs)
    try:
        return changed.validate(), {}
    except FieldError as error:
        return messaging, {error.field: error.message}


def _costs_from_form(current: dict[str, int], typed: dict, errors: dict[str, str]) -> dict[str, int]:
    # Imported here: crm.orders leads through crm.responses and crm.enrolment back to this module.
    from crm.orders import parse_amount

    costs = dict(current)
    for channel in CHANNELS:
        raw = typed.get(f"cost_{channel}")
        if raw is None:
            continue
        try:
            minor = parse_amount(raw, current_app.config["TEAM_CURRENCY"], f"cost_{channel}") if raw.strip() else 0
        except FieldError as error:
            errors[error.field] = error.message
            continue
        if minor:
            costs[channel] = minor
        else:
            costs.pop(channel, None)
    return costs


# --- sending ---------------------------------------------------------------------------------------

@dataclass
class Outcome:
    url: str  # masked
    ok: bool
    error: str | None = None
    permanent: bool = False  # refused for good (5xx from SMTP, 4xx from HTTP): retrying will not help
    unanswered: bool = False  # the whole email was handed over, then no reply: the server may have taken it

    def as_dict(self) -> dict:
        return asdict(self)


_captured = threading.local()


class _Capture(logging.Handler):
    """Keeps Apprise's log lines for the send running on this thread (see `send`)."""

    def emit(self, record: logging.LogRecord) -> None:
        lines = getattr(_captured, "lines", None)
        if lines is not None:
            lines.append(record.getMessage())


_apprise_log = logging.getLogger("apprise")
_apprise_log.setLevel(logging.DEBUG)
_apprise_log.propagate = False  # its lines can hold addresses; they reach the message row only, scrubbed
_apprise_log.addHandler(_Capture())


def _prepare_with_stable_id(prepare):
    """Apprise adds a fresh Message-ID after the caller's headers; keep the caller's one only,
    so a retried email is recognisably the same message to the receiving side."""

    def prepare_emails(*args, **kwargs):
        wanted = (kwargs.get("headers") or {}).get("Message-ID")
        for message in prepare(*args, **kwargs):
            if wanted:
                head, sep, rest = message.body.partition("\n\n")
                kept, seen = [], False
                for line in head.split("\n"):
                    if line.lower().startswith("message-id:"):
                        if seen:
                            continue
                        seen = True
                    kept.append(line)
                message.body = "\n".join(kept) + sep + rest
            yield message

    prepare_emails.crm_stable_id = True
    return staticmethod(prepare_emails)


if not getattr(NotifyEmail.prepare_emails, "crm_stable_id", False):
    NotifyEmail.prepare_emails = _prepare_with_stable_id(NotifyEmail.prepare_emails)


class _SharedTls:
    """Stands in for `ssl.create_default_context()` in Apprise's SMTP controller, which builds (and
    loads the CA store into) a new context for every email, even over plain SMTP: most of an email's
    CPU time. Two shared contexts serve instead, a verifying one and, once the controller turns
    verification off, a non-verifying one; both are made once per process and only read after."""

    _made: dict[bool, ssl.SSLContext] = {}
    _lock = threading.Lock()

    def __init__(self):
        object.__setattr__(self, "_verify", True)

    def _context(self) -> ssl.SSLContext:
        with self._lock:
            if self._verify not in self._made:
                context = ssl.create_default_context()
                if not self._verify:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                self._made[self._verify] = context
            return self._made[self._verify]

    def __setattr__(self, name, value):
        if (name, value) in (("check_hostname", False), ("verify_mode", ssl.CERT_NONE)):
            object.__setattr__(self, "_verify", False)
        elif getattr(self._context(), name) != value:
            raise AttributeError(f"shared TLS context: {name} cannot change")

    def __getattr__(self, name):
        return getattr(self._context(), name)


class _SslForApprise:
    def __getattr__(self, name):
        return _SharedTls if name == "create_default_context" else getattr(ssl, name)


apprise_smtp.ssl = _SslForApprise()


class _Unanswered:
    """For Apprise's SMTP connections: notes on this thread when an email's whole content went out
    after DATA and no reply came back (connection dropped, timeout). The server may have queued it
    then, so sending it again risks a second copy: the message is uncertain, not a passing failure
    (a drop before the end of the content, or any reply, leaves the usual verdicts)."""

    def send(self, s):
        super().send(s)
        if isinstance(s, bytes) and s.endswith(b"\r\n.\r\n"):  # smtplib's data(): the content and its end
            _captured.unanswered = True

    def getreply(self):
        reply = super().getreply()
        _captured.unanswered = False
        return reply


class _SMTP(_Unanswered, smtplib.SMTP):
    pass


class _SMTPS(_Unanswered, smtplib.SMTP_SSL):
    pass


class _SmtplibForApprise:
    def __getattr__(self, name):
        return {"SMTP": _SMTP, "SMTP_SSL": _SMTPS}.get(name) or getattr(smtplib, name)


apprise_smtp.smtplib = _SmtplibForApprise()


def warm_up() -> None:
    """Load Apprise's plugins and make the TLS contexts once in the worker's parent process, so the
    work horses forked for each job inherit them instead of paying ~0.25 s each."""
    for url in ("json://localhost/warm", "mailto://localhost?from=warm@example.com&to=warm@example.com"):
        apprise.Apprise.instantiate(url)
    for verify in (True, False):
        shared = _SharedTls()
        if not verify:
            shared.verify_mode = ssl.CERT_NONE
        shared._context()


def _secrets_of(url: str) -> list[str]:
    parts = urlsplit(url)
    found = [parts.password or "", parts.username or ""]
    found += [value for key, value in parse_qsl(parts.query) if _SECRET_KEYS.search(key)]
    found += [segment for segment in parts.path.split("/") if len(segment) >= 20]  # bot tokens and the like
    return [secret for secret in found if len(secret) >= 4]


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "•••").replace(quote(secret, safe=""), "•••")
    return text[:300]


_SMTP_CODE = re.compile(r"\((\d{3}),")
_HTTP_CODE = re.compile(r"error code (\d{3})")


def _permanent(lines: list[str]) -> bool:
    for line in lines:
        for code in _SMTP_CODE.findall(line):
            if code.startswith("5"):
                return True
        for code in _HTTP_CODE.findall(line):
            if code.startswith("4") and code not in ("408", "429"):
                return True
    return False


def send(channel: str, recipient: str, title: str, body: str, *, headers: dict | None = None,
         templates: list[str] | None = None) -> list[Outcome]:
    """Send one message to one recipient through every URL of the channel; an Outcome per URL."""
    outcomes = []
    for template in templates if templates is not None else urls(channel):
        url = for_recipient(template, channel, recipient)
        shown = masked(template, channel)
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            outcomes.append(Outcome(shown, False, "not an Apprise URL", permanent=True))
            continue
        if headers and isinstance(plugin, NotifyEmail):
            plugin.headers.update(headers)
        _captured.lines = lines = []
        _captured.unanswered = False
        try:
            ok = bool(plugin.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT))
        except Exception as error:  # a plugin bug must not take the batch down
            ok, lines = False, [*lines, repr(error)]
        finally:
            _captured.lines = None
        error = None
        if not ok:
            secrets = _secrets_of(url)
            error = " | ".join(_scrub(line, secrets) for line in lines[-3:]) or "failed"
        outcomes.append(Outcome(shown, ok, error, permanent=not ok and _permanent(lines),
                                unanswered=not ok and getattr(_captured, "unanswered", False)))
    return outcomes
