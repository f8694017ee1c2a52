"""Real receiving ends on 127.0.0.1 for what Apprise sends: an SMTP server (aiosmtpd) and an HTTP
sink. Both keep what they received, can be told to refuse (SMTP 421/451/550, HTTP 4xx/5xx), and
the SMTP one can be stopped and started on the same port."""

from __future__ import annotations

import email
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from tests.servers import free_port


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: email.message.Message

    @property
    def message_id(self) -> str:
        return self.message["Message-ID"]

    @property
    def text(self) -> str:
        part = self.message
        if part.is_multipart():
            part = next(p for p in part.walk() if p.get_content_type() == "text/plain")
        return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")


@dataclass
class _Handler:
    sink: SmtpSink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.sink.refuse_rcpt:
            return self.sink.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.sink.refuse_data:
            return self.sink.refuse_data
        with self.sink.lock:
            self.sink.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos),
                                        email.message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"


@dataclass
class SmtpSink:
    port: int = field(default_factory=free_port)
    mails: list[Mail] = field(default_factory=list)
    refuse_rcpt: str | None = None  # e.g. "550 5.1.1 No such user"
    refuse_data: str | None = None  # e.g. "451 4.3.0 Try again later"
    lock: threading.Lock = field(default_factory=threading.Lock)
    controller: Controller | None = None

    def start(self) -> SmtpSink:
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def url(self, to: str = "{email}") -> str:
        return f"mailto://127.0.0.1:{self.port}?from=shop@example.com&to={to}&mode=insecure"

    def to(self, address: str) -> list[Mail]:
        with self.lock:
            return [m for m in self.mails if address in m.recipients]


class _Http(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (the stdlib's name)
        sink: HttpSink = self.server.sink
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = sink.status
        if status < 300:
            with sink.lock:
                sink.received.append((self.path, json.loads(body or b"{}")))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class HttpSink:
    """Collects POSTs (path, JSON body); answers `status` (set it to 500 or 400 to refuse)."""

    def __init__(self):
        self.received: list[tuple[str, dict]] = []
        self.status = 200
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Http)
        self.server.daemon_threads = True
        self.server.sink = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> HttpSink:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def paths(self) -> list[str]:
        with self.lock:
            return [path for path, _ in self.received]
