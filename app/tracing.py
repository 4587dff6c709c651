"""W3C Trace Context (``traceparent``, ``tracestate``): parsed, made and carried, with no dependency.

Every job belongs to a trace. ``POST /jobs`` continues the caller's trace when it sends a valid
``traceparent``, and starts a new one otherwise (an invalid header is ignored, as the W3C
recommendation says, never refused). The submission is a span of that trace; each attempt of the
job is a span whose parent is the submission; a callback delivery is a span under the attempt
that queued it, and its POST carries ``traceparent`` to the receiver.

:data:`current` is the span the process is working in (a request's submission, a worker's job
attempt); :mod:`app.logs` writes its ``trace_id`` and ``span_id`` into every log line, so a job's
lines can be found by the trace id a tracing UI shows. Nothing here exports anything: that is
:mod:`app.telemetry`'s job, and only when an OTLP endpoint is configured. This module is kept to
string work and ``os.urandom`` because ``POST /jobs`` pays for it on every request.
"""

from __future__ import annotations

import contextvars
import os
import re
from dataclasses import dataclass

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

_INVALID_TRACE_ID = "0" * 32
_INVALID_SPAN_ID = "0" * 16
#: version-traceid-parentid-flags, lowercase hex only (W3C Trace Context, section 3.2).
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
#: One tracestate list member: a key (simple, or tenant@system) and a value (section 3.3.1).
_TRACESTATE_MEMBER = re.compile(
    r"(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})"
    r"=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
)
#: What a tracestate may hold (section 3.3.1.1): 32 members; offload passes on at most 512 characters.
_TRACESTATE_MEMBERS = 32
_TRACESTATE_CHARS = 512
_SAMPLED = 0x01


@dataclass(frozen=True, slots=True)
class SpanContext:
    """One span of a trace: the ids a ``traceparent`` carries, and the ``tracestate`` with them."""

    trace_id: str
    span_id: str
    sampled: bool = True
    tracestate: str | None = None

    def traceparent(self) -> str:
        """This span as a version-00 ``traceparent`` header."""
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"

    def child(self) -> SpanContext:
        """A new span of the same trace (same sampling decision and tracestate)."""
        return SpanContext(self.trace_id, new_span_id(), self.sampled, self.tracestate)

    def headers(self) -> dict[str, str]:
        """``traceparent`` (and ``tracestate`` when there is one) naming this span as the parent."""
        found = {TRACEPARENT: self.traceparent()}
        if self.tracestate:
            found[TRACESTATE] = self.tracestate
        return found


#: The span this process is working in now (see the module's docstring).
current: contextvars.ContextVar[SpanContext | None] = contextvars.ContextVar("offload_span", default=None)


def new_trace_id() -> str:
    while True:  # an all-zero id is invalid; 2^-128 of the time, draw again
        value = os.urandom(16).hex()
        if value != _INVALID_TRACE_ID:
            return value


def new_span_id() -> str:
    while True:
        value = os.urandom(8).hex()
        if value != _INVALID_SPAN_ID:
            return value


def new_root() -> SpanContext:
    """The first span of a new trace (sampled)."""
    return SpanContext(new_trace_id(), new_span_id())


def parse_traceparent(value: str | None) -> SpanContext | None:
    """The span a ``traceparent`` header names, or None when it is missing or invalid.

    Version 00 must be exactly the four fields; a later version may add fields after a dash, which
    are ignored (section 3.2.4), and version ``ff`` is invalid. All-zero ids are invalid.
    """
    if not value:
        return None
    value = value.strip(" \t")
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, span_id, flags = match.groups()
    if version == "ff" or (version == "00" and len(value) != 55) or (len(value) > 55 and value[55] != "-"):
        return None
    if trace_id == _INVALID_TRACE_ID or span_id == _INVALID_SPAN_ID:
        return None
    return SpanContext(trace_id, span_id, bool(int(flags, 16) & _SAMPLED))


def parse_tracestate(values: list[str]) -> str | None:
    """The ``tracestate`` to pass on: the headers' members joined, or None when there are none or
    any is malformed (then the whole header is dropped, as section 3.3.1.4 allows). Members past
    the 512th character are dropped from the end (section 3.3.1.5)."""
    members = [member.strip(" \t") for value in values for member in value.split(",")]
    members = [member for member in members if member]
    if not members or len(members) > _TRACESTATE_MEMBERS:
        return None
    if not all(_TRACESTATE_MEMBER.fullmatch(member) for member in members):
        return None
    keys = [member.partition("=")[0] for member in members]
    if len(set(keys)) != len(keys):
        return None
    while members and len(",".join(members)) > _TRACESTATE_CHARS:
        members.pop()
    return ",".join(members) or None


def continue_trace(traceparents: list[str], tracestates: list[str]) -> tuple[SpanContext | None, SpanContext]:
    """The caller's span (None when it sent no valid ``traceparent``: more than one header is
    invalid too) and a new span of offload's under it: of the caller's trace, or of a new one."""
    parent = parse_traceparent(traceparents[0]) if len(traceparents) == 1 else None
    if parent is None:
        return None, new_root()
    state = parse_tracestate(tracestates) if tracestates else None
    return parent, SpanContext(parent.trace_id, new_span_id(), parent.sampled, state)


def to_meta(span: SpanContext, *, root: bool = False) -> dict:
    """``span`` as a job's meta ``trace``: the trace, and the span the job's attempts are children
    of (``parent_id``; None for a job that starts its own trace, as a schedule's tick does)."""
    meta: dict = {"trace_id": span.trace_id, "parent_id": None if root else span.span_id, "sampled": span.sampled}
    if span.tracestate:
        meta["tracestate"] = span.tracestate
    return meta


def from_meta(meta: object) -> tuple[SpanContext | None, SpanContext] | None:
    """From a job's meta ``trace``: its parent span (None for a root) and a new span for one
    attempt of the job under it; None when the job has no (valid) trace."""
    if not isinstance(meta, dict):
        return None
    trace_id, parent_id = meta.get("trace_id"), meta.get("parent_id")
    if not isinstance(trace_id, str) or len(trace_id) != 32:
        return None
    sampled, state = bool(meta.get("sampled", True)), meta.get("tracestate")
    parent = SpanContext(trace_id, parent_id, sampled, state) if isinstance(parent_id, str) else None
    return parent, SpanContext(trace_id, new_span_id(), sampled, state)
