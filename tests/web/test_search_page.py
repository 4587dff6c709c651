"""The search block of the page at ``/`` (app/web/templates/search.html, static/search.js), in a
real browser on the real stack: a bad field refused beside it, a search by metadata whose result
opens in the job panel, a search by error type, and a bulk retry of every match with its counts.

The browser, page and screenshot fixtures are test_browser.py's."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from ..conftest import wait_until
from .test_browser import artifact, browser, chromium_executable, new_page, page  # noqa: F401 - fixtures

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def test_find_jobs_then_retry_every_match_from_the_page(stack, page, artifact):  # noqa: F811
    first = stack.post({"type": "count_words", "text": "a b", "metadata": {"order": "A-1"}}).json()
    stack.post({"type": "count_words", "text": "c", "metadata": {"order": "B-2"}})
    failed = [stack.post({"type": "fail", "message": "broken"}).json()["id"] for _ in range(3)]
    for job_id in [first["id"], *failed]:
        stack.wait_for(job_id)

    page.goto(f"{stack.base}/")
    form = page.locator("#search-form")
    block = page.locator("#search")

    # A bad id prefix: the API's error beside the field, nothing listed.
    form.get_by_label("Id starts with").fill("a/b")
    form.get_by_role("button", name="Search").click()
    expect(form.locator("#sr-id_prefix-error")).to_contain_text("A-Z")
    expect(form.get_by_label("Id starts with")).to_have_attribute("aria-invalid", "true")
    form.get_by_label("Id starts with").fill("")

    # By metadata: the one job, and its link opens it in the job panel.
    form.get_by_label("Metadata key").fill("order")
    form.get_by_label("Metadata value").fill("A-1")
    form.get_by_role("button", name="Search").click()
    rows = block.locator("#search-body tr")
    expect(rows).to_have_count(1)
    expect(block.locator("#search-message")).to_have_text("1 job found.")
    rows.first.get_by_role("link").click()
    expect(page.locator("#job-id")).to_have_text(first["id"])
    expect(page.locator("#job-status")).to_have_text("finished")

    # By error type and status: the three failed jobs; retry them all at once.
    form.get_by_label("Metadata key").fill("")
    form.get_by_label("Metadata value").fill("")
    form.get_by_label("Error type").fill("RuntimeError")
    form.get_by_label("Status").select_option("failed")
    form.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("RuntimeError")
    artifact(page, "found")
    page.once("dialog", lambda dialog: dialog.accept())
    block.get_by_role("button", name="Retry failed matches").click()
    expect(block.locator("#bulk-message")).to_have_text("3 retried, 0 skipped of 3 matched.")
    artifact(page, "retried")
    # Each ran once more (and failed again: it is the `fail` task).
    wait_until(lambda: all(stack.get(f"/jobs/{job_id}").json()["attempts"] == 2 for job_id in failed), timeout=30)
    wait_until(lambda: all(stack.get(f"/jobs/{job_id}").json()["status"] == "failed" for job_id in failed), timeout=30)
