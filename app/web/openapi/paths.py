"""The document's operations: one method per route, each naming its responses and headers."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from ...jobs import schemas
from .components import _JOB_LINKS, page_parameters, ref, request_examples, type_names


class PathsMixin:
    """The /jobs and health operations of :class:`~app.web.openapi.document._Builder`."""

    def _operation(self, operation: dict[str, Any]) -> dict[str, Any]:
        """Add what every /jobs operation has: auth, 503 when Redis is away."""
        responses = operation["responses"]
        if self.auth:
            operation["security"] = [{"bearerAuth": []}]
            responses["401"] = ref("Unauthorized", "responses")
        responses["503"] = ref("ServiceUnavailable", "responses")
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _submit(self, request_ref: dict, form_ref: dict, job_ref: dict, encoding: dict) -> dict[str, Any]:
        return self._operation(
            {
                "tags": ["jobs"],
                "operationId": "submitJob",
                "summary": "Submit a job",
                "description": "Queue a job (or schedule it, with `delay_seconds` or `run_at`). The answer is the job "
                "resource; poll its `Location` (or `GET` it with `?wait=`) until it is terminal.",
                "parameters": [
                    ref("IdempotencyKey", "parameters"),
                    ref("RequestId", "parameters"),
                    ref("TraceParent", "parameters"),
                    ref("TraceState", "parameters"),
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": request_ref, "examples": request_examples(self.settings)},
                        "multipart/form-data": {"schema": form_ref, "encoding": encoding},
                    },
                },
                "responses": {
                    "202": {
                        "description": "Accepted: the job is queued or scheduled. With an `Idempotency-Key` that "
                        "was seen before with the same body, this is the first answer again (same job).",
                        "headers": {
                            "Location": ref("Location", "headers"),
                            "Operation-Location": ref("OperationLocation", "headers"),
                            "Retry-After": ref("RetryAfter", "headers"),
                            "Idempotent-Replayed": ref("IdempotentReplayed", "headers"),
                            "traceparent": ref("TraceParent", "headers"),
                            "X-Request-ID": ref("RequestId", "headers"),
                        },
                        "content": {"application/json": {"schema": job_ref}},
                        "links": _JOB_LINKS,
                    },
                    "400": ref("BadRequest", "responses"),
                    "409": ref("IdempotencyInFlight", "responses"),
                    "413": ref("ContentTooLarge", "responses"),
                    "415": ref("UnsupportedMediaType", "responses"),
                    "422": ref("ValidationFailed", "responses"),
                    "429": ref("TooManyRequests", "responses"),
                },
            }
        )

    def _list(self, list_ref: dict) -> dict[str, Any]:
        return self._operation(
            {
                "tags": ["jobs"],
                "operationId": "listJobs",
                "summary": "List jobs",
                "description": "Jobs newest first (a client key sees its own). Follow `next` to page on.",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "description": "Only jobs in this status.",
                        "schema": TypeAdapter(schemas.JobStatusName).json_schema(),
                    },
                    {
                        "name": "type",
                        "in": "query",
                        "description": "Only jobs of this type.",
                        "schema": {"type": "string"},
                        "examples": {name: {"value": name} for name in type_names(self.settings)},
                    },
                    {
                        "name": "queue",
                        "in": "query",
                        "description": "Only jobs on this queue.",
                        "schema": TypeAdapter(schemas.QueueName).json_schema(),
                    },
                    *page_parameters(
                        "Where the previous page ended (take it from that page's `next`): the "
                        "position `<created, as Unix seconds>:<job id>`; the page starts after it."
                    ),
                    ref("RequestId", "parameters"),
                ],
                "responses": {
                    "200": {
                        "description": "A page of jobs.",
                        "headers": {"X-Request-ID": ref("RequestId", "headers")},
                        "content": {"application/json": {"schema": list_ref}},
                    },
                    "422": ref("ValidationFailed", "responses"),
                },
            }
        )

    def _get(self, job_ref: dict) -> dict[str, Any]:
        limit = self.settings.max_wait_seconds
        return self._operation(
            {
                "tags": ["jobs"],
                "operationId": "getJob",
                "summary": "Get a job",
                "description": "The job resource. With `?wait=N` the answer is held until the job is terminal or "
                "N seconds have passed, whichever comes first.",
                "parameters": [
                    {
                        "name": "wait",
                        "in": "query",
                        "description": f"Seconds to wait for the job to end (at most {limit}).",
                        "schema": {"type": "number", "minimum": 0, "maximum": limit},
                    },
                    ref("RequestId", "parameters"),
                ],
                "responses": {
                    "200": {
                        "description": "The job. `Retry-After` is there while the job is not terminal.",
                        "headers": {
                            "Retry-After": ref("RetryAfterWhilePending", "headers"),
                            "X-Request-ID": ref("RequestId", "headers"),
                        },
                        "content": {"application/json": {"schema": job_ref}},
                    },
                    "404": ref("NotFound", "responses"),
                    "405": ref("NotAJob", "responses"),
                    "422": ref("ValidationFailed", "responses"),
                },
            }
        )

    def _cancel(self, job_ref: dict) -> dict[str, Any]:
        return self._operation(
            {
                "tags": ["jobs"],
                "operationId": "cancelJob",
                "summary": "Cancel a job",
                "description": "A queued or scheduled job is canceled before it runs; a running job is stopped "
                "(status `stopped` once the worker has stopped it).",
                "parameters": [ref("RequestId", "parameters")],
                "responses": {
                    "202": {
                        "description": "Canceled, or asked to stop.",
                        "headers": {
                            "Location": ref("Location", "headers"),
                            "Operation-Location": ref("OperationLocation", "headers"),
                            "Retry-After": ref("RetryAfterWhilePending", "headers"),
                            "X-Request-ID": ref("RequestId", "headers"),
                        },
                        "content": {"application/json": {"schema": job_ref}},
                    },
                    "404": ref("NotFound", "responses"),
                    "409": ref("StateConflict", "responses"),
                },
            }
        )

    def _retry(self, job_ref: dict) -> dict[str, Any]:
        return self._operation(
            {
                "tags": ["jobs"],
                "operationId": "retryJob",
                "summary": "Retry a job",
                "description": "Put a failed, stopped or canceled job back on its queue.",
                "parameters": [ref("RequestId", "parameters")],
                "responses": {
                    "202": {
                        "description": "Queued again.",
                        "headers": {
                            "Location": ref("Location", "headers"),
                            "Operation-Location": ref("OperationLocation", "headers"),
                            "Retry-After": ref("RetryAfter", "headers"),
                            "X-Request-ID": ref("RequestId", "headers"),
                        },
                        "content": {"application/json": {"schema": job_ref}},
                    },
                    "404": ref("NotFound", "responses"),
                    "409": ref("StateConflict", "responses"),
                },
            }
        )

    def _healthz(self, health_ref: dict) -> dict[str, Any]:
        return {
            "tags": ["health"],
            "operationId": "healthz",
            "summary": "Liveness",
            "description": "The process is alive. Says nothing about Redis (that is `/readyz`). Needs no key.",
            "responses": {
                "200": {
                    "description": "Alive.",
                    "headers": {"X-Request-ID": ref("RequestId", "headers")},
                    "content": {"application/json": {"schema": health_ref}},
                }
            },
        }

    def _readyz(self, ready_ref: dict) -> dict[str, Any]:
        return {
            "tags": ["health"],
            "operationId": "readyz",
            "summary": "Readiness",
            "description": "Redis answers. Needs no key.",
            "responses": {
                "200": {
                    "description": "Ready.",
                    "headers": {"X-Request-ID": ref("RequestId", "headers")},
                    "content": {"application/json": {"schema": ready_ref}},
                },
                "503": ref("ServiceUnavailable", "responses"),
            },
        }

    # -- reusable parts --
