"""The ``/schedules`` operations of the document (routes in :mod:`app.web.schedules`), their
schemas (from :mod:`app.jobs.schedule_schemas`), headers and problem answers.

:func:`add_schedules` puts all of it into a built document, so the builder needs one line.
"""

from __future__ import annotations

import copy
from typing import Any

from ...jobs import schedule_schemas
from .components import PROBLEM_JSON, example_jobs, header, page_parameters, ref

_TAG = {
    "name": "schedules",
    "description": "Periodic jobs: a job submission run on a cron expression (UTC) or every N seconds, "
    "once per tick however many workers run.",
}

_LINKS = {
    "GetSchedule": {"operationId": "getSchedule", "parameters": {"schedule_id": "$response.body#/id"}},
    "UpdateSchedule": {"operationId": "updateSchedule", "parameters": {"schedule_id": "$response.body#/id"}},
    "DeleteSchedule": {"operationId": "deleteSchedule", "parameters": {"schedule_id": "$response.body#/id"}},
}

_HEADERS = {
    "ScheduleLocation": header("The schedule's URL.", pattern="^/schedules/[0-9a-f]{32}$"),
    "AcceptPatch": header("The media types `PATCH` accepts (RFC 5789)."),
}

_PROBLEMS = {
    "ScheduleNotFound": ("No such schedule: unknown, deleted, malformed, or another client's.", {}),
    "ScheduleLimitReached": ("The service holds MAX_SCHEDULES schedules already; delete one first.", {}),
    "ScheduleUnsupportedMediaType": ("Send `application/json`.", {"Accept-Post": ref("AcceptPost", "headers")}),
    "PatchUnsupportedMediaType": (
        "Send `application/json` (or `application/merge-patch+json`).",
        {"Accept-Patch": ref("AcceptPatch", "headers")},
    ),
}


def add_schedules(builder: Any, document: dict[str, Any]) -> None:
    """Add the /schedules operations, with what they refer to, to ``document``."""
    components = document["components"]
    schemas = builder.components
    resource_ref = schemas.model(schedule_schemas.ScheduleResource, "serialization")
    list_ref = schemas.model(schedule_schemas.ScheduleList, "serialization")
    request_ref = schemas.model(schedule_schemas.ScheduleRequest, "validation")
    patch_ref = schemas.model(schedule_schemas.SchedulePatch, "validation")
    _tune(schemas.schemas, builder.settings)
    components["schemas"] = dict(sorted({**components["schemas"], **schemas.schemas}.items()))
    components["headers"].update(copy.deepcopy(_HEADERS))
    components["parameters"]["ScheduleId"] = {
        "name": "schedule_id",
        "in": "path",
        "required": True,
        "description": "The schedule's id. An unknown, deleted or malformed id (or another client's) is 404.",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
    }
    components["responses"].update(
        {
            name: {
                "description": description,
                "headers": {**headers, "X-Request-ID": ref("RequestId", "headers")},
                "content": {PROBLEM_JSON: {"schema": ref("Problem")}},
            }
            for name, (description, headers) in _PROBLEMS.items()
        }
    )
    document["tags"].append(_TAG)
    ops = _Operations(builder, resource_ref)
    document["paths"]["/schedules"] = {"post": ops.create(request_ref), "get": ops.list(list_ref)}
    document["paths"]["/schedules/{schedule_id}"] = {
        "parameters": [ref("ScheduleId", "parameters")],
        "get": ops.get(),
        "patch": ops.update(patch_ref),
        "delete": ops.delete(),
    }


def _tune(schemas: dict[str, Any], settings: Any) -> None:
    """The schedule's ``job`` is a job request; ``every_seconds`` has this server's minimum."""
    request = schemas["ScheduleRequest"]["properties"]
    request["job"] = {
        **ref("JobRequest"),
        "description": request["job"]["description"],
        # The server refuses these keys in a schedule's job (the schedule says when it runs).
        "not": {"anyOf": [{"required": [name]} for name in schedule_schemas.TIMING_FIELDS]},
    }
    for name in ("ScheduleRequest", "SchedulePatch"):
        # The form check_cron takes (in the document only, so the server's 422 says what is wrong).
        cron = schemas[name]["properties"]["cron"]
        for branch in cron.get("anyOf", [cron]):
            if branch.get("type") == "string":
                branch["pattern"] = schedule_schemas.CRON_PATTERN
        every = schemas[name]["properties"]["every_seconds"]
        for branch in every.get("anyOf", [every]):
            if branch.get("type") == "integer":
                branch.update(minimum=settings.min_schedule_seconds, maximum=schedule_schemas.MAX_EVERY_SECONDS)


class _Operations:
    def __init__(self, builder: Any, resource_ref: dict[str, str]) -> None:
        self.builder = builder
        self.resource_ref = resource_ref

    def _operation(self, operation: dict[str, Any]) -> dict[str, Any]:
        operation["tags"] = ["schedules"]
        operation["parameters"] = [*operation.get("parameters", []), ref("RequestId", "parameters")]
        operation["responses"]["429"] = ref("TooManyRequests", "responses")
        return self.builder._operation(operation)  # auth and 503, as every /jobs operation

    def _resource(self, description: str, **headers: dict) -> dict[str, Any]:
        return {
            "description": description,
            "headers": {**headers, "X-Request-ID": ref("RequestId", "headers")},
            "content": {"application/json": {"schema": self.resource_ref}},
        }

    def create(self, request_ref: dict[str, str]) -> dict[str, Any]:
        created = self._resource(
            "Created. Its first tick is the cadence's first after now.", Location=ref("ScheduleLocation", "headers")
        )
        return self._operation(
            {
                "operationId": "createSchedule",
                "summary": "Create a schedule",
                "description": "Run a job on a cron expression (UTC) or every N seconds. The job is validated as "
                "`POST /jobs` validates it; the jobs it starts carry `schedule_id` and belong to the caller. Each "
                "tick starts one job, however many workers run; after an outage longer than a period, the missed "
                "tick runs once and the schedule goes on at the next future tick.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": request_ref,
                            "examples": _schedule_examples(self.builder.settings),
                        }
                    },
                },
                "responses": {
                    "201": {**created, "links": _LINKS},
                    "400": ref("BadRequest", "responses"),
                    "409": ref("ScheduleLimitReached", "responses"),
                    "413": ref("ContentTooLarge", "responses"),
                    "415": ref("ScheduleUnsupportedMediaType", "responses"),
                    "422": ref("ValidationFailed", "responses"),
                },
            }
        )

    def list(self, list_ref: dict[str, str]) -> dict[str, Any]:
        return self._operation(
            {
                "operationId": "listSchedules",
                "summary": "List schedules",
                "description": "Schedules newest first (a client key sees its own). Follow `next` to page on.",
                "parameters": page_parameters("Where the previous page ended (take it from that page's `next`)."),
                "responses": {
                    "200": {
                        "description": "A page of schedules.",
                        "headers": {"X-Request-ID": ref("RequestId", "headers")},
                        "content": {"application/json": {"schema": list_ref}},
                    },
                    "422": ref("ValidationFailed", "responses"),
                },
            }
        )

    def get(self) -> dict[str, Any]:
        return self._operation(
            {
                "operationId": "getSchedule",
                "summary": "Get a schedule",
                "description": "The schedule, with its next tick and the job its last tick started.",
                "responses": {"200": self._resource("The schedule."), "404": ref("ScheduleNotFound", "responses")},
            }
        )

    def update(self, patch_ref: dict[str, str]) -> dict[str, Any]:
        return self._operation(
            {
                "operationId": "updateSchedule",
                "summary": "Change a schedule",
                "description": "Enable or disable it, rename it, or give it a new cadence (`cron` or `every_seconds`, "
                "which makes it that kind of schedule). A new cadence, or enabling a disabled schedule, starts "
                "the cadence afresh from now: no tick is run for the time it was disabled.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": patch_ref,
                            "examples": {
                                "disable": {"summary": "Pause it", "value": {"enabled": False}},
                                "cadence": {"summary": "Every five minutes", "value": {"cron": "*/5 * * * *"}},
                            },
                        },
                        "application/merge-patch+json": {"schema": patch_ref},
                    },
                },
                "responses": {
                    "200": self._resource("The schedule as it is now."),
                    "400": ref("BadRequest", "responses"),
                    "404": ref("ScheduleNotFound", "responses"),
                    "413": ref("ContentTooLarge", "responses"),
                    "415": ref("PatchUnsupportedMediaType", "responses"),
                    "422": ref("ValidationFailed", "responses"),
                },
            }
        )

    def delete(self) -> dict[str, Any]:
        return self._operation(
            {
                "operationId": "deleteSchedule",
                "summary": "Delete a schedule",
                "description": "It starts no more jobs; the jobs it started already are left alone.",
                "responses": {
                    "204": {"description": "Deleted.", "headers": {"X-Request-ID": ref("RequestId", "headers")}},
                    "404": ref("ScheduleNotFound", "responses"),
                },
            }
        )


def _schedule_examples(settings: Any) -> dict[str, Any]:
    """From the tasks' own examples: one every minute, one by cron."""
    jobs = example_jobs(settings)
    examples = {"every_minute": {"summary": "A job every 60 seconds", "value": {"job": jobs[0], "every_seconds": 60}}}
    if len(jobs) > 1:
        examples["cron"] = {
            "summary": "A job at 07:00 UTC on weekdays",
            "value": {"name": "daily report", "cron": "0 7 * * MON-FRI", "job": jobs[1]},
        }
    return examples
