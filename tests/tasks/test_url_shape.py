"""The one shape of a URL offload sends to (``webhook.URL_PATTERN``): what the document states is
what the server checks, and what it lets through is a URL the sender can connect to.

Property-based (hypothesis): arbitrary text, every port number, and IPv6 literals both real and
made of the characters one is written with, checked against :mod:`urllib.parse` and
:mod:`ipaddress`, the parsers the sender uses (issue 25, item 2: the document and the server agree)."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st

from app.jobs import schemas
from app.jobs.contract.batch_schemas import BatchRequest
from app.tasks import http_request, webhook

URL = re.compile(webhook.URL_PATTERN)


@settings(max_examples=400)
@given(st.text(max_size=60) | st.from_regex(webhook.URL_PATTERN, fullmatch=True))
def test_a_url_of_the_shape_is_one_the_sender_parses(url: str) -> None:
    problem = webhook.shape_problem(url)
    assert (problem is None) == bool(URL.fullmatch(url))
    if problem is not None:
        assert problem.startswith("must ")
        return
    parts = urlsplit(url)
    assert parts.scheme in ("http", "https")
    assert parts.hostname
    assert parts.port is None or 1 <= parts.port <= 65535
    assert parts.username is None and parts.password is None
    assert "#" not in url
    if parts.netloc.startswith("["):
        ipaddress.IPv6Address(parts.hostname)  # raises for anything that is not one


@given(st.integers(min_value=0, max_value=10**6))
def test_every_port_from_1_to_65535_and_no_other(port: int) -> None:
    assert (webhook.shape_problem(f"http://h.example:{port}/x") is None) == (1 <= port <= 65535)


@given(st.ip_addresses(v=6))
def test_every_ipv6_address_is_taken_written_either_way(address: ipaddress.IPv6Address) -> None:
    assert webhook.shape_problem(f"https://[{address.compressed}]/") is None
    assert webhook.shape_problem(f"https://[{address.exploded}]:443/") is None


@settings(max_examples=1000)
@given(st.text(alphabet="0123456789abcdefABCDEF:.", min_size=1, max_size=45))
def test_a_bracketed_host_is_taken_exactly_when_it_is_an_ipv6_address(text: str) -> None:
    try:
        ipaddress.IPv6Address(text)
        valid = True
    except ValueError:
        valid = False
    assert (webhook.shape_problem(f"http://[{text}]/") is None) == valid


def test_each_refusal_names_its_cause() -> None:
    assert "credentials" in webhook.shape_problem("http://user:pw@h.example/")
    assert "fragment" in webhook.shape_problem("http://h.example/#top")
    assert "printable ASCII" in webhook.shape_problem("http://h.example/a b")
    assert "port from 1 to 65535" in webhook.shape_problem("http://[::1")  # the fuzzer's 500 of issue 25
    assert "port from 1 to 65535" in webhook.shape_problem("ftp://h.example/")


def test_the_document_states_the_pattern_the_server_checks() -> None:
    def pattern_of(model: type, field: str) -> str:
        schema = model.model_json_schema()["properties"][field]
        options = schema.get("anyOf", [schema])
        return next(option["pattern"] for option in options if option.get("type") == "string")

    assert pattern_of(http_request.HttpRequestArgs, "url") == webhook.URL_PATTERN
    assert pattern_of(schemas.JobOptions, "callback_url") == webhook.URL_PATTERN
    assert pattern_of(BatchRequest, "callback_url") == webhook.URL_PATTERN
