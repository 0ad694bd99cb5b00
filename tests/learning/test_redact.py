"""Redaction of personal data (support.learning.redact): what is replaced, and what is not."""

from __future__ import annotations

import pytest

from support.learning.redact import (
    PublicValues,
    iban_valid,
    luhn_valid,
    public_values_of,
    redact,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mail me at jane.doe+shop@example.co.uk please", "Mail me at [email] please"),
        ("JANE_DOE@Example.COM wrote", "[email] wrote"),
        ("(me: a.b@c.io)", "(me: [email])"),
        ("My card is 4111 1111 1111 1111, exp 12/26", "My card is [card], exp 12/26"),
        ("card 4111-1111-1111-1111.", "card [card]."),
        ("card 5500005555555559", "card [card]"),
        ("amex 3782 822463 10005", "amex [card]"),
        ("IBAN GB82 WEST 1234 5698 7654 32 thanks", "IBAN [account] thanks"),
        ("to DE89370400440532013000 today", "to [account] today"),
        ("Call me on +44 20 7946 0958", "Call me on [phone]"),
        ("or (555) 123-4567 after six", "or [phone] after six"),
        ("ring 555.123.4567", "ring [phone]"),
        ("my number is 555-1234", "my number is [phone]"),
        ("phone: 0176 12345678", "phone: [phone]"),
        ("0044 20 7946 0958 is mine", "[phone] is mine"),
        ("020 7946 0958", "[phone]"),
        ("Order 123456789 never arrived", "Order [account] never arrived"),
        ("ticket #12345678", "ticket #[account]"),
        ("ssn 123-45-6789", "ssn [account]"),
        # A long digit run that fails the card check is still no one's business.
        ("number 4111111111111112", "number [account]"),
        ("account 0123 4567 8901 2345 678", "account [account]"),
    ],
)
def test_personal_data_is_replaced(text: str, expected: str) -> None:
    assert redact(text).text == expected


@pytest.mark.parametrize(
    "text",
    [
        "It costs $1,299.99 or 1299 EUR.",
        "A budget of $ 1 250 000 or 1 250 000 dollars, 1.250.000 people",
        "Refunds over €2500000 need a manager",
        "On 2024-05-01, 01.05.2024, 2024/05/01 or 05/01/2024 at 10:30",
        "between 2019-2024 and 1999 - 2004",
        "Model X200, router RT-AC68U, error ERR-4032, version 2.3.1, SKU AB12345678",
        "I have 3 kids and 2 dogs, zip 10001, 15% off, 4 hours, room 1204",
        "Hold the reset button for 10 seconds",
        "from 9 to 5, Mon-Fri, 24/7",
        "pages 100-250 of 1200",
        "ip 192.168.1.1",
        "a 512 GB disk, 16000000 bytes",
        "",
    ],
)
def test_what_is_no_personal_data_stays(text: str) -> None:
    result = redact(text)
    assert result.text == text and result.count == 0


def test_redact_reports_what_it_replaced_in_order() -> None:
    result = redact(
        "a@b.com or +1 415 555 0100, card 4111111111111111, IBAN GB82WEST12345698765432"
    )
    assert result.found == ("email", "phone", "card", "account")
    assert result.text == "[email] or [phone], card [card], IBAN [account]"
    assert result.count == 4


def test_values_the_knowledge_base_publishes_are_kept() -> None:
    kb = [
        "Call us at 1-800-772-1213 (TTY 1-800-325-0778), Monday to Friday.",
        "Write to help@brightwave.example for anything else.",
    ]
    public = public_values_of(kb)
    assert "18007721213" in public.numbers and "help@brightwave.example" in public.emails
    text = "I called 1 800 772 1213 and wrote to help@brightwave.example; I am on 555-987-6543"
    assert redact(text, public=public).text == (
        "I called 1 800 772 1213 and wrote to help@brightwave.example; I am on [phone]"
    )
    # Without the knowledge base they are phone numbers and addresses like any other.
    assert redact(text).text == "I called [phone] and wrote to [email]; I am on [phone]"


def test_public_values_match_only_exactly() -> None:
    public = PublicValues(emails=frozenset({"help@brightwave.example"}), numbers=frozenset())
    assert redact("help@brightwave.example.org", public=public).text == "[email]"


def test_luhn_and_iban_checks() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112") and not luhn_valid("41x1")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and iban_valid("DE89370400440532013000")
    assert not iban_valid("GB83 WEST 1234 5698 7654 32") and not iban_valid("GB82")


def test_hostile_input_is_handled_quickly_and_whole() -> None:
    text = ("1 " * 5000) + "@" * 2000 + ("a." * 3000) + "\x00"
    assert redact(text).text  # no exception, no catastrophic backtracking
