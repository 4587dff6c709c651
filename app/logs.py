"""Logging: one JSON object per line on stdout, from web and workers alike.

Each record carries ``request_id`` (set by the HTTP layer for the request it serves) and
``job_id`` (the job a worker is running, or the one a request is about), so one job can be
followed from its POST to its end with a single grep. While a span is current (a submission, a
job's attempt: :data:`app.tracing.current`), records also carry its ``trace_id`` and ``span_id``,
so the lines of a job can be found from the trace a tracing UI shows.

Lines are encoded by orjson through python-json-logger's ``OrjsonFormatter`` (issue 26, item 3):
the web writes one for every request and a worker one or two for every job, so they are on
the hot path. ``python -m bench.logline`` measures a line (bench/FINDINGS.md, section 15).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

import orjson
from pythonjsonlogger.json import JsonEncoder
from pythonjsonlogger.orjson import OrjsonFormatter

from . import tracing

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
job_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)


class ContextFilter(logging.Filter):
    """Adds the current request id and job id to every record that lacks them, and the current
    span's ids when there is one (only then: no two null fields on every other line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        if getattr(record, "job_id", None) is None:
            record.job_id = job_id_var.get() or _rq_job_id()
        span = tracing.current.get()
        if span is not None and getattr(record, "trace_id", None) is None:
            record.trace_id = span.trace_id
            record.span_id = span.span_id
        return True


def _rq_job_id() -> str | None:
    try:
        from rq.job import get_current_job

        job = get_current_job()
    except Exception:  # noqa: BLE001 - logging must never fail
        return None
    return job.id if job else None


#: RQ's default worker writes four INFO lines a job; the one kept at INFO is "Successfully
#: completed job <id> in <duration>". These three go to DEBUG (dropped unless it is on).
_RQ_PER_JOB_TEMPLATES = frozenset(
    {
        "Worker %s: %s: %s (%s)",  # dequeued (with the description), and "Job OK"
        "Worker %s: job %s result is kept for %s seconds",
        "Worker %s: job %s result discarded immediately",
    }
)


class RqPerJobLinesToDebug(logging.Filter):
    """Demotes RQ's per-job INFO lines but the last (see :data:`_RQ_PER_JOB_TEMPLATES`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.msg in _RQ_PER_JOB_TEMPLATES:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


#: What encodes the lines (``bench/logline.py`` prints it beside its figures).
ENCODER = f"orjson {orjson.__version__}"


class JsonLines(OrjsonFormatter):
    """python-json-logger's formatter on orjson, with the fields and escaping the stdlib one gave.

    * A line stays ASCII, as ``json.dumps`` made it (``\u00e9`` for ``é``): a log shipper or
      a stdout not in UTF-8 sees what it saw before. orjson writes UTF-8, so the rare line with
      a non-ASCII character (a path, a message) is encoded again by ``json``.
    * What orjson refuses (an integer beyond 64 bits, a lone surrogate) is encoded by ``json``,
      never dropped: logging must not fail.
    * The time is formatted once a second, not for every line.
    """

    _stamp: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        if datefmt is None:  # the stdlib's own format has milliseconds: nothing to keep
            return super().formatTime(record, datefmt)
        second = int(record.created)
        stamp = self._stamp  # one read: another thread may replace it meanwhile
        if stamp[0] != second:
            stamp = (second, time.strftime(datefmt, self.converter(record.created)))
            self._stamp = stamp
        return stamp[1]

    def jsonify_log_record(self, log_data: dict) -> str:
        try:
            line = orjson.dumps(log_data, default=self.json_default, option=orjson.OPT_NON_STR_KEYS)
        except (orjson.JSONEncodeError, TypeError):
            line = b"\x80"  # not ASCII: encoded by json below
        if line.isascii():
            return line.decode("ascii")
        return json.dumps(log_data, cls=JsonEncoder)  # the stdlib formatter's own encoder


def json_handler(process: str, stream=None) -> logging.Handler:  # noqa: ANN001 - a text stream
    """A handler writing offload's JSON lines (``"process": process``) to ``stream`` (stdout)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(
        JsonLines(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"process": process},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )
    )
    handler.addFilter(ContextFilter())
    return handler


def configure(level: str = "INFO", process: str = "web", stream=None) -> None:  # noqa: ANN001
    """Send every logger (ours, RQ's, gunicorn's) to stdout (or ``stream``) as JSON lines."""
    handler = json_handler(process, stream)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # RQ configures its own handler on its logger; route it through ours instead.
    for name in ("rq", "rq.worker", "rq.scheduler", "rq.job", "rq.queue"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    worker_logger = logging.getLogger("rq.worker")
    if not any(isinstance(f, RqPerJobLinesToDebug) for f in worker_logger.filters):
        worker_logger.addFilter(RqPerJobLinesToDebug())
