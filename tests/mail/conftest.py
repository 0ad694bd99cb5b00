"""Real mail servers for the e-mail channel's tests: an aiosmtpd SMTP server that keeps what it
receives, and Debian's Dovecot (IMAP) started on a free port in a temporary directory."""

from __future__ import annotations

import email
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from tests.chat.conftest import chat_env  # noqa: F401  (fixture)
from tests.conftest import free_port
from tests.knowledge.conftest import real_embedder  # noqa: F401  (session fixture)

SUPPORT = "support@brightwave.example"
CUSTOMER = "ada@customer.example"


# --- SMTP -----------------------------------------------------------------------------------------
@dataclass
class Sent:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> Any:
        return email.message_from_bytes(self.data, policy=policy.default)


class SmtpSink:
    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.sent: list[Sent] = []
        self.refuse: int | None = None  # an SMTP code to answer DATA with, e.g. 451 or 550
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                if sink.refuse is not None:
                    return f"{sink.refuse} refused by the test"
                sink.sent.append(
                    Sent(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
                )
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def messages(self) -> list[Any]:
        return [s.message for s in self.sent]


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.controller.start()
    try:
        with override_settings(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=sink.port,
            EMAIL_USE_TLS=False,
            EMAIL_TIMEOUT=10,
        ):
            yield sink
    finally:
        sink.controller.stop()


@pytest.fixture
def mail_settings(tmp_path: Path) -> Iterator[None]:
    with override_settings(
        SUPPORT_EMAIL_ADDRESS=SUPPORT,
        SUPPORT_PUBLIC_URL="https://help.brightwave.example",
        MEDIA_ROOT=tmp_path / "media",
        SUPPORT_DEBOUNCE_S=0,
    ):
        yield


def make_mail(
    text: str = "Hello, how do I reset my router?",
    *,
    sender: str = f"Ada Lovelace <{CUSTOMER}>",
    to: str = SUPPORT,
    subject: str = "Router trouble",
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
    html: str | None = None,
    attachments: list[tuple[str, str, bytes]] = (),  # type: ignore[assignment]
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(__import__("datetime").datetime.now().astimezone())
    msg["Message-ID"] = message_id or make_msgid(domain="customer.example")
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for filename, ctype, data in attachments:
        maintype, subtype = ctype.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes(policy=policy.SMTP)


# --- IMAP (Dovecot) ---------------------------------------------------------------------------
DOVECOT_CONF = """\
protocols = imap
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{base}/mail/%u
first_valid_uid = 1
mail_uid = {user}
mail_gid = {group}
default_internal_user = {internal}
default_login_user = {login}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/users
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={base}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


class Dovecot:
    user = SUPPORT
    password = "imap-test-password"

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("dovecot") or (
            "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
        )
        if exe is None:
            pytest.skip("Debian's dovecot-imapd is not installed (apt-get install dovecot-imapd)")
        for d in ("run", "state", "mail"):
            (self.base / d).mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # Dovecot refuses to keep mail as root: the maildir belongs to nobody.
            user, group, internal, login = "nobody", "nogroup", "dovecot", "dovenull"
            for name in (internal, login):
                try:
                    pwd.getpwnam(name)
                except KeyError:
                    pytest.skip(f"the system user {name} (from dovecot-core) is missing")
            shutil.chown(self.base / "mail", user, group)
            os.chmod(self.base, 0o755)
        else:
            me = pwd.getpwuid(os.geteuid()).pw_name
            user, group, internal, login = me, me, me, me
        (self.base / "users").write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        conf = self.base / "dovecot.conf"
        conf.write_text(
            DOVECOT_CONF.format(
                base=self.base,
                port=self.port,
                user=user,
                group=group,
                internal=internal,
                login=login,
            )
        )
        self.proc = subprocess.Popen(
            [exe, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                pytest.fail(f"dovecot exited at start: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        pytest.fail("dovecot did not listen within 15 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None

    def client(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        conn.login(self.user, self.password)
        return conn

    def append(self, raw: bytes, folder: str = "INBOX", when: Any = None) -> None:
        conn = self.client()
        try:
            date = imaplib.Time2Internaldate(when) if when is not None else None
            typ, data = conn.append(f'"{folder}"', None, date, raw)
            assert typ == "OK", data
        finally:
            conn.logout()

    def settings(self, folder: str = "INBOX", **extra: Any) -> Any:
        values = {
            "SUPPORT_IMAP_HOST": "127.0.0.1",
            "SUPPORT_IMAP_PORT": self.port,
            "SUPPORT_IMAP_USER": self.user,
            "SUPPORT_IMAP_PASSWORD": self.password,
            "SUPPORT_IMAP_SSL": False,
            "SUPPORT_IMAP_FOLDER": folder,
        }
        return override_settings(**{**values, **extra})


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    # Not under pytest's tmp_path: its parents are private to us, and Dovecot's mail process
    # runs as another user when the tests run as root.
    base = Path(tempfile.mkdtemp(prefix="dovecot-test-"))
    server = Dovecot(base)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
