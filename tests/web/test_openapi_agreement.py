"""The OpenAPI document and the server agree where schemathesis found them apart (issue 16).

Each test states one agreement on the fast app (fakeredis); ``test_schemathesis_cli.py`` runs the
fuzzer itself against the real stack.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from app import create_app
from app.jobs import JobQueue
from app.settings import get_settings


@pytest.fixture
def settings(settings, monkeypatch):
    """The shared settings without rate limits: the property test below sends 150 POSTs."""
    monkeypatch.setenv("RATE_LIMIT_ENABLED", "0")
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def document(client) -> dict:
    return client.get("/openapi.json").get_json()


def _parameter(document: dict, name: str) -> dict:
    return document["components"]["parameters"][name]["schema"]


def test_x_request_id_declares_no_pattern_because_other_values_are_replaced_not_refused(client, document):
    assert "pattern" not in _parameter(document, "RequestId")
    answer = client.post("/jobs", json={"type": "count_words", "text": "a"}, headers={"X-Request-ID": "not valid!"})
    assert answer.status_code == 202
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-ID"])  # the server made one


# Header values as schemathesis draws them: latin-1 without the characters HTTP forbids.
_HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=255, exclude_characters="".join(map(chr, [*range(9), *range(10, 32), 127]))),
    min_size=0,
    max_size=300,
).map(str.strip)


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=_HEADER_TEXT)
def test_idempotency_key_is_accepted_exactly_when_the_document_pattern_allows_it(client, document, key):
    schema = _parameter(document, "IdempotencyKey")
    allowed = bool(re.fullmatch(schema["pattern"], key)) and schema["minLength"] <= len(key) <= schema["maxLength"]
    answer = client.post("/jobs", json={"type": "count_words", "text": f"k {key!r}"}, headers={"Idempotency-Key": key})
    assert answer.status_code == (202 if allowed else 400), (key, answer.get_json())


def test_any_cursor_of_the_declared_form_is_a_position_and_nothing_else_is(client, document):
    for _ in range(3):
        client.post("/jobs", json={"type": "count_words", "text": "a"})
    page = client.get("/jobs?limit=2").get_json()
    cursor = page["next"].split("cursor=")[1].replace("%3A", ":")
    pattern = next(p for p in document["paths"]["/jobs"]["get"]["parameters"] if p.get("name") == "cursor")["schema"]["pattern"]
    assert re.fullmatch(pattern, cursor)
    assert len(client.get("/jobs", query_string={"limit": 2, "cursor": cursor}).get_json()["jobs"]) == 1
    for made_up in ("0:x", "99999999999.5:abc-DEF_1"):
        assert re.fullmatch(pattern, made_up)
        assert client.get("/jobs", query_string={"cursor": made_up}).status_code == 200
    for wrong in ("", "abc", "1:", "1:a b", "-1:a"):
        assert not re.fullmatch(pattern, wrong)
        assert client.get("/jobs", query_string={"cursor": wrong}).status_code == 422, wrong


def test_a_json_integer_written_with_a_zero_fraction_is_an_integer(client):
    answer = client.post("/jobs", json={"type": "count_words", "text": "a", "timeout_seconds": 77.0, "max_retries": 2.0})
    assert answer.status_code == 202, answer.get_json()
    for wrong in (77.5, "77", True):
        assert client.post("/jobs", json={"type": "count_words", "text": "a", "timeout_seconds": wrong}).status_code == 422


def test_the_form_takes_metadata_as_a_json_part_and_file_as_text(client, document):
    form = document["components"]["schemas"]["CountWordsForm"]
    assert form["properties"]["metadata"]["type"] == "object"
    assert document["paths"]["/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["encoding"]["metadata"] == {
        "contentType": "application/json"
    }
    assert "format" not in form["properties"]["file"] and form["properties"]["file"]["minLength"] == 1
    # A `file` part without a filename (as schemathesis and curl -F 'file=<x' send it) is the text.
    answer = client.post("/jobs", data={"file": "one two", "metadata": '{"a": 1}'}, content_type="multipart/form-data")
    assert answer.status_code == 202, answer.get_json()
    # A `text` beside the file must be valid too (the document declares minLength 1 for it).
    answer = client.post("/jobs", data={"file": "one two", "text": ""}, content_type="multipart/form-data")
    assert answer.status_code == 422


def test_schedule_conflict_and_email_rules_are_declared(document):
    components = document["components"]["schemas"]
    pairs = [["delay_seconds", "run_at"], ["depends_on", "delay_seconds"], ["depends_on", "run_at"]]
    # ... and a concurrency_limit without its concurrency_key.
    assert [branch["required"] for branch in components["CountWordsRequest"]["not"]["anyOf"]] == [*pairs, ["concurrency_limit"]]
    alone = {"required": ["concurrency_limit"], "not": {"required": ["concurrency_key"]}}
    assert components["CountWordsForm"]["not"] == {"anyOf": [*({"required": pair} for pair in pairs), alone]}
    to = components["SendEmailRequest"]["properties"]["to"]
    assert to["format"] == "email" and re.search(to["not"]["pattern"], "bob@example.test")
    assert not re.search(to["not"]["pattern"], "bob@example.com")
    assert components["SendEmailRequest"]["properties"]["subject"]["pattern"] == "^[^\r\n\x00]*$"


def test_callback_url_is_offered_only_by_a_server_that_can_sign_callbacks(monkeypatch, fake_redis, document):
    assert "callback_url" not in document["components"]["schemas"]["CountWordsRequest"]["properties"]
    monkeypatch.setenv("WEBHOOK_SECRET", "s3cret")
    get_settings.cache_clear()
    signing = get_settings()
    offered = create_app(signing, job_queue=JobQueue(fake_redis, signing)).test_client().get("/openapi.json").get_json()
    callback = offered["components"]["schemas"]["CountWordsRequest"]["properties"]["callback_url"]["anyOf"][0]
    assert re.fullmatch(callback["pattern"], "https://example.com/hook")
    assert not re.fullmatch(callback["pattern"], "ftp://example.com") and not re.fullmatch(callback["pattern"], "0")


def test_an_empty_webhook_secret_means_callbacks_off(monkeypatch):
    monkeypatch.setenv("WEBHOOK_SECRET", "")
    get_settings.cache_clear()
    assert get_settings().webhook_secret is None
