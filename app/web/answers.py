"""Answers built as the contract's models: what the OpenAPI document says a job resource is, is
what the views send, because both come from :class:`~app.jobs.contract.schemas.JobResource`; and so for
the other answers (:func:`as_json`: batches, schedules, bulk actions, tasks).

The job layer gathers a job's fields (``JobQueue.get`` and the like, a plain dict from what RQ
stores); here they become the model, with their ``links``, and the model writes the JSON. A field
the model does not allow fails here, loudly, rather than reach a client the document misled.
``exclude_unset``: every field of the resource is written, null or not, as the contract wants,
but of ``links`` only the actions the job's status allows (a finished job has ``self`` alone).

The JSON is written by ``json.dumps`` of the model's dump, so the bytes are those of before the
model (``", "`` and ``": "``; pydantic's own ``model_dump_json`` is compact). Validating and dumping
cost about 10 µs a resource over ``json.dumps`` of the dict (16 against 5.5, ``python -m
bench.web_routes``; compact JSON would be 9): well under the 50 µs at which ``model_construct``
(no checks) would be worth its blindness.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, Field

from ..jobs import schemas


class JobList(BaseModel):
    """What ``GET /jobs`` answers: a page of jobs, newest first."""

    jobs: list[schemas.JobResource]
    next: str | None = Field(description="The URL of the next page (same filters), or null on the last page.")


def as_json(model: type[BaseModel], body: dict) -> str:
    """``body`` through ``model`` (a field it does not allow raises), as JSON: the keys given."""
    return json.dumps(model.model_validate(body).model_dump(mode="json", exclude_unset=True))


def job_resource(resource: dict) -> schemas.JobResource:
    """The job resource, with its links, as the model (a field it does not allow raises)."""
    return schemas.JobResource.model_validate(schemas.with_links(resource))


def job_json(resource: dict) -> str:
    """The job resource's JSON (and its ``links``), as ``GET /jobs/{job_id}`` answers it."""
    return json.dumps(job_resource(resource).model_dump(mode="json", exclude_unset=True))


def job_list_json(jobs: list[dict], next_url: str | None) -> str:
    """A page of ``GET /jobs``."""
    page = JobList(jobs=[job_resource(job) for job in jobs], next=next_url)
    return json.dumps(page.model_dump(mode="json", exclude_unset=True))
