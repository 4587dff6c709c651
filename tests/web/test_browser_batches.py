"""The batch block of the page at ``/`` (``static/batches.js``), in a real browser against the real
stack: one value per line (of a task and a text field picked from ``GET /tasks``) goes as one
``POST /jobs/batch``, and the counts follow the batch until it is done. The browser fixtures are
those of ``test_browser.py``."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .test_browser import JOB_TIMEOUT_MS, artifact, browser, chromium_executable, new_page, page  # noqa: F401 - fixtures

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def test_a_batch_of_texts_from_the_page(stack_factory, page, artifact):  # noqa: F811 - fixtures
    stack = stack_factory(workers=1, MAX_TEXT_BYTES="40")
    page.goto(f"{stack.base}/")
    form = page.locator("#batch-form")
    form.get_by_label("Task", exact=True).select_option("count_words")
    expect(form.get_by_label("Each line is its")).to_have_value("text")
    area = form.get_by_label("Values, one per line")
    form.get_by_role("button", name="Submit batch").click()
    expect(form.locator("#bt-texts-error")).to_have_text("Write at least one line.")
    expect(area).to_have_attribute("aria-invalid", "true")

    area.fill("the quick brown fox\n\njumps over the lazy dog\n" + "x" * 50 + "\nthree more words")
    form.get_by_role("button", name="Submit batch").click()
    state = form.locator("#batch-state")
    expect(state).to_have_text("done: all 3 jobs have ended", timeout=JOB_TIMEOUT_MS)
    expect(form.locator('#batch-counts dd[data-status="finished"]')).to_have_text("3")
    # The fourth line (the text over MAX_TEXT_BYTES) was refused alone, and said so by its line number.
    expect(form.locator("#bt-texts-error")).to_contain_text("1 line(s) refused: line 4: text:")
    batch_id = form.locator("#batch-id").inner_text()
    expect(form.get_by_role("link", name=batch_id)).to_have_attribute("href", f"/batches/{batch_id}")
    artifact(page, "done")

    batch = stack.get(f"/batches/{batch_id}").json()
    assert batch["total"] == 3 and batch["counts"]["finished"] == 3 and batch["done"] is True
    words = [stack.get(f"/jobs/{job_id}").json()["result"]["words"] for job_id in batch["jobs"]]
    assert words == [4, 5, 3]


def test_the_batch_block_shows_why_a_batch_was_refused(stack_factory, page):  # noqa: F811 - fixtures
    stack = stack_factory(workers=0, MAX_TEXT_BYTES="10")
    page.goto(f"{stack.base}/")
    form = page.locator("#batch-form")
    form.get_by_label("Task", exact=True).select_option("count_words")
    form.get_by_label("Values, one per line").fill("\nfar too long a line\n")
    form.get_by_role("button", name="Submit batch").click()
    expect(form.locator("#bt-texts-error")).to_contain_text("line 2: text: must be at most 10 bytes")
    expect(form.locator("#batch-result")).to_be_hidden()
    assert stack.get("/jobs").json()["jobs"] == []
