"""schemathesis hooks for ``st run`` in this checkout (``schemathesis.toml`` names this file).

One hook, for the one answer of the contract that an OpenAPI document cannot describe to a
fuzzer: an ``Idempotency-Key`` used again with a different body is ``422`` (CONTRACT.md, and the
IETF Idempotency-Key draft). schemathesis draws header values independently of bodies, so within
one run it sends the same key (say ``"0"``) with two different valid bodies, and its
``positive_data_acceptance`` check would call the second answer a valid request rejected.

The hook drops exactly that failure: a ``POST /jobs`` that sent an ``Idempotency-Key`` and got
the contract's key-reuse problem (title "Idempotency Key Reused", ``errors`` naming the header).
The API checks the key only after the body validated, so this never hides a valid body refused
with the ordinary "Validation Failed" 422.

A cron expression that matches the document's pattern field by field but names no real date
(``0 0 31 2 *``) is refused as "never fires": also dropped, for that message only.

And one more of the same kind, on a server with callbacks on (``WEBHOOK_SECRET`` set): a
``callback_url`` of the document's form whose host does not resolve, or resolves to a private
address, is refused (422) by a DNS look-up at submission, which no schema can describe. Only
that refusal is dropped (``errors`` is exactly one ``callback_url`` error starting "host ").
Fuzz a stack with callbacks off (``WEBHOOK_SECRET=``, as the test does): with them on, each
accepted callback makes a worker POST to whatever public address the fuzzer made up.
"""

from __future__ import annotations

import json

import schemathesis

KEY_REUSED = [{"field": "Idempotency-Key", "message": "already used with a different body"}]


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:  # noqa: ANN001 - schemathesis' hook signature
    """Keep every failure except the two state-dependent 422s of POST /jobs above."""
    if getattr(failure, "code", None) != "ST202" or response.status_code != 422:
        return True
    if case.method.upper() not in ("POST", "PATCH") or case.path not in ("/jobs", "/schedules", "/schedules/{schedule_id}"):
        return True
    try:
        body = json.loads(response.content)
    except ValueError:
        return True
    if not isinstance(body, dict):
        return True
    errors = body.get("errors")
    if body.get("title") == "Idempotency Key Reused" and errors == KEY_REUSED:
        return False
    host_refused = (
        isinstance(errors, list)
        and len(errors) == 1
        and errors[0].get("field") == "callback_url"
        and str(errors[0].get("message", "")).startswith("host ")
    )
    if host_refused:
        return False
    # A cron expression of the declared form that names no real date (``0 0 31 2 *``): the
    # document's pattern checks each field, not whether the days and months ever meet.
    return not (
        case.path in ("/schedules", "/schedules/{schedule_id}")
        and isinstance(errors, list)
        and len(errors) == 1
        and errors[0].get("field") == "cron"
        and errors[0].get("message") == "never fires (no such date)"
    )
