"""static/support/widget.js in Debian's Chromium against the scripted mock chat server."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.widget.conftest import screenshot
from tests.widget.mock_server import (
    BAD_EMAIL,
    CITATION,
    DECLINE_TEXT,
    MAX_MESSAGE_CHARS,
    OUT_OF_HOURS_TEXT,
    QUEUED_TEXT,
    MockServer,
)

pytestmark = pytest.mark.browser

expect: Any = pytest.importorskip("playwright.sync_api").expect

BOT_STATUS = "Usually replies in a few seconds"
OFFLINE_STATUS = "Offline — reconnecting…"
EMAIL_LABEL = "Leave your email and we'll get back to you"


# ---------------------------------------------------------------------- helpers


def widget(page: Any) -> Any:
    return page.locator("#smallbot-support")


def open_widget(page: Any, server: MockServer, query: str = "") -> Any:
    page.goto(server.url + "/" + query)
    w = widget(page)
    w.get_by_role("button", name="Open Help chat").click()
    expect(w.get_by_role("dialog", name="Help chat")).to_be_visible()
    expect(w.locator(".sb-status-text")).to_have_text(BOT_STATUS)
    return w


def ask(page: Any, text: str) -> None:
    box = widget(page).get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def shadow_eval(page: Any, body: str) -> Any:
    return page.evaluate(
        "() => { const root = document.getElementById('smallbot-support').shadowRoot; "
        + body
        + " }"
    )


def focused_class(page: Any) -> str:
    """Class of the focused element inside the widget's shadow root ('' if none)."""
    return page.evaluate(
        "() => { const h = document.getElementById('smallbot-support');"
        " const a = h && h.shadowRoot.activeElement;"
        " return document.activeElement === h && a ? a.className : ''; }"
    )


# ---------------------------------------------------------------------- tests


def test_question_streams_deltas_then_final_answer_with_citation(
    page: Any, server: MockServer
) -> None:
    server.hold()
    w = open_widget(page, server)
    ask(page, "How do I reset my router?")

    customer = w.locator(".sb-msg-customer").last
    expect(customer).to_have_text("How do I reset my router?")
    # Deltas arrive as seq 0, 2, 1, 1: shown in order, the duplicate ignored.
    streaming = w.locator(".sb-streaming .sb-bubble")
    expect(streaming).to_have_text("Hold the reset button for 10 seconds [1].")
    expect(streaming.locator("strong")).to_have_text("reset button")
    expect(w.locator(".sb-streaming .sb-feedback")).to_have_count(0)
    screenshot(page, "streaming")

    server.release()
    answer = w.locator(".sb-msg-bot[data-id]")
    expect(answer.locator(".sb-bubble")).to_contain_text("Wait until the Internet light is steady")
    expect(w.locator(".sb-streaming")).to_have_count(0)
    expect(answer.locator(".sb-bubble li")).to_have_count(2)
    expect(answer.locator(".sb-bubble code")).to_have_text("Internet")

    source = answer.locator(".sb-sources a")
    expect(source).to_have_text("[1] Router guide › Reset")
    expect(source).to_have_attribute("href", server.url + CITATION["url"])
    expect(source).to_have_attribute("target", "_blank")
    expect(source).to_have_attribute("rel", "noopener noreferrer nofollow")
    marker = answer.locator(".sb-bubble a.sb-cite")
    expect(marker).to_have_text("[1]")
    expect(marker).to_have_attribute("href", server.url + CITATION["url"])
    expect(customer).not_to_have_class(re.compile("sb-pending"))
    screenshot(page, "answer")

    # A stray delta after the stored answer opens no new bubble.
    question_id = int(customer.get_attribute("data-id") or 0)
    server.push({"type": "reply.delta", "reply_to": question_id, "seq": 3, "delta": " late"})
    server.push({"type": "pong"})
    page.wait_for_timeout(100)
    expect(w.locator(".sb-streaming")).to_have_count(0)
    expect(w.locator(".sb-msg-bot")).to_have_count(2)  # the greeting and the answer

    hello, message = server.frames("hello")[0], server.frames("message")[0]
    assert "token" not in hello
    assert message["text"] == "How do I reset my router?"
    assert re.fullmatch(r"[0-9a-f-]{36}", message["client_id"])


def test_thumbs_up_sends_feedback_and_shows_pressed(page: Any, server: MockServer) -> None:
    w = open_widget(page, server)
    ask(page, "How do I reset my router?")
    answer = w.locator(".sb-msg-bot[data-id]")
    expect(answer.locator(".sb-sources")).to_be_visible()
    up = answer.get_by_role("button", name="This answer was helpful")
    down = answer.get_by_role("button", name="This answer was not helpful")
    expect(up).to_have_attribute("aria-pressed", "false")

    up.click()
    expect(up).to_have_attribute("aria-pressed", "true")
    expect(down).to_have_attribute("aria-pressed", "false")
    message_id = int(answer.get_attribute("data-id") or 0)
    assert server.frames("feedback") == [
        {"type": "feedback", "message_id": message_id, "value": "up"}
    ]
    screenshot(page, "feedback-up")

    # Changing to thumbs-down offers an optional comment.
    down.click()
    expect(down).to_have_attribute("aria-pressed", "true")
    expect(up).to_have_attribute("aria-pressed", "false")
    comment = answer.get_by_role("textbox", name=re.compile("What was missing"))
    comment.fill("It did not mention the model")
    screenshot(page, "feedback-down-comment")
    answer.get_by_role("button", name="Send feedback").click()
    expect(answer.locator(".sb-fb-thanks")).to_be_visible()
    wait_for(lambda: len(server.frames("feedback")) == 3)
    assert server.frames("feedback")[-1] == {
        "type": "feedback",
        "message_id": message_id,
        "value": "down",
        "comment": "It did not mention the model",
    }


def test_a_decline_shows_no_thumbs(page: Any, server: MockServer) -> None:
    w = open_widget(page, server)
    ask(page, "How do I reset my router?")
    answer = w.locator(".sb-msg-bot[data-id]").first
    expect(answer.locator(".sb-feedback")).to_be_visible()
    ask(page, "What is the capital of France?")
    decline = w.locator(".sb-msg-bot[data-id]").nth(1)
    expect(decline.locator(".sb-bubble")).to_have_text(DECLINE_TEXT)
    expect(decline.locator(".sb-feedback")).to_have_count(0)
    expect(decline.get_by_role("button", name="This answer was helpful")).to_have_count(0)
    # Still none after a reload (the decline comes back in the welcome history).
    page.reload()
    w.get_by_role("button", name="Open Help chat").click()
    expect(w.locator(".sb-msg-bot[data-id]")).to_have_count(2)
    expect(w.locator(".sb-msg-bot[data-id] .sb-feedback")).to_have_count(1)
    screenshot(page, "decline-no-thumbs")


def test_reload_restores_history_with_the_stored_token(page: Any, server: MockServer) -> None:
    w = open_widget(page, server)
    ask(page, "How do I reset my router?")
    expect(w.locator(".sb-msg-bot[data-id] .sb-sources")).to_be_visible()
    key = "smallbot.token.127.0.0.1:" + str(server.port)
    token = page.evaluate(f"() => localStorage.getItem('{key}')")
    assert token and token.startswith("tok-")

    page.reload()
    # A stored token connects at load, before the panel is opened.
    wait_for(lambda: len(server.frames("hello")) == 2)
    assert server.frames("hello")[1]["token"] == token
    w.get_by_role("button", name="Open Help chat").click()
    expect(w.locator(".sb-msg-customer")).to_have_text("How do I reset my router?")
    answer = w.locator(".sb-msg-bot[data-id]")
    expect(answer.locator(".sb-sources a")).to_have_text("[1] Router guide › Reset")
    expect(answer.get_by_role("button", name="This answer was helpful")).to_be_visible()
    assert len(server.frames("message")) == 1  # nothing re-sent
    screenshot(page, "history-restored")


def test_reload_mid_answer_resumes_the_stream(page: Any, server: MockServer) -> None:
    server.hold("first_delta")
    server.hold("done")
    w = open_widget(page, server)
    ask(page, "How do I reset my router?")
    expect(w.locator(".sb-streaming .sb-bubble")).to_have_text("Hold the **reset")

    page.reload()
    w.get_by_role("button", name="Open Help chat").click()
    # welcome.streaming carries the partial answer ({seq: 0, text}); deltas continue after it.
    expect(w.locator(".sb-msg-customer[data-id]")).to_have_text("How do I reset my router?")
    streaming = w.locator(".sb-streaming .sb-bubble")
    expect(streaming).to_have_text("Hold the **reset")
    server.release("first_delta")
    expect(streaming).to_have_text("Hold the reset button for 10 seconds [1].")
    server.release("done")
    expect(w.locator(".sb-msg-bot[data-id] .sb-sources a")).to_have_text("[1] Router guide › Reset")
    expect(w.locator(".sb-msg-bot")).to_have_count(2)  # the greeting and the one answer


def test_pings_every_25_seconds_and_counts_unread_messages(page: Any, server: MockServer) -> None:
    page.clock.install()
    w = open_widget(page, server)
    assert server.frames("ping") == []
    page.clock.run_for(26_000)
    wait_for(lambda: len(server.frames("ping")) == 1)

    page.keyboard.press("Escape")
    server.push(
        {
            "type": "message",
            "message": {"id": 500, "role": "agent", "text": "Hi, Sam here.", "author_name": "Sam"},
        }
    )
    launcher = w.get_by_role("button", name="Open Help chat (1 new)")
    expect(launcher.locator(".sb-badge")).to_have_text("1")
    screenshot(page, "unread")
    launcher.click()
    expect(w.locator(".sb-msg-agent .sb-bubble")).to_have_text("Hi, Sam here.")
    expect(w.locator(".sb-badge")).to_be_hidden()


def test_talk_to_a_person_shows_queue_status_and_button_states(
    page: Any, server: MockServer
) -> None:
    w = open_widget(page, server)
    box = w.get_by_role("textbox", name="Message")
    expect(box).to_have_attribute("maxlength", str(MAX_MESSAGE_CHARS))  # welcome.max_message_chars
    handoff = w.locator(".sb-handoff")
    expect(handoff).to_have_accessible_name("Talk to a person")
    expect(handoff).to_be_enabled()
    handoff.click()
    expect(w.locator(".sb-status-text")).to_have_text(QUEUED_TEXT)
    assert server.frames("handoff") == [{"type": "handoff"}]
    # Asked once: the button says so and does nothing more, but stays focusable.
    expect(handoff).to_have_accessible_name("A person has been asked")
    expect(handoff).to_be_disabled()
    expect(handoff).to_have_attribute("aria-disabled", "true")
    handoff.focus()
    page.keyboard.press("Enter")
    handoff.click(force=True)  # past Playwright's own "enabled" check
    expect(w.locator(".sb-email")).to_be_hidden()  # within business hours: no email request
    # The customer can keep writing while queued.
    expect(box).to_be_enabled()
    ask(page, "My router model is XR-500")
    expect(w.locator(".sb-msg-customer[data-id]")).to_have_text("My router model is XR-500")
    assert server.frames("handoff") == [{"type": "handoff"}]
    # While queued a customer's typing is announced to the agent.
    box.type("and ")
    wait_for(lambda: {"type": "typing", "active": True} in server.frames("typing"))
    screenshot(page, "queued")

    # A reload while queued: welcome's status fields (status_text) keep the button asked.
    page.reload()
    w.get_by_role("button", name="Open Help chat").click()
    expect(w.locator(".sb-status-text")).to_have_text(QUEUED_TEXT)
    expect(handoff).to_have_accessible_name("A person has been asked")
    expect(handoff).to_be_disabled()

    # An agent present: no button at all (focus moves to the message box, not the page).
    handoff.focus()
    server.push({"type": "status", "status": "agent", "agent_name": "Sam", "text": ""})
    expect(w.locator(".sb-status-text")).to_have_text("Sam joined the conversation")
    expect(handoff).to_be_hidden()
    assert "sb-input" in focused_class(page)
    # Handed back to the bot: offered again.
    server.push({"type": "status", "status": "bot", "text": ""})
    expect(w.locator(".sb-status-text")).to_have_text(BOT_STATUS)
    expect(handoff).to_be_visible()
    expect(handoff).to_have_accessible_name("Talk to a person")
    expect(handoff).to_be_enabled()


def test_dropped_socket_reconnects_and_resends_unconfirmed_message(
    page: Any, server: MockServer
) -> None:
    w = open_widget(page, server)
    server.hold_messages = True  # swallowed: neither stored nor echoed
    ask(page, "Is there an outage in my area?")
    pending = w.locator(".sb-msg-customer.sb-pending")
    expect(pending.locator(".sb-meta")).to_have_text("Sending…")
    wait_for(lambda: len(server.frames("message")) == 1)

    server.drop(refuse=True)
    expect(w.locator(".sb-status-text")).to_have_text(OFFLINE_STATUS)
    expect(pending.locator(".sb-meta")).to_have_text("Waiting for connection…")
    box = w.get_by_role("textbox", name="Message")
    box.fill("A draft written while offline")
    screenshot(page, "offline")

    server.hold_messages = False
    server.allow()
    expect(w.locator(".sb-status-text")).to_have_text(BOT_STATUS, timeout=15000)
    confirmed = w.locator(".sb-msg-customer[data-id]")
    expect(confirmed).to_have_text("Is there an outage in my area?")
    expect(w.locator(".sb-pending")).to_have_count(0)
    expect(w.locator(".sb-msg-bot[data-id] .sb-sources")).to_be_visible()
    expect(box).to_have_value("A draft written while offline")

    messages = server.frames_by_conn("message")
    assert len(messages) == 2
    (first_conn, first), (second_conn, second) = messages
    assert first_conn != second_conn
    assert first["client_id"] == second["client_id"]
    hellos = server.frames("hello")
    assert len(hellos) == 2 and hellos[1]["token"] == server.sent_welcome_tokens()[0]
    screenshot(page, "reconnected")


def test_html_in_messages_is_shown_as_text(page: Any, server: MockServer) -> None:
    w = open_widget(page, server)
    payload = '<img src=x onerror="window.__xss=9"><script>window.__xss=8</script> xss?'
    ask(page, payload)
    expect(w.locator(".sb-msg-customer[data-id] .sb-bubble")).to_have_text(payload)
    answer = w.locator(".sb-msg-bot[data-id] .sb-bubble")
    expect(answer).to_contain_text('<img src=x onerror="window.__xss=1">')
    expect(answer).to_contain_text("<script>window.__xss=2</script>")
    expect(answer.locator("strong")).to_have_text("<b>bold?</b>")
    expect(answer.locator("code")).to_have_text("<i>code</i>")
    expect(answer).to_contain_text("[evil](javascript:window.__xss=3)")
    safe = answer.get_by_role("link", name="docs")
    expect(safe).to_have_attribute("href", "https://example.com/docs")
    expect(safe).to_have_attribute("rel", "noopener noreferrer nofollow")

    # An agent's message is plain text too, even when it looks like Markdown.
    server.push(
        {
            "type": "message",
            "message": {
                "id": 999,
                "role": "agent",
                "text": "**Hi**, I'm <em>Sam</em> <a href='javascript:1'>x</a>",
                "author_name": "Sam <script>",
                "client_id": None,
                "citations": [],
            },
        }
    )
    agent = w.locator(".sb-msg-agent")
    expect(agent.locator(".sb-bubble")).to_have_text(
        "**Hi**, I'm <em>Sam</em> <a href='javascript:1'>x</a>"
    )
    expect(agent.locator(".sb-author")).to_have_text("Sam <script>")

    injected = shadow_eval(
        page,
        "return root.querySelectorAll('img, script, iframe, em, b, i, a[href^=\"javascript\"]')"
        ".length;",
    )
    assert injected == 0
    assert page.evaluate("() => window.__xss") is None
    assert page.evaluate("() => document.querySelectorAll('img, script').length") == 1
    screenshot(page, "html-as-text")


def test_keyboard_open_send_and_escape(page: Any, server: MockServer) -> None:
    page.goto(server.url + "/")
    w = widget(page)
    launcher = w.locator(".sb-launcher")
    expect(launcher).to_have_attribute("aria-expanded", "false")
    expect(launcher).to_have_attribute("aria-controls", "sb-panel")
    for _ in range(10):
        page.keyboard.press("Tab")
        if "sb-launcher" in focused_class(page):
            break
    assert "sb-launcher" in focused_class(page)
    screenshot(page, "launcher-focus")

    page.keyboard.press("Enter")
    expect(launcher).to_have_attribute("aria-expanded", "true")
    dialog = w.get_by_role("dialog", name="Help chat")
    expect(dialog).to_be_visible()
    expect(w.locator(".sb-log")).to_have_attribute("aria-live", "polite")
    expect(w.locator(".sb-log")).to_have_attribute("role", "log")
    assert "sb-input" in focused_class(page)

    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    expect(w.get_by_role("textbox", name="Message")).to_have_value("first line\nsecond line")
    page.keyboard.press("Enter")
    expect(w.locator(".sb-msg-customer[data-id]")).to_have_text("first line\nsecond line")
    expect(w.get_by_role("textbox", name="Message")).to_have_value("")
    assert server.frames("message")[0]["text"] == "first line\nsecond line"

    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(launcher).to_have_attribute("aria-expanded", "false")
    assert "sb-launcher" in focused_class(page)


def test_phone_viewport_panel_fills_the_screen(new_page: Any, server: MockServer) -> None:
    page = new_page(360, 640, reduced_motion=False)
    w = open_widget(page, server)
    ask(page, "How do I reset my router?")
    expect(w.locator(".sb-msg-bot[data-id] .sb-sources")).to_be_visible()
    box = w.locator(".sb-panel").bounding_box()
    assert box == {"x": 0, "y": 0, "width": 360, "height": 640}
    for name in ("Message", "Send", "Talk to a person", "Close chat"):
        role = "textbox" if name == "Message" else "button"
        part = w.get_by_role(role, name=name).bounding_box()
        assert part is not None
        assert part["x"] >= 0 and part["x"] + part["width"] <= 360, name
        assert part["y"] >= 0 and part["y"] + part["height"] <= 640, name
    no_overflow = shadow_eval(
        page, "const s = root.querySelector('.sb-scroll'); return s.scrollWidth <= s.clientWidth;"
    )
    assert no_overflow
    screenshot(page, "phone")
    w.get_by_role("button", name="Close chat").click()
    expect(w.locator(".sb-panel")).to_be_hidden()
    expect(w.locator(".sb-launcher")).to_be_visible()


def test_errors_are_dismissable_and_closed_conversation_can_restart(
    page: Any, server: MockServer
) -> None:
    w = open_widget(page, server)
    ask(page, "too long " + "x" * 50)
    notice = w.get_by_role("alert")
    expect(notice).to_contain_text("Your message is too long")
    failed = w.locator(".sb-msg-customer.sb-failed")
    expect(failed.locator(".sb-meta")).to_contain_text("Not sent")
    failed.get_by_role("button", name="Edit").click()
    expect(w.get_by_role("textbox", name="Message")).to_have_value("too long " + "x" * 50)
    expect(failed).to_have_count(0)
    notice.get_by_role("button", name="Dismiss").click()
    expect(w.get_by_role("alert")).to_have_count(0)
    w.get_by_role("textbox", name="Message").fill("")

    ask(page, "How do I reset my router?")
    expect(w.locator(".sb-msg-bot[data-id]")).to_have_count(1)
    server.push(
        {
            "type": "error",
            "code": "rate_limited",
            "message": "You are sending messages too fast; try again in 20 seconds.",
            "retry_after": 20,
        }
    )
    expect(w.get_by_role("alert")).to_have_text(
        "You are sending messages too fast; try again in 20 seconds."
    )
    server.push(
        {
            "type": "error",
            "code": "conversation_closed",
            "message": "This conversation was closed by our team.",
        }
    )
    restart = w.get_by_role("button", name="Start a new conversation")
    expect(restart).to_be_visible()
    screenshot(page, "closed")
    restart.click()
    wait_for(lambda: len(server.frames("hello")) == 2)
    assert "token" not in server.frames("hello")[1]
    expect(w.locator(".sb-msg-customer")).to_have_count(0)
    expect(w.locator(".sb-status-text")).to_have_text(BOT_STATUS)
    tokens = server.sent_welcome_tokens()
    assert len(set(tokens)) == 2
    key = "smallbot.token.127.0.0.1:" + str(server.port)
    # The widget stores the token when it handles the welcome: poll, it may lag the server.
    wait_for(lambda: page.evaluate(f"() => localStorage.getItem('{key}')") == tokens[1])


def test_a_retryable_server_error_resends_the_same_message(page: Any, server: MockServer) -> None:
    """The server could not store the message (say its database restarted): the widget sends
    the same client_id again after retry_after, and the customer sees it delivered."""
    w = open_widget(page, server)
    ask(page, "db hiccup: is my order shipped?")
    wait_for(lambda: len(server.frames("message")) == 2, timeout=10)
    first, second = server.frames("message")
    assert first["client_id"] == second["client_id"] and first["text"] == second["text"]
    expect(w.locator(".sb-msg-customer[data-id]")).to_have_text("db hiccup: is my order shipped?")
    expect(w.locator(".sb-msg-customer.sb-failed")).to_have_count(0)
    expect(w.locator(".sb-msg-bot[data-id]")).to_have_count(1)


def test_options_api_and_theme(page: Any, server: MockServer) -> None:
    query = "?open=true&position=left&accent=%23fbbf24&title=Ask%20Acme&greeting=Hello%20there!"
    page.goto(server.url + "/" + query)
    w = widget(page)
    dialog = w.get_by_role("dialog", name="Ask Acme chat")
    expect(dialog).to_be_visible()  # data-open
    expect(w.locator(".sb-greeting")).to_contain_text("Hello there!")
    expect(w.locator(".sb-status-text")).to_have_text(BOT_STATUS)
    launcher = w.get_by_role("button", name="Close Ask Acme chat")
    assert (launcher.bounding_box() or {})["x"] < 100  # data-position=left
    # A light accent gets dark text on it (contrast), and host pages can restyle via properties.
    colours = shadow_eval(
        page,
        "const s = getComputedStyle(root.querySelector('.sb-send'));"
        " return [s.backgroundColor, s.color];",
    )
    assert colours == ["rgb(251, 191, 36)", "rgb(17, 24, 39)"]
    page.add_style_tag(content="#smallbot-support { --sb-accent: #047857; --sb-accent-text: #fff }")
    colour = shadow_eval(
        page, "return getComputedStyle(root.querySelector('.sb-send')).backgroundColor;"
    )
    assert colour == "rgb(4, 120, 87)"
    # The host page's own button styles do not leak in.
    assert shadow_eval(
        page, "return getComputedStyle(root.querySelector('.sb-send')).borderTopStyle;"
    ) in ("none", "hidden")

    page.evaluate("() => window.SmallbotSupport.close()")
    expect(dialog).to_be_hidden()
    page.evaluate("() => window.SmallbotSupport.send('Sent through the API')")
    expect(dialog).to_be_visible()
    expect(w.locator(".sb-msg-customer[data-id]")).to_have_text("Sent through the API")
    assert server.frames("message")[0]["text"] == "Sent through the API"
    screenshot(page, "options")


def test_cross_origin_embed_uses_the_script_origin(page: Any, server: MockServer) -> None:
    page_origin = f"http://localhost:{server.port}"
    page.goto(page_origin + "/?abs=1")
    w = widget(page)
    w.get_by_role("button", name="Open Help chat").click()
    ask(page, "How do I reset my router?")
    source = w.locator(".sb-msg-bot[data-id] .sb-sources a")
    expect(source).to_have_attribute("href", server.url + CITATION["url"])
    assert server.handshakes == [("/ws/chat/", page_origin)]
    key = "smallbot.token.127.0.0.1:" + str(server.port)
    assert page.evaluate(f"() => localStorage.getItem('{key}')") == server.sent_welcome_tokens()[0]

    # data-endpoint overrides the derived URL (relative to the script).
    page.goto(page_origin + "/?abs=1&endpoint=/ws/chat/%3Fvia%3Dendpoint")
    wait_for(lambda: len(server.handshakes) == 2)  # a stored token connects at load
    assert server.handshakes[1] == ("/ws/chat/?via=endpoint", page_origin)


def test_out_of_hours_email_capture(page: Any, server: MockServer) -> None:
    server.out_of_hours = True
    w = open_widget(page, server)
    expect(w.locator(".sb-email")).to_be_hidden()
    w.get_by_role("button", name="Talk to a person").click()
    expect(w.locator(".sb-status-text")).to_have_text(OUT_OF_HOURS_TEXT)
    field = w.get_by_label(EMAIL_LABEL)
    expect(field).to_be_visible()
    expect(field).to_have_attribute("type", "email")
    expect(field).to_have_attribute("autocomplete", "email")
    send = w.get_by_role("button", name="Send email address")
    expect(send).to_be_visible()
    screenshot(page, "email-form")

    # Keyboard only: Tab from the close button reaches the field; Enter sends.
    w.get_by_role("button", name="Close chat").focus()
    page.keyboard.press("Tab")
    assert "sb-email-input" in focused_class(page)
    page.keyboard.type("sam@example.com")
    page.keyboard.press("Enter")
    thanks = w.locator(".sb-email [role=status]")
    expect(thanks).to_have_text("Thanks — we'll email you at sam@example.com.")
    expect(thanks).to_have_attribute("aria-live", "polite")
    expect(field).to_be_hidden()
    assert server.frames("email") == [{"type": "email", "email": "sam@example.com"}]
    assert "sb-input" in focused_class(page)  # focus is not lost with the form
    screenshot(page, "email-thanks")

    # After a reload the welcome frame still asks; this tab remembers the answer.
    page.reload()
    w.get_by_role("button", name="Open Help chat").click()
    expect(w.locator(".sb-status-text")).to_have_text(OUT_OF_HOURS_TEXT)
    expect(thanks).to_have_text("Thanks — we'll email you at sam@example.com.")
    expect(field).to_be_hidden()

    # "Change" offers the form again with the address in it.
    w.get_by_role("button", name="Change email address").click()
    expect(field).to_be_focused()
    expect(field).to_have_value("sam@example.com")
    page.keyboard.type("sam.smith@example.com")
    page.keyboard.press("Enter")
    expect(thanks).to_have_text("Thanks — we'll email you at sam.smith@example.com.")

    # A person joins: the request goes away.
    server.push({"type": "status", "status": "agent", "agent_name": "Sam", "text": ""})
    expect(w.locator(".sb-email")).to_be_hidden()
    assert len(server.frames("email")) == 2


def test_invalid_email_shows_the_error_next_to_the_field(page: Any, server: MockServer) -> None:
    server.out_of_hours = True
    w = open_widget(page, server)
    w.get_by_role("button", name="Talk to a person").click()
    field = w.get_by_label(EMAIL_LABEL)
    error = w.locator(".sb-email-error")

    # Not an address at all: caught here, nothing sent.
    field.fill("sam at example")
    field.press("Enter")
    expect(error).to_have_text("Please enter a valid email address, like name@example.com.")
    expect(field).to_have_attribute("aria-invalid", "true")
    assert server.frames("email") == []

    # The server's verdict: shown next to the field, the typed address kept.
    field.fill("sam@example")
    expect(error).to_be_hidden()  # typing clears the old message
    expect(field).not_to_have_attribute("aria-invalid", "true")
    w.get_by_role("button", name="Send email address").click()
    expect(error).to_have_text(BAD_EMAIL)
    expect(error).to_have_attribute("role", "alert")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_attribute("aria-describedby", "sb-email-error")
    expect(field).to_have_value("sam@example")
    expect(field).to_be_focused()
    expect(w.locator(".sb-notice")).to_have_count(0)  # not a notice under the log
    assert server.frames("email") == [{"type": "email", "email": "sam@example"}]
    screenshot(page, "email-error")

    field.fill("sam@example.org")
    field.press("Enter")
    thanks = w.locator(".sb-email [role=status]")
    expect(thanks).to_have_text("Thanks — we'll email you at sam@example.org.")
    expect(error).to_be_hidden()

    # A queue update without text: worded from out_of_hours / back_at; the thanks stays.
    server.push(
        {
            "type": "status",
            "status": "queued",
            "queue_position": 2,
            "wait_minutes": 3,
            "agent_name": None,
            "text": "",
            "out_of_hours": True,
            "back_at": "2026-11-30T09:00:00+01:00",
            "ask_email": True,
        }
    )
    expect(w.locator(".sb-status-text")).to_have_text(
        re.compile(r"^Our team is away until .*2026.* — you are number 2 in the queue\.$")
    )
    expect(thanks).to_have_text("Thanks — we'll email you at sam@example.org.")
