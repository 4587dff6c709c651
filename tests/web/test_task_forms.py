"""The job form of the page at ``/``, made from ``GET /tasks``: one form for every task, built from
the task's JSON Schema by ``static/taskforms.js`` (the page knows no task by name). In a real
browser against the real stack; the user tasks are ``tests/user_tasks.py``, loaded by the stack's
processes with ``OFFLOAD_TASKS``. The browser fixtures are those of ``test_browser.py``."""

from __future__ import annotations

import json
import re

import pytest
import requests
from playwright.sync_api import Page, expect

from ..conftest import ROOT
from .test_browser import (  # noqa: F401 - fixtures
    ARTIFACTS,
    JOB_TIMEOUT_MS,
    PHONE,
    artifact,
    browser,
    chromium_executable,
    field,
    job_status,
    new_page,
    page,
    result_value,
    set_option,
    submit_button,
    task_form,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

USER_TASKS = {"OFFLOAD_TASKS": "tests.user_tasks"}


def control_kinds(fields) -> dict:
    """Each field of a task's form (by the name the API knows it by): what kind of control it got."""
    return fields.evaluate(
        """set => Object.fromEntries(Array.from(set.querySelectorAll('[data-field]')).map(box => {
             const c = box.querySelector('[name]');
             const kind = c.tagName === 'INPUT' ? 'input:' + c.type : c.tagName.toLowerCase();
             const file = box.querySelector('input[type=file]') ? '+file' : '';
             const many = box.querySelector('ul.list-items') ? 'list:' : '';
             return [box.dataset.field, many + kind + file];
           }))"""
    )


def finished_result(page: Page, stack) -> dict:
    expect(job_status(page)).to_have_text("finished", timeout=JOB_TIMEOUT_MS)
    job = stack.get(f"/jobs/{page.locator('#job-id').inner_text()}").json()
    return job


# --- the built-ins -----------------------------------------------------------------------


def test_the_page_knows_no_task_by_name():
    """Every form comes from GET /tasks: no task's type is written in the page's template,
    scripts or view (issue 23: nothing hand-written per task)."""
    from app.jobs import catalog

    # The public built-ins and the user tasks (tests/conftest.py registers them in every test process).
    types = {task.type for task in catalog.served(False)}
    assert {"count_words", "send_email", "reverse_text", "typed_echo"} <= types
    web = ROOT / "app" / "web"
    sources = [web / "page.py", *sorted((web / "templates").glob("*.html")), *sorted((web / "static").glob("*.js"))]
    # A type as a word, but not a call: offload.js has a sleep(ms) of its own.
    named = sorted(
        f"{path.relative_to(ROOT)}: {type_}"
        for path in sources
        for type_ in types
        if re.search(rf"\b{type_}\b(?!\s*\()", path.read_text(encoding="utf-8"))
    )
    assert not named, named


def test_the_task_picker_lists_what_get_tasks_serves(stack, page, artifact):
    page.goto(f"{stack.base}/")
    served = [task["type"] for task in stack.get("/tasks").json()["tasks"]]
    picker = page.locator("#job-form").get_by_label("Task", exact=True)
    expect(picker).to_be_enabled()
    assert picker.locator("option").all_inner_texts() == served
    assert {"count_words", "send_email", "sleep"} <= set(served)  # diagnostic ones: the test stack enables them
    # Each task's description is shown with its form, and its example (when it has one) a click away.
    for task in stack.get("/tasks").json()["tasks"]:
        picker.select_option(task["type"])
        expect(page.locator("#task-description")).to_have_text(task["description"])
        example = page.get_by_role("button", name="Fill example")
        if task["example"]:
            expect(example).to_be_visible()
        else:
            expect(example).to_be_hidden()
        expect(page.locator(f'#job-form fieldset[data-task="{task["type"]}"]')).to_be_visible()
    assert page.locator("#job-form fieldset[data-task]:visible").count() == 1


def test_count_words_as_a_file_goes_as_multipart_and_counts(stack, page, artifact, tmp_path):
    page.goto(f"{stack.base}/")
    fields = task_form(page, "count_words")
    assert control_kinds(fields) == {"text": "textarea+file"}
    text = "one two three\nfour five\n\nsix"
    upload = tmp_path / "words.txt"
    upload.write_text(text, encoding="utf-8")
    area = fields.get_by_label("or paste the text")
    area.fill("this text is not sent")
    fields.get_by_label("A text file").set_input_files(str(upload))
    expect(area).to_be_disabled()  # the file wins; the pasted text waits
    set_option(page, "Queue", "low")  # an option goes as a text part beside the file
    artifact(page, "file-chosen")

    with page.expect_request(lambda r: r.url == f"{stack.base}/jobs" and r.method == "POST") as sent:
        submit_button(page).click()
    # (Chromium does not show a test the body of a request with a file: the counts below, of the
    # file's text and not of the text pasted, say what went.)
    assert sent.value.headers["content-type"].startswith("multipart/form-data; boundary=")
    job = finished_result(page, stack)
    assert (job["type"], job["queue"]) == ("count_words", "low")
    assert job["result"] == {"words": 6, "characters": len(text), "lines": 4}
    expect(result_value(page, "words")).to_have_text("6")

    # Removing the file brings the pasted text back, which then goes as JSON.
    fields.get_by_role("button", name="Remove the file").click()
    expect(area).to_be_enabled()
    with page.expect_request(lambda r: r.url == f"{stack.base}/jobs" and r.method == "POST") as sent:
        area.press("Control+Enter")
    assert sent.value.headers["content-type"] == "application/json"
    assert json.loads(sent.value.post_data) == {"type": "count_words", "text": "this text is not sent", "queue": "low"}
    expect(result_value(page, "words")).to_have_text("5", timeout=JOB_TIMEOUT_MS)


def test_fill_example_and_the_options(stack, page, artifact):
    page.goto(f"{stack.base}/")
    task = next(t for t in stack.get("/tasks").json()["tasks"] if t["type"] == "count_words")
    fields = task_form(page, "count_words")
    options = page.locator("#job-options")
    expect(options).not_to_have_attribute("open", "")  # collapsed until wanted
    expect(options.get_by_label("Queue", exact=True)).to_have_value(task["defaults"]["queue"])
    assert task["example"], "count_words has an example"
    page.get_by_role("button", name="Fill example").click()
    expect(fields.get_by_label("or paste the text")).to_have_value(task["example"]["text"])

    queue = "high" if task["defaults"]["queue"] != "high" else "low"
    set_option(page, "Queue", queue)
    set_option(page, "Max retries", "2")
    with page.expect_request(lambda r: r.url == f"{stack.base}/jobs" and r.method == "POST") as sent:
        submit_button(page).click()
    assert json.loads(sent.value.post_data) == {"type": "count_words", **task["example"], "queue": queue, "max_retries": 2}
    job = finished_result(page, stack)
    assert (job["queue"], job["max_retries"]) == (queue, 2)

    # An option the API refuses: its error is beside it, in the Options part.
    set_option(page, "Delay (s)", "-5")
    submit_button(page).click()
    error = page.locator("#opt-delay-error")
    expect(error).to_be_visible()
    expect(options.get_by_label("Delay (s)", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#job-form [data-error-for='*']")).to_be_hidden()


def test_send_email_form_and_a_refused_address_beside_its_field(stack, smtp, page, artifact):
    page.goto(f"{stack.base}/")
    fields = task_form(page, "send_email")
    kinds = control_kinds(fields)
    assert kinds["to"] == "input:email"
    assert kinds["subject"] == "input:text"
    expect(field(fields, "To")).to_have_attribute("required", "")
    expect(field(fields, "To")).to_have_attribute("maxlength", "320")
    expect(fields.locator("label", has_text="Subject")).to_contain_text("(optional)")

    to = field(fields, "To")
    to.fill("dave@@example")
    field(fields, "Body").fill("Hello.")
    submit_button(page).click()
    to_error = page.locator("#f-send_email-to-error")
    expect(to_error).to_contain_text("not a valid email address")
    expect(to).to_have_attribute("aria-invalid", "true")
    expect(to).to_be_focused()
    assert to_error.evaluate("(el, input) => el.closest('.field') === input.closest('.field')", to.element_handle())
    expect(page.locator("#job-details")).to_be_hidden()
    artifact(page, "refused-address")

    to.fill("dave@example.com")
    expect(to_error).to_be_hidden()
    to.press("Enter")
    job = finished_result(page, stack)
    assert job["result"]["accepted"] == ["dave@example.com"]
    assert smtp.messages and smtp.messages[-1]["To"] == "dave@example.com"


# --- a team's own tasks (tests/user_tasks.py) ---------------------------------------------


def test_user_tasks_get_forms_of_the_right_kinds_and_run_with_typed_values(stack_factory, page, artifact):
    stack = stack_factory(**USER_TASKS)
    page.goto(f"{stack.base}/")
    fields = task_form(page, "typed_echo")
    assert control_kinds(fields) == {
        "count": "input:number", "ratio": "input:number", "flag": "input:checkbox", "color": "select",
        "tags": "list:input:text", "extra": "textarea",
    }  # fmt: skip
    count = field(fields, "Count")
    expect(count).to_have_attribute("step", "1")
    expect(count).to_have_attribute("min", "0")
    expect(count).to_have_attribute("max", "1000")
    expect(count).to_have_attribute("required", "")
    expect(field(fields, "Ratio")).to_have_attribute("step", "any")
    expect(field(fields, "Ratio")).to_have_value("0.5")  # the default, prefilled
    color = field(fields, "Color")
    assert color.locator("option").all_inner_texts() == ["red", "green", "blue"]
    expect(color).to_have_value("green")
    expect(field(fields, "Flag")).not_to_be_checked()
    artifact(page, "typed_echo")

    count.fill("7")
    field(fields, "Ratio").fill("2.25")
    field(fields, "Flag").check()
    color.select_option("blue")
    fields.get_by_label("Tags 1", exact=True).fill("alpha")
    fields.get_by_role("button", name="Add an item").click()
    fields.get_by_label("Tags 2", exact=True).fill("beta, gamma")  # a comma is part of an item
    fields.get_by_role("button", name="Add an item").click()
    fields.get_by_role("button", name="Remove item 3").click()
    field(fields, "Extra").fill('{"nested": {"n": 1}, "list": [true, null]}')
    submit_button(page).click()
    job = finished_result(page, stack)
    assert job["result"] == {
        "count": 7, "ratio": 2.25, "flag": True, "color": "blue", "tags": ["alpha", "beta, gamma"],
        "extra": {"nested": {"n": 1}, "list": [True, None]},
    }  # fmt: skip
    expect(result_value(page, "tags")).to_have_text("alpha, beta, gamma")

    # JSON that does not parse is said beside its field, and nothing is sent.
    jobs_before = len(stack.get("/jobs").json()["jobs"])
    field(fields, "Extra").fill("{not json")
    submit_button(page).click()
    expect(page.locator("#f-typed_echo-extra-error")).to_contain_text("not valid JSON")
    assert len(stack.get("/jobs").json()["jobs"]) == jobs_before

    # The server's own refusal of a typed value sits beside the field too.
    field(fields, "Extra").fill("")
    count.fill("5000")
    submit_button(page).click()
    expect(page.locator("#f-typed_echo-count-error")).to_be_visible()
    expect(count).to_have_attribute("aria-invalid", "true")


def test_a_user_task_with_an_upload_beside_typed_fields(stack_factory, page, artifact, tmp_path):
    stack = stack_factory(**USER_TASKS)
    task = stack.get("/tasks/crunch").json()
    assert task["upload_fields"] == ["note"] and task["defaults"]["queue"] == "low"
    page.goto(f"{stack.base}/")
    fields = task_form(page, "crunch")
    assert control_kinds(fields) == {"seconds": "input:number", "note": "textarea+file"}
    expect(page.locator("#job-options").get_by_label("Queue", exact=True)).to_have_value("low")  # the task's own
    field(fields, "Seconds").fill("0.3")
    note = tmp_path / "note.txt"
    note.write_text("four words in here\n", encoding="utf-8")
    fields.get_by_label("A text file").set_input_files(str(note))
    with page.expect_request(lambda r: r.url == f"{stack.base}/jobs" and r.method == "POST") as sent:
        submit_button(page).click()
    assert sent.value.headers["content-type"].startswith("multipart/form-data")
    job = finished_result(page, stack)  # "0.3" went as a text part; the server read it as the number
    assert job["queue"] == "low"
    assert job["result"]["steps"] == 3 and job["result"]["note_words"] == 4


def test_a_user_task_with_one_text_field(stack_factory, page, artifact):
    stack = stack_factory(**USER_TASKS)
    page.goto(f"{stack.base}/")
    fields = task_form(page, "reverse_text")
    expect(page.locator("#task-description")).to_have_text("Reverse a text.")
    assert control_kinds(fields) == {"text": "input:text"}  # not marked long text: one line
    text = field(fields, "Text")
    expect(text).to_have_attribute("maxlength", "1000")
    text.fill("stressed")
    text.press("Enter")
    job = finished_result(page, stack)
    assert job["result"] == {"reversed": "desserts"}
    expect(result_value(page, "reversed")).to_have_text("desserts")
    # Switching tasks and back keeps what was typed.
    task_form(page, "count_words")
    expect(task_form(page, "reverse_text").get_by_label("Text", exact=True)).to_have_value("stressed")


# --- a phone ------------------------------------------------------------------------------


def test_forms_and_tables_fit_a_phone(stack_factory, new_page, artifact):
    stack = stack_factory(**USER_TASKS)
    created = requests.post(
        f"{stack.base}/schedules", timeout=10,
        json={"name": "a schedule with quite a long name", "cron": "*/5 * * * *",
              "job": {"type": "reverse_text", "text": "tick"}},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    page = new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    page.goto(f"{stack.base}/")
    expect(page.locator("#schedules-body tr")).to_have_count(1)
    expect(page.locator("#queues-body tr")).to_have_count(3)

    def overflow() -> dict:
        return page.evaluate(
            """() => ({
                 page: [document.documentElement.scrollWidth, window.innerWidth],
                 boxes: Array.from(document.querySelectorAll('.table-wrap, form, .card'))
                   .filter(el => el.offsetParent !== null && el.scrollWidth > el.clientWidth)
                   .map(el => [el.id || el.className, el.scrollWidth, el.clientWidth]),
               })"""
        )

    for type_ in ("typed_echo", "count_words", "send_email"):
        task_form(page, type_)
        page.locator("#job-options summary").click()
        found = overflow()
        assert found["page"][0] <= PHONE["width"] and found["page"][1] <= PHONE["width"], (type_, found)
        assert found["boxes"] == [], (type_, found)
        page.locator("#job-options summary").click()
        page.locator("#job-form").screenshot(path=str(ARTIFACTS / f"test_forms_and_tables_fit_a_phone-{type_}.png"))
    page.locator("#schedules").screenshot(path=str(ARTIFACTS / "test_forms_and_tables_fit_a_phone-schedules.png"))
    page.locator("#queues").screenshot(path=str(ARTIFACTS / "test_forms_and_tables_fit_a_phone-queues.png"))

    # And it works there: a typed job by touch.
    fields = task_form(page, "typed_echo")
    field(fields, "Count").fill("3")
    field(fields, "Flag").tap()
    submit_button(page).tap()
    job = finished_result(page, stack)
    assert job["result"]["count"] == 3 and job["result"]["flag"] is True
    font_size = page.evaluate("parseFloat(getComputedStyle(document.querySelector('#f-typed_echo-count')).fontSize)")
    assert font_size >= 16  # so mobile browsers do not zoom into the field
