"""The schedules block of the page at ``/`` (app/web/templates/schedules.html, static/schedules.js),
in a real browser on the real stack: create a schedule (and see a bad one refused beside its field),
watch its next run and last job follow the ticks, switch it off, delete it.

The browser, page and screenshot fixtures are test_browser.py's."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .test_browser import artifact, browser, chromium_executable, new_page, page  # noqa: F401 - fixtures

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


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
    expect(row.get_by_role("switch", name="Disable heartbeat")).to_have_attribute("aria-checked", "true")
    expect(row.get_by_role("link", name="job")).to_be_visible(timeout=20_000)  # a tick ran: its job is linked
    artifact(page, "running")
    schedule = stack.get("/schedules").json()["schedules"][0]
    assert schedule["name"] == "heartbeat" and schedule["last_job_id"].startswith(schedule["id"] + "-")

    row.get_by_role("switch", name="Disable heartbeat").click()
    expect(row.get_by_role("switch", name="Enable heartbeat")).to_have_attribute("aria-checked", "false")
    expect(row).to_contain_text("paused")
    assert stack.get(schedule["links"]["self"]).json()["enabled"] is False

    row.get_by_role("button", name="Delete heartbeat").click()
    expect(block.locator("#schedules-message")).to_have_text("No schedules yet.")
    assert stack.get(schedule["links"]["self"]).status_code == 404
