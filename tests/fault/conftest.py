"""One stack of real processes for the whole tests/fault package (see harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fault.harness import Stack, missing_services


@pytest.fixture(scope="package")
def stack() -> Iterator[Stack]:
    reason = missing_services()
    if reason:
        pytest.skip(reason)
    services = Stack()
    try:
        services.start()
        yield services
    finally:
        services.close()


@pytest.fixture
def live(stack: Stack) -> Stack:
    """The stack with every service up (a failed test may have left one down or paused)."""
    stack.heal()
    return stack
