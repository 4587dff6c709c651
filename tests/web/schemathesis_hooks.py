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

And two of batches and dependencies (``POST /jobs``, ``POST /jobs/batch``):

* ``depends_on`` names jobs by id (or, in a batch, an earlier item as ``$N``): an id of the
  document's form that names no job the caller may see, or one that will never finish, or a
  ``$N`` that is not an earlier valid item, is 422 by the contract (as a 404 for a missing job
  elsewhere), which no schema can say. Dropped when every error is such a ``depends_on`` error.
* A batch is validated item by item: a batch with some invalid items is accepted (202) with a
  422 result for each of those, by the contract. ``negative_data_rejection`` calls that a
  schema-violating request accepted; dropped when the 202 says it refused some items.
"""

from __future__ import annotations

import json
import re

import schemathesis

KEY_REUSED = [{"field": "Idempotency-Key", "message": "already used with a different body"}]


#: The contract's depends_on refusals (app/jobs/dependencies.py), by the start of their message.
DEPENDENCY_REFUSALS = (
    "no job with this id",
    "job ",  # "job <id> failed: it will never finish"
    "$N names an item of a batch",
    "may name an earlier item of the batch only",
    "item ",  # "item N of the batch is not valid, ..."
)
DEPENDENCY_FIELD = re.compile(r"^(jobs\.[0-9]+\.)?depends_on\.[0-9]+$")


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:  # noqa: ANN001 - schemathesis' hook signature
    """Keep every failure except the contract's answers above that no schema can describe."""
    code = getattr(failure, "code", None)
    paths = ("/jobs", "/jobs/batch", "/schedules", "/schedules/{schedule_id}")
    if case.method.upper() not in ("POST", "PATCH") or case.path not in paths:
        return True
    if code == "ST201" and case.path == "/jobs/batch" and response.status_code == 202:
        return not _refused_some_items(response)
    if code != "ST202" or response.status_code != 422:
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
    if isinstance(errors, list) and errors and all(_dependency_refusal(error) for error in errors):
        return False
    host_refused = (
        isinstance(errors, list)
        and len(errors) == 1
        and str(errors[0].get("field", "")).rsplit(".", 1)[-1] == "callback_url"
        and str(errors[0].get("message", "")).startswith("host ")
    )
    # A cron expression of the declared form that names no real date (``0 0 31 2 *``): the
    # document's pattern checks each field, not whether the days and months ever meet.
    never_fires = (
        case.path.startswith("/schedules")
        and isinstance(errors, list)
        and len(errors) == 1
        and errors[0].get("field") == "cron"
        and errors[0].get("message") == "never fires (no such date)"
    )
    return not (host_refused or never_fires)


def _dependency_refusal(error: dict) -> bool:
    return bool(DEPENDENCY_FIELD.match(str(error.get("field", "")))) and str(error.get("message", "")).startswith(
        DEPENDENCY_REFUSALS
    )


def _refused_some_items(response) -> bool:  # noqa: ANN001
    try:
        results = json.loads(response.content)["results"]
    except (ValueError, KeyError, TypeError):
        return False
    return any(isinstance(result, dict) and result.get("status") == 422 for result in results)
