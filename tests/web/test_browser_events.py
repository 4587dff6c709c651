"""The page at ``/`` shows a job's progress live through ``GET /jobs/{id}/events`` (static/events.js),
in a real browser against the real stack: with EventSource when no key is needed, with fetch()
when one is (the key in the Authorization header, never in a URL), and back to ``?wait=`` when
the server has no stream to give. The browser fixtures are test_browser.py's."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .test_browser import (  # noqa: F401 - fixtures
    CLIENT_SECRET,
    JOB_TIMEOUT_MS,
    KEYS,
    artifact,
    browser,
    chromium_executable,
    job_status,
    new_page,
    page,
    submit_button,
    task_form,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def record_requests(page: Page) -> list:
    requests = []
    page.on("request", lambda request: requests.append(request))
    return requests


def run_sleep(page: Page, seconds: str) -> None:
    form = task_form(page, "sleep")  # offered because the test stack enables diagnostic tasks
    form.get_by_label("Seconds", exact=True).fill(seconds)
    submit_button(page).click()


def expect_live_progress(page: Page) -> None:
    """The progress bar moves while the job runs: seen part-way, then gone once it has finished."""
    bar = page.locator("#job-progress")
    expect(job_status(page)).to_have_text("started", timeout=JOB_TIMEOUT_MS)
    expect(bar).to_be_visible()
    page.wait_for_function(
        "() => { const bar = document.querySelector('#job-progress');"
        " return !bar.hidden && bar.value > 0 && bar.value < bar.max; }"
    )
    first = bar.evaluate("bar => bar.value")
    page.wait_for_function(f"() => document.querySelector('#job-progress').value > {first}")
    expect(job_status(page)).to_have_text("finished", timeout=JOB_TIMEOUT_MS)
    expect(bar).to_be_hidden()
    expect(page.locator("#job-waiting")).to_be_hidden()
    expect(page.locator("#job-result-list dd[data-key='slept']")).to_have_text("4")


def test_the_page_shows_progress_live_through_server_sent_events(stack, page, artifact):
    requests = record_requests(page)
    page.goto(f"{stack.base}/")
    run_sleep(page, "4")
    expect(page.locator("#job-panel")).to_have_attribute("data-watch", "events")
    expect(job_status(page)).to_have_text("started", timeout=JOB_TIMEOUT_MS)
    page.wait_for_function("() => document.querySelector('#job-progress').value > 0")
    artifact(page, "progress")
    expect_live_progress(page)
    job_id = page.locator("#job-id").inner_text()
    urls = [request.url for request in requests]
    assert f"{stack.base}/jobs/{job_id}/events" in urls
    assert not [url for url in urls if "?wait=" in url], urls  # no polling loop
    assert next(r for r in requests if r.url.endswith("/events")).resource_type == "eventsource"


def test_with_api_keys_the_stream_is_read_with_the_key_in_its_header(stack_factory, new_page, artifact):
    stack = stack_factory(API_KEYS=KEYS)
    page = new_page()
    requests = record_requests(page)
    page.goto(f"{stack.base}/")
    page.get_by_label("Key", exact=True).fill(CLIENT_SECRET)
    run_sleep(page, "4")
    expect(page.locator("#job-panel")).to_have_attribute("data-watch", "events")
    expect_live_progress(page)
    artifact(page, "finished")
    streams = [request for request in requests if request.url.endswith("/events")]
    assert streams and all(r.headers.get("authorization") == f"Bearer {CLIENT_SECRET}" for r in streams)
    assert not [r.url for r in requests if CLIENT_SECRET in r.url or "?wait=" in r.url]


def test_without_a_free_stream_the_page_falls_back_to_wait(stack_factory, page, artifact):
    stack = stack_factory(SSE_MAX_STREAMS="0")  # every stream is refused: 503
    requests = record_requests(page)
    page.goto(f"{stack.base}/")
    run_sleep(page, "1")
    expect(job_status(page)).to_have_text("finished", timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#job-panel")).to_have_attribute("data-watch", "wait")
    expect(page.locator("#job-problem")).to_be_hidden()
    assert [url for url in (r.url for r in requests) if re.search(r"/jobs/[^/?]+\?wait=", url)]
