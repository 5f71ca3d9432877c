"""Waiting in a real browser for the state a test wants, never for a page to go away.

While Chromium navigates, any WebDriver command may fail in ways that only mean "not yet":
a stale element, "Node with given id does not belong to the document", a frame detached, a
navigation that has not committed. So a wait here asks for the *wanted* state — the new page's
URL and an element only that page has — and takes every ``WebDriverException`` raised inside
the bound as "not yet". The bound only limits a failure; the failure says what was last seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest
from selenium.common.exceptions import WebDriverException

T = TypeVar("T")

# Generous: a login hashes the password and the machine may be loaded; only bounds a failure.
WAIT = 30.0

Locator = tuple[str, str]


def wait_for(driver, condition: Callable[[object], T | None], what: str, timeout: float = WAIT) -> T:
    """Poll ``condition(driver)`` until it returns a value that is not None or False; a
    ``WebDriverException`` it raises (navigation in progress) counts as "not yet"."""
    deadline = time.monotonic() + timeout
    last_error: WebDriverException | None = None
    while True:
        try:
            value = condition(driver)
        except WebDriverException as exc:
            value, last_error = None, exc
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            seen = _current_url(driver)
            error = f"; last WebDriver error: {last_error.msg or type(last_error).__name__}" if last_error else ""
            pytest.fail(f"{what}: not within {timeout:g} s (browser at {seen}){error}")
        time.sleep(0.05)


def wait_for_page(
    driver, url: Callable[[str], bool], locator: Locator, what: str, timeout: float = WAIT, text: str | None = None
):
    """Wait until the browser shows the page whose URL satisfies ``url`` and which has an
    element at ``locator`` (with ``text``, when given); return that element's text."""

    def arrived(driver) -> str | None:
        if not url(driver.current_url):
            return None
        elements = driver.find_elements(*locator)
        if not elements:
            return None
        shown = elements[0].text
        return shown if text is None or shown == text else None

    return wait_for(driver, arrived, what, timeout)


def table_rows(driver, selector: str = "#results tbody tr") -> list[list[str]]:
    """The cells' text of every row at ``selector``, read in one script call (no element
    handle outlives it, so nothing can go stale between finding a row and reading it)."""
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]),"
        " (row) => Array.from(row.querySelectorAll('td'), (cell) => cell.textContent));",
        selector,
    )
    return [list(row) for row in rows]


def _current_url(driver) -> str:
    try:
        return str(driver.current_url)
    except WebDriverException as exc:
        return f"<unknown: {exc.msg}>"

