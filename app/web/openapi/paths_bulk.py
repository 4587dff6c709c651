"""``POST /jobs/bulk`` and the search parameters of ``GET /jobs`` in the document (routes in
:mod:`app.web.bulk` and :mod:`app.web.search`; schemas from :mod:`app.jobs.bulk_schemas`).

:func:`add_bulk` puts all of it into a built document, so the builder needs one line.
"""

from __future__ import annotations

from typing import Any

from ...jobs import bulk_schemas, schemas
from ..search import (
    ERROR_TYPE_PATTERN,
    ID_PREFIX_PATTERN,
    METADATA_KEY_PATTERN,
    METADATA_VALUE_MAX,
)
from .components import PROBLEM_JSON, REF_TEMPLATE, ref

_SEARCH_PARAMETERS = [
    {
        "name": "id_prefix",
        "in": "query",
        "description": "Only jobs whose id starts with this.",
        "schema": {"type": "string", "pattern": ID_PREFIX_PATTERN},
    },
    {
        "name": "metadata_key",
        "in": "query",
        "description": "With `metadata_value`: only jobs whose `metadata` has this key with that value. Alone: "
        "only jobs whose `metadata` has this key.",
        "schema": {"type": "string", "pattern": METADATA_KEY_PATTERN},
    },
    {
        "name": "metadata_value",
        "in": "query",
        "description": "With `metadata_key`: see there. Alone: only jobs with some `metadata` key of this value. "
        'A value that is not a string is compared as its compact JSON (`1234`, `true`, `{"a":1}`).',
        "schema": {"type": "string", "maxLength": METADATA_VALUE_MAX},
    },
    {
        "name": "error_type",
        "in": "query",
        "description": "Only jobs whose `error.type` is this (`RuntimeError`, `JobTimeout`, `WorkerDied`...).",
        "schema": {"type": "string", "pattern": ERROR_TYPE_PATTERN},
    },
]

_SEARCH_NOTE = (
    f" With a search parameter (`id_prefix`, `metadata_key`, `metadata_value`, `error_type`) the server walks "
    f"the job index newest first, {schemas.SEARCH_BATCH} entries a round trip, and one request looks at "
    f"{schemas.SEARCH_SCAN_BUDGET} entries at most: a page may then be short, even empty, and still have a `next` "
    "to go on from."
)


def add_bulk(builder: Any, document: dict[str, Any]) -> None:
    """Add ``POST /jobs/bulk`` and the search parameters of ``GET /jobs`` to ``document``."""
    listing = document["paths"]["/jobs"]["get"]
    listing["parameters"][-1:-1] = _SEARCH_PARAMETERS  # before X-Request-ID
    listing["description"] += _SEARCH_NOTE

    models = builder.components
    request_ref = models.add(
        "BulkRequest", bulk_schemas.BulkRequest.json_schema(ref_template=REF_TEMPLATE, mode="validation")
    )
    result_ref = models.model(bulk_schemas.BulkResult, "serialization")
    components = document["components"]
    components["schemas"] = dict(sorted({**components["schemas"], **models.schemas}.items()))
    responses = {
        "200": {
            "description": "What this request did. Follow `next` (send the same body with `cursor`) for the rest.",
            "headers": {"X-Request-ID": ref("RequestId", "headers")},
            "content": {"application/json": {"schema": result_ref}},
        },
        "400": ref("BadRequest", "responses"),
        "413": ref("ContentTooLarge", "responses"),
        "415": ref("BulkUnsupportedMediaType", "responses"),
        "422": ref("ValidationFailed", "responses"),
        "429": ref("TooManyRequests", "responses"),
    }
    components["responses"]["BulkUnsupportedMediaType"] = _problem(
        "Send `application/json`.", {"Accept-Post": ref("AcceptPost", "headers")}
    )
    if builder.auth:
        components["responses"]["Forbidden"] = _problem(
            "The key is valid but not an admin key.", {"WWW-Authenticate": ref("WwwAuthenticate", "headers")}
        )
        responses["403"] = ref("Forbidden", "responses")
    operation = {
        "tags": ["jobs"],
        "operationId": "bulkJobs",
        "summary": "Retry, cancel or delete jobs by filter (admin)",
        "description": "Act on every job matching `filter`, newest first, in batches: `retry` puts failed (or "
        "stopped, canceled) jobs back on their queues, `cancel` cancels queued ones, `delete` deletes ended ones "
        f"(finished by default). One request acts on at most `limit` jobs (at most {bulk_schemas.MAX_LIMIT}) and "
        "looks at a bounded part of the job index; send the same body again with `cursor` set to the answer's `next` until "
        "`next` is null. Safe while workers run: each job is checked and changed atomically, so a job being run "
        "is never touched, none is queued twice and none is lost (those that changed meanwhile count as "
        "`skipped`). Needs an admin key.",
        "parameters": [ref("RequestId", "parameters")],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": request_ref,
                    "examples": {
                        "retry": {
                            "summary": "Retry every job that failed with a timeout on the default queue",
                            "value": {"action": "retry", "filter": {"queue": "default", "error_type": "JobTimeout"}},
                        },
                        "cancel": {
                            "summary": "Cancel the queued jobs of one import",
                            "value": {"action": "cancel", "filter": {"metadata": {"import": "2026-05"}}},
                        },
                        "delete": {
                            "summary": "Delete finished jobs created before a date, 10,000 a request",
                            "value": {
                                "action": "delete",
                                "filter": {"created_before": "2026-01-01T00:00:00Z"},
                                "limit": 10000,
                            },
                        },
                    },
                }
            },
        },
        "responses": responses,
    }
    document["paths"]["/jobs/bulk"] = {"post": builder._operation(operation)}  # auth and 503, as every /jobs operation


def _problem(description: str, headers: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {**headers, "X-Request-ID": ref("RequestId", "headers")},
        "content": {PROBLEM_JSON: {"schema": ref("Problem")}},
    }
