"""The queues block of the page at ``/`` (app/web/templates/queues.html, static/queues.js), in a
real browser on the real stack: a client key sees the queues but may not pause one; an admin key
pauses ``default``, a job waits on it, and resuming it lets the job run; jobs with a
``concurrency_key`` show in the concurrency table, waiting their turn, until they have run.

The browser, page and screenshot fixtures are test_browser.py's."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .test_browser import (  # noqa: F401
    ADMIN_SECRET,
    CLIENT_SECRET,
    KEYS,
    artifact,
    browser,
    chromium_executable,
    new_page,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def test_pause_and_resume_a_queue_from_the_page(stack_factory, new_page, artifact):  # noqa: F811
    stack = stack_factory(API_KEYS=KEYS)
    page = new_page()
    page.goto(f"{stack.base}/")
    block = page.locator("#queues")
    expect(block.locator("#queues-message")).to_contain_text("Enter an API key")
    key = page.get_by_label("Key", exact=True)

    key.fill(CLIENT_SECRET)
    block.get_by_role("button", name="Refresh").click()
    rows = block.locator("#queues-body tr")
    expect(rows).to_have_count(3)
    default = block.locator('#queues-body tr[data-queue="default"]')
    expect(default.locator(".c-state")).to_have_text("running")
    expect(default.locator(".c-workers")).to_have_text("1")
    default.get_by_role("button", name="Pause default").click()
    expect(block.locator("#queues-message")).to_contain_text("admin key")
    expect(default.locator(".c-state")).to_have_text("running")

    key.fill(ADMIN_SECRET)
    default.get_by_role("button", name="Pause default").click()
    expect(default.locator(".c-state")).to_have_text("paused")
    assert stack.get("/queues/default", headers={"Authorization": f"Bearer {ADMIN_SECRET}"}).json()["paused"] is True
    job = stack.post({"type": "noop"}, headers={"Authorization": f"Bearer {ADMIN_SECRET}"}).json()
    expect(default.locator(".c-queued")).to_have_text("1")  # the table refreshes by itself
    limited = {"type": "noop", "concurrency_key": "mail:example.com", "concurrency_limit": 1}
    waiting = [stack.post(limited, headers={"Authorization": f"Bearer {ADMIN_SECRET}"}).json() for _ in range(3)]
    key_row = block.locator("#concurrency-body tr")
    expect(key_row).to_have_count(1)
    expect(key_row.locator(".c-key")).to_have_text("mail:example.com")
    expect(key_row.locator(".c-limit")).to_have_text("1")
    expect(key_row.locator(".c-active")).to_have_text("1")  # one on the paused queue, two waiting their turn
    expect(key_row.locator(".c-waiting")).to_have_text("2")
    expect(default.locator(".c-queued")).to_have_text("2")
    artifact(page, "paused")

    default.get_by_role("button", name="Resume default").click()
    expect(default.locator(".c-state")).to_have_text("running")
    expect(default.locator(".c-queued")).to_have_text("0")
    for submitted in [job, *waiting]:
        body = stack.get(f"/jobs/{submitted['id']}?wait=10", headers={"Authorization": f"Bearer {ADMIN_SECRET}"}).json()
        assert body["status"] == "finished"
    expect(block.locator("#concurrency-message")).to_contain_text("No job waits")
    expect(block.locator("#concurrency-wrap")).to_be_hidden()
