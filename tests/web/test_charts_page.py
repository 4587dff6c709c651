"""The charts block of the page at ``/`` (app/web/templates/stats.html, static/charts.js), in a
real browser on the real stack: after jobs ran, each chart has one line per queue with a point
per minute, and the lines carry what the workers counted.

The browser, page and screenshot fixtures are test_browser.py's."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .test_browser import artifact, browser, chromium_executable, new_page  # noqa: F401 - fixtures

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def test_charts_draw_the_last_hour_per_queue(stack, new_page, artifact):  # noqa: F811
    ids = [stack.post({"type": "sleep", "seconds": 0.2}).json()["id"] for _ in range(2)]
    ids.append(stack.post({"type": "fail", "message": "x", "queue": "low"}).json()["id"])
    assert [stack.wait_for(job_id)["status"] for job_id in ids] == ["finished", "finished", "failed"]

    page = new_page()
    page.goto(f"{stack.base}/")
    charts = page.locator("#charts")
    expect(charts.locator("#charts-wrap")).to_be_visible()
    for metric in ("finished", "failed", "mean_run_seconds"):
        lines = charts.locator(f'figure[data-metric="{metric}"] svg polyline')
        expect(lines).to_have_count(3)
        for index in range(3):
            expect(lines.nth(index)).to_have_attribute("data-points", "60")
            assert len(lines.nth(index).get_attribute("points").split()) == 60

    finished = charts.locator('figure[data-metric="finished"]')
    expect(finished.locator('polyline[data-queue="default"]')).to_have_attribute("data-total", "2")
    expect(finished.locator('polyline[data-queue="low"]')).to_have_attribute("data-total", "0")
    expect(finished).to_have_attribute("data-max", "2")
    failed = charts.locator('figure[data-metric="failed"]')
    expect(failed.locator('polyline[data-queue="low"]')).to_have_attribute("data-total", "1")
    # The run time chart's scale is the slowest minute: at least the 0.2 s the jobs slept.
    run_max = float(charts.locator('figure[data-metric="mean_run_seconds"]').get_attribute("data-max"))
    assert run_max >= 0.2
    # The minutes the jobs ended in are drawn above the axis (y = 160); every other point is on it.
    heights = [float(p.split(",")[1]) for p in finished.locator('polyline[data-queue="default"]').get_attribute("points").split()]
    assert 1 <= sum(1 for y in heights if y < 160) <= 2 and min(heights) == pytest.approx(14, abs=0.1)
    artifact(page, "charts")
