"""Whatever a client puts in a header, a query parameter or a path segment, the answer is never a
server error (issue 25, item 2): every parser of client input turns bad input into a 4xx.

Property tests (hypothesis) on the app in-process (fakeredis), with API keys and callbacks on so
that every parser is on the path: the Authorization header (Bearer and Basic), Origin and Referer
(the dashboard's same-origin check), Accept (an error page for browsers), Idempotency-Key,
X-Request-ID, traceparent and tracestate, Last-Event-ID, every query parameter the document
declares (and one it does not), and every path parameter. Header values are any characters a
request can carry (Latin-1, no CR or LF); query values and path segments any text at all.
The URL parsers are also fed arbitrary strings directly (``check_url``, the same-origin check).
"""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings as hypothesis_settings, strategies as st

from app.settings import get_settings

from ..conftest import run_jobs

ADMIN, CLIENT = "t0ps3cret", "s3cret"
BASIC_ADMIN = "Basic " + base64.b64encode(f"ops:{ADMIN}".encode()).decode()

#: Values a header can carry over HTTP: Latin-1 (how WSGI hands bytes over), without CR and LF.
HEADER_CHARS = st.characters(min_codepoint=0, max_codepoint=0xFF, blacklist_characters="\r\n")
#: Starts that lead a parser past its first check ("Basic " then base64, a URL with a bracket...).
HEADER_STARTS = (
    "", "Basic ", "Bearer ", "basic ", "http://", "https://[", "http://[::1", "http://[v1.x]", "http://a:", "00-",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0", "text/html", "application/json;", "W/\"", "k=",
)  # fmt: skip
HEADER_VALUES = st.builds(lambda start, rest: start + rest, st.sampled_from(HEADER_STARTS), st.text(HEADER_CHARS, max_size=40))
#: Query values and path segments: any text (the client percent-encodes it), with a few sharp starts.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
TEXT_VALUES = st.one_of(
    TEXT, st.builds(lambda start, rest: start + rest, st.sampled_from(["-", "1e", "0x", "²", "[", "%", "$"]), TEXT)
)

HEADERS = (
    "Authorization", "Origin", "Referer", "Accept", "Content-Type", "Idempotency-Key", "X-Request-ID", "traceparent",
    "tracestate", "Last-Event-ID", "Sec-Fetch-Site", "If-None-Match", "Accept-Language", "Cookie", "Host",
)  # fmt: skip


@pytest.fixture
def settings(monkeypatch):
    for name, value in {
        "API_KEYS": f"shop:client:{CLIENT},ops:admin:{ADMIN}",
        "WEBHOOK_SECRET": "callbacks-on",
        "ALLOW_PRIVATE_CALLBACKS": "1",  # no DNS look-ups for made-up hosts in a unit test
        "RATE_LIMIT_ENABLED": "0",
        "ENABLE_DIAGNOSTIC_TASKS": "1",
        "DEFAULT_MAX_RETRIES": "0",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def requests_to_make(client, job_queue):
    """Every operation, as (method, path with ``{}`` for its parameter, known value, body, query names)."""
    auth = {"Authorization": f"Bearer {ADMIN}"}
    job = client.post("/jobs", json={"type": "count_words", "text": "a b"}, headers=auth).get_json()["id"]
    failed = client.post("/jobs", json={"type": "fail", "message": "x"}, headers=auth).get_json()["id"]
    run_jobs(job_queue)
    batch = client.post("/jobs/batch", json={"jobs": [{"type": "noop"}]}, headers=auth).get_json()["batch"]["id"]
    schedule = client.post("/schedules", json={"name": "s", "cron": "@daily", "job": {"type": "noop"}}, headers=auth)
    schedule = schedule.get_json()["id"]
    submit = {"type": "count_words", "text": "one two", "callback_url": "https://example.com/hook"}
    return [
        ("POST", "/jobs", None, submit, ()),
        ("GET", "/jobs", None, None, ("status", "type", "queue", "limit", "cursor", "id_prefix", "metadata_key",
                                      "metadata_value", "error_type", "unknown")),
        ("GET", "/jobs/{}", job, None, ("wait",)),
        ("POST", "/jobs/{}/cancel", job, None, ()),
        ("POST", "/jobs/{}/retry", failed, None, ()),
        ("GET", "/jobs/{}/events", job, None, ("timeout",)),
        ("POST", "/jobs/batch", None, {"jobs": [submit], "callback_url": "https://example.com/b"}, ()),
        ("GET", "/batches/{}", batch, None, ()),
        ("POST", "/schedules", None, {"name": "n", "every_seconds": 60, "job": submit}, ()),
        ("GET", "/schedules", None, None, ("limit", "cursor")),
        ("GET", "/schedules/{}", schedule, None, ()),
        ("PATCH", "/schedules/{}", schedule, {"enabled": False}, ()),
        ("GET", "/queues", None, None, ()),
        ("GET", "/queues/{}", "default", None, ()),
        ("POST", "/queues/{}/pause", "low", None, ()),
        ("GET", "/concurrency", None, None, ()),
        ("GET", "/stats/timeseries", None, None, ("minutes",)),
        ("POST", "/jobs/bulk", None, {"action": "retry", "filter": {"status": "failed"}}, ()),
        ("GET", "/tasks", None, None, ()),
        ("GET", "/tasks/{}", "count_words", None, ()),
        ("GET", "/healthz", None, None, ()),
        ("GET", "/readyz", None, None, ()),
        ("GET", "/metrics", None, None, ()),
        ("GET", "/openapi.json", None, None, ()),
        ("GET", "/", None, None, ()),
        ("GET", "/dashboard/", None, None, ()),
        ("POST", "/dashboard/queue/{}/failed/empty", "low", None, ()),
    ]  # fmt: skip


def _send(client, method: str, path: str, body, headers: dict, query: dict):  # noqa: ANN001, ANN202
    answer = client.open(path, method=method, json=body, headers=headers, query_string=query)
    answer.get_data()  # a stream (the live events of an ended job) runs to its end here
    answer.close()  # and gives its slot back
    return answer


def _assert_no_server_error(answer, what: str) -> None:  # noqa: ANN001
    assert answer.status_code < 500, f"{what}: {answer.status_code} {answer.get_data(as_text=True)[:300]}"


@hypothesis_settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(data=st.data(), name=st.sampled_from(HEADERS), value=HEADER_VALUES)
def test_no_header_value_makes_a_server_error(client, requests_to_make, data, name, value):
    method, template, known, body, _ = data.draw(st.sampled_from(requests_to_make))
    path = template.format(quote(known, safe="")) if known else template
    headers = {"Authorization": BASIC_ADMIN if template.startswith("/dashboard") else f"Bearer {ADMIN}"}
    headers[name] = value
    _assert_no_server_error(_send(client, method, path, body, headers, {}), f"{method} {path} {name}: {value!r}")


@hypothesis_settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(data=st.data(), value=TEXT_VALUES)
def test_no_query_value_makes_a_server_error(client, requests_to_make, data, value):
    with_query = [op for op in requests_to_make if op[4]]
    method, template, known, body, names = data.draw(st.sampled_from(with_query))
    name = data.draw(st.sampled_from(names))
    path = template.format(quote(known, safe="")) if known else template
    answer = _send(client, method, path, body, {"Authorization": f"Bearer {ADMIN}"}, {name: value})
    _assert_no_server_error(answer, f"{method} {path}?{name}={value!r}")


@hypothesis_settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(data=st.data(), value=TEXT_VALUES)
def test_no_path_segment_makes_a_server_error(client, requests_to_make, data, value):
    with_parameter = [op for op in requests_to_make if op[2]]
    method, template, _, body, _ = data.draw(st.sampled_from(with_parameter))
    path = template.format(quote(value, safe=""))
    headers = {"Authorization": BASIC_ADMIN if template.startswith("/dashboard") else f"Bearer {ADMIN}"}
    _assert_no_server_error(_send(client, method, path, body, headers, {}), f"{method} {path}")


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        # base64.b64decode(validate=True) raises a plain ValueError for text that is not ASCII.
        ("GET", "/jobs", {"Authorization": "Basic é"}, 401),
        # urlsplit raises ValueError on an unclosed IPv6 bracket: the same-origin check of an action.
        ("POST", "/dashboard/queue/low/failed/empty", {"Authorization": BASIC_ADMIN, "Origin": "http://[::1"}, 403),
        ("POST", "/dashboard/queue/low/failed/empty", {"Authorization": BASIC_ADMIN, "Referer": "http://[::1"}, 403),
        # re.match with "...$" takes a trailing newline: the id reached RQ, which raised ValueError.
        ("GET", "/jobs/0%0A", {"Authorization": f"Bearer {ADMIN}"}, 404),
        ("POST", "/jobs/0%0A/cancel", {"Authorization": f"Bearer {ADMIN}"}, 404),
        ("GET", "/jobs/0%0A/events", {"Authorization": f"Bearer {ADMIN}"}, 404),
    ],
)
def test_what_the_fuzzers_found(client, method, path, headers, status):
    answer = client.open(path, method=method, headers=headers)
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert answer.mimetype == "application/problem+json"


# --- where the document and the server disagreed (st run --checks all, negative data accepted) ---


@pytest.mark.parametrize("query", ["limit=5&limit=x", "limit=5&limit=7", "status=queued&status=failed", "cursor=a&cursor=b"])
def test_a_query_parameter_given_twice_is_refused_naming_it(client, query):
    """Every query parameter is declared with one value; the first of two silently won."""
    answer = client.get(f"/jobs?{query}", headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status_code == 422, answer.get_data(as_text=True)
    name = query.split("=", 1)[0]
    assert answer.get_json()["errors"] == [{"field": name, "message": "given more than once"}]


@pytest.mark.parametrize("moment", ["0.0", "1700000000", "2026-12-07", "2026-12-07 10:00:00Z", "2026-12-07T10:00:00+0000"])
def test_run_at_is_an_rfc_3339_date_time_in_json_and_in_a_form(client, moment):
    """``format: date-time``; pydantic also took a number of seconds written as text ("0.0")."""
    auth = {"Authorization": f"Bearer {ADMIN}"}
    as_json = client.post("/jobs", json={"type": "count_words", "text": "a", "run_at": moment}, headers=auth)
    as_form = client.post("/jobs", data={"text": "a", "run_at": moment}, headers=auth, content_type="multipart/form-data")
    for answer in (as_json, as_form):
        assert answer.status_code == 422, answer.get_data(as_text=True)
        assert answer.get_json()["errors"][0]["field"] == "run_at"
    fine = client.post("/jobs", json={"type": "count_words", "text": "a", "run_at": "2026-12-07T10:00:00.5+01:00"}, headers=auth)
    assert fine.status_code == 202, fine.get_data(as_text=True)


def test_a_file_part_of_any_content_type_is_read_as_text_and_the_document_declares_none(client):
    """The document declared the file parts' content types, so a fuzzer took a part as a typed
    value and called the text of a mutated number an invalid file accepted (ST201)."""
    import io

    auth = {"Authorization": f"Bearer {ADMIN}"}
    for content_type in ("text/plain", "application/octet-stream", "image/png"):
        upload = (io.BytesIO(b"one two three"), "notes.txt", content_type)
        answer = client.post("/jobs", data={"file": upload}, headers=auth, content_type="multipart/form-data")
        assert answer.status_code == 202, (content_type, answer.get_data(as_text=True))
    encoding = client.get("/openapi.json").get_json()["paths"]["/jobs"]["post"]["requestBody"]["content"][
        "multipart/form-data"
    ]["encoding"]
    assert encoding == {"metadata": {"contentType": "application/json"}}


# --- the URL parsers themselves ---------------------------------------------------------------

URLISH = st.builds(
    lambda scheme, rest: scheme + rest,
    st.sampled_from(["", "http://", "https://", "HTTP://", "http://[", "http://[::1", "https://a:", "ftp://", "//"]),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
)


@hypothesis_settings(max_examples=500, deadline=None)
@given(url=URLISH)
@example(url="http://[::1")
@example(url="http://a\x00b/")
@example(url="http://a:99999/")
def test_check_url_refuses_anything_it_cannot_use_and_raises_nothing_else(url):
    from app.tasks import webhook

    try:
        target = webhook.check_url(url, allow_private=True)
    except webhook.CallbackRefused:
        return
    assert target.scheme in ("http", "https") and target.host and 0 < target.port < 65536


@hypothesis_settings(max_examples=300, deadline=None)
@given(source=st.one_of(URLISH, st.text(HEADER_CHARS, max_size=40)), host=st.sampled_from(["localhost", "127.0.0.1:8000"]))
@example(source="http://[::1", host="localhost")
def test_the_dashboards_same_origin_check_answers_for_any_origin(source, host):
    from app.web.dashboard import same_origin

    assert same_origin(source, host) in (True, False)
    assert same_origin(f"http://{host}/dashboard/", host)
