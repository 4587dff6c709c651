"""Idempotency keys: the same ``Idempotency-Key`` and body give the first answer again.

A key is claimed (SET NX, short-lived ``pending``) before the job is created; the answer
is recorded under it in the same transaction that enqueues the job
(:meth:`IdempotencyClaim.record`), so either both exist or neither does.

Or, in one round trip, the claim is the submission's own (:func:`unclaimed`): the script that
writes the job writes the answer only if the key has none yet, and answers the one it has
otherwise (:func:`settle` makes it a replay, a conflict or "in flight"). There is no ``pending``
state to wait on then: the check and the write are one atomic step.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import redis

from ..errors import IdempotencyConflict, IdempotencyInFlight
from ..keys import idempotency_key

IDEMPOTENCY_TTL = 24 * 3600 + 3600  # the contract promises at least 24 hours
_IN_FLIGHT_TTL = 30


@dataclass
class IdempotencyClaim:
    """The right to answer for an idempotency key; ``replay`` is set when the answer exists."""

    connection: redis.Redis
    key: str
    fingerprint: str
    replay: dict | None = None
    #: The queue's length when the key was claimed (read in the same round trip), if asked for.
    queue_depth: int | None = None
    #: False for :func:`unclaimed`: the submission claims it, in the script that writes the job.
    claimed: bool = True
    #: The client's ``Idempotency-Key`` (what the errors name).
    name: str = ""

    def record(self, resource: dict, pipe: redis.client.Pipeline) -> None:
        entry = {"state": "done", "fingerprint": self.fingerprint, "resource": resource}
        pipe.set(self.key, json.dumps(entry), ex=IDEMPOTENCY_TTL)

    def release(self) -> None:
        """Give the key back after a failed submission, so the client may try again."""
        try:
            entry = self.connection.get(self.key)
            if entry is not None and json.loads(entry).get("state") == "pending":
                self.connection.delete(self.key)
        except redis.RedisError:
            pass  # the in-flight marker expires on its own


def _fingerprint(payload: dict) -> str:
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    ).hexdigest()


def unclaimed(connection: redis.Redis, owner: str | None, key: str, payload: dict) -> IdempotencyClaim:
    """A claim of ``key`` for this request that the submission itself makes, atomically with its
    writes (no round trip here): see the module's docstring."""
    return IdempotencyClaim(connection, idempotency_key(owner, key), _fingerprint(payload), claimed=False, name=key)


def settle(claim: IdempotencyClaim, raw: bytes) -> dict:
    """The first answer stored under ``claim``'s key (``raw``), to replay; raises
    IdempotencyConflict (another body) or IdempotencyInFlight (that request is not done)."""
    entry = json.loads(raw)
    if entry["fingerprint"] != claim.fingerprint:
        raise IdempotencyConflict(claim.name)
    if entry["state"] != "done":
        raise IdempotencyInFlight(claim.name)
    claim.replay = entry["resource"]
    return claim.replay


def claim_idempotency_key(
    connection: redis.Redis, owner: str | None, key: str, payload: dict, depth_key: str | None = None
) -> IdempotencyClaim:
    """Claim ``key`` for this request, or explain why not.

    Keys are scoped to the caller (two clients may use the same key) and the body is
    compared by a hash of its canonical JSON. Raises IdempotencyConflict or
    IdempotencyInFlight; returns a claim whose ``replay`` is the first answer when there is one.
    """
    return _claim(connection, idempotency_key(owner, key), _fingerprint(payload), key, depth_key)


def claim_now(claim: IdempotencyClaim) -> IdempotencyClaim:
    """Claim an :func:`unclaimed` key now, as :func:`claim_idempotency_key` does, for a submission
    that cannot be one script (a job with a concurrency limit, a schedule's tick); ``claim`` is
    updated (``claimed``, and ``replay`` when the key had an answer) and returned."""
    found = _claim(claim.connection, claim.key, claim.fingerprint, claim.name, None)
    claim.claimed, claim.replay = True, found.replay
    return claim


def _claim(connection: redis.Redis, redis_key: str, fingerprint: str, key: str, depth_key: str | None) -> IdempotencyClaim:
    pending = json.dumps({"state": "pending", "fingerprint": fingerprint})
    if depth_key is None:
        claimed, depth = connection.set(redis_key, pending, nx=True, ex=_IN_FLIGHT_TTL), None
    else:  # one round trip for the claim and the queue's depth (same hash tag: one node)
        with connection.pipeline(transaction=False) as pipe:
            pipe.set(redis_key, pending, nx=True, ex=_IN_FLIGHT_TTL)
            pipe.llen(depth_key)
            claimed, depth = pipe.execute()
    if claimed:
        return IdempotencyClaim(connection, redis_key, fingerprint, queue_depth=depth, name=key)
    raw = connection.get(redis_key)
    if raw is None:  # expired between the two calls: try once more
        if connection.set(redis_key, pending, nx=True, ex=_IN_FLIGHT_TTL):
            return IdempotencyClaim(connection, redis_key, fingerprint, name=key)
        raw = connection.get(redis_key) or pending.encode()
    claim = IdempotencyClaim(connection, redis_key, fingerprint, name=key)
    settle(claim, raw)
    return claim
