"""``/openapi.json`` is a valid OpenAPI 3.1 document, true to the running API; ``/docs`` renders it.

The document is checked three ways: ``openapi-spec-validator`` says it is valid OpenAPI 3.1; it
lists exactly the routes of ``app/web/jobs.py``, ``health.py`` and ``schedules.py``; and schemathesis
generates requests from it (valid and invalid ones, every phase: examples, coverage, fuzzing, stateful)
against the app on fakeredis and checks every answer: no 5xx, and status code, content type, headers and body as the document says.

schemathesis runs through its engine (what its CLI uses), not its pytest plugin: the plugin's
fixture support breaks on pytest 9.2 (it reads ``Node._nodeid``, which pytest 9.2 removed).
"""

from __future__ import annotations

import collections
import re
import time
from dataclasses import dataclass, field

import pytest
import schemathesis
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.engine import events, from_schema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app import create_app
from app.jobs import JobQueue, catalog, schemas
from app.settings import get_settings

from ..conftest import run_jobs

CHECK_NAMES = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: Examples per operation in the fuzzing phase (and per stateful scenario); the coverage phase adds
#: its own boundary cases. Keeps the whole run well under a minute on a 2-core machine.
MAX_EXAMPLES = 40
SEED = 20251127


@pytest.fixture
def settings(settings, monkeypatch):
    """The shared settings, with ``?wait`` capped at 1 s (the fuzzer may wait on queued jobs) and
    rate limits it cannot reach: at the defaults over half its POSTs were 429s that never got
    to validation or the queue (the limiter has its own tests in test_ratelimit.py)."""
    monkeypatch.setenv("MAX_WAIT_SECONDS", "1")
    monkeypatch.setenv("SSE_MAX_SECONDS", "0.05")  # streams of queued jobs: the fuzzer opens dozens
    monkeypatch.setenv("RATE_LIMIT_SUBMIT", "100000/second")
    monkeypatch.setenv("RATE_LIMIT_READ", "100000/second")
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def document(client) -> dict:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def _config(**extra) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "cache": {"enabled": False},
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECK_NAMES}},
            **extra,
        }
    )


# --- the document --------------------------------------------------------------------------------


def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_document_lists_every_route_of_the_api(app, document):
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(("api.", "events.", "health.", "schedules.", "batches.", "queues.", "stats.", "bulk.", "tasks.")):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            routes |= {(path, method.lower()) for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert documented == routes


def test_document_is_generated_from_the_models_and_settings(document, settings):
    components = document["components"]["schemas"]
    mapping = components["JobRequest"]["discriminator"]["mapping"]
    assert sorted(mapping) == sorted(catalog.type_names(settings))
    for model in (catalog.request_model(task) for task in catalog.served(settings)):
        generated = model.model_json_schema(mode="validation")
        # No WEBHOOK_SECRET here: the server refuses every callback, so the document offers none.
        assert set(components[model.__name__]["properties"]) == set(generated["properties"]) - {"callback_url"}
        assert components[model.__name__]["required"] == generated["required"]
    assert set(components["JobResource"]["required"]) == set(schemas.JobResource.model_fields)
    # Limits checked against settings are written in as this server has them.
    count_words = components["CountWordsRequest"]["properties"]
    assert count_words["text"]["maxLength"] == settings.max_text_bytes
    assert count_words["timeout_seconds"]["anyOf"][0]["maximum"] == settings.max_timeout_seconds
    wait = next(p for p in document["paths"]["/jobs/{job_id}"]["get"]["parameters"] if p.get("name") == "wait")
    assert wait["schema"]["maximum"] == settings.max_wait_seconds == 1
    # Both bodies of POST /jobs, and the headers of the contract.
    submit = document["paths"]["/jobs"]["post"]
    assert set(submit["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    headers = {p["$ref"].rsplit("/", 1)[1] for p in submit["parameters"]}
    assert headers == {"IdempotencyKey", "RequestId", "TraceParent", "TraceState"}
    assert document["components"]["parameters"]["IdempotencyKey"]["schema"]["maxLength"] == 255
    assert set(submit["responses"]) >= {"202", "400", "409", "413", "415", "422", "429", "503"}
    assert set(submit["responses"]["202"]["headers"]) >= {"Location", "Retry-After", "X-Request-ID"}
    # No keys configured: no security scheme, no 401.
    assert "securitySchemes" not in document["components"] and "401" not in submit["responses"]


def test_document_without_diagnostic_tasks_lists_only_public_types(monkeypatch, job_queue):
    monkeypatch.setenv("ENABLE_DIAGNOSTIC_TASKS", "0")
    get_settings.cache_clear()
    document = create_app(get_settings(), job_queue=job_queue).test_client().get("/openapi.json").get_json()
    mapping = document["components"]["schemas"]["JobRequest"]["discriminator"]["mapping"]
    assert sorted(mapping) == sorted(t.type for t in catalog.served(get_settings()))  # the registry's, diagnostics left out
    assert {"count_words", "send_email", "reverse_text"} <= set(mapping) and "sleep" not in mapping
    assert "SleepRequest" not in document["components"]["schemas"]
    validate(document)


def test_with_api_keys_the_document_has_bearer_auth_and_401s_conform(monkeypatch, fake_redis):
    monkeypatch.setenv("API_KEYS", "shop:client:s3cret,ops:admin:t0ps3cret")
    get_settings.cache_clear()
    keyed = get_settings()
    app = create_app(keyed, job_queue=JobQueue(fake_redis, keyed))
    document = app.test_client().get("/openapi.json").get_json()
    validate(document)
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            if path.startswith(("/jobs", "/schedules", "/batches", "/queues", "/stats", "/concurrency")):
                assert operation["security"] == [{"bearerAuth": []}], (method, path)
                assert "401" in operation["responses"], (method, path)
            else:
                assert "security" not in operation and "401" not in operation["responses"]

    schema = schemathesis.openapi.from_wsgi("/openapi.json", app, config=_config())
    # Without a key, every /jobs operation answers a 401 that conforms; with one, a 2xx that does.
    without_key = [
        schema["/jobs"]["POST"].Case(body={"type": "count_words", "text": "a b"}, media_type="application/json"),
        schema["/jobs"]["GET"].Case(),
        schema["/jobs/{job_id}"]["GET"].Case(path_parameters={"job_id": "abc"}),
        schema["/jobs/{job_id}/cancel"]["POST"].Case(path_parameters={"job_id": "abc"}),
        schema["/jobs/{job_id}/retry"]["POST"].Case(path_parameters={"job_id": "abc"}),
    ]
    for case in without_key:
        assert case.call_and_validate(checks=CHECKS).status_code == 401
    submitted = without_key[0].call_and_validate(checks=CHECKS, headers={"Authorization": "Bearer s3cret"})
    assert submitted.status_code == 202


# --- /docs ---------------------------------------------------------------------------------------


def test_docs_page_is_swagger_ui_served_by_offload_itself(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'id="swagger-ui"' in html and 'data-spec-url="/openapi.json"' in html
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    # Nothing from another origin: every script, style and icon is one of ours, and answers.
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls and all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    kinds = {}
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200, url
        kinds[url.rsplit(".", 1)[1]] = asset.mimetype
    assert kinds["js"] == "text/javascript" and kinds["css"] == "text/css" and kinds["png"] == "image/png"
    bundle = client.get("/docs/assets/swagger-ui-bundle.js").get_data(as_text=True)
    assert "SwaggerUIBundle" in bundle
    init = client.get("/static/docs.js").get_data(as_text=True)
    assert "validatorUrl: null" in init  # no call to the online validator either
    # Only the files the page needs are served, and nothing outside the package.
    assert client.get("/docs/assets/index.html").status_code == 404
    assert client.get("/docs/assets/..%2F__init__.py").status_code == 404


# --- schemathesis against the live app --------------------------------------------------------------


@dataclass
class Run:
    calls: collections.Counter = field(default_factory=collections.Counter)
    statuses: collections.Counter = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop_reason: str = ""
    seconds: float = 0.0


def run_schemathesis(schema) -> Run:
    run = Run()
    started = time.perf_counter()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            for interaction in recorder.interactions.values():
                run.calls[str(event.phase.value if hasattr(event.phase, "value") else event.phase)] += 1
                if interaction.response is not None:
                    run.statuses[(interaction.request.method, interaction.response.status_code)] += 1
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    if check.failure_info is None:
                        continue
                    failure = check.failure_info.failure
                    interaction = recorder.interactions.get(case_id)
                    sent = ""
                    if interaction is not None:
                        request = interaction.request
                        body = (request.body or b"")[:300]
                        sent = f"\n    {request.method} {request.uri} {body!r}"
                        answer = interaction.response
                        if answer is not None:
                            sent += f"\n    -> {answer.status_code} {answer.content[:300]!r}"
                    run.failures.append(f"{recorder.label}: {check.name}: {failure.title}: {failure.message}{sent}")
        elif isinstance(event, events.NonFatalError):
            run.errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            run.errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            run.stop_reason = str(event.stop_reason)
    run.seconds = time.perf_counter() - started
    return run


@pytest.mark.timeout(360)  # ~45 s alone; several times that beside the suite's other workers (make test: -n 3)
def test_schemathesis_finds_no_5xx_and_every_answer_conforms(app, capsys):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app, config=_config())
    run = run_schemathesis(schema)
    total = sum(run.calls.values())
    with capsys.disabled():
        print(f"\nschemathesis: {total} requests in {run.seconds:.1f}s, by phase {dict(run.calls)}")
        print(f"schemathesis: (method, status) -> count {dict(run.statuses)}")
    assert not run.errors, "\n".join(run.errors)
    assert not run.failures, f"{len(run.failures)} failures:\n" + "\n".join(dict.fromkeys(run.failures))
    assert run.stop_reason == "completed"
    # It did reach the API, and got past validation too: jobs were made, read, canceled, retried, listed.
    assert set(run.calls) >= {"examples", "coverage", "fuzzing", "stateful"}
    assert total > 500
    for method, status in [("POST", 202), ("GET", 200), ("POST", 409), ("POST", 422), ("GET", 404)]:
        assert run.statuses[(method, status)] > 0, (method, status)
    assert not [key for key in run.statuses if key[1] == 429], "the fuzzer hit the rate limits: raise them above"


def test_job_resources_in_every_state_conform(app, client, job_queue):
    """The fuzzer has no worker, so it never sees a finished or failed job: these do."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app, config=_config())
    submit, get = schema["/jobs"]["POST"], schema["/jobs/{job_id}"]["GET"]
    cancel, retry = schema["/jobs/{job_id}/cancel"]["POST"], schema["/jobs/{job_id}/retry"]["POST"]

    def submitted(body: dict, media_type: str = "application/json") -> str:
        response = submit.Case(body=body, media_type=media_type).call_and_validate(checks=CHECKS)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    counted = submitted({"type": "count_words", "text": "one two three " * 2000, "metadata": {"order": 7}})
    uploaded = submitted({"file": b"alpha beta\ngamma", "queue": "low", "metadata": '{"k": 1}'}, "multipart/form-data")
    failed = submitted({"type": "fail", "message": "it broke"})
    canceled = submitted({"type": "noop", "delay_seconds": 600})
    assert cancel.Case(path_parameters={"job_id": canceled}).call_and_validate(checks=CHECKS).status_code == 202
    run_jobs(job_queue)

    for job_id, status in [(counted, "finished"), (uploaded, "finished"), (failed, "failed"), (canceled, "canceled")]:
        response = get.Case(path_parameters={"job_id": job_id}, query={"wait": 1}).call_and_validate(checks=CHECKS)
        assert response.json()["status"] == status
    assert get.Case(path_parameters={"job_id": uploaded}).call_and_validate(checks=CHECKS).json()["result"] == {
        "words": 3,
        "characters": 16,
        "lines": 2,
    }
    assert cancel.Case(path_parameters={"job_id": counted}).call_and_validate(checks=CHECKS).status_code == 409
    assert retry.Case(path_parameters={"job_id": counted}).call_and_validate(checks=CHECKS).status_code == 409
    assert retry.Case(path_parameters={"job_id": failed}).call_and_validate(checks=CHECKS).status_code == 202
    page = schema["/jobs"]["GET"].Case(query={"limit": 2}).call_and_validate(checks=CHECKS).json()
    assert len(page["jobs"]) == 2 and page["next"]
    cursor = page["next"].split("cursor=")[1]
    schema["/jobs"]["GET"].Case(query={"limit": 2, "cursor": cursor}).call_and_validate(checks=CHECKS)


# --- found by fuzzing: answers that were 500s -------------------------------------------------------


@pytest.mark.parametrize("limit", ["²", "9" * 5000])
def test_list_limit_that_int_refuses_is_422_not_500(client, limit):
    response = client.get("/jobs", query_string={"limit": limit})
    assert response.status_code == 422 and response.mimetype == "application/problem+json"


@pytest.mark.parametrize("run_at", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59.5Z"])
def test_run_at_without_a_utc_form_is_422_not_500(client, run_at):
    response = client.post("/jobs", json={"type": "count_words", "text": "a", "run_at": run_at})
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["errors"] == [
        {"field": "run_at", "message": "out of range: must fall within the years 1 to 9999 in UTC"}
    ]


def test_form_metadata_nested_too_deep_is_422_not_500(client):
    response = client.post("/jobs", data={"text": "x", "metadata": "[" * 100_000}, content_type="multipart/form-data")
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["errors"] == [{"field": "metadata", "message": "must be a JSON object"}]
