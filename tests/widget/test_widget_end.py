"""The end of a conversation in the widget (Debian's Chromium, the scripted mock server): the end
panel replaces the message box, nothing is left waiting to be sent, the rating, a new start."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.widget.conftest import screenshot
from tests.widget.mock_server import ENDED_TEXT, RESOLVED_TEXT, MockServer
from tests.widget.test_widget import BOT_STATUS, ask, open_widget, wait_for, widget

pytestmark = pytest.mark.browser

expect: Any = pytest.importorskip("playwright.sync_api").expect

NOT_SENT = "Not sent — the conversation had ended"


def outbox(page: Any, server: MockServer) -> Any:
    key = "smallbot.outbox.127.0.0.1:" + str(server.port)
    return page.evaluate(f"() => localStorage.getItem('{key}')")


def assert_message_box_replaced(w: Any) -> None:
    expect(w.locator(".sb-composer")).to_be_hidden()
    expect(w.locator(".sb-input")).to_be_disabled()
    expect(w.get_by_role("button", name="Talk to a person")).to_have_count(0)
    expect(w.get_by_role("button", name="Start a new conversation")).to_be_visible()


def test_resolved_conversation_ends_and_takes_a_rating(page: Any, server: MockServer) -> None:
    w = open_widget(page, server)
    ask(page, "How do I reset my router?")
    expect(w.locator(".sb-msg-bot[data-id]")).to_have_count(1)
    expect(w.locator(".sb-input")).to_be_enabled()

    server.end()
    expect(w.locator(".sb-status-text")).to_have_text(RESOLVED_TEXT)
    expect(w.locator('.sb-msg-system[data-kind="ended"]')).to_have_text(ENDED_TEXT)
    assert_message_box_replaced(w)
    # The server's line says it: the panel does not say it again.
    expect(w.get_by_text(ENDED_TEXT).locator("visible=true")).to_have_count(1)
    expect(w.locator(".sb-ended-text")).to_be_hidden()
    expect(w.locator(".sb-notices").get_by_role("alert")).to_have_count(0)
    # The thumbs on the answer still work after the end.
    expect(w.get_by_role("button", name="This answer was helpful")).to_be_visible()
    screenshot(page, "ended")

    rating = w.get_by_role("group", name="How was this conversation?")
    w.get_by_role("button", name="Send rating").click()
    expect(w.locator(".sb-rate-error")).to_have_text("Please choose from 1 to 5 stars.")
    assert server.frames("rate") == []
    four = rating.get_by_role("button", name="4 stars")
    four.click()
    expect(four).to_have_attribute("aria-pressed", "true")
    expect(rating.locator(".sb-star[data-on]")).to_have_count(4)
    expect(w.locator(".sb-rate-error")).to_have_text("")
    w.get_by_role("textbox", name="Anything to add? (optional)").fill("  Quick, thanks!  ")
    screenshot(page, "rating")
    w.get_by_role("button", name="Send rating").click()
    thanks = w.locator(".sb-rate-thanks")
    expect(thanks).to_have_text("Thanks for rating this conversation 4 out of 5.")
    expect(w.locator(".sb-rate")).to_be_hidden()
    assert server.frames("rate") == [{"type": "rate", "rating": 4, "comment": "Quick, thanks!"}]
    conv = next(iter(c for c in server.conversations.values() if c.status == "resolved"))
    assert (conv.rating, conv.rating_comment) == (4, "Quick, thanks!")
    screenshot(page, "rated")

    # After a reload the end and the thanks are back (welcome.status and welcome.rating).
    page.reload()
    w.get_by_role("button", name="Open Help chat").click()
    assert_message_box_replaced(w)
    expect(thanks).to_have_text("Thanks for rating this conversation 4 out of 5.")
    assert len(server.frames("rate")) == 1


def test_the_panel_says_it_ended_when_the_transcript_does_not(
    page: Any, server: MockServer
) -> None:
    w = open_widget(page, server)
    server.end(line=False)
    assert_message_box_replaced(w)
    expect(w.locator(".sb-ended-text")).to_have_text(ENDED_TEXT)
    expect(w.get_by_text(ENDED_TEXT).locator("visible=true")).to_have_count(1)


def test_a_message_sent_into_an_ended_conversation_is_not_left_waiting(
    page: Any, server: MockServer
) -> None:
    """The old bug: the agent resolved, the widget had not heard yet; the new message sat at
    "Waiting to send…" under a red error. Now it says it was not sent, and a new conversation
    takes its text."""
    w = open_widget(page, server)
    ask(page, "How do I reset my router?")
    expect(w.locator(".sb-msg-bot[data-id]")).to_have_count(1)
    server.end(announce=False)
    ask(page, "And the cable?")

    pending = w.locator(".sb-msg-customer.sb-pending")
    expect(pending.locator(".sb-meta")).to_have_text(NOT_SENT)
    expect(w.get_by_text("Waiting to send…")).to_have_count(0)
    expect(w.locator(".sb-notices").get_by_role("alert")).to_have_count(0)
    expect(w.locator(".sb-notice-info")).to_contain_text(
        "Your last message was not sent because this conversation has ended."
    )
    assert_message_box_replaced(w)
    assert outbox(page, server) is None  # never re-sent after a reload
    screenshot(page, "ended-unsent")

    first_token = server.sent_welcome_tokens()[-1]
    w.get_by_role("button", name="Start a new conversation").click()
    wait_for(lambda: len(server.frames("hello")) == 2)
    assert "token" not in server.frames("hello")[1]
    wait_for(lambda: len(set(server.sent_welcome_tokens())) == 2)
    box = w.get_by_role("textbox", name="Message")
    expect(box).to_be_enabled()
    expect(box).to_be_focused()
    expect(box).to_have_value("And the cable?")  # back in the box, not sent on its own
    expect(w.locator(".sb-status-text")).to_have_text(BOT_STATUS)
    expect(w.locator(".sb-ended")).to_be_hidden()
    expect(w.locator(".sb-msg-customer")).to_have_count(0)
    expect(w.locator(".sb-notice")).to_have_count(0)
    assert len(server.frames("message")) == 2

    box.press("Enter")
    expect(w.locator(".sb-msg-customer[data-id]")).to_have_text("And the cable?")
    expect(w.locator(".sb-msg-bot[data-id]")).to_have_count(1)
    new = server.conversation_for(server.sent_welcome_tokens()[-1])
    assert new is not None and new.token != first_token and new.status == "bot"
    assert [m["text"] for m in new.messages if m["role"] == "customer"] == ["And the cable?"]


def test_an_outbox_message_is_cleared_when_the_conversation_ended_while_offline(
    page: Any, server: MockServer
) -> None:
    w = open_widget(page, server)
    server.drop(refuse=True)
    expect(w.locator(".sb-status-text")).to_have_text("Offline — reconnecting…")
    ask(page, "Are you still there?")
    pending = w.locator(".sb-msg-customer.sb-pending")
    expect(pending.locator(".sb-meta")).to_have_text("Waiting for connection…")
    assert outbox(page, server) is not None
    server.end()  # nobody is connected to hear it
    server.allow()
    expect(pending.locator(".sb-meta")).to_have_text(NOT_SENT, timeout=20_000)
    assert_message_box_replaced(w)
    expect(w.locator(".sb-ended-text")).to_be_hidden()  # the ended line came with the history
    assert outbox(page, server) is None
    assert server.frames("message") == []


def test_a_failed_rating_can_be_sent_again(page: Any, server: MockServer) -> None:
    w = open_widget(page, server)
    server.end()
    w.get_by_role("button", name="2 stars").click()
    w.get_by_role("textbox", name="Anything to add? (optional)").fill("flaky line")
    w.get_by_role("button", name="Send rating").click()
    expect(w.locator(".sb-rate-error")).to_have_text("Something went wrong.")
    expect(w.get_by_role("button", name="2 stars")).to_have_attribute("aria-pressed", "true")
    expect(w.locator(".sb-msg-customer")).to_have_count(0)
    w.get_by_role("button", name="Send rating").click()
    expect(w.locator(".sb-rate-thanks")).to_have_text(
        re.compile("Thanks for rating this conversation 2 out of 5")
    )
    assert [f["rating"] for f in server.frames("rate")] == [2, 2]
    assert widget(page).locator(".sb-notice").count() == 0
