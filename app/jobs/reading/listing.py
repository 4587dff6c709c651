"""``GET /jobs``: jobs newest first, filtered, a page at a time.

The index is a sorted set of job ids by creation time (:data:`~app.jobs.keys.JOB_INDEX_KEY`);
a cursor is ``<score>:<job id>``, the position of the last job of a page (its creation time as
Unix seconds, as the index keeps it, and its id). Any string of that form is a position (the page
starts after it), so the OpenAPI document declares :data:`~app.jobs.contract.schemas.CURSOR_PATTERN` and means it. Ids of
expired jobs are dropped from the index as a page meets them.
"""

from __future__ import annotations

import re

import redis
from rq.serializers import JSONSerializer

from ..access import Principal
from ..catalog import is_offload_job
from ..contract.schemas import CURSOR_PATTERN
from ..engine.job import OffloadJob
from ..keys import JOB_INDEX_KEY
from .resource import describe

_CURSOR = re.compile(CURSOR_PATTERN)


def list_jobs(
    connection: redis.Redis,
    principal: Principal,
    *,
    status: str | None = None,
    type: str | None = None,
    queue: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[dict], str | None]:
    """Jobs newest first; the cursor is the (score, id) of the last job returned."""
    max_score: str = "+inf"
    after_id: str | None = None
    if cursor is not None:  # present but empty is not a cursor of the declared form: 422
        max_score, after_id = _decode_cursor(cursor)
    found: list[dict] = []
    batch = max(limit * 2, 100)
    offset = 0
    while len(found) <= limit:
        entries = connection.zrevrangebyscore(
            JOB_INDEX_KEY, max_score, "-inf", start=offset, num=batch, withscores=True
        )
        if not entries:
            break
        offset += len(entries)
        ids = [entry[0].decode() for entry in entries]
        scores = {entry[0].decode(): entry[1] for entry in entries}
        jobs = OffloadJob.fetch_many(ids, connection=connection, serializer=JSONSerializer)
        for job_id, job in zip(ids, jobs, strict=True):
            if after_id is not None:
                # Skip up to and including the cursor's job among equal scores.
                if scores[job_id] == float(max_score) and job_id >= after_id:
                    continue
            if job is None:
                connection.zrem(JOB_INDEX_KEY, job_id)  # expired: drop it from the index
                continue
            if not principal.may_see(job.meta.get("owner")) or not is_offload_job(job.meta):
                continue
            resource = describe(job)
            if status and resource["status"] != status:
                continue
            if type and resource["type"] != type:
                continue
            if queue and resource["queue"] != queue:
                continue
            resource["_score"] = scores[job_id]
            found.append(resource)
            if len(found) > limit:
                break
        if len(entries) < batch:
            break
    page, more = found[:limit], len(found) > limit
    next_cursor = None
    if more and page:
        last = page[-1]
        next_cursor = _encode_cursor(last["_score"], last["id"])
    for resource in page:
        resource.pop("_score", None)
    return page, next_cursor


def _encode_cursor(score: float, job_id: str) -> str:
    return f"{score!r}:{job_id}"  # repr: the exact float, so equal scores compare equal again


def _decode_cursor(cursor: str) -> tuple[str, str]:
    """Raises ValueError for anything not of :data:`CURSOR_PATTERN`'s form."""
    if not _CURSOR.fullmatch(cursor):
        raise ValueError("bad cursor")
    score, _, job_id = cursor.partition(":")
    return score, job_id
