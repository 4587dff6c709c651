"""``POST /jobs/batch`` and ``GET /batches/{id}``: many jobs in one request and one Redis
transaction, per-item results, counts by status, and one callback when the batch has ended.

The integration tests run real gunicorn, workers and Valkey; the few checks of validation alone
use the app on fakeredis."""

from __future__ import annotations

import json

import pytest

from app.jobs.keys import BATCH_CALLBACKS_DUE_KEY
from app.jobs.engine.queue import OffloadQueue
from app.tasks import webhook

from ..conftest import queued_count, wait_until
from ..receiver import Receiver

SECRET = "whsec-batches"


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    return response.json()


def _batch(stack, body: dict, **kwargs):
    return stack.session_post("/jobs/batch", json=body, **kwargs)


def _job_keys(client) -> int:
    return sum(1 for key in client.scan_iter("rq:job:*") if key.count(b":") == 2)


@pytest.fixture
def receiver():
    server = Receiver(path="/hooks/batches")
    yield server
    server.close()


# --- on real processes ----------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.deployments("default", "forking", "cluster")
def test_a_batch_of_valid_and_invalid_items_enqueues_the_valid_ones(stack_factory):
    stack = stack_factory(workers=1)
    response = _batch(
        stack,
        {
            "jobs": [
                {"type": "count_words", "text": "one two three"},
                {"type": "count_words"},
                {"type": "send_email", "to": "not an address", "body": "x"},
                {"type": "noop", "depends_on": ["$0"]},
                {"type": "teleport"},
            ],
            "metadata": {"run": 7},
        },
    )
    assert response.status_code == 202, response.text
    answer = response.json()
    batch = answer["batch"]
    assert response.headers["Location"] == f"/batches/{batch['id']}" == batch["links"]["self"]
    assert [(r["index"], r["status"]) for r in answer["results"]] == [(0, 202), (1, 422), (2, 422), (3, 202), (4, 422)]
    assert answer["results"][1]["problem"]["errors"] == [{"field": "text", "message": "Field required"}]
    assert answer["results"][2]["problem"]["errors"][0]["field"] == "to"
    assert answer["results"][4]["problem"]["errors"][0]["field"] == "type"
    first, dependent = answer["results"][0]["job"], answer["results"][3]["job"]
    assert first["batch_id"] == dependent["batch_id"] == batch["id"]
    assert dependent["depends_on"] == [first["id"]] and dependent["status"] == "deferred"
    assert batch["total"] == 2 and batch["jobs"] == [first["id"], dependent["id"]]
    assert batch["metadata"] == {"run": 7} and batch["done"] is False
    assert len(stack.get("/jobs").json()["jobs"]) == 2  # the invalid items made no job
    assert stack.wait_for(dependent["id"])["status"] == "finished"
    resource = stack.get(f"/batches/{batch['id']}")
    assert resource.status_code == 200 and "Retry-After" not in resource.headers
    assert resource.json()["done"] is True
    assert resource.json()["counts"] == {
        "queued": 0, "scheduled": 0, "deferred": 0, "started": 0, "finished": 2, "failed": 0, "canceled": 0, "stopped": 0,
    }  # fmt: skip


@pytest.mark.integration
def test_a_thousand_jobs_are_accepted_in_one_request_and_one_transaction(stack_factory):
    stack = stack_factory(workers=0)
    client = stack.valkey.client()
    items = [{"type": "count_words", "text": f"text number {i}"} for i in range(1000)]
    client.config_resetstat()
    response = _batch(stack, {"jobs": items})
    stats = client.info("commandstats")
    assert response.status_code == 202, response.text
    # every job, its index entry and the batch record: one script (app/jobs/engine/lua/submit.lua; its
    # round trips are counted in tests/jobs/test_submission_round_trips.py), no MULTI/EXEC, no WATCH
    assert "cmdstat_evalsha" in stats and not {"cmdstat_exec", "cmdstat_watch"} & stats.keys(), stats
    answer = response.json()
    assert [result["status"] for result in answer["results"]] == [202] * 1000
    assert client.llen("rq:queue:default") == 1000 == _job_keys(client)
    batch = stack.get(f"/batches/{answer['batch']['id']}").json()
    assert batch["total"] == 1000 and batch["counts"]["queued"] == 1000 and batch["done"] is False


@pytest.mark.integration
def test_a_batch_over_the_queue_depth_limit_enqueues_nothing(stack_factory):
    stack = stack_factory(workers=0, MAX_QUEUE_DEPTH="500")
    client = stack.valkey.client()
    body = _problem(_batch(stack, {"jobs": [{"type": "noop"}] * 1000}), 503)
    assert "nothing was enqueued" in body["detail"]
    assert client.llen("rq:queue:default") == 0 and _job_keys(client) == 0
    assert not list(client.scan_iter("rq:offload:batch:*"))
    # Under the limit, the same batch is taken whole.
    assert _batch(stack, {"jobs": [{"type": "noop"}] * 500}).status_code == 202
    assert client.llen("rq:queue:default") == 500


@pytest.mark.integration
def test_bad_batches_are_4xx_problems_and_enqueue_nothing(stack_factory):
    stack = stack_factory(workers=0, MAX_TEXT_BYTES="1000", MAX_BATCH_JOBS="10")
    client = stack.valkey.client()
    too_large = json.dumps({"jobs": [{"type": "count_words", "text": "x" * 900}] * 100}).encode()
    answer = stack.session_post("/jobs/batch", data=too_large, headers={"Content-Type": "application/json"})
    _problem(answer, 413)
    body = _problem(_batch(stack, {"jobs": [{"type": "noop"}] * 11}), 422)
    assert body["errors"] == [{"field": "jobs", "message": "at most 10 jobs in one batch"}]
    body = _problem(_batch(stack, {"jobs": [{"type": "nope"}, {"type": "count_words", "text": ""}]}), 422)
    assert [error["field"] for error in body["errors"]] == ["jobs.0.type", "jobs.1.text"]
    body = _problem(_batch(stack, {"jobs": [{"type": "noop", "depends_on": ["$0"]}, {"type": "noop", "depends_on": ["$1"]}]}), 422)
    assert [error["field"] for error in body["errors"]] == ["jobs.0.depends_on.0", "jobs.1.depends_on.0"]
    assert "earlier item" in body["errors"][0]["message"]
    _problem(_batch(stack, {"jobs": []}), 422)
    _problem(_batch(stack, {"jobs": [{"type": "noop"}], "extra": 1}), 422)
    _problem(stack.session_post("/jobs/batch", data=b"[1]", headers={"Content-Type": "application/json"}), 400)
    _problem(stack.session_post("/jobs/batch", data=b"jobs", headers={"Content-Type": "text/plain"}), 415)
    assert _job_keys(client) == 0 and client.llen("rq:queue:default") == 0


@pytest.mark.integration
@pytest.mark.deployments("default", "forking")
def test_a_cycle_in_a_batch_is_refused_and_the_rest_runs_in_order(stack_factory):
    stack = stack_factory(workers=2)
    answer = _batch(
        stack,
        {
            "jobs": [
                {"type": "sleep", "seconds": 0.5},
                {"type": "count_words", "text": "after zero", "depends_on": ["$0"]},
                {"type": "noop", "depends_on": ["$3"]},  # forward: would close the cycle 2 -> 3 -> 2
                {"type": "noop", "depends_on": ["$2"]},  # item 2 was refused, so this one is too
                {"type": "noop", "depends_on": ["$1", "$0"]},
            ]
        },
    ).json()
    assert [r["status"] for r in answer["results"]] == [202, 202, 422, 422, 202]
    assert "earlier item" in answer["results"][2]["problem"]["errors"][0]["message"]
    assert "item 2 of the batch is not valid" in answer["results"][3]["problem"]["errors"][0]["message"]
    jobs = [result["job"]["id"] for result in answer["results"] if result["status"] == 202]
    ended = [stack.wait_for(job_id) for job_id in jobs]
    assert [job["status"] for job in ended] == ["finished"] * 3
    assert ended[0]["ended_at"] <= ended[1]["started_at"] and ended[1]["ended_at"] <= ended[2]["started_at"]


@pytest.mark.integration
@pytest.mark.deployments("default", "forking")
def test_the_batch_callback_is_sent_once_when_the_last_job_ends(stack_factory, receiver):
    """Batches of two jobs on two workers: the two jobs of each batch end at about the same
    moment, on two workers, and each batch still gets exactly one callback."""
    stack = stack_factory(workers=2, WEBHOOK_SECRET=SECRET, ALLOW_PRIVATE_CALLBACKS="1")
    batches = []
    for i in range(6):
        answer = _batch(
            stack,
            {
                "jobs": [
                    {"type": "sleep", "seconds": 0.3},
                    {"type": "sleep", "seconds": 0.3, "callback_url": receiver.url},  # its own callback too
                ],
                "callback_url": receiver.url,
                "metadata": {"batch": i},
            },
        ).json()
        batches.append(answer["batch"]["id"])
    client = stack.valkey.client()

    def settled() -> bool:
        ended = all(stack.get(f"/batches/{batch_id}").json()["done"] for batch_id in batches)
        return ended and not client.smembers(BATCH_CALLBACKS_DUE_KEY) and deliveries_in_flight(client) == 0

    wait_until(settled, timeout=60, what="every batch and every delivery to end")
    done = receiver.events("batch.done")
    assert sorted(body["id"] for body in done) == sorted(batches)  # each once: none twice, none missing
    for body in done:
        assert body["done"] is True and body["counts"]["finished"] == 2 and body["total"] == 2
    assert len(receiver.events("job.finished")) == 6
    headers, raw = next(d for d in receiver.deliveries if d[0]["Offload-Event"] == "batch.done")
    assert webhook.verify(SECRET, raw, headers["Offload-Signature"])


def deliveries_in_flight(client) -> int:
    """Webhook deliveries queued, running or waiting to be retried. They are internal jobs on
    the ``high`` queue, outside the client's ``GET /jobs`` listing, so they are counted there:
    a delivery leaves the started registry only after its POST has been answered (and between
    its dequeue and its start it is on the queue's intermediate list)."""
    high = OffloadQueue("high", connection=client)
    waiting = high.count + client.llen(high.intermediate_queue_key)
    return waiting + high.started_job_registry.count + high.scheduled_job_registry.count


@pytest.mark.integration
def test_a_batch_of_failures_ends_too_and_says_so(stack_factory, receiver):
    stack = stack_factory(workers=1, WEBHOOK_SECRET=SECRET, ALLOW_PRIVATE_CALLBACKS="1")
    answer = _batch(
        stack,
        {"jobs": [{"type": "fail"}, {"type": "noop", "depends_on": ["$0"]}, {"type": "noop"}], "callback_url": receiver.url},
    ).json()
    wait_until(lambda: receiver.events("batch.done"), timeout=30, what="the batch callback")
    [body] = receiver.events("batch.done")
    assert body["id"] == answer["batch"]["id"] and body["done"] is True
    assert body["counts"]["failed"] == 2 and body["counts"]["finished"] == 1


@pytest.mark.integration
def test_idempotency_key_replays_the_batch(stack_factory):
    stack = stack_factory(workers=0)
    body = {"jobs": [{"type": "noop"}, {"type": "noop"}]}
    first = _batch(stack, body, headers={"Idempotency-Key": "batch-1"})
    again = _batch(stack, body, headers={"Idempotency-Key": "batch-1"})
    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert stack.valkey.client().llen("rq:queue:default") == 2
    _problem(_batch(stack, {"jobs": [{"type": "noop"}]}, headers={"Idempotency-Key": "batch-1"}), 422)


@pytest.mark.integration
def test_a_batch_is_its_clients_own(stack_factory):
    stack = stack_factory(workers=0, API_KEYS="shop:client:s3cret,other:client:0th3r,ops:admin:t0ps3cret")
    answer = _batch(stack, {"jobs": [{"type": "noop"}]}, headers={"Authorization": "Bearer s3cret"}).json()
    path = answer["batch"]["links"]["self"]
    assert stack.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert stack.get(path, headers={"Authorization": "Bearer t0ps3cret"}).status_code == 200
    _problem(stack.get(path, headers={"Authorization": "Bearer 0th3r"}), 404)
    _problem(stack.get(path), 401)
    _problem(stack.get("/batches/nope", headers={"Authorization": "Bearer s3cret"}), 404)


# --- validation alone (fakeredis) --------------------------------------------------------------


def test_only_json_and_at_most_one_callback_url_per_batch(client, job_queue):
    assert client.post("/jobs/batch", data={"file": "x"}).status_code == 415
    response = client.post("/jobs/batch", json={"jobs": [{"type": "noop"}], "callback_url": "ftp://x"})
    assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "callback_url"
    assert queued_count(job_queue) == 0


def test_jobs_batch_takes_post_alone(client):
    """Its path has the form of GET /jobs/{id} too: no method but POST may reach a job called "batch"."""
    for method in ("GET", "PUT", "PATCH", "DELETE", "HEAD"):
        response = client.open("/jobs/batch", method=method)
        assert response.status_code == 405 and response.headers["Allow"] == "OPTIONS, POST", method
    assert client.options("/jobs/batch").headers["Allow"] == "OPTIONS, POST"
