"""W3C Trace Context parsing and making (app/tracing.py): the spec's valid and invalid forms."""

from __future__ import annotations

import re

import pytest

from app import tracing

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
HEADER = f"00-{TRACE}-{SPAN}-01"


def test_a_valid_version_00_header_names_its_trace_span_and_sampling():
    assert tracing.parse_traceparent(HEADER) == tracing.SpanContext(TRACE, SPAN, sampled=True)
    assert tracing.parse_traceparent(f"00-{TRACE}-{SPAN}-00").sampled is False
    # Flags other than "sampled" are not ours to interpret; the sampled bit is read alone.
    assert tracing.parse_traceparent(f"00-{TRACE}-{SPAN}-03").sampled is True
    assert tracing.parse_traceparent(f"00-{TRACE}-{SPAN}-02").sampled is False


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"00-{TRACE}-{SPAN}",  # no flags
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE}-{SPAN}-1",
        f"00-{TRACE.upper()}-{SPAN}-01",  # lowercase hex only
        f"00-{TRACE}-{SPAN.upper()}-01",
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE}-{SPAN}-01",  # version ff is invalid
        f"0-{TRACE}-{SPAN}-01",
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"00-{TRACE}x-{SPAN}-01",
        f"00_{TRACE}_{SPAN}_01",
        f"zz-{TRACE}-{SPAN}-01",
        f"01-{TRACE}-{SPAN}-01x",  # a later version may add fields, but only after a dash
        f"{HEADER},{HEADER}",  # two headers joined by the server
    ],
)
def test_an_invalid_header_is_none(header):
    assert tracing.parse_traceparent(header) is None


def test_a_later_version_is_read_for_its_four_fields():
    assert tracing.parse_traceparent(f"01-{TRACE}-{SPAN}-01") == tracing.SpanContext(TRACE, SPAN)
    assert tracing.parse_traceparent(f"cc-{TRACE}-{SPAN}-01-what-the-future-adds") == tracing.SpanContext(TRACE, SPAN)


def test_made_ids_are_lowercase_hex_of_the_right_length_never_zero_and_differ():
    traces = {tracing.new_trace_id() for _ in range(200)}
    spans = {tracing.new_span_id() for _ in range(200)}
    assert len(traces) == 200 and len(spans) == 200
    assert all(re.fullmatch("[0-9a-f]{32}", value) and value != "0" * 32 for value in traces)
    assert all(re.fullmatch("[0-9a-f]{16}", value) and value != "0" * 16 for value in spans)


def test_a_span_writes_a_header_that_parses_back_to_it():
    span = tracing.new_root()
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", span.traceparent())
    assert tracing.parse_traceparent(span.traceparent()) == span
    unsampled = tracing.SpanContext(TRACE, SPAN, sampled=False)
    assert unsampled.traceparent() == f"00-{TRACE}-{SPAN}-00"


def test_a_child_is_a_new_span_of_the_same_trace_with_the_same_sampling_and_state():
    parent = tracing.SpanContext(TRACE, SPAN, sampled=False, tracestate="congo=t61rcWkgMzE")
    child = parent.child()
    assert child.trace_id == TRACE and child.span_id != SPAN
    assert child.sampled is False and child.tracestate == "congo=t61rcWkgMzE"
    assert child.headers() == {"traceparent": f"00-{TRACE}-{child.span_id}-00", "tracestate": "congo=t61rcWkgMzE"}
    assert tracing.new_root().headers().keys() == {"traceparent"}


def test_continuing_a_valid_header_keeps_the_trace_under_a_new_span():
    parent, span = tracing.continue_trace([HEADER], ["rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"])
    assert parent == tracing.SpanContext(TRACE, SPAN)
    assert span.trace_id == TRACE and span.span_id not in (SPAN, "0" * 16)
    assert span.tracestate == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"


@pytest.mark.parametrize("headers", [[], ["bogus"], [HEADER, HEADER], [f"00-{'0' * 32}-{SPAN}-01"]])
def test_continuing_no_valid_header_starts_a_new_sampled_trace_and_drops_tracestate(headers):
    parent, span = tracing.continue_trace(headers, ["rojo=1"])
    assert parent is None
    assert span.trace_id != TRACE and span.sampled and span.tracestate is None


def test_an_unsampled_caller_is_followed():
    _, span = tracing.continue_trace([f"00-{TRACE}-{SPAN}-00"], [])
    assert span.sampled is False


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["a=1"], "a=1"),
        (["a=1,b=2", "c=3"], "a=1,b=2,c=3"),  # several headers are one list
        ([" a=1 ,\tb=2 ", ""], "a=1,b=2"),
        (["tenant@vendor=x"], "tenant@vendor=x"),
        (["a=1,,b=2"], "a=1,b=2"),  # empty members are allowed and dropped
        ([""], None),
        (["A=1"], None),  # keys are lowercase
        (["a"], None),
        (["a=1,a=2"], None),  # duplicate keys
        (["a=with space at end "], "a=with space at end"),
        (["a=x=y"], None),  # '=' is not allowed in a value
        ([",".join(f"k{i}=v" for i in range(33))], None),  # over 32 members
    ],
)
def test_tracestate_is_kept_when_well_formed_and_dropped_whole_when_not(values, expected):
    assert tracing.parse_tracestate(values) == expected


def test_a_long_tracestate_loses_members_from_its_end_to_fit_512_characters():
    members = [f"k{i}={'v' * 40}" for i in range(20)]  # 20 x 44 characters
    kept = tracing.parse_tracestate([",".join(members)])
    assert len(kept) <= 512 and kept == ",".join(members[: len(kept.split(","))])
    assert kept.split(",")[0] == members[0]


def test_the_meta_of_a_job_round_trips_to_its_parent_and_a_new_attempt_span():
    span = tracing.SpanContext(TRACE, SPAN, tracestate="a=1")
    meta = tracing.to_meta(span)
    assert meta == {"trace_id": TRACE, "parent_id": SPAN, "sampled": True, "tracestate": "a=1"}
    parent, attempt = tracing.from_meta(meta)
    assert parent == span
    assert attempt.trace_id == TRACE and attempt.span_id != SPAN and attempt.tracestate == "a=1"
    _, again = tracing.from_meta(meta)
    assert again.span_id != attempt.span_id  # each attempt is a span of its own


def test_a_root_meta_has_no_parent():
    meta = tracing.to_meta(tracing.SpanContext(TRACE, SPAN), root=True)
    assert meta["parent_id"] is None
    parent, attempt = tracing.from_meta(meta)
    assert parent is None and attempt.trace_id == TRACE


@pytest.mark.parametrize("meta", [None, "x", {}, {"trace_id": 5}, {"trace_id": "short"}])
def test_no_valid_meta_is_none(meta):
    assert tracing.from_meta(meta) is None
