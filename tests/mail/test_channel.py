"""The e-mail channel end to end: a raw mail in (the inbound endpoint, the command, the
service), the bot's answer out through a real SMTP server (aiosmtpd), threading, escalation
and agent replies, and hostile input."""

from __future__ import annotations

import io
import json
from email.utils import make_msgid
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client, override_settings

from support.api.tokens import token_create
from support.mail import addresses
from support.mail.inbound import email_receive
from support.models import Conversation, EmailAttachment, EmailMessage, Message
from tests.factories import UserFactory, agent_user
from tests.mail.conftest import CUSTOMER, SUPPORT, SmtpSink, make_mail

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("mail_settings"),
]


def receive(raw: bytes) -> Any:
    return email_receive(raw=raw, source="test")


def outbound() -> list[EmailMessage]:
    return list(EmailMessage.objects.filter(direction="out").order_by("pk"))


def test_a_mail_becomes_a_conversation_and_the_bot_answers_by_mail(
    chat_env: Any, smtp: SmtpSink
) -> None:
    msg_id = make_msgid(domain="customer.example")
    raw = make_mail(
        "How do I reset my router?\n\nOn Mon, 1 Dec 2026, Bob wrote:\n> old quoted text\n",
        message_id=msg_id,
    )
    received = receive(raw)
    assert received.status == "accepted" and not received.duplicate
    conv = Conversation.objects.get(pk=received.conversation_id)
    assert conv.channel == "email" and conv.customer_email == CUSTOMER
    assert conv.customer_name == "Ada Lovelace"
    question = conv.messages.get(role="customer")
    assert "reset my router" in question.text and "old quoted text" not in question.text
    answer = conv.messages.get(role="bot")  # the same answer pipeline as the chat
    assert answer.citations
    assert len(smtp.sent) == 1
    sent = smtp.sent[0]
    assert sent.rcpt_tos == [CUSTOMER]
    mail = sent.message
    assert mail["In-Reply-To"] == msg_id and msg_id in mail["References"]
    assert mail["Subject"] == "Re: Router trouble"
    assert mail["Auto-Submitted"] == "auto-replied"
    assert mail["Reply-To"] == addresses.reply_address(conv.pk)
    assert mail["Message-ID"] == outbound()[0].message_id
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert answer.text.split(" [")[0][:20] in text
    cited = answer.citations[0]
    link = f"https://help.brightwave.example/kb/{cited['document_id']}/#chunk-{cited['chunk_id']}"
    assert link in text and f'href="{link}"' in html
    assert outbound()[0].status == "sent" and outbound()[0].chat_message == answer


def test_replies_thread_by_headers_and_by_reply_address(chat_env: Any, smtp: SmtpSink) -> None:
    first = receive(make_mail("How do I reset my router?"))
    conv_id = first.conversation_id
    ours = outbound()[0].message_id
    by_header = receive(
        make_mail(
            "Thanks! And error ERR-4032?",
            subject="Re: Router trouble",
            headers={"In-Reply-To": ours, "References": ours},
        )
    )
    assert by_header.conversation_id == conv_id
    # A mail program that drops the headers still reaches the conversation by its address.
    by_address = receive(make_mail("One more thing", to=addresses.reply_address(conv_id)))
    assert by_address.conversation_id == conv_id
    forged_token = addresses.reply_address(conv_id)[:-20] + "0" * 12 + "@brightwave.example"
    stranger = receive(make_mail("guessing", to=forged_token))
    assert stranger.conversation_id != conv_id
    conv = Conversation.objects.get(pk=conv_id)
    assert conv.messages.filter(role="customer").count() == 3
    # Every answer in the thread references the customer's latest mail.
    last = EmailMessage.objects.filter(direction="out", conversation_id=conv_id).last()
    assert last is not None
    assert last.in_reply_to == EmailMessage.objects.get(pk=by_address.email_id).message_id
    sent = [m for m in smtp.messages() if m["Message-ID"] == last.message_id]
    assert sent and sent[0]["In-Reply-To"] == last.in_reply_to


def test_idempotent_on_message_id(chat_env: Any, smtp: SmtpSink) -> None:
    raw = make_mail("How do I reset my router?")
    one, two = receive(raw), receive(raw)
    assert two.duplicate and two.email_id == one.email_id
    assert Message.objects.filter(role="customer").count() == 1
    assert len(smtp.sent) == 1
    # No Message-ID at all: the same bytes twice are still one mail.
    bare = (
        b"From: ada@customer.example\r\nTo: support@brightwave.example\r\n"
        b"Subject: hi\r\n\r\nhello\r\n"
    )
    assert receive(bare).duplicate is False and receive(bare).duplicate is True


def test_forged_senders_never_join_someone_elses_conversation(
    chat_env: Any, smtp: SmtpSink
) -> None:
    first = receive(make_mail("How do I reset my router?"))
    ours = outbound()[0].message_id
    intruder = receive(
        make_mail(
            "Send me her invoices",
            sender="Eve <eve@evil.example>",
            headers={"In-Reply-To": ours, "References": ours},
        )
    )
    assert intruder.status == "accepted" and intruder.conversation_id != first.conversation_id
    assert "not its customer" in intruder.reason
    own = receive(make_mail("loop", sender=f"Support <{SUPPORT}>"))
    assert own.status == "rejected" and "our own address" in own.reason
    two = receive(make_mail("x", sender="a@one.example, b@two.example"))
    assert two.status == "rejected"
    tricked = receive(make_mail("hi", sender='"ada@customer.example" <mallory@evil.example>'))
    conv = Conversation.objects.get(pk=tricked.conversation_id)
    assert conv.customer_email == "mallory@evil.example"  # the address, not the display name
    # An encoded word that decodes to an address stays a display name (built by hand: a mail
    # library would decode it before sending).
    raw = (
        f"From: =?utf-8?q?ceo=40brightwave=2Eexample?= <x@evil.example>\r\nTo: {SUPPORT}\r\n"
        "Message-ID: <ew2@evil.example>\r\nSubject: hi\r\n\r\nHow do I reset my router?\r\n"
    ).encode()
    encoded = Conversation.objects.get(pk=receive(raw).conversation_id)
    assert encoded.customer_email == "x@evil.example"
    assert encoded.customer_name == "ceo@brightwave.example"  # shown as a name, never used
    # The same, decoded into the raw header: two addresses in one From, refused.
    ambiguous = raw.replace(b"=?utf-8?q?ceo=40brightwave=2Eexample?=", b"ceo@brightwave.example")
    ambiguous = ambiguous.replace(b"<ew2@", b"<ew3@")
    assert receive(ambiguous).status == "rejected"


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied"},
        {"Precedence": "bulk"},
        {"X-Autoreply": "yes"},
        {"List-Id": "<news.customer.example>"},
        {"Return-Path": "<>"},
    ],
)
def test_autoresponders_get_no_answer(
    chat_env: Any, smtp: SmtpSink, headers: dict[str, str]
) -> None:
    received = receive(make_mail("I am out of the office until Monday.", headers=headers))
    assert received.status == "ignored" and "automatic" in received.reason
    assert not Message.objects.exists() and smtp.sent == []


def test_out_of_office_subject_and_mailer_daemon(chat_env: Any, smtp: SmtpSink) -> None:
    assert receive(make_mail("away", subject="Automatic reply: Router trouble")).status == "ignored"
    assert receive(make_mail("x", sender="MAILER-DAEMON@mx.customer.example")).status == "ignored"
    assert smtp.sent == []


def test_a_bounce_marks_our_mail_bounced(chat_env: Any, smtp: SmtpSink) -> None:
    receive(make_mail("How do I reset my router?"))
    ours = outbound()[0]
    dsn = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.customer.example>\r\n"
        f"To: {SUPPORT}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn1@mx.customer.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        "Final-Recipient: rfc822; ada@customer.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {ours.message_id}\r\n"
        "Subject: Re: Router trouble\r\n--B--\r\n"
    ).encode()
    result = receive(dsn)
    assert result.status == "ignored" and "bounce" in result.reason
    ours.refresh_from_db()
    assert ours.status == "bounced"
    assert len(smtp.sent) == 1  # nothing answers the bounce


def test_a_loop_that_slips_past_the_headers_stops(chat_env: Any, smtp: SmtpSink) -> None:
    with override_settings(SUPPORT_EMAIL_REPLIES_PER_HOUR=2):
        for i in range(4):
            receive(make_mail(f"How do I reset my router? ({i})", subject=f"Q{i}"))
    assert len(smtp.sent) == 2
    held = EmailMessage.objects.filter(direction="out", status="failed")
    assert held.count() >= 2 and all("a loop?" in h.reason for h in held)


def test_escalation_notice_and_agent_reply_from_the_admin(chat_env: Any, smtp: SmtpSink) -> None:
    received = receive(make_mail("I want to talk to a person please"))
    conv = Conversation.objects.get(pk=received.conversation_id)
    assert conv.status == "queued"
    notice = smtp.messages()[-1]
    assert "A person from our team will reply" in notice.get_body(("plain",)).get_content()
    agent = agent_user(username="sam", first_name="Sam")
    client = Client()
    client.force_login(agent)
    base = f"/admin/support/escalationqueue/{conv.pk}/"
    assert client.post(base + "claim/", headers={"Accept": "application/json"}).status_code == 200
    r = client.post(
        base + "reply/",
        {"text": "Hi Ada, Sam here. Let me look.", "send_email": "on"},
        headers={"Accept": "application/json"},
    )
    assert r.status_code == 200, r.content
    reply = smtp.messages()[-1]
    assert "Sam here" in reply.get_body(("plain",)).get_content()
    assert reply["Auto-Submitted"] is None  # a person wrote it
    assert reply["In-Reply-To"] == EmailMessage.objects.get(pk=received.email_id).message_id
    assert (
        len([m for m in smtp.messages() if "Sam here" in m.get_body(("plain",)).get_content()]) == 1
    )
    # The customer's answer joins the thread and waits for Sam (no bot answer meanwhile).
    again = receive(make_mail("Thanks Sam", to=addresses.reply_address(conv.pk)))
    assert again.conversation_id == conv.pk
    assert not conv.messages.filter(role="bot").exists()


def test_smtp_failures_are_retried_and_permanent_ones_stop(chat_env: Any, smtp: SmtpSink) -> None:
    from support.mail import outbound as out

    smtp.refuse = 451
    receive(make_mail("How do I reset my router?"))
    mail = outbound()[0]
    assert mail.status == "queued" and mail.attempts == 1 and "451" in mail.reason
    smtp.refuse = None
    EmailMessage.objects.filter(pk=mail.pk).update(next_attempt_at="2000-01-01T00:00:00Z")
    assert out.mail_outbox_sweep() == 1
    mail.refresh_from_db()
    assert mail.status == "sent" and len(smtp.sent) == 1
    smtp.refuse = 550
    receive(make_mail("How do I get a refund?", subject="refund"))
    refused = outbound()[-1]
    assert refused.status == "failed" and "550" in refused.reason


def test_attachments_are_stored_size_limited_and_type_checked(
    chat_env: Any, smtp: SmtpSink
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
    with override_settings(SUPPORT_EMAIL_MAX_ATTACHMENT_BYTES=50_000):
        received = receive(
            make_mail(
                "Photo of the router attached",
                attachments=[
                    ("router.png", "image/png", png),
                    ("invoice.pdf", "application/pdf", b"MZ\x90\x00this is a windows program"),
                    ("big.pdf", "application/pdf", b"%PDF-1.4\n" + b"0" * 60_000),
                    ("notes.txt", "text/plain", b"serial 1234"),
                ],
            )
        )
    rows = {a.filename: a for a in EmailAttachment.objects.filter(email_id=received.email_id)}
    assert rows["router.png"].status == "stored" and rows["router.png"].file.read() == png
    assert (
        rows["invoice.pdf"].status == "rejected"
        and rows["invoice.pdf"].detected_type == "executable"
    )
    assert rows["big.pdf"].status == "rejected" and "larger" in rows["big.pdf"].reason
    assert rows["notes.txt"].status == "stored"
    text = Message.objects.get(role="customer").text
    assert "router.png" in text and "not kept" in text


def test_a_huge_message_is_refused_whole(chat_env: Any, smtp: SmtpSink) -> None:
    with override_settings(SUPPORT_EMAIL_MAX_BYTES=10_000):
        result = receive(make_mail("x" * 20_000))
    assert result.status == "rejected" and "SUPPORT_EMAIL_MAX_BYTES" in result.reason
    assert not Message.objects.exists() and smtp.sent == []


def test_html_mail_is_sanitised(chat_env: Any, smtp: SmtpSink) -> None:
    raw = (
        f"From: {CUSTOMER}\r\nTo: {SUPPORT}\r\nSubject: html\r\n"
        "Message-ID: <h1@customer.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        "<html><body><p>How do I <b>reset</b> my router?</p>"
        "<script>alert(1)</script><img src=x onerror=alert(2)>"
        '<a href="javascript:alert(3)">x</a></body></html>\r\n'
    ).encode()
    received = receive(raw)
    text = Message.objects.get(role="customer").text
    assert "How do I reset my router?" in text and "alert" not in text
    from support.mail.parse import email_parse

    html = email_parse(raw).html
    assert "<script" not in html and "onerror" not in html and "javascript:" not in html
    assert received.status == "accepted"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage that is not mail at all",
        b"From: ada@customer.example\r\nSubject: =?utf-8?b?!!!not-base64?=\r\n\r\nbody",
        (
            b"From: ada@customer.example\r\nTo: support@brightwave.example\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="never"\r\n\r\nno boundary ever comes\r\n'
        ),
        (
            b"From: ada@customer.example\r\nTo: support@brightwave.example\r\n"
            b"Content-Type: text/plain; charset=x-unknown-charset\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n%%%not base64%%%\r\n"
        ),
        b"From: <>\r\nTo: support@brightwave.example\r\n\r\nempty sender",
        b"From: @@@\r\nMessage-ID: <<<>>>\r\nIn-Reply-To: <" + b"a" * 5000 + b">\r\n\r\nx",
    ],
)
def test_malformed_mime_never_crashes(chat_env: Any, smtp: SmtpSink, raw: bytes) -> None:
    result = receive(raw)
    assert result.status in ("accepted", "rejected", "ignored")
    assert EmailMessage.objects.filter(pk=result.email_id).exists()


def test_encoded_word_line_breaks_cannot_inject_headers(chat_env: Any, smtp: SmtpSink) -> None:
    # Built by hand: the encoded word must reach us encoded (a mail library would decode it).
    raw = (
        f"From: {CUSTOMER}\r\nTo: {SUPPORT}\r\nMessage-ID: <ew1@customer.example>\r\n"
        "Subject: =?utf-8?q?Router=0D=0ABcc=3A_victim=40elsewhere=2Eexample?=\r\n\r\n"
        "How do I reset my router?\r\n"
    ).encode()
    receive(raw)
    sent = smtp.sent[-1]
    assert sent.rcpt_tos == [CUSTOMER]
    mail = sent.message
    assert mail["Bcc"] is None
    assert "\n" not in mail["Subject"] and "Router Bcc: victim" in mail["Subject"]


def test_inbound_endpoint_and_command(chat_env: Any, smtp: SmtpSink, tmp_path: Any) -> None:
    relay = UserFactory(username="relay", is_superuser=True)
    token = token_create(user=relay, name="relay", scopes=["write"]).plaintext
    client = Client()
    raw = make_mail("How do I reset my router?")
    r = client.post(
        "/api/v1/mail/inbound/",
        raw,
        content_type="message/rfc822",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 202 and r.json()["status"] == "accepted"
    r = client.post(
        "/api/v1/mail/inbound/",
        raw,
        content_type="message/rfc822",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200 and r.json()["duplicate"] is True
    agent_token = token_create(user=agent_user(username="a1"), name="x", scopes=["write"]).plaintext
    r = client.post(
        "/api/v1/mail/inbound/",
        raw,
        content_type="message/rfc822",
        headers={"Authorization": f"Bearer {agent_token}"},
    )
    assert r.status_code == 403
    path = tmp_path / "m.eml"
    path.write_bytes(make_mail("And ERR-4032?", subject="error"))
    out = io.StringIO()
    call_command("mail_inbound", "--file", str(path), stdout=out)
    assert json.loads(out.getvalue())["status"] == "accepted"
    assert Conversation.objects.filter(channel="email").count() == 2


def test_email_answers_are_not_streamed(
    chat_env: Any, smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support import events

    sent: list[tuple[str, dict[str, Any]]] = []
    real = events.group_send

    def record(group: str, event: dict[str, Any]) -> None:
        sent.append((group, event))
        real(group, event)

    monkeypatch.setattr(events, "group_send", record)
    received = receive(make_mail("How do I reset my router?"))
    group = events.conversation_group(received.conversation_id)
    kinds = [e["type"] for g, e in sent if g == group]
    assert "reply.done" in kinds and "reply.delta" not in kinds
    assert len(smtp.sent) == 1
