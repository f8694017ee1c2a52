"""Sending through Apprise: TLS to a real SMTP server with the shared TLS contexts, masking and
scrubbing of secrets, and a stable Message-ID."""

from __future__ import annotations

import ssl
import subprocess

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from crm import channels
from tests.servers import free_port
from tests.sinks import SmtpSink, _Handler


def _accept_user(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=auth_data.login == b"user" and auth_data.password == b"s3cret-pass")


@pytest.fixture
def tls_smtp(tmp_path):
    """An SMTP server on 127.0.0.1 that offers STARTTLS with a self-signed certificate."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    sink = SmtpSink(port=free_port())
    sink.controller = Controller(_Handler(sink), hostname="127.0.0.1", port=sink.port, tls_context=context,
                                 require_starttls=True, authenticator=_accept_user)
    sink.controller.start()
    yield sink
    sink.stop()


def test_email_over_starttls_uses_the_shared_contexts_and_still_verifies_when_asked(app, tls_smtp):
    url = f"mailtos://user:s3cret-pass@127.0.0.1:{tls_smtp.port}?from=shop@example.com&to={{email}}&mode=starttls"
    with app.app_context():
        # A self-signed certificate is refused while verification is on...
        refused = channels.send("email", "a@example.com", "Hi", "Body", templates=[url])
        assert not refused[0].ok and "s3cret-pass" not in (refused[0].error or "")
        # ...and accepted when the URL turns it off, twice in a row through the shared context.
        for n in range(2):
            outcomes = channels.send("email", "a@example.com", f"Hi {n}", "Body", templates=[url + "&verify=no"],
                                     headers={"Message-ID": f"<crm-1-{n}@example.com>"})
            assert outcomes[0].ok, outcomes[0].error
    assert [m.message.get_all("Message-ID") for m in tls_smtp.mails] == [["<crm-1-0@example.com>"],
                                                                         ["<crm-1-1@example.com>"]]
    assert set(channels._SharedTls._made) == {True, False}
    assert channels._SharedTls._made[True].verify_mode is ssl.CERT_REQUIRED


def test_urls_are_shown_masked_and_comments_are_skipped(app):
    raw = "# main gateway\nmailtos://user:s3cret-pass@smtp.example.com?from=shop@example.com&to={email}\n"
    with app.app_context():
        assert channels.split_urls(raw) == ["mailtos://user:s3cret-pass@smtp.example.com?from=shop@example.com&to={email}"]
        shown = channels.masked(channels.split_urls(raw)[0], "email")
    assert "s3cret-pass" not in shown and "{email}" in shown


def test_a_recipient_cannot_change_the_url():
    url = channels.for_recipient("json://gw.example.com/sms/{phone}", "sms", "+1555/../admin?x=1")
    assert url == "json://gw.example.com/sms/%2B1555%2F..%2Fadmin%3Fx%3D1"
