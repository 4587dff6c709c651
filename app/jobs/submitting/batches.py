"""Batches (``POST /jobs/batch``): many jobs in one request and one transaction, counted
together, and one callback when the last of them has ended (as Sidekiq Pro's batches).

A batch's record is a hash (:func:`~app.jobs.keys.batch_key`) and the set of its jobs that have
not ended yet (:func:`~app.jobs.keys.batch_pending_key`), written in the transaction that writes
its jobs (:func:`app.jobs.submitting.submission.write`). Each job carries ``batch_id`` in its meta, and its
end takes it out of the pending set in the job's own outcome transaction (:mod:`.endings`); the
end that empties the set notes the batch's callback as due. The worker that ended that job (or
the next maintenance pass of any worker) then queues the callback, one signed delivery of the
batch resource (a ``webhook`` job, as for a job's own callback), in the transaction that takes
the batch off the due set: it is queued once, even when two workers end the last two jobs at
the same moment.

The resource's ``counts`` are read from the jobs' own statuses, in one round trip.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import redis

from ...settings import Settings
from ..access import Principal
from ..contract import schemas
from ..contract.schemas import with_links
from ..engine import storage
from ..engine.queue import OffloadQueue
from ..engine.submit import Exists, RateCount
from ..errors import BatchNotFound, InvalidSubmission
from ..keys import BATCH_CALLBACKS_DUE_KEY, batch_key, batch_pending_key
from ..reading.resource import describe, public_status, rfc3339
from ..running.callbacks import queue_delivery
from . import submission
from .idempotency import IdempotencyClaim, claim_now, settle

log = logging.getLogger(__name__)

STATUSES: tuple[str, ...] = schemas.JobStatusName.__args__  # type: ignore[attr-defined]


def submit(
    connection: redis.Redis,
    queues: Mapping[str, OffloadQueue],
    settings: Settings,
    items: list[tuple[int, schemas.JobOptions]],
    *,
    owner: str | None,
    principal: Principal,
    request_id: str | None,
    callback_url: str | None,
    metadata: dict | None,
    rejected: dict[int, dict],
    problem: Callable[[list[dict]], dict],
    idempotency: IdempotencyClaim | None = None,
    extra_meta: dict | None = None,
    rate: RateCount | None = None,
) -> dict:
    """Write the valid ``items`` (index, request) as one batch in one transaction; returns the
    answer: ``{"batch": <resource>, "results": [...]}``, a result for every index, in order.

    ``rejected`` are the problems of the items found invalid before (by index); the items found
    invalid here (their dependencies) get ``problem(errors)``. Raises InvalidSubmission when no
    item is left, and QueueFull when a queue would go over its depth limit: nothing is written.
    ``extra_meta`` goes into every job's meta (the request's ``trace``). ``rate``: the caller's
    rate-limit windows, counted by the batch's own script first (see :func:`submission.write`).
    """
    batch_id = uuid.uuid4().hex
    drafts = [
        submission.draft(
            request, queues=queues, settings=settings, owner=owner, request_id=request_id,
            index=index, batch_id=batch_id, extra_meta=extra_meta,
        )  # fmt: skip
        for index, request in items
    ]
    created_at = datetime.now(UTC)
    answer: dict = {}

    def record(pipe: redis.client.Pipeline, kept: list[submission.Draft], errors: dict[int, list[dict]]) -> None:
        ids = [draft.job.id for draft in kept]
        fields = {"created_at": rfc3339(created_at), "jobs": json.dumps(ids)}
        if owner is not None:
            fields["owner"] = owner
        if callback_url is not None:
            fields["callback_url"] = callback_url
        if metadata is not None:
            fields["metadata"] = json.dumps(metadata)
        pipe.hset(batch_key(batch_id), mapping=fields)
        pipe.sadd(batch_pending_key(batch_id), *ids)
        jobs = {draft.index: with_links(describe(draft.job)) for draft in kept}
        answer["batch"] = _resource(batch_id, fields, [job["status"] for job in jobs.values()])
        results = {index: {"index": index, "status": 422, "problem": body} for index, body in rejected.items()}
        results |= {index: {"index": index, "status": 422, "problem": problem(found)} for index, found in errors.items()}
        results |= {index: {"index": index, "status": 202, "job": job} for index, job in jobs.items()}
        answer["results"] = [results[index] for index in sorted(results)]
        if idempotency is not None:
            idempotency.record(answer, pipe)

    if idempotency is not None and not idempotency.claimed and not submission.one_script(drafts):
        idempotency = claim_now(idempotency)
        if idempotency.replay is not None:
            return idempotency.replay
    try:
        kept, errors = submission.write(
            connection,
            drafts,
            principal=principal,
            max_queue_depth=settings.max_queue_depth,
            in_batch=True,
            also=record,
            absent=[idempotency.key] if idempotency is not None and not idempotency.claimed else None,
            rate=rate,
        )
    except Exists as exc:  # the key has an answer already: replay it (claim.replay is set)
        return settle(idempotency, exc.args[1])  # type: ignore[arg-type] - only with a claim
    if not kept:
        raise InvalidSubmission(errors)
    log.info("batch submitted", extra={"batch_id": batch_id, "jobs": len(kept), "rejected": len(rejected) + len(errors)})
    return answer


def get(connection: redis.Redis, batch_id: str, principal: Principal) -> dict:
    """The batch resource, with its jobs' counts by status as they are now."""
    raw = connection.hgetall(batch_key(batch_id)) if schemas.JOB_ID.fullmatch(batch_id) else {}
    fields = {key.decode(): value.decode() for key, value in raw.items()}
    if not fields or not principal.may_see(fields.get("owner")):
        raise BatchNotFound(batch_id)
    return describe_batch(connection, batch_id, fields)


def describe_batch(connection: redis.Redis, batch_id: str, fields: dict[str, str]) -> dict:
    ids = json.loads(fields["jobs"])
    # A job that has expired had ended long before: it is left out of the counts.
    found = [public_status(status) for status in storage.read_statuses(connection, ids) if status is not None]
    return _resource(batch_id, fields, found)


def _resource(batch_id: str, fields: dict[str, str], statuses: list[str]) -> dict:
    """``BatchResource`` (:mod:`app.jobs.contract.batch_schemas`)."""
    counts = dict.fromkeys(STATUSES, 0)
    for status in statuses:
        counts[status] += 1
    ids = json.loads(fields["jobs"])
    return {
        "id": batch_id,
        "created_at": fields["created_at"],
        "total": len(ids),
        "counts": counts,
        "jobs": ids,
        "done": all(status in schemas.TERMINAL_STATUSES for status in statuses),
        "callback_url": fields.get("callback_url"),
        "metadata": json.loads(fields["metadata"]) if "metadata" in fields else None,
        "links": batch_links(batch_id),
    }


def batch_links(batch_id: str) -> dict[str, str]:
    return {"self": f"/batches/{batch_id}"}


# --- the callback ---------------------------------------------------------------------------------


def queue_due_callbacks(connection: redis.Redis, settings: Settings) -> int:
    """Queue the callback of every batch that has ended and whose callback is due; returns how many.

    Each is queued in the transaction that takes its batch off the due set, with the set
    watched: of two processes doing this at once, one queues it and the other finds it gone.
    """
    queued = 0
    for raw in connection.smembers(BATCH_CALLBACKS_DUE_KEY):
        batch_id = raw.decode()
        with connection.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(BATCH_CALLBACKS_DUE_KEY)
                    if not pipe.sismember(BATCH_CALLBACKS_DUE_KEY, batch_id):
                        pipe.reset()
                        break
                    fields = {key.decode(): value.decode() for key, value in connection.hgetall(batch_key(batch_id)).items()}
                    body = json.dumps(describe_batch(connection, batch_id, fields)) if fields.get("callback_url") else None
                    pipe.multi()
                    pipe.srem(BATCH_CALLBACKS_DUE_KEY, batch_id)
                    if body is not None:
                        delivery = queue_delivery(
                            connection, settings, url=fields["callback_url"], body=body, event="batch.done",
                            meta={"owner": fields.get("owner"), "for_batch": batch_id},
                            description=f"webhook for batch {batch_id}", pipeline=pipe,
                        )  # fmt: skip
                    pipe.execute()
                    if body is not None:
                        queued += 1
                        log.info("batch callback queued", extra={"batch_id": batch_id, "delivery_id": delivery.id})
                    break
                except redis.WatchError:
                    continue
    return queued
