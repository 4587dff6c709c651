"""Every ``202`` carries ``Operation-Location`` (Azure's long-running-operation convention) with
the same URL as ``Location``, and the OpenAPI document declares it on every ``202`` (issue 18, item 7)."""

from __future__ import annotations

import pytest

from ..conftest import run_jobs


def _same_urls(response) -> str:
    assert response.status_code == 202, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert response.headers["Operation-Location"] == location == response.get_json()["links"]["self"]
    return location


def test_submit_replay_cancel_and_retry_carry_operation_location(client, job_queue):
    first = client.post("/jobs", json={"type": "noop"}, headers={"Idempotency-Key": "op-loc-1"})
    job_url = _same_urls(first)
    replay = client.post("/jobs", json={"type": "noop"}, headers={"Idempotency-Key": "op-loc-1"})
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert _same_urls(replay) == job_url
    assert _same_urls(client.post(f"{job_url}/cancel")) == job_url
    assert _same_urls(client.post(f"{job_url}/retry")) == job_url
    failing = client.post("/jobs", json={"type": "fail", "message": "boom"}).get_json()["id"]
    run_jobs(job_queue)
    assert _same_urls(client.post(f"/jobs/{failing}/retry")) == f"/jobs/{failing}"


def test_other_answers_do_not_carry_operation_location(client):
    job_url = client.post("/jobs", json={"type": "noop"}).headers["Location"]
    assert "Operation-Location" not in client.get(job_url).headers
    assert "Operation-Location" not in client.post("/jobs", json={"type": "nope"}).headers


def test_document_declares_operation_location_on_every_202(client):
    document = client.get("/openapi.json").get_json()
    answers = [
        (path, method, operation["responses"]["202"])
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "202" in operation.get("responses", {})
    ]
    assert {(path, method) for path, method, _ in answers} >= {
        ("/jobs", "post"), ("/jobs/{job_id}/cancel", "post"), ("/jobs/{job_id}/retry", "post"),
    }  # fmt: skip
    headers = document["components"]["headers"]

    def resolved(header: dict) -> dict:
        return headers[header["$ref"].rpartition("/")[2]] if "$ref" in header else header

    for path, method, answer in answers:
        # Every 202 carries it, required, with the same URL form as its Location (a job's, a batch's).
        operation_location = resolved(answer["headers"]["Operation-Location"])
        location = resolved(answer["headers"]["Location"])
        assert operation_location["required"] is True, path
        assert operation_location["schema"] == location["schema"], path
    assert resolved({"$ref": "#/components/headers/OperationLocation"})["schema"] == headers["Location"]["schema"]


@pytest.mark.integration
@pytest.mark.deployments("default", "forking")
def test_operation_location_over_http(stack):
    response = stack.post({"type": "noop"})
    assert response.status_code == 202
    assert response.headers["Operation-Location"] == response.headers["Location"] == f"/jobs/{response.json()['id']}"
    assert stack.wait_for(response.json()["id"])["status"] == "finished"
