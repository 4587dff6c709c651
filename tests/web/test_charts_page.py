"""The charts block of the page at ``/`` (app/web/templates/stats.html, static/charts.js), in a
real browser on the real stack: after jobs ran, each chart has one line per queue with a point
per minute, and the lines carry what the workers counted; each chart says its time (a labelled
time axis in the browser's time zone) and its unit, to the eye and to assistive technology
(SVG title and desc, a table of the figures); at a phone's width the axes stay legible.

The browser, page and screenshot fixtures are test_browser.py's."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from .test_browser import ARTIFACTS, DESKTOP, PHONE, artifact, browser, chromium_executable, new_page  # noqa: F401 - fixtures

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

# Not UTC, and half an hour off: labels in UTC (or the server's zone) would not match.
ZONE = "Asia/Kolkata"


def run_jobs(stack) -> None:
    ids = [stack.post({"type": "sleep", "seconds": 0.2}).json()["id"] for _ in range(2)]
    ids.append(stack.post({"type": "fail", "message": "x", "queue": "low"}).json()["id"])
    assert [stack.wait_for(job_id)["status"] for job_id in ids] == ["finished", "finished", "failed"]


def local_clock(iso: str, zone: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZoneInfo(zone))


def test_charts_draw_the_last_hour_per_queue(stack, new_page, artifact):  # noqa: F811
    run_jobs(stack)
    page = new_page(timezone_id=ZONE)
    page.goto(f"{stack.base}/")
    charts = page.locator("#charts")
    expect(charts.locator("#charts-wrap")).to_be_visible()
    for metric in ("finished", "failed", "mean_run_seconds"):
        lines = charts.locator(f'figure[data-metric="{metric}"] svg .series')
        expect(lines).to_have_count(3)
        for index in range(3):
            expect(lines.nth(index)).to_have_attribute("data-points", "60")
            if metric != "mean_run_seconds":
                assert len(lines.nth(index).get_attribute("points").split()) == 60

    finished = charts.locator('figure[data-metric="finished"]')
    expect(finished.locator('polyline[data-queue="default"]')).to_have_attribute("data-total", "2")
    expect(finished.locator('polyline[data-queue="low"]')).to_have_attribute("data-total", "0")
    # The two jobs end in one minute, or (rarely) one each side of a minute's turn.
    busiest = max(stack.get("/stats/timeseries?minutes=60").json()["queues"]["default"]["finished"])
    assert busiest in (1, 2)
    expect(finished).to_have_attribute("data-max", str(busiest))
    failed = charts.locator('figure[data-metric="failed"]')
    expect(failed.locator('polyline[data-queue="low"]')).to_have_attribute("data-total", "1")
    # The run time chart's scale is the slowest minute: at least the 0.2 s the jobs slept.
    run_max = float(charts.locator('figure[data-metric="mean_run_seconds"]').get_attribute("data-max"))
    assert run_max >= 0.2
    # The minutes the jobs ended in are drawn above the time axis; every other point is on it,
    # and the busiest minute (the top of the scale: 0-1-2 or 0-1) at the top of the plot.
    svg = finished.locator("svg")
    bottom, top = float(svg.get_attribute("data-bottom")), float(svg.get_attribute("data-top"))
    heights = [float(p.split(",")[1]) for p in finished.locator('polyline[data-queue="default"]').get_attribute("points").split()]
    assert 1 <= sum(1 for y in heights if y < bottom) <= 2 and min(heights) == pytest.approx(top, abs=0.1)
    assert sum(1 for y in heights if y == pytest.approx(bottom, abs=0.1)) >= 58
    # A run time exists only for the minutes in which jobs ended: no line elsewhere, and none at
    # "0 seconds" for the minutes in which nothing ran.
    run = charts.locator('figure[data-metric="mean_run_seconds"]')
    expect(run.locator('path[data-queue="high"]')).to_have_attribute("d", "")
    d = run.locator('path[data-queue="default"]').get_attribute("d")
    ys = [float(y) for y in re.findall(r"[ML][-\d.]+,([\d.]+)", d)]
    assert 1 <= len(ys) <= 2 and all(y < bottom - 20 for y in ys), d
    artifact(page, "charts")


def test_charts_say_the_time_in_local_time_and_their_units(stack, new_page, artifact):  # noqa: F811
    run_jobs(stack)
    page = new_page(timezone_id=ZONE)
    page.goto(f"{stack.base}/")
    charts = page.locator("#charts")
    expect(charts.locator("#charts-wrap")).to_be_visible()
    units = {"finished": "jobs/min", "failed": "jobs/min", "mean_run_seconds": "seconds"}
    for metric, unit in units.items():
        figure = charts.locator(f'figure[data-metric="{metric}"]')
        svg = figure.locator("svg")
        # The unit beside the value axis, and round values on it from 0.
        expect(svg.locator(".y-axis .unit")).to_have_text(unit)
        values = [float(v) for v in svg.locator(".y-axis text[data-value]").evaluate_all("els => els.map(e => e.dataset.value)")]
        assert values[0] == 0 and len(values) >= 2 and values == sorted(values), values
        assert values[-1] == float(figure.get_attribute("data-scale-top")) >= float(figure.get_attribute("data-max"))
        # The time axis: the zone said, labels in that zone's time on round minutes, evenly spaced.
        expect(svg.locator(".x-axis .title")).to_have_text("Local time (UTC+05:30)")
        labels = svg.locator(".x-axis text[data-time]")
        got = labels.evaluate_all("els => els.map(e => [e.dataset.time, e.textContent, e.getAttribute('x')])")
        assert len(got) >= 3, got
        clocks = [local_clock(iso, ZONE) for iso, _, _ in got]
        assert [text for _, text, _ in got] == [c.strftime("%H:%M") for c in clocks], got
        every = int((clocks[1] - clocks[0]).total_seconds() // 60)
        assert every in (5, 10, 15, 20, 30, 60), got
        assert all((c.hour * 60 + c.minute) % every == 0 for c in clocks), got
        assert all(int((b - a).total_seconds() // 60) == every for a, b in zip(clocks, clocks[1:])), got
        xs = [float(x) for _, _, x in got]
        assert xs == sorted(xs) and xs[0] >= 0, got

    # Assistive technology: each chart an image named for what, when and in which zone, described
    # by each queue's figures; and the figures as a table, minute by minute.
    finished = charts.locator('figure[data-metric="finished"]')
    image = finished.get_by_role("img")
    expect(image).to_have_accessible_name(
        re.compile(r"^Jobs finished per minute, per queue, \d\d:\d\d to \d\d:\d\d local time \(UTC\+05:30\)$")
    )
    expect(image).to_have_accessible_description(re.compile(r"default: 2 in the hour, at most \d in a minute"))
    expect(charts.locator('figure[data-metric="mean_run_seconds"]').get_by_role("img")).to_have_accessible_description(
        re.compile(r"^high: no job ended; default: up to 0\.\d+ s \(at \d\d:\d\d\); low: .*Scale 0 to 0\.\d seconds\.$")
    )
    finished.locator("summary", has_text="Table").click()
    table = finished.get_by_role("table")
    expect(table).to_be_visible()
    expect(table.locator("caption")).to_have_text("Jobs finished per minute (jobs/min), minutes in local time (UTC+05:30)")
    expect(table.get_by_role("columnheader")).to_have_text(["Minute", "high", "default", "low"])
    rows = table.locator("tbody tr")
    cells = rows.evaluate_all("rows => rows.map(r => Array.from(r.cells, c => c.textContent))")
    assert 1 <= len(cells) <= 2 and sum(int(row[2]) for row in cells) == 2, cells
    times = stack.get("/stats/timeseries?minutes=60").json()["times"]
    local_minutes = {local_clock(iso, ZONE).strftime("%H:%M") for iso in times}
    assert all(row[0] in local_minutes for row in cells), cells
    expect(finished.locator(".chart-table .hint")).to_have_text("Minutes not listed had none.")
    artifact(page, "axes")
    charts.screenshot(path=str(ARTIFACTS / "test_charts_say_the_time-charts.png"))
    # Across a refresh (every 10 s, or the button) the table stays open, and the same table
    # while its figures are the same (a screen reader reading it keeps its place).
    table.evaluate("t => { t.dataset.seen = '1'; }")
    with page.expect_response(lambda r: "/stats/timeseries" in r.url):
        page.locator("#charts-refresh").click()
    page.wait_for_timeout(300)
    expect(table).to_be_visible()
    expect(table).to_have_attribute("data-seen", "1")


def test_charts_fit_a_phone_and_redraw_for_a_new_width(stack, new_page, artifact):  # noqa: F811
    run_jobs(stack)
    page = new_page(viewport=PHONE, is_mobile=True, has_touch=True, timezone_id="UTC")
    page.goto(f"{stack.base}/")
    charts = page.locator("#charts")
    expect(charts.locator("#charts-wrap")).to_be_visible()

    def geometry() -> list[dict]:
        # Per chart: its viewBox against its size on screen (text drawn in those units is not
        # stretched when they agree), and the boxes of its labels.
        return page.evaluate(
            """() => Array.from(document.querySelectorAll('#charts figure.chart')).map(figure => {
                 const svg = figure.querySelector('svg');
                 const box = svg.getBoundingClientRect();
                 const card = figure.getBoundingClientRect();
                 const rect = el => { const r = el.getBoundingClientRect(); return [r.left, r.right, r.top, r.bottom]; };
                 return {
                   viewBox: svg.getAttribute('viewBox').split(' ').map(Number),
                   size: [box.width, box.height],
                   card: [card.left, card.right, card.top, card.bottom],
                   times: Array.from(svg.querySelectorAll('.x-axis text[data-time]'), rect),
                   title: rect(svg.querySelector('.x-axis .title')),
                   values: Array.from(svg.querySelectorAll('.y-axis text'), rect),
                   fontSize: Array.from(svg.querySelectorAll('text'), t => t.getBoundingClientRect().height),
                 };
               })"""
        )

    def check(charts_geometry: list[dict], width: int) -> None:
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        for chart in charts_geometry:
            assert chart["viewBox"][2:] == [round(chart["size"][0]), round(chart["size"][1])], chart
            left, right, top, bottom = chart["card"]
            for box in [*chart["times"], chart["title"], *chart["values"]]:
                assert left <= box[0] and box[1] <= right and top <= box[2] and box[3] <= bottom, (box, chart)
            times = sorted(chart["times"])
            assert len(times) >= 3 and all(a[1] + 8 <= b[0] for a, b in zip(times, times[1:])), times
            assert all(10 <= h <= 18 for h in chart["fontSize"]), chart["fontSize"]  # 11px text, not squeezed

    expect(charts.locator('figure[data-metric="finished"] .x-axis .title')).to_have_text("Time (UTC)")
    phone = geometry()
    check(phone, PHONE["width"])
    assert phone[0]["size"][0] < 370
    charts.screenshot(path=str(ARTIFACTS / "test_charts_fit_a_phone-charts.png"))

    # Wider: drawn again for the new width (a rotated phone, a resized window).
    page.set_viewport_size(DESKTOP)
    page.wait_for_function(
        "() => { const s = document.querySelector('#chart-finished');"
        " return Number(s.getAttribute('viewBox').split(' ')[2]) === Math.round(s.getBoundingClientRect().width); }"
    )
    desktop = geometry()
    check(desktop, DESKTOP["width"])
    assert desktop[0]["size"][0] != phone[0]["size"][0]
    charts.screenshot(path=str(ARTIFACTS / "test_charts_fit_a_phone-charts-desktop.png"))

