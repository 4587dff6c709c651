"""The job resource is answered through the ``JobResource`` model (app/web/answers.py, issue 24
item 5): the bytes are those of before, and a resource the model does not allow never goes out."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from app.jobs import ANONYMOUS, schemas
from app.web import answers

from ..conftest import submit


def test_a_job_resource_is_written_as_before(app, job_queue, settings):
    job = submit(job_queue, settings, type="count_words", text="one two", metadata={"order": 1})
    resource = job_queue.get(job["id"], ANONYMOUS)
    with app.app_context():
        written = answers.job_json(resource)
    assert written == json.dumps(schemas.with_links(resource))  # same keys, order, spacing and timestamps
    assert json.loads(written)["links"] == {"self": f"/jobs/{job['id']}", "cancel": f"/jobs/{job['id']}/cancel"}


def test_timestamps_keep_the_contract_s_milliseconds():
    model = answers.job_resource(_resource(created_at="2026-05-01T10:00:00.120Z"))
    assert model.model_dump(mode="json")["created_at"] == "2026-05-01T10:00:00.120Z"
    schema = schemas.JobResource.model_json_schema(mode="serialization")["properties"]["created_at"]
    assert {"type": "string", "format": "date-time"} in schema["anyOf"]


def test_a_resource_the_model_does_not_allow_is_refused_not_sent():
    with pytest.raises(ValidationError, match="status"):
        answers.job_json(_resource(status="lost"))


def test_a_page_of_jobs_keeps_its_nulls():
    page = json.loads(answers.job_list_json([_resource()], None))
    assert page["next"] is None and page["jobs"][0]["result"] is None
    assert "cancel" in page["jobs"][0]["links"] and "retry" not in page["jobs"][0]["links"]


def _resource(**changes) -> dict:
    fields = dict.fromkeys(schemas.JobResource.model_fields, None)
    del fields["links"]
    fields.update(id="a1", type="noop", status="queued", queue="default", attempts=0, max_retries=0)
    return {**fields, **changes}


def test_the_other_answers_keep_their_bytes_through_their_models(client, job_queue):
    """Schedules, queues, figures and batches go through the models the document shows, and are
    written as before (the dicts' json.dumps): same keys, order, spacing and timestamps."""
    from app.jobs import schedule_schemas
    from app.web.queues import QueueList
    from app.web.stats import Timeseries

    created = client.post("/schedules", json={"job": {"type": "noop"}, "every_seconds": 3600})
    assert created.status_code == 201
    schedule = job_queue.get_schedule(created.get_json()["id"], ANONYMOUS)
    assert created.data.decode() == json.dumps(schedule)
    assert answers.as_json(schedule_schemas.ScheduleResource, schedule) == json.dumps(schedule)
    assert schedule["created_at"].endswith("Z") and len(schedule["created_at"]) == len("2026-05-01T10:00:00.120Z")
    queues = client.get("/queues")
    assert queues.data.decode() == json.dumps(QueueList(queues=job_queue.list_queues()).model_dump(mode="json"))
    assert json.loads(queues.data) == {"queues": job_queue.list_queues()}
    figures = client.get("/stats/timeseries?minutes=2")
    body = json.loads(figures.data)  # (not job_queue.timeseries(2) again: the minute may turn meanwhile)
    assert body["minutes"] == 2 and list(body["queues"]) == ["high", "default", "low"]
    assert figures.data.decode() == json.dumps(Timeseries.model_validate(body).model_dump(mode="json"))
    batch = client.post("/jobs/batch", json={"jobs": [{"type": "noop"}, {"type": "nope"}]})
    assert batch.status_code == 202
    assert [item["status"] for item in batch.get_json()["results"]] == [202, 422]


def test_a_queue_the_model_does_not_allow_is_refused_not_sent():
    from app.web.queues import Queue

    links = {"self": "/queues/default", "pause": "/queues/default/pause", "resume": "/queues/default/resume"}
    row = {"name": "default", "paused": False, "queued": -1, "scheduled": 0, "started": 0, "deferred": 0,
           "failed": 0, "workers": 0, "links": links}  # fmt: skip
    with pytest.raises(ValidationError, match="queued"):
        Queue.model_validate(row)
