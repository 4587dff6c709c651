"""Periodic schedules in Redis: create, look up, list, change and delete them.

A schedule is a job submission (validated as ``POST /jobs`` validates it) and a cadence: a cron
expression in UTC or ``every_seconds`` (:mod:`app.jobs.scheduling.cadence`). Each lives in a hash
(:func:`~app.jobs.keys.schedule_key`); two sorted sets index them: by creation time for
``GET /schedules`` (:data:`~app.jobs.keys.SCHEDULE_INDEX_KEY`), and the enabled ones by their
next tick (:data:`~app.jobs.keys.SCHEDULE_DUE_KEY`), which is what every worker's ticker polls
(:mod:`app.jobs.scheduling.ticker` runs the ticks).

Every change that touches the next tick is a WATCHed transaction on the schedule's hash, as a
tick's claim is: an edit and a claim that race cannot both win, so an edit never undoes a
claim (which would run the tick again) and a claim never undoes an edit. Times are the Redis
server's (``TIME``), the clock the tickers use too.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from uuid import uuid4

import redis

from ... import connections
from ...settings import Settings
from ..access import Principal
from ..engine import scripts
from ..errors import ScheduleLimitReached, ScheduleNotFound
from ..keys import SCHEDULE_DUE_KEY, SCHEDULE_INDEX_KEY, schedule_key
from .cadence import Cadence
from ..reading.listing import _decode_cursor, _encode_cursor  # the same opaque (score, id) cursors as GET /jobs
from ..contract.schedule_schemas import SchedulePatch, ScheduleRequest
from ..reading.resource import rfc3339

SCHEDULE_ID = re.compile(r"^[0-9a-f]{32}$")
#: Attempts at a WATCHed transaction before giving up (a RedisError: 503 to a client).
_ATTEMPTS = 20


def server_time(connection: redis.Redis) -> float:
    """The clock of the Redis server that holds the schedules, in Unix seconds (``server_time.lua``:
    a script with a key, not TIME, so that in a cluster it runs on the node of offload's slot)."""
    seconds, micros = scripts.register(connection, "server_time")(keys=[SCHEDULE_DUE_KEY])
    return int(seconds) + int(micros) / 1_000_000


def decode(raw: dict) -> dict[str, str]:
    return {key.decode(): value.decode() for key, value in raw.items()}


def cadence_of(fields: dict[str, str]) -> Cadence:
    every = fields.get("every_seconds")
    return Cadence(
        cron=fields.get("cron") or None,
        every_seconds=int(every) if every else None,
        anchor=int(fields.get("anchor") or 0),
    )


def describe(fields: dict[str, str]) -> dict:
    """The schedule resource (``ScheduleResource`` in :mod:`app.jobs.contract.schedule_schemas`)."""
    error = fields.get("last_error")
    return {
        "id": fields["id"],
        "name": fields.get("name") or None,
        "cron": fields.get("cron") or None,
        "every_seconds": int(fields["every_seconds"]) if fields.get("every_seconds") else None,
        "enabled": fields.get("enabled") == "1",
        "job": json.loads(fields["job"]),
        "created_at": _moment(fields.get("created_at")),
        "updated_at": _moment(fields.get("updated_at")),
        "next_run_at": _moment(fields.get("next_run_at")),
        "last_run_at": _moment(fields.get("last_run_at")),
        "last_job_id": fields.get("last_job_id") or None,
        "last_error": json.loads(error) if error else None,
        "links": {"self": f"/schedules/{fields['id']}"},
    }


def _moment(value: str | None) -> str | None:
    return rfc3339(datetime.fromtimestamp(float(value), UTC)) if value else None


def _owner(fields: dict[str, str]) -> str | None:
    return fields.get("owner") or None


class ScheduleStore:
    """Create, look up, list, change and delete schedules (the tickers run them)."""

    def __init__(self, connection: redis.Redis, settings: Settings) -> None:
        self.connection = connection
        self.settings = settings

    def create(self, request: ScheduleRequest, owner: str | None) -> dict:
        """Store the schedule (its job already validated by the caller); its first tick is the
        cadence's first after now. Raises :class:`ScheduleLimitReached` at MAX_SCHEDULES."""
        schedule_id = uuid4().hex
        key = schedule_key(schedule_id)
        with self.connection.pipeline() as pipe:
            for _ in range(_ATTEMPTS):
                try:
                    pipe.watch(SCHEDULE_INDEX_KEY)  # the count: two creations cannot both take the last place
                    if pipe.zcard(SCHEDULE_INDEX_KEY) >= self.settings.max_schedules:
                        raise ScheduleLimitReached
                    now = server_time(self.connection)
                    fields = {
                        "id": schedule_id,
                        "owner": owner or "",
                        "name": request.name or "",
                        "cron": request.cron or "",
                        "every_seconds": str(request.every_seconds or ""),
                        "anchor": str(math.floor(now)),
                        "enabled": "1" if request.enabled else "0",
                        "job": json.dumps(request.job, separators=(",", ":")),
                        "created_at": repr(now),
                        "updated_at": repr(now),
                        "next_run_at": "",
                        "last_run_at": "",
                        "last_job_id": "",
                        "last_error": "",
                    }
                    if request.enabled:
                        fields["next_run_at"] = str(cadence_of(fields).next_after(now))
                    pipe.multi()
                    pipe.hset(key, mapping=fields)
                    pipe.zadd(SCHEDULE_INDEX_KEY, {schedule_id: now})
                    if request.enabled:
                        pipe.zadd(SCHEDULE_DUE_KEY, {schedule_id: int(fields["next_run_at"])})
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue
            else:
                raise redis.WatchError("too many concurrent changes to the schedules")
        connections.wait_for_replicas(self.connection, self.settings)
        return describe(fields)

    def get(self, schedule_id: str, principal: Principal) -> dict:
        return describe(self._fields(self.connection, schedule_id, principal))

    def _fields(
        self, connection: redis.Redis | redis.client.Pipeline, schedule_id: str, principal: Principal
    ) -> dict[str, str]:
        if not SCHEDULE_ID.fullmatch(schedule_id):
            raise ScheduleNotFound(schedule_id)
        fields = decode(connection.hgetall(schedule_key(schedule_id)))
        if not fields or not principal.may_see(_owner(fields)):
            raise ScheduleNotFound(schedule_id)
        return fields

    def update(self, schedule_id: str, patch: SchedulePatch, principal: Principal) -> dict:
        """Apply the fields given. A new cadence, or enabling a disabled schedule, starts the
        cadence afresh from now (no tick is run for the time it was disabled)."""
        key = schedule_key(schedule_id)
        given = patch.model_fields_set
        with self.connection.pipeline() as pipe:
            for _ in range(_ATTEMPTS):
                try:
                    pipe.watch(key)
                    fields = self._fields(pipe, schedule_id, principal)
                    now = server_time(self.connection)
                    was_enabled = fields["enabled"] == "1"
                    restart = False
                    if patch.cron is not None or patch.every_seconds is not None:
                        fields["cron"] = patch.cron or ""
                        fields["every_seconds"] = str(patch.every_seconds or "")
                        restart = True
                    if patch.enabled is not None:
                        fields["enabled"] = "1" if patch.enabled else "0"
                        restart = restart or (patch.enabled and not was_enabled)
                    if "name" in given:
                        fields["name"] = patch.name or ""
                    fields["updated_at"] = repr(now)
                    pipe.multi()
                    if fields["enabled"] != "1":
                        fields["next_run_at"] = ""
                        pipe.zrem(SCHEDULE_DUE_KEY, schedule_id)
                    elif restart:
                        fields["anchor"] = str(math.floor(now))
                        fields["next_run_at"] = str(cadence_of(fields).next_after(now))
                        pipe.zadd(SCHEDULE_DUE_KEY, {schedule_id: int(fields["next_run_at"])})
                    pipe.hset(key, mapping=fields)
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue
            else:
                raise redis.WatchError("too many concurrent changes to this schedule")
        connections.wait_for_replicas(self.connection, self.settings)
        return describe(fields)

    def delete(self, schedule_id: str, principal: Principal) -> None:
        """Forget the schedule; jobs it started already are left alone."""
        self._fields(self.connection, schedule_id, principal)
        with self.connection.pipeline() as pipe:
            pipe.delete(schedule_key(schedule_id))
            pipe.zrem(SCHEDULE_INDEX_KEY, schedule_id)
            pipe.zrem(SCHEDULE_DUE_KEY, schedule_id)
            pipe.execute()
        connections.wait_for_replicas(self.connection, self.settings)

    def list(
        self, principal: Principal, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[dict], str | None]:
        """Schedules newest first, and the cursor of the next page (ValueError for a bad cursor)."""
        max_score, after_id = ("+inf", None) if cursor is None else _decode_cursor(cursor)
        found: list[tuple[float, dict]] = []
        batch = max(limit * 2, 100)
        offset = 0
        while len(found) <= limit:
            entries = self.connection.zrevrangebyscore(
                SCHEDULE_INDEX_KEY, max_score, "-inf", start=offset, num=batch, withscores=True
            )
            if not entries:
                break
            offset += len(entries)
            with self.connection.pipeline(transaction=False) as pipe:
                for raw_id, _ in entries:
                    pipe.hgetall(schedule_key(raw_id.decode()))
                hashes = pipe.execute()
            for (raw_id, score), raw in zip(entries, hashes, strict=True):
                schedule_id = raw_id.decode()
                if after_id is not None and score == float(max_score) and schedule_id >= after_id:
                    continue  # up to and including the cursor's schedule, among equal scores
                fields = decode(raw)
                if not fields or not principal.may_see(_owner(fields)):
                    continue
                found.append((score, describe(fields)))
                if len(found) > limit:
                    break
            if len(entries) < batch:
                break
        page = found[:limit]
        next_cursor = None
        if len(found) > limit and page:
            score, last = page[-1]
            next_cursor = _encode_cursor(score, last["id"])
        return [resource for _, resource in page], next_cursor
