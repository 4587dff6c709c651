"""How each task runs inside its job: the glue between a plain task and Redis.

:mod:`app.tasks` knows nothing of jobs; these runners give each task what it needs from
its job and its settings (a progress sink, the at-most-once receipt of an email, the
webhook secret). :data:`app.jobs.catalog.TASKS` names each type's runner, and
:meth:`app.jobs.job.OffloadJob._execute` calls it: one dispatch, through the table.
"""

from __future__ import annotations

import json
import logging
import time
from contextvars import ContextVar
from urllib.parse import urlsplit

import redis
from rq.job import Job

from .. import tasks, telemetry, tracing
from ..settings import Settings
from ..tasks import webhook
from . import keys
from .errors import DeliveryUnknown
from .events import publish_job_event

log = logging.getLogger(__name__)

#: Seconds between two progress writes of a running ``count_words``.
PROGRESS_INTERVAL = 0.25

#: Set by a worker that saves the job's ``meta`` in the transaction recording its outcome (the
#: fast worker's horse, :mod:`app.worker.fast`): the last progress report (``done == total``) then
#: only updates ``job.meta`` and rides that transaction, one fsynced round trip less per job. RQ's
#: own workers save the outcome without ``meta``, so for them the report is written as it comes.
final_progress_rides_outcome: ContextVar[bool] = ContextVar("final_progress_rides_outcome", default=False)


def count_words(job: Job, arguments: dict, settings: Settings) -> dict:
    """``count_words`` with its progress saved on the job."""
    return tasks.count_words(arguments["text"], progress=ProgressReporter(job))


def sleep(job: Job, arguments: dict, settings: Settings) -> dict:
    """The diagnostic ``sleep`` with its progress saved on the job, as ``count_words``'s."""
    return tasks.sleep(arguments["seconds"], progress=ProgressReporter(job))


def deliver_webhook(job: Job, arguments: dict, settings: Settings) -> dict:
    """A callback delivery, signed with the worker's ``WEBHOOK_SECRET``; the job id is the delivery id.

    Each POST is a span of its own, under the delivery's attempt (so in the trace of the job it
    reports on), and carries it to the receiver as ``traceparent``."""
    if settings.webhook_secret is None:
        raise webhook.DeliveryFailed("WEBHOOK_SECRET is not set on the worker; cannot sign the delivery")
    attempt = tracing.current.get()
    span = attempt.child() if attempt is not None else tracing.new_root()
    start_ns, answer, error = time.time_ns(), None, None
    try:
        answer = webhook.deliver(
            **arguments,
            secret=settings.webhook_secret.get_secret_value(),
            delivery_id=job.id,
            allow_private=settings.allow_private_callbacks,
            timeout=settings.webhook_timeout_seconds,
            headers=span.headers(),
        )
        return answer
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if telemetry.enabled():
            parts = urlsplit(arguments["url"])  # no path or query: they may hold the receiver's tokens
            telemetry.export("POST", span, attempt, start_ns=start_ns, kind="client", error=error, attributes={
                "http.request.method": "POST", "url.scheme": parts.scheme, "server.address": parts.hostname,
                "server.port": parts.port, "http.response.status_code": answer["status"] if answer else None,
                "offload.delivery.id": job.id, "offload.event": arguments.get("event"),
                "offload.job.id": job.meta.get("for_job"),
            })  # fmt: skip


def send_email_once(job: Job, arguments: dict, settings: Settings) -> dict:
    """Send at most once per job, across retries and worker deaths.

    The receipt is written to Redis the moment the SMTP server accepts the message; an
    attempt that finds it (the previous attempt's worker died after sending) returns it
    instead of sending again. The one window left is between the server's 250 and that
    write, about a millisecond.
    """
    sent_key = keys.sent_key(job.id)
    sending_key = keys.sending_key(job.id)
    previous, in_doubt = job.connection.mget(sent_key, sending_key)
    if previous is not None:
        log.warning("job %s: message already sent by an earlier attempt; not sending again", job.id)
        return json.loads(previous)
    if in_doubt is not None:
        # An attempt died while the message itself was being transferred: it may have been
        # delivered. Sending again could duplicate it, so say so and stop (no more retries).
        job.retries_left = 0
        raise DeliveryUnknown(
            "an earlier attempt died while the SMTP server was receiving the message; it may or may not "
            "have been delivered, and it is not sent again to avoid a duplicate"
        )

    def sending() -> None:
        # NX: if two attempts of one job ever run at once (a worker starved past its heartbeat
        # and was presumed dead), only the first may transfer the message.
        if not job.connection.set(sending_key, 1, nx=True, ex=settings.result_ttl_seconds):
            job.retries_left = 0
            raise DeliveryUnknown("another attempt of this job is sending (or died sending) this message; not sending it twice")

    def record(receipt: dict) -> None:
        with job.connection.pipeline() as pipe:
            pipe.set(sent_key, json.dumps(receipt), ex=settings.result_ttl_seconds)
            pipe.delete(sending_key)
            pipe.execute()

    try:
        return tasks.send_email(
            **arguments,
            smtp=settings.smtp,
            mail_from=settings.mail_from,
            timeout=settings.smtp_timeout,
            message_id=f"<{job.id}@{settings.mail_from.rpartition('@')[2] or 'offload'}>",
            on_sent=record,
            on_sending=sending,
        )
    except tasks.SmtpError as exc:
        if not exc.in_doubt:  # the server refused or never got the message: a retry may send it
            job.connection.delete(sending_key)
        raise


class ProgressReporter:
    """Writes ``progress`` into the job's meta, at most four times a second (and at the end),
    and announces it (for ``GET /jobs/{id}/events``) in the same round trip. The end's report
    goes with the job's outcome where the worker allows it (:data:`final_progress_rides_outcome`).

    The first report comes a quarter of a second in: a text counted faster than that (1 MiB
    takes ~15 ms) saves its progress once, at the end, instead of paying a Redis round trip
    for its first chunk too."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < PROGRESS_INTERVAL:
            return
        self.last = now
        job = self.job
        job.meta["progress"] = {"done": done, "total": total}
        if done >= total and final_progress_rides_outcome.get():
            return
        try:
            # RQ's save_meta, and the announcement, in one transaction.
            with job.connection.pipeline() as pipe:
                pipe.hset(job.key, "meta", job.serializer.dumps(job.meta))
                publish_job_event(job.connection, job.id, pipeline=pipe)
                pipe.execute()
        except redis.RedisError:
            log.warning("could not save progress of job %s", self.job.id, extra={"job_id": self.job.id})
