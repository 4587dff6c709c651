"""The document's batch operations: ``POST /jobs/batch`` and ``GET /batches/{batch_id}``."""

from __future__ import annotations

import copy
from typing import Any

from ...jobs import batch_schemas
from .components import PROBLEM_JSON, example_jobs, header, ref

_BATCH_URL = "^/batches/[A-Za-z0-9_-]+$"
_BATCH_HEADERS = {
    "BatchLocation": header("The batch's URL.", pattern=_BATCH_URL),
    "BatchOperationLocation": header(
        "The batch's URL again, as Azure's long-running-operation convention names it: poll it until `done`.",
        pattern=_BATCH_URL,
    ),
}

class BatchPathsMixin:
    """The batch operations of :class:`~app.web.openapi.document._Builder`."""

    def _batch_paths(self, request_ref: dict) -> dict[str, Any]:
        """Add the batch schemas to the components; return the batch paths."""
        components = self.components
        request_schema = batch_schemas.BatchRequest.model_json_schema(mode="validation")
        request_schema["properties"]["jobs"]["items"] = request_ref
        request_schema["properties"]["jobs"]["maxItems"] = self.settings.max_batch_jobs
        self._callback_url(request_schema["properties"])  # as a job's: none at all without WEBHOOK_SECRET
        batch_request_ref = components.add("BatchRequest", request_schema)
        answer_ref = components.model(batch_schemas.BatchAnswer, "serialization")
        resource_ref = components.model(batch_schemas.BatchResource, "serialization")
        return {
            "/jobs/batch": {"post": self._submit_batch(batch_request_ref, answer_ref)},
            "/batches/{batch_id}": {
                "parameters": [
                    {
                        "name": "batch_id",
                        "in": "path",
                        "required": True,
                        "description": "The batch's id. An unknown, expired or malformed id (or another client's) is 404.",
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
                    }
                ],
                "get": self._get_batch(resource_ref),
            },
        }

    def _add_batch_components(self, document: dict[str, Any]) -> None:
        document["components"]["headers"].update(copy.deepcopy(_BATCH_HEADERS))
        document["tags"].append(
            {"name": "batches", "description": "Many jobs in one request and one transaction, counted together."}
        )

    def _submit_batch(self, request_ref: dict, answer_ref: dict) -> dict[str, Any]:
        limit = self.settings.max_batch_jobs
        return self._operation(
            {
                "tags": ["batches"],
                "operationId": "submitBatch",
                "summary": "Submit a batch of jobs",
                "description": f"Up to {limit} jobs, each as `POST /jobs` takes it, written in ONE Redis transaction "
                "with the batch's record. Each item is validated alone: the answer has a result for every item, in "
                "order, `202` with its job or `422` with its problem (no job was made for it). An item may wait for an "
                "earlier one (`depends_on: [\"$0\"]`). With a `callback_url`, the batch resource is POSTed there "
                "once, when every job of the batch has ended (event `batch.done`, signed as job callbacks are).\n\n"
                "Nothing at all is enqueued when no item is valid (`422`, with `errors` naming `jobs.<index>.<field>`), "
                "when a queue would go over its depth limit (`503`), or when the body is larger than the server "
                "accepts (`413`; the same limit as `POST /jobs`).",
                "parameters": [
                    ref("IdempotencyKey", "parameters"),
                    ref("RequestId", "parameters"),
                    ref("TraceParent", "parameters"),
                    ref("TraceState", "parameters"),
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": request_ref, "examples": self._batch_examples()}},
                },
                "responses": {
                    "202": {
                        "description": "Accepted: the valid items are queued (or scheduled, or deferred) as one batch. "
                        "With an `Idempotency-Key` seen before with the same body, this is the first answer again.",
                        "headers": {
                            "Location": ref("BatchLocation", "headers"),
                            "Operation-Location": ref("BatchOperationLocation", "headers"),
                            "Retry-After": ref("RetryAfterWhilePending", "headers"),
                            "Idempotent-Replayed": ref("IdempotentReplayed", "headers"),
                            "traceparent": ref("TraceParent", "headers"),
                            "X-Request-ID": ref("RequestId", "headers"),
                        },
                        "content": {"application/json": {"schema": answer_ref}},
                        "links": {"GetBatch": {"operationId": "getBatch", "parameters": {"batch_id": "$response.body#/batch/id"}}},
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

    def _batch_examples(self) -> dict[str, Any]:
        """From the tasks' own examples: several jobs at once, and one that waits for another."""
        jobs = example_jobs(self.settings)
        many = {"jobs": jobs[:3], "metadata": {"import": 42}}
        summary = "Jobs of several types at once, with your own metadata"
        if self.settings.webhook_secret is not None:  # else this server takes no callback_url (see _callback_url)
            many["callback_url"] = "https://example.com/hooks/offload"
            summary += ", and a callback when all have ended"
        examples = {"many": {"summary": summary, "value": many}}
        if len(jobs) > 1:
            examples["chain"] = {
                "summary": "A job that runs after an earlier item of the batch ($0)",
                "value": {"jobs": [jobs[0], {**jobs[1], "depends_on": ["$0"]}]},
            }
        return examples

    def _get_batch(self, resource_ref: dict) -> dict[str, Any]:
        return self._operation(
            {
                "tags": ["batches"],
                "operationId": "getBatch",
                "summary": "Get a batch",
                "description": "The batch resource: its jobs, and how many of them are in each status now. `done` "
                "once every job has ended.",
                "parameters": [ref("RequestId", "parameters")],
                "responses": {
                    "200": {
                        "description": "The batch. `Retry-After` is there while it is not done.",
                        "headers": {
                            "Retry-After": ref("RetryAfterWhilePending", "headers"),
                            "X-Request-ID": ref("RequestId", "headers"),
                        },
                        "content": {"application/json": {"schema": resource_ref}},
                    },
                    "404": {
                        "description": "No such batch: unknown, expired, malformed, or another client's.",
                        "headers": {"X-Request-ID": ref("RequestId", "headers")},
                        "content": {PROBLEM_JSON: {"schema": ref("Problem")}},
                    },
                },
            }
        )
