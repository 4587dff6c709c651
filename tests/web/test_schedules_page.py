"""The schedules block of the page at ``/`` (app/web/templates/schedules.html, static/schedules.js),
in a real browser on the real stack: create a schedule (and see a bad one refused beside its field),
watch its next run and last job follow the ticks, pause it, delete it.

A schedule's state and the action on it are shown apart, as the queues block does: a badge says
"active" or "paused", a button says "Pause" or "Resume" (no "On" that could be either). The
keyboard can do it all, and the focus stays on the control through the list's redraws.

The browser, page and screenshot fixtures are test_browser.py's."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect

from .test_browser import (  # noqa: F401 - fixtures
    ARTIFACTS,
    DESKTOP,
    PHONE,
    artifact,
    browser,
    chromium_executable,
    new_page,
    page,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

# A tick nobody waits for in a test: once a year.
YEARLY = "0 0 1 1 *"


def create(stack, name: str, **fields) -> dict:
    body = {"name": name, "cron": YEARLY, "job": {"type": "count_words", "text": "tick"}, **fields}
    answer = requests.post(f"{stack.base}/schedules", json=body, timeout=10)
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_create_watch_pause_and_delete_a_schedule_from_the_page(stack, page, artifact):  # noqa: F811
    page.goto(f"{stack.base}/")
    block = page.locator("#schedules")
    expect(block.locator("#schedules-message")).to_have_text("No schedules yet.")
    form = page.locator("#schedule-form")

    # A bad cron expression and a bad job: each error beside its field, nothing created.
    form.get_by_label("Runs").select_option("cron")
    form.get_by_label("Cron expression").fill("every minute")
    form.get_by_label("Job (as the body of POST /jobs)").fill('{"type": "count_words"}')
    form.get_by_role("button", name="Create schedule").click()
    expect(form.locator("#sc-cron-error")).to_contain_text("5 fields")
    expect(form.locator("#sc-job-error")).to_contain_text("text:")
    expect(form.get_by_label("Cron expression")).to_have_attribute("aria-invalid", "true")
    artifact(page, "refused")
    assert stack.get("/schedules").json()["schedules"] == []

    # A good one: every second.
    form.get_by_label("Runs").select_option("every_seconds")
    form.get_by_label("Name").fill("heartbeat")
    form.get_by_label("Every (seconds)").fill("1")
    form.get_by_label("Job (as the body of POST /jobs)").fill('{"type": "count_words", "text": "tick tock"}')
    form.get_by_label("Every (seconds)").press("Enter")
    row = block.locator("#schedules-body tr").filter(has_text="heartbeat")
    expect(row).to_contain_text("every 1 s")
    # Its state, and apart from it the action: no control that could be either.
    expect(row.locator(".schedule-state")).to_have_text("active")
    expect(row.get_by_role("button", name="Pause heartbeat")).to_have_text("Pause")
    expect(block.get_by_role("switch")).to_have_count(0)
    expect(row.get_by_role("link", name="job")).to_be_visible(timeout=20_000)  # a tick ran: its job is linked
    artifact(page, "running")
    schedule = stack.get("/schedules").json()["schedules"][0]
    assert schedule["name"] == "heartbeat" and schedule["last_job_id"].startswith(schedule["id"] + "-")

    row.get_by_role("button", name="Pause heartbeat").click()
    expect(row.locator(".schedule-state")).to_have_text("paused")
    expect(row.get_by_role("button", name="Resume heartbeat")).to_have_text("Resume")
    expect(row.locator(".c-next")).to_have_text("none")
    expect(block.locator("#schedules-message")).to_have_text("heartbeat paused: no job until it is resumed.")
    assert stack.get(schedule["links"]["self"]).json()["enabled"] is False

    row.get_by_role("button", name="Delete heartbeat").click()
    expect(block.locator("#schedules-message")).to_have_text("No schedules yet.")
    assert stack.get(schedule["links"]["self"]).status_code == 404


def test_pause_resume_and_delete_by_keyboard_keep_the_focus(stack, page, artifact):  # noqa: F811
    create(stack, "older")
    nightly = create(stack, "nightly")
    page.goto(f"{stack.base}/")
    block = page.locator("#schedules")
    rows = block.locator("#schedules-body tr")
    expect(rows).to_have_count(2)
    row = rows.filter(has_text="nightly")
    expect(rows.first).to_contain_text("nightly")  # newest first

    # From the block's Refresh button, Tab reaches the first schedule's action.
    block.locator("#schedules-refresh").focus()
    page.keyboard.press("Tab")
    pause = row.get_by_role("button", name="Pause nightly")
    expect(pause).to_be_focused()

    page.keyboard.press("Enter")
    expect(row.locator(".schedule-state")).to_have_text("paused")
    resume = row.get_by_role("button", name="Resume nightly")
    expect(resume).to_be_focused()  # the redrawn list gave the focus back to the same control
    expect(block.locator("#schedules-message")).to_have_text("nightly paused: no job until it is resumed.")
    assert stack.get(nightly["links"]["self"]).json()["enabled"] is False
    artifact(page, "paused")

    # The list redraws every 5 s: the focus stays where the user left it.
    with page.expect_response(lambda r: "/schedules?limit=" in r.url, timeout=15_000):
        pass
    page.wait_for_timeout(200)
    expect(resume).to_be_focused()

    page.keyboard.press("Space")
    expect(row.locator(".schedule-state")).to_have_text("active")
    expect(row.get_by_role("button", name="Pause nightly")).to_be_focused()
    assert stack.get(nightly["links"]["self"]).json()["enabled"] is True

    # Delete: the focus goes to the block's heading, not to the next schedule's Delete (where a
    # second Enter would remove another schedule).
    page.keyboard.press("Tab")
    expect(row.get_by_role("button", name="Delete nightly")).to_be_focused()
    page.keyboard.press("Enter")
    expect(rows).to_have_count(1)
    expect(block.get_by_role("heading", name="Schedules", exact=True)).to_be_focused()
    expect(block.locator("#schedules-message")).to_have_text("nightly deleted.")
    assert stack.get(nightly["links"]["self"]).status_code == 404
    assert [s["name"] for s in stack.get("/schedules").json()["schedules"]] == ["older"]


def test_state_and_action_side_by_side_on_a_phone_and_a_desktop(stack, new_page):  # noqa: F811
    create(stack, "a schedule with quite a long name, to wrap")
    paused = create(stack, "paused one")
    assert requests.patch(f"{stack.base}{paused['links']['self']}", json={"enabled": False}, timeout=10).ok

    for name, viewport, options in (
        ("desktop", DESKTOP, {}),
        ("phone", PHONE, {"is_mobile": True, "has_touch": True}),
    ):
        page = new_page(viewport=viewport, **options)
        page.goto(f"{stack.base}/")
        block = page.locator("#schedules")
        rows = block.locator("#schedules-body tr")
        expect(rows).to_have_count(2)
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"], name
        for row, state, action in (
            (rows.filter(has_text="long name"), "active", "Pause"),
            (rows.filter(has_text="paused one"), "paused", "Resume"),
        ):
            badge = row.locator(".schedule-state")
            button = row.locator(".schedule-toggle")
            expect(badge).to_have_text(state)
            expect(button).to_have_text(action)
            b, t = badge.bounding_box(), button.bounding_box()
            # On one line, the state first, then its action; both within the screen.
            middle = lambda box: box["y"] + box["height"] / 2  # noqa: E731
            assert b["x"] + b["width"] <= t["x"] and abs(middle(b) - middle(t)) < 4, (name, b, t)
            assert t["x"] + t["width"] <= viewport["width"], (name, t)
        # The create form keeps its space from the list above it (its rule was lost to a stray brace).
        assert page.evaluate("getComputedStyle(document.querySelector('#schedule-form')).marginTop") == "16px"
        block.screenshot(path=str(ARTIFACTS / f"test_schedules_state_and_action-{name}.png"))

        # By touch (or click): resume the paused one.
        row = rows.filter(has_text="paused one")
        button = row.get_by_role("button", name="Resume paused one")
        button.tap() if options else button.click()
        expect(row.locator(".schedule-state")).to_have_text("active")
        assert stack.get(paused["links"]["self"]).json()["enabled"] is True
        row.get_by_role("button", name="Pause paused one").click()
        expect(row.locator(".schedule-state")).to_have_text("paused")
