"""``/tasks`` in the OpenAPI document: the job types this server takes (app/web/tasks.py)."""

from __future__ import annotations

from typing import Any

from ..tasks import TaskList
from .components import ref

_TAG = {"name": "tasks", "description": "The job types this server takes, each described from its registration."}


def add_tasks(builder: Any, document: dict[str, Any]) -> None:
    """Add ``GET /tasks`` and ``GET /tasks/{type}``, with their schemas, to ``document``."""
    list_ref = builder.components.model(TaskList, "serialization")
    info_ref = ref("TaskInfo")
    document["components"]["schemas"] = dict(sorted({**document["components"]["schemas"], **builder.components.schemas}.items()))
    document["components"]["parameters"]["TaskType"] = {
        "name": "type", "in": "path", "required": True, "description": "A task's `type`.",
        "schema": {"type": "string"},
    }  # fmt: skip
    document["components"]["responses"]["TaskNotFound"] = {
        "description": "No task of this type on this server.",
        "headers": {"X-Request-ID": ref("RequestId", "headers")},
        "content": {"application/problem+json": {"schema": ref("Problem")}},
    }
    document["tags"].append(_TAG)
    document["paths"]["/tasks"] = {"get": _operation(builder, "listTasks", "List the job types", list_ref)}
    document["paths"]["/tasks/{type}"] = {
        "parameters": [ref("TaskType", "parameters")],
        "get": _operation(builder, "getTask", "Get a job type", info_ref, found=True),
    }


def _operation(builder: Any, operation_id: str, summary: str, schema: dict, *, found: bool = False) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": "OK.",
            "headers": {"X-Request-ID": ref("RequestId", "headers")},
            "content": {"application/json": {"schema": schema}},
        },
        "429": ref("TooManyRequests", "responses"),
    }
    if found:
        responses["404"] = ref("TaskNotFound", "responses")
    return {  # public, as /openapi.json: no key needed (app/web/tasks.py)
            "tags": ["tasks"],
            "operationId": operation_id,
            "summary": summary,
            "description": "Each task's type, description, the JSON Schema of its fields, the defaults a submission "
            "gets and an example: what the page's forms and `offload submit TYPE` are built from.",
            "parameters": [ref("RequestId", "parameters")],
            "responses": dict(sorted(responses.items())),
        }
