"""Callbacks and retries: what happens after an attempt ends.

:func:`retry_policy` is the backoff every job and callback delivery gets;
:func:`enqueue_callback` queues the signed delivery of a job's end to its ``callback_url``
(a ``webhook`` job on the ``high`` queue), called by the worker that ended the job.
"""

from __future__ import annotations

import json
import logging
import random

import redis
from rq import Retry
from rq.job import Job
from rq.serializers import JSONSerializer

from ... import tracing
from ...settings import Settings
from .. import catalog
from ..contract.schemas import with_links
from ..engine.job import OffloadJob
from ..engine.queue import OffloadQueue
from ..reading.resource import describe, public_status
from .tracing import delivery_meta

log = logging.getLogger(__name__)


def retry_policy(settings: Settings, max_retries: int) -> Retry | None:
    """Exponential backoff with ±20% jitter, capped; RQ takes it as a list of intervals."""
    if max_retries < 1:
        return None
    base, cap = settings.retry_backoff_base_seconds, settings.retry_backoff_max_seconds
    intervals = [
        max(1, round(min(cap, base * 2**attempt) * random.uniform(0.8, 1.2))) for attempt in range(max_retries)
    ]
    return Retry(max=max_retries, interval=intervals)


def enqueue_callback(connection: redis.Redis, job: Job, settings: Settings) -> Job | None:
    """Queue the delivery of ``job``'s end to its ``callback_url``, if it has one."""
    url = job.meta.get("callback_url")
    status = public_status(job.get_status(refresh=True))
    if not url or status not in ("finished", "failed"):
        return None
    resource = with_links(describe(job))
    delivery = queue_delivery(
        connection, settings, url=url, body=json.dumps(resource), event=f"job.{status}",
        meta={"owner": job.meta.get("owner"), "for_job": job.id, "trace": delivery_meta(job)},
        description=f"webhook for {job.id}",
    )  # fmt: skip
    log.info("callback queued", extra={"job_id": job.id, "delivery_id": delivery.id})
    return delivery


def queue_delivery(
    connection: redis.Redis,
    settings: Settings,
    *,
    url: str,
    body: str,
    event: str,
    meta: dict,
    description: str,
    pipeline: redis.client.Pipeline | None = None,
) -> Job:
    """Queue one signed POST of ``body`` to ``url`` (a ``webhook`` job on the ``high`` queue);
    with ``pipeline``, in the caller's transaction. Its trace is ``meta["trace"]``, else the
    current span's (a batch's callback: the attempt that ended the batch's last job)."""
    task = catalog.builtins.webhook.deliver_webhook_job
    span = tracing.current.get()
    if meta.get("trace") is None and span is not None:
        meta = {**meta, "trace": tracing.to_meta(span)}
    queue = OffloadQueue("high", connection=connection, serializer=JSONSerializer, job_class=OffloadJob)
    delivery = queue.create_job(
        task.func_name,
        kwargs={"url": url, "body": body, "event": event},
        timeout=int(settings.webhook_timeout_seconds) + 5,
        result_ttl=settings.result_ttl_seconds,
        failure_ttl=settings.failure_ttl_seconds,
        meta={"type": "webhook", **meta, "max_retries": settings.webhook_max_retries},
        retry=retry_policy(settings, settings.webhook_max_retries),
        description=description,
    )
    return queue.enqueue_job(delivery, pipeline=pipeline)
