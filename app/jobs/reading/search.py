"""Finding jobs: by id prefix, ``metadata`` key/value, error type, and the listing's filters.

``GET /jobs`` with a search parameter and every bulk action (:mod:`app.jobs.admin.bulk`) walk the job
index (:data:`~app.jobs.keys.JOB_INDEX_KEY`, ids by creation time) newest first, in batches of
:data:`~app.jobs.contract.schemas.SEARCH_BATCH` entries, each batch one ZREVRANGEBYSCORE and one pipelined
HGETALL per candidate:

* an id prefix is tested on the index entries themselves, so a job that does not match costs no
  read of its hash;
* a metadata or error filter reads the candidates' hashes (and, for ``error_type``, their latest
  result, pipelined too), in the same bounded batches;
* a time range (``created_after``/``created_before``, bulk only) is a score range of the index:
  jobs outside it are never read.

A request scans at most ``scan_budget`` index entries (a search
:data:`~app.jobs.contract.schemas.SEARCH_SCAN_BUDGET`, as the OpenAPI document says). A rare match over a
long index then answers a short (even empty) page with a ``next`` cursor to go on from, instead of
holding a thread for the whole index: the cursor is the position of the last entry scanned, in the
listing's ``<score>:<id>`` form (:mod:`app.jobs.reading.listing`).

Positions move by score, not offset (the listing's ``start=offset`` costs O(offset) per batch):
each batch starts at the last score seen, skipping the entries of that score already seen.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis
from rq.job import JobStatus
from rq.results import Result
from rq.serializers import JSONSerializer

from ..access import Principal
from ..catalog import is_offload_job
from ..contract.schemas import SEARCH_BATCH, SEARCH_SCAN_BUDGET
from ..engine import storage
from ..engine.job import ATTEMPTS_FIELD, OffloadJob
from ..keys import JOB_INDEX_KEY
from .listing import _decode_cursor, _encode_cursor
from .resource import describe, describe_exception, public_status


@dataclass
class Seen:
    """What a filter needs of a job, read with one HMGET: no payload, no dates to parse (a full
    :class:`OffloadJob` costs ~0.15 ms of Python to restore; a walk of 200,000 would spend 30 s on it)."""

    id: str
    origin: str
    status: JobStatus | None
    meta: dict
    timeout: int | None
    attempts: int
    #: RQ's rate limit (app/jobs/running/concurrency.py): its key and how many may be queued or running.
    rate_limit_key: str | None = None
    rate_limit_concurrency: int | None = None

    @property
    def has_rate_limit(self) -> bool:
        return bool(self.rate_limit_key and self.rate_limit_concurrency)

    @property
    def key(self) -> str:
        return storage.job_key(self.id)

    @property
    def dependents_key(self) -> str:
        return storage.dependents_key(self.id)

    def get_status(self, refresh: bool = False) -> JobStatus | None:
        return self.status


def read_seen(connection: redis.Redis, job_ids: list[str]) -> list[Seen | None]:
    """:class:`Seen` of each job (None: it expired), in one round trip."""
    found: list[Seen | None] = []
    for job_id, fields in zip(job_ids, storage.read_summaries(connection, job_ids, ATTEMPTS_FIELD), strict=True):
        if fields is None:
            found.append(None)
            continue
        attempts = fields.pop(ATTEMPTS_FIELD)
        found.append(Seen(id=job_id, attempts=int(attempts or 0), **fields))
    return found


@dataclass(frozen=True)
class JobFilter:
    """What a job must be to match. Every field given must hold (AND); ``metadata`` values are
    compared as text (a string as it is, anything else as its JSON)."""

    statuses: frozenset[str] = frozenset()
    type: str | None = None
    queue: str | None = None
    id_prefix: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    #: Alone: jobs whose metadata has this key (any value), or some key with this value.
    metadata_key: str | None = None
    metadata_value: str | None = None
    error_type: str | None = None
    created_after: float | None = None  # Unix seconds, inclusive
    created_before: float | None = None  # Unix seconds, exclusive

    def wants_errors(self) -> bool:
        return self.error_type is not None

    def matches(self, job: Seen, error_type: str | None = None) -> bool:
        """Everything but the owner; ``error_type`` is the job's (see :func:`error_types`)."""
        meta = job.meta
        if not is_offload_job(meta):
            return False
        if self.statuses and public_status(job.get_status(refresh=False)) not in self.statuses:
            return False
        if self.type is not None and meta.get("type") != self.type:
            return False
        if self.queue is not None and job.origin != self.queue:
            return False
        if self.metadata or self.metadata_key is not None or self.metadata_value is not None:
            stored = meta.get("metadata") or {}
            if not isinstance(stored, dict):
                return False
            for key, wanted in self.metadata.items():
                if key not in stored or _as_text(stored[key]) != wanted:
                    return False
            if self.metadata_key is not None and self.metadata_key not in stored:
                return False
            if self.metadata_value is not None and self.metadata_value not in map(_as_text, stored.values()):
                return False
        return not (self.error_type is not None and error_type != self.error_type)


def _as_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def scan_index(
    connection: redis.Redis,
    *,
    cursor: str | None = None,
    newest: float | None = None,
    oldest: float | None = None,
    batch: int = SEARCH_BATCH,
) -> Iterator[list[tuple[str, float]]]:
    """Batches of ``(job id, score)`` from the index, newest first, after ``cursor`` (ValueError
    if malformed) and within ``[oldest, newest)``."""
    max_score = "+inf" if newest is None else f"({newest!r}"
    min_score = "-inf" if oldest is None else repr(oldest)
    skip = 0
    if cursor is not None:
        score_text, after_id = _decode_cursor(cursor)
        score = float(score_text)
        if newest is None or score < newest:
            max_score = repr(score)
            # Entries of the cursor's score come in descending id order: those >= its id were seen.
            tied = connection.zrangebyscore(JOB_INDEX_KEY, score, score)
            skip = sum(1 for member in tied if member.decode() >= after_id)
    while True:
        entries = connection.zrevrangebyscore(
            JOB_INDEX_KEY, max_score, min_score, start=skip, num=batch, withscores=True
        )
        if not entries:
            return
        decoded = [(member.decode(), score) for member, score in entries]
        yield decoded
        if len(entries) < batch:
            return
        last = decoded[-1][1]
        at_last = sum(1 for _, score in decoded if score == last)
        if max_score.lstrip("(") == repr(last):
            skip += at_last  # the whole batch had the same score
        else:
            max_score, skip = repr(last), at_last


def position(job_id: str, score: float) -> str:
    """The cursor that starts after this index entry."""
    return _encode_cursor(score, job_id)


def error_types(connection: redis.Redis, jobs: list[Seen]) -> dict[str, str | None]:
    """Each job's ``error.type`` as the resource shows it, with one pipelined read of the jobs'
    latest results (:func:`app.jobs.reading.resource.error_of` reads them one round trip each)."""
    wanted = [job for job in jobs if _may_have_error(job)]
    if not wanted:
        return {}
    found: dict[str, str | None] = {}
    for job, result in zip(wanted, storage.latest_results(connection, [job.id for job in wanted]), strict=True):
        error = None
        if result is not None:
            if result.type != Result.Type.SUCCESSFUL and result.exc_string:
                error = describe_exception(result.exc_string, timeout=job.timeout)["type"]
        if error is None:
            if job.get_status(refresh=False) == JobStatus.STOPPED:
                error = "Stopped"
            else:
                last = job.meta.get("last_error")
                error = last.get("type") if isinstance(last, dict) else None
        found[job.id] = error
    return found


def _may_have_error(job: Seen) -> bool:
    status = public_status(job.get_status(refresh=False))
    return status in ("failed", "stopped") or (status in ("queued", "scheduled") and job.attempts > 0)


def matching_jobs(
    connection: redis.Redis,
    principal: Principal,
    entries: list[tuple[str, float]],
    job_filter: JobFilter,
) -> list[tuple[Seen, float]]:
    """The jobs of one index batch that match, in index order. Ids of expired jobs are dropped
    from the index as they are met (as the listing does)."""
    prefix = job_filter.id_prefix
    candidates = [(job_id, score) for job_id, score in entries if prefix is None or job_id.startswith(prefix)]
    if not candidates:
        return []
    jobs = read_seen(connection, [job_id for job_id, _ in candidates])
    expired = [job_id for (job_id, _), job in zip(candidates, jobs, strict=True) if job is None]
    if expired:
        connection.zrem(JOB_INDEX_KEY, *expired)
    present = [
        (job, score)
        for (_, score), job in zip(candidates, jobs, strict=True)
        if job is not None and principal.may_see(job.meta.get("owner"))
    ]
    errors: dict[str, str | None] = {}
    if job_filter.wants_errors():
        # Only the jobs that pass every other test need their result read.
        errors = error_types(connection, [job for job, _ in present if job_filter.matches(job, job_filter.error_type)])
    return [(job, score) for job, score in present if job_filter.matches(job, errors.get(job.id))]


def search_jobs(
    connection: redis.Redis,
    principal: Principal,
    job_filter: JobFilter,
    *,
    limit: int = 50,
    cursor: str | None = None,
    scan_budget: int = SEARCH_SCAN_BUDGET,
) -> tuple[list[dict], str | None]:
    """A page of matching job resources, newest first, and the cursor to go on from (None when
    the index is exhausted). The page may be short, even empty, with a cursor: the request met
    its scan budget first."""
    found: list[tuple[Seen, float]] = []
    scanned = 0
    last: tuple[str, float] | None = None
    for entries in scan_index(
        connection, cursor=cursor, newest=job_filter.created_before, oldest=job_filter.created_after
    ):
        matched = matching_jobs(connection, principal, entries, job_filter)
        found += matched
        scanned += len(entries)
        last = entries[-1]
        if len(found) > limit:
            page = found[:limit]
            job, score = page[-1]
            return _describe_all(connection, page), position(job.id, score)
        if scanned >= scan_budget:
            return _describe_all(connection, found), position(*last)
    return _describe_all(connection, found), None


def _describe_all(connection: redis.Redis, found: list[tuple[Seen, float]]) -> list[dict]:
    """The resources of a page's jobs (read in full now; one that expired meanwhile is left out)."""
    jobs = OffloadJob.fetch_many([seen.id for seen, _ in found], connection=connection, serializer=JSONSerializer)
    return [describe(job) for job in jobs if job is not None]
