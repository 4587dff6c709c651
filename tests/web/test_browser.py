"""The page at ``/`` and the dashboard, driven in a real browser (Playwright + Debian's chromium).

Every test runs against the real stack of ``conftest.py`` (gunicorn, a worker, Valkey, the
SMTP sink) and saves screenshots under ``test-artifacts/``. Chromium is Debian's package:
the ``chromium_executable`` fixture installs it with apt when it is missing (Playwright's
own browser download is never used).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from ..conftest import ROOT, wait_until

# The first test may have to install chromium with apt: give it time. Playwright's own
# timeouts (below) bound every browser step far more tightly than this.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

# Assertions wait for the page (and its polling) up to this long; a busy CI machine is slow.
expect.set_options(timeout=15_000)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
JOB_TIMEOUT_MS = 30_000
KEYS = "shop:client:s3cret,ops:admin:t0ps3cret"
ADMIN_SECRET = "t0ps3cret"
CLIENT_SECRET = "s3cret"


# --- browser fixtures -------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Debian's chromium, installed with apt when it is missing (we run as root, CI too)."""
    if not CHROMIUM.exists():
        apt = shutil.which("apt-get")
        if apt is None:
            pytest.skip(
                "BROWSER TESTS NOT RUN: /usr/bin/chromium is missing and apt-get is not available to install it "
                "(install Debian's 'chromium' package to run them)"
            )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in ([apt, "update"], [apt, "install", "-y", "chromium"]):
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=540, check=False)
            if done.returncode != 0:
                pytest.fail(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        assert CHROMIUM.exists(), "apt-get installed 'chromium' but /usr/bin/chromium is still missing"
    return str(CHROMIUM)


@pytest.fixture(scope="module")
def browser(chromium_executable) -> Iterator[Browser]:
    # Module scope: Playwright's sync API keeps an event loop going, which must not outlive these tests.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Watched:
    """What a page did that a test should not have to look for: errors, and requests elsewhere."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.hosts: set[str] = set()

    def attach(self, page: Page) -> Page:
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        # "Failed to load resource" is how chromium logs any 4xx answer, which several tests provoke.
        page.on(
            "console",
            lambda msg: self.errors.append(f"console: {msg.text}")
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None,
        )
        page.on("request", lambda req: self.hosts.add(urlsplit(req.url).hostname or req.url))
        return page


@pytest.fixture
def artifact(request):
    """``artifact(page, "step")`` saves test-artifacts/<test>-<step>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)

    def save(page: Page, step: str) -> Path:
        path = ARTIFACTS / f"{name}-{step}.png"
        page.evaluate("window.scrollTo(0, 0)")  # the job panel is sticky: picture the page from its top
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


@pytest.fixture
def new_page(browser, artifact) -> Iterator:
    """Open pages in fresh browser contexts; each ends with a screenshot and a check that the
    page raised no script error, broke no Content-Security-Policy rule, and fetched nothing
    from anywhere but offload."""
    opened: list[tuple[Page, Watched]] = []

    def open_page(viewport: dict | None = None, **context_options) -> Page:
        context = browser.new_context(viewport=viewport or DESKTOP, **context_options)
        context.set_default_timeout(20_000)
        watched = Watched()
        page = watched.attach(context.new_page())
        opened.append((page, watched))
        return page

    yield open_page
    problems = []
    for index, (page, watched) in enumerate(opened):
        try:
            artifact(page, f"end{index or ''}")
        except Exception as exc:  # noqa: BLE001 - a closed page has no picture; keep checking the rest
            problems.append(f"no final screenshot: {exc}")
        problems += watched.errors
        if watched.hosts - {"127.0.0.1"}:
            problems.append(f"the page fetched from elsewhere: {sorted(watched.hosts)}")
        page.context.close()
    assert not problems, problems


@pytest.fixture
def page(new_page) -> Page:
    return new_page()


def job_status(page: Page):
    return page.locator("#job-status")


def result_value(page: Page, key: str):
    return page.locator(f'#job-result-list dd[data-key="{key}"]')


def task_form(page: Page, type_: str):
    """Pick a task in the job form; its fields (made from its GET /tasks schema) are returned."""
    page.locator("#job-form").get_by_label("Task", exact=True).select_option(type_)
    fields = page.locator(f'#job-form fieldset[data-task="{type_}"]')
    expect(fields).to_be_visible()
    return fields


def field(fields, title: str):
    """A field of a task's form by its label, which says "(optional)" after the title when it is."""
    return fields.get_by_label(re.compile(rf"^{re.escape(title)}( \(optional\))?$"))


def submit_button(page: Page):
    return page.locator("#job-form").get_by_role("button", name="Submit job")


def set_option(page: Page, label: str, value: str) -> None:
    """A job option, in the form's collapsible Options part."""
    options = page.locator("#job-options")
    if options.get_attribute("open") is None:
        options.locator("summary").click()
    field = options.get_by_label(label, exact=True)
    if field.evaluate("el => el.tagName") == "SELECT":
        field.select_option(value)
    else:
        field.fill(value)


def submit_email(page: Page, to: str, subject: str, body: str) -> None:
    form = task_form(page, "send_email")
    field(form, "To").fill(to)
    field(form, "Subject").fill(subject)
    field(form, "Body").fill(body)
    field(form, "Subject").press("Enter")  # keyboard submit from a one-line field


# --- the page ---------------------------------------------------------------------------


def test_count_words_from_the_page(stack, page, artifact):
    response = page.goto(f"{stack.base}/")
    assert response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    text = "the quick brown fox\njumps over\n\nthe lazy dog"

    area = task_form(page, "count_words").get_by_label("or paste the text")
    area.fill(text)
    area.press("Control+Enter")  # keyboard submit from the textarea

    expect(job_status(page)).to_have_text("finished", timeout=JOB_TIMEOUT_MS)
    expect(result_value(page, "words")).to_have_text(str(len(text.split())))
    expect(result_value(page, "lines")).to_have_text(str(len(text.splitlines())))
    expect(result_value(page, "characters")).to_have_text(str(len(text)))
    job_id = page.locator("#job-id").inner_text()
    resource = stack.get(f"/jobs/{job_id}").json()
    assert resource["result"]["words"] == 9
    expect(page.locator("#job-trace")).to_have_text(resource["trace_id"])  # the trace to look the job up by
    expect(page.locator("#job-concurrency")).to_be_hidden()  # submitted without a concurrency_key

    expect(page.get_by_role("link", name="Job JSON")).to_have_attribute("href", f"/jobs/{job_id}")
    nav = page.get_by_role("navigation")
    expect(nav.get_by_role("link", name="Dashboard")).to_have_attribute("href", "/dashboard/")
    expect(nav.get_by_role("link", name="API docs")).to_have_attribute("href", "/docs")
    row = page.locator(f'#recent-body tr[data-job-id="{job_id}"]')
    expect(row).to_contain_text("finished")
    expect(row).to_contain_text("count_words")
    artifact(page, "finished")

    # The job's JSON link opens the resource itself.
    page.get_by_role("link", name="Job JSON").click()
    expect(page).to_have_url(f"{stack.base}/jobs/{job_id}")
    assert '"words": 9' in page.locator("body").inner_text()


def test_status_updates_live_until_the_job_ends(stack, page, artifact):
    page.goto(f"{stack.base}/")
    form = task_form(page, "sleep")  # offered because the test stack enables diagnostic tasks
    form.get_by_label("Seconds", exact=True).fill("3")
    submit_button(page).click()

    expect(job_status(page)).to_have_text(re.compile(r"^(queued|started)$"))
    expect(page.locator("#job-waiting")).to_be_visible()
    artifact(page, "running")
    expect(job_status(page)).to_have_text("finished", timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#job-waiting")).to_be_hidden()
    job_id = page.locator("#job-id").inner_text()
    expect(page.locator(f'#recent-body tr[data-job-id="{job_id}"]')).to_contain_text("finished")


def test_send_email_from_the_page(stack, smtp, page, artifact):
    page.goto(f"{stack.base}/")
    task_form(page, "send_email")
    set_option(page, "Queue", "high")
    submit_email(page, "alice@example.com", "Hello from the page", "It works.\nBye.")

    expect(job_status(page)).to_have_text("finished", timeout=JOB_TIMEOUT_MS)
    expect(result_value(page, "accepted")).to_have_text("alice@example.com")
    job_id = page.locator("#job-id").inner_text()
    expect(page.locator("#job-queue")).to_have_text("high")
    artifact(page, "finished")

    wait_until(lambda: smtp.messages, what="the message at the SMTP server")
    message = smtp.messages[0]
    assert message["To"] == "alice@example.com"
    assert message["Subject"] == "Hello from the page"
    assert message.get_content().replace("\r\n", "\n").strip() == "It works.\nBye."
    resource = stack.get(f"/jobs/{job_id}").json()
    assert resource["queue"] == "high"
    assert message["Message-ID"] == resource["result"]["message_id"]


def test_failed_job_is_requeued_from_the_dashboard_and_runs_again(stack, smtp, page, artifact):
    # The SMTP server refuses the first attempt: the job fails (the test stack has no retries).
    smtp.fail_with = "554 5.7.1 rejected for testing"
    page.goto(f"{stack.base}/")
    submit_email(page, "bob@example.com", "Second time lucky", "Hello again.")
    expect(job_status(page)).to_have_text("failed", timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#job-error")).to_contain_text("554")
    job_id = page.locator("#job-id").inner_text()
    failed = stack.get(f"/jobs/{job_id}").json()
    assert (failed["status"], failed["attempts"]) == ("failed", 1)
    artifact(page, "failed")

    # The dashboard counts it among the default queue's failed jobs; its link lists them.
    smtp.fail_with = None
    page.goto(f"{stack.base}/dashboard/")
    default_row = page.locator("table#queues tr[data-role=queue]").filter(
        has=page.locator("td:first-child", has_text=re.compile(r"^default$"))
    )
    failed_link = default_row.locator("td.failed a").first
    expect(failed_link).to_have_text("1")
    artifact(page, "dashboard-queues")
    failed_link.click()
    expect(page).to_have_url(re.compile(r"/dashboard/0/view/jobs/default/failed/"))
    job_row = page.locator(f'table#jobs tr[data-job-id="{job_id}"]')
    expect(job_row).to_contain_text("SmtpError")
    artifact(page, "dashboard-failed")

    with page.expect_response(lambda r: r.url.endswith(f"/dashboard/job/{job_id}/requeue")) as requeued:
        job_row.get_by_role("link", name="Requeue").click()
    assert requeued.value.status == 200
    expect(job_row).to_have_count(0)  # the dashboard drops it from the failed list

    # It runs again: this time the message goes through. (The dashboard requeued it without
    # our serializer; the job's meta must still be the JSON that offload wrote.)
    again = stack.wait_for(job_id)
    meta = json.loads(stack.valkey.client().hget(f"rq:job:{job_id}", "meta"))
    assert meta["type"] == "send_email"
    assert again["status"] == "finished", (again, stack.logs()[-3000:])
    assert again["result"]["accepted"] == ["bob@example.com"]
    assert again["started_at"] > failed["started_at"]
    assert again["error"] is None
    wait_until(lambda: smtp.messages, what="the message at the SMTP server")
    assert smtp.messages[0]["Subject"] == "Second time lucky"

    # Back on the page, the job (from the URL's #job=…) shows as finished.
    page.goto(f"{stack.base}/#job={job_id}")
    expect(job_status(page)).to_have_text("finished", timeout=JOB_TIMEOUT_MS)
    expect(result_value(page, "accepted")).to_have_text("bob@example.com")
    artifact(page, "finished-after-requeue")


def test_cancel_and_retry_buttons_follow_the_jobs_links(stack, page, artifact):
    """Issue 25: the page offers Cancel and Retry as the job's links do (app/jobs/resource.py)."""
    finished = stack.post({"type": "count_words", "text": "done and dusted"}).json()["id"]
    assert stack.wait_for(finished)["status"] == "finished"
    page.goto(f"{stack.base}/#job={finished}")
    expect(job_status(page)).to_have_text("finished")
    expect(page.locator("#job-cancel")).to_be_hidden()
    expect(page.locator("#job-retry")).to_be_hidden()

    running = stack.post({"type": "sleep", "seconds": 60}).json()["id"]
    page.goto(f"{stack.base}/#job={running}")
    expect(job_status(page)).to_have_text(re.compile(r"^(queued|started)$"))
    expect(page.locator("#job-cancel")).to_be_visible()
    expect(page.locator("#job-retry")).to_be_hidden()
    page.locator("#job-cancel").click()
    expect(job_status(page)).to_have_text(re.compile(r"^(stopped|canceled)$"), timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#job-retry")).to_be_visible()
    expect(page.locator("#job-cancel")).to_be_hidden()
    artifact(page, "ended")
    page.locator("#job-retry").click()
    expect(job_status(page)).to_have_text(re.compile(r"^(queued|started)$"), timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#job-cancel")).to_be_visible()
    expect(page.locator("#job-retry")).to_be_hidden()
    assert stack.session_post(f"/jobs/{running}/cancel").status_code == 202


def test_the_dashboard_banner_shows_a_pause_as_it_changes_and_leads_back(stack, page, artifact):
    """Issue 25: rq-dashboard cannot tell a paused queue from an idle one, nor lead back to offload."""
    assert stack.session_post("/queues/low/pause").status_code == 200
    page.goto(f"{stack.base}/dashboard/")
    banner = page.locator("#offload-banner")
    expect(banner.locator("#offload-paused")).to_be_visible()
    expect(banner.locator("#offload-paused")).to_contain_text("Paused by offload: low.")
    expect(banner.locator("#offload-waiting")).to_be_hidden()
    expect(page.locator("table#queues")).to_be_visible()  # the dashboard itself still works below
    artifact(page, "paused")
    # Resumed elsewhere: the banner follows within a refresh, as the dashboard's tables do.
    assert stack.session_post("/queues/low/resume").status_code == 200
    expect(banner.locator("#offload-paused")).to_be_hidden(timeout=10_000)
    assert stack.session_post("/queues/high/pause").status_code == 200
    expect(banner.locator("#offload-paused")).to_contain_text("Paused by offload: high.", timeout=10_000)
    assert stack.session_post("/queues/high/resume").status_code == 200
    page.get_by_role("link", name="Back to offload").click()
    expect(page).to_have_url(f"{stack.base}/")
    expect(page.locator("#job-form")).to_be_visible()


def test_page_on_a_phone_sized_window(stack, new_page, artifact):
    page = new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    page.goto(f"{stack.base}/")
    task_form(page, "count_words").get_by_label("or paste the text").fill("one two three")
    submit_button(page).tap()
    expect(job_status(page)).to_have_text("finished", timeout=JOB_TIMEOUT_MS)
    expect(result_value(page, "words")).to_have_text("3")
    expect(result_value(page, "words")).to_be_in_viewport()  # the page scrolled to the job below the forms
    page.screenshot(path=str(ARTIFACTS / "test_page_on_a_phone_sized_window-screen.png"))
    expect(page.locator("#recent-body tr")).to_have_count(1)
    # Nothing wider than the screen: no sideways scrolling of the page. (innerWidth is no yardstick:
    # a mobile browser widens its layout viewport to what overflows.)
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= PHONE["width"] and widths[1] <= PHONE["width"], widths
    font_size = page.evaluate("parseFloat(getComputedStyle(document.querySelector('#f-count_words-text')).fontSize)")
    assert font_size >= 16  # so mobile browsers do not zoom into the field
    artifact(page, "phone")


def test_page_with_api_keys_and_field_errors(stack_factory, smtp, new_page, artifact):
    stack = stack_factory(API_KEYS=KEYS)
    page = new_page()
    assert page.goto(f"{stack.base}/").status == 200  # the page itself needs no key
    expect(page.locator("#recent-message")).to_contain_text("Enter an API key")
    key = page.get_by_label("Key", exact=True)
    key_error = page.locator("#api-key-error")

    # The tasks need no key (GET /tasks is public): the form is there before one is entered.
    expect(page.locator("#job-form").get_by_label("Task", exact=True)).to_be_enabled()

    # Without a key, and with a wrong one, the key field says so.
    submit_email(page, "carol@example.com", "Hi", "Body")
    expect(key_error).to_have_text(re.compile("Enter an API key"))
    key.fill("not-a-key")
    submit_email(page, "carol@example.com", "Hi", "Body")
    expect(key_error).to_contain_text("not valid")
    expect(key).to_have_attribute("aria-invalid", "true")
    artifact(page, "bad-key")
    key.fill(CLIENT_SECRET)

    # A client key, and an address the API rejects: the error sits next to the "To" field.
    expect(key_error).to_be_hidden()
    submit_email(page, "carol(at)example", "Hi", "Body")
    to_field = page.locator('#job-form fieldset[data-task="send_email"]').get_by_label("To", exact=True)
    to_error = page.locator("#f-send_email-to-error")
    expect(to_error).to_contain_text("not a valid email address")
    expect(to_field).to_have_attribute("aria-invalid", "true")
    expect(to_field).to_be_focused()
    assert to_error.evaluate("(el, input) => el.closest('.field') === input.closest('.field')", to_field.element_handle())
    assert "f-send_email-to-error" in to_field.get_attribute("aria-describedby")
    expect(page.locator("#job-form [data-error-for='*']")).to_be_hidden()  # nothing left unplaced
    expect(page.locator("#job-details")).to_be_hidden()  # no job was made
    artifact(page, "field-error")

    # An empty text for count_words is the API's error too, next to the text.
    task_form(page, "count_words")
    submit_button(page).click()
    expect(page.locator("#f-count_words-text-error")).to_be_visible()

    task_form(page, "send_email")
    expect(to_field).to_have_value("carol(at)example")  # what was typed in a task's form stays
    to_field.fill("carol@example.com")
    expect(to_error).to_be_hidden()  # editing the field clears its error
    to_field.press("Enter")
    expect(job_status(page)).to_have_text("finished", timeout=JOB_TIMEOUT_MS)
    job_id = page.locator("#job-id").inner_text()
    expect(page.locator(f'#recent-body tr[data-job-id="{job_id}"]')).to_be_visible()
    wait_until(lambda: smtp.messages, what="the message at the SMTP server")

    # The key lives in this tab's sessionStorage, nowhere else; a reload keeps it.
    storage = page.evaluate(
        "[sessionStorage.getItem('offload.apiKey'), localStorage.length, document.cookie]"
    )
    assert storage == [CLIENT_SECRET, 0, ""]
    assert page.context.cookies() == []
    page.reload()
    expect(key).to_have_value(CLIENT_SECRET)
    expect(page.locator(f'#recent-body tr[data-job-id="{job_id}"]')).to_contain_text("finished")
    artifact(page, "after-reload")

    # The job belongs to the client key: the API says so.
    headers = {"Authorization": f"Bearer {CLIENT_SECRET}"}
    assert stack.get(f"/jobs/{job_id}", headers=headers).json()["status"] == "finished"
    assert stack.get(f"/jobs/{job_id}").status_code == 401

    # A new browser session starts without a key.
    other = new_page()
    other.goto(f"{stack.base}/")
    expect(other.get_by_label("Key", exact=True)).to_have_value("")
    expect(other.locator("#recent-message")).to_contain_text("Enter an API key")


# --- the dashboard ----------------------------------------------------------------------


def test_dashboard_asks_for_credentials_and_shows_the_queues_after_login(stack_factory, new_page, artifact):
    stack = stack_factory(API_KEYS=KEYS)
    answer = requests.get(f"{stack.base}/dashboard/", timeout=10)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic ")

    # A browser with no credentials gets the challenge and no dashboard.
    # (Headless chromium has no login dialog: it ends the navigation with ERR_INVALID_AUTH_CREDENTIALS.)
    anonymous = new_page()
    with anonymous.expect_response(f"{stack.base}/dashboard/") as challenge:
        with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
            anonymous.goto(f"{stack.base}/dashboard/")
    assert challenge.value.status == 401
    assert challenge.value.headers["www-authenticate"].startswith("Basic ")
    expect(anonymous.locator("table#queues")).to_have_count(0)

    # A wrong password is refused: the browser shows the 401 problem, not the dashboard.
    wrong = new_page(http_credentials={"username": "ops", "password": "wrong"})
    assert wrong.goto(f"{stack.base}/dashboard/").status == 401
    expect(wrong.locator("body")).to_contain_text("not valid")
    artifact(wrong, "wrong-password")

    # A client key is not enough.
    client = new_page(http_credentials={"username": "shop", "password": CLIENT_SECRET})
    assert client.goto(f"{stack.base}/dashboard/").status == 403

    # Any user name with the admin secret logs in; the queues show.
    admin = new_page(http_credentials={"username": "anyone", "password": ADMIN_SECRET})
    assert admin.goto(f"{stack.base}/dashboard/").status == 200
    names = admin.locator("table#queues tr[data-role=queue] td:first-child")
    expect(names).to_have_count(3)
    assert sorted(names.all_inner_texts()) == ["default", "high", "low"]
    artifact(admin, "queues")
    # The worker of the stack shows too, serving the three queues.
    admin.get_by_role("link", name="Workers", exact=True).click()
    expect(admin.locator("table#workers tbody")).to_contain_text("high", timeout=JOB_TIMEOUT_MS)
    artifact(admin, "workers")
