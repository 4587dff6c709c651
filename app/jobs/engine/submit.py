"""A submission in one round trip: RQ's own writes, recorded, sent with their checks in one script.

Before, a submission read its queue's depth (and WATCHed the jobs it depends on) in one round
trip, then wrote in a MULTI/EXEC: two round trips, and a retry loop on the WATCH. Here the writes
are collected by a :class:`Recorder` that RQ's methods take as their ``pipeline=`` (so the job is
stored by RQ's own code, in RQ's format, with nothing written by hand), and
``lua/submit.lua`` runs the checks (each queue's depth; each dependency's status still as read)
and then the writes, atomically: one round trip, one fsync, as BullMQ's ``addJob``.

The web's rate limit can ride along (:class:`RateCount`): its fixed windows are counted first,
in the same script, so a limited submission is still one round trip; over a limit, nothing is
written.

A write RQ makes with a script of its own (a rate-limited job's slot: ``EVAL``/``EVALSHA``)
cannot run inside another script; :attr:`Recorder.scripted` says so and the caller takes the
MULTI/EXEC path instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
from redis.commands.core import CoreCommands

from ..errors import RateLimited
from . import scripts

#: Commands whose first argument is not a key.
_NOT_KEYED = frozenset({"PUBLISH", "EVAL", "EVALSHA"})


class Recorder(CoreCommands):
    """Stands in for a redis-py transaction pipeline: every command sent to it is kept, in
    order, and nothing is sent. RQ's methods taking ``pipeline=`` and offload's own (counters,
    time series, events, idempotency, batches) write into it unchanged."""

    #: A transaction already begun (RQ's ``setup_dependencies`` calls ``multi()`` on a pipeline otherwise).
    explicit_transaction = True

    def __init__(self) -> None:
        self.commands: list[tuple] = []

    def multi(self) -> None:
        """The script is the transaction: nothing to begin."""

    def execute_command(self, *args: Any, **options: Any) -> Recorder:
        self.commands.append(args)
        return self

    def pipeline_execute_command(self, *args: Any, **options: Any) -> Recorder:
        return self.execute_command(*args, **options)

    @property
    def scripted(self) -> bool:
        """Whether a recorded write is itself a script (which a script cannot call)."""
        return any(str(command[0]).upper() in ("EVAL", "EVALSHA") for command in self.commands)


@dataclass
class RateCount:
    """Fixed rate-limit windows a submission's script counts before anything else, as ``limits``
    keeps them (``INCRBY`` the cost; ``EXPIRE`` when this hit opened the window; the count and
    TTL answered), the shortest first, stopping at the first window over its amount: then
    nothing else is done and :class:`RateLimited` is raised. The web's limiter hands these over
    instead of counting them in a round trip of its own (app/web/ratelimit.py)."""

    #: Each window: (its key, its expiry in seconds, its amount).
    windows: list[tuple[str, int, int]]
    cost: int = 1
    #: (count, TTL) of each window counted, once counted (a breach ends the list).
    replies: list[tuple[int, int]] | None = None

    @property
    def breached(self) -> str | None:
        """The key of the window counted over its amount, or None."""
        for (key, _expiry, amount), (count, _ttl) in zip(self.windows, self.replies or [], strict=False):
            if count > amount:
                return key
        return None


@dataclass
class Checks:
    """What :func:`run` checks before it writes."""

    #: Rate-limit windows to count first (counted once: not again when ``replies`` is set).
    rate: RateCount | None = None

    #: Queue key -> (jobs to add, the most it may hold then).
    depths: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: (hash key, field, value read: bytes, or None for no such field or key).
    guards: list[tuple[str, str, bytes | None]] = field(default_factory=list)
    #: Keys that must not exist (an idempotency key's answer): checked first.
    absent: list[str] = field(default_factory=list)


class QueueOverLimit(Exception):
    """A queue would go over its depth limit: nothing was written (``args[0]``: the queue's key)."""


class Exists(Exception):
    """A key of :attr:`Checks.absent` exists: nothing was written (``args``: the key, its value)."""


class Changed(Exception):
    """A guarded value changed since it was read: nothing was written; read again and retry."""


def run(connection: redis.Redis, recorded: Recorder, checks: Checks) -> None:
    """Count the rate windows, check, then write what ``recorded`` holds, in one script. Raises
    :class:`RateLimited`, :class:`Exists`, :class:`QueueOverLimit` or :class:`Changed` (nothing
    written; the windows counted all the same, as a limiter counts every request)."""
    keys: list[str] = []
    seen: set[str] = set()
    rate = checks.rate if checks.rate is not None and checks.rate.replies is None else None
    args: list[Any] = [len(rate.windows) if rate else 0, rate.cost if rate else 0]
    for key, expiry, amount in rate.windows if rate else ():
        args += [key, expiry, amount]
        _declare(key, keys, seen)
    args += [len(checks.absent), *checks.absent]
    for key in checks.absent:
        _declare(key, keys, seen)
    args.append(len(checks.depths))
    for key, (adding, limit) in checks.depths.items():
        args += [key, adding, limit]
        _declare(key, keys, seen)
    args.append(len(checks.guards))
    for key, name, value in checks.guards:
        args += [key, name, b"" if value is None else value]
        _declare(key, keys, seen)
    for command in recorded.commands:
        args.append(len(command))
        args.extend(command)
        if str(command[0]).upper() not in _NOT_KEYED and len(command) > 1:
            _declare(command[1], keys, seen)
    reply = scripts.register(connection, "submit")(keys=keys, args=args)
    outcome = _text(reply[0])
    if rate is not None:
        rate.replies = [(int(reply[1][i]), int(reply[1][i + 1])) for i in range(0, len(reply[1]), 2)]
    if outcome == "limited":
        raise RateLimited(rate.breached if rate is not None else None)
    if outcome == "exists":
        raise Exists(_text(reply[2]), reply[3])
    if outcome == "full":
        raise QueueOverLimit(_text(reply[2]))
    if outcome == "changed":
        raise Changed(_text(reply[2]))


def count(connection: redis.Redis, rate: RateCount) -> None:
    """Count ``rate``'s windows alone, in a round trip of their own (a submission that cannot be
    one script counts them so, before it writes). Raises :class:`RateLimited` over a limit."""
    run(connection, Recorder(), Checks(rate=rate))


def _declare(key: Any, keys: list[str], seen: set[str]) -> None:
    text = _text(key)
    if text not in seen:
        seen.add(text)
        keys.append(text)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
