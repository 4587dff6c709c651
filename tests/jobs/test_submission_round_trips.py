"""A submission is one round trip to Redis (issue 26, item 1): ``lua/submit.lua`` checks the queue's
depth and the dependencies' statuses and writes the job, its index entry, its counters and an
idempotency answer, where a LLEN (or a WATCH and a read) and a MULTI/EXEC took two before.

Counted on a real Valkey: round trips as the connection sends them (one ``send_packed_command``
each), commands by Valkey's ``INFO commandstats``.
"""

from __future__ import annotations

import pytest

from app.jobs import ANONYMOUS, IdempotencyConflict, InvalidSubmission, JobQueue, QueueFull, catalog
from app.jobs.submitting.idempotency import claim_idempotency_key


@pytest.fixture
def jobs(clean_valkey, settings):
    connection = clean_valkey.client()
    yield JobQueue(connection, settings)
    connection.close()


def _request(settings, **fields):
    return catalog.request_adapter(True).validate_python({"type": "noop", **fields}, context={"settings": settings})


def _commands(connection) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in connection.info("commandstats").items()}


def _warm(jobs, settings) -> None:
    """Load the script and learn the server's version (RQ asks once a queue) before counting."""
    for queue in ("default", "high"):
        jobs.submit(_request(settings, queue=queue), owner=None)


def test_a_job_is_submitted_in_one_round_trip_and_no_transaction(jobs, settings, trips):
    _warm(jobs, settings)
    jobs.connection.config_resetstat()
    trips.clear()
    answer = jobs.submit(_request(settings), owner="a")
    assert len(trips) == 1, f"{len(trips)} round trips for one POST /jobs (one script: lua/submit.lua)"
    commands = _commands(jobs.connection)
    assert commands.get("evalsha") == 1 and not {"multi", "exec", "watch"} & commands.keys(), commands
    assert jobs.get(answer["id"])["status"] == "queued"
    assert [raw.decode() for raw in jobs.connection.lrange(jobs.queues["default"].key, 0, -1)][-1] == answer["id"]


def test_a_scheduled_job_too(jobs, settings, trips):
    _warm(jobs, settings)
    trips.clear()
    answer = jobs.submit(_request(settings, delay_seconds=60), owner=None)
    assert len(trips) == 1
    assert jobs.get(answer["id"])["status"] == "scheduled"
    assert jobs.queues["default"].scheduled_job_registry.get_job_ids() == [answer["id"]]


def test_with_depends_on_the_dependencies_are_read_then_checked_in_the_script(jobs, settings, trips):
    _warm(jobs, settings)
    first = jobs.submit(_request(settings), owner="a")
    trips.clear()
    second = jobs.submit(_request(settings, depends_on=[first["id"]]), owner="a")
    assert len(trips) == 2, "one read of the dependencies, one script (no WATCH, no MULTI/EXEC)"
    assert jobs.get(second["id"])["status"] == "deferred"
    assert {raw.decode() for raw in jobs.connection.smembers(f"rq:job:{first['id']}:dependents")} == {second["id"]}


def test_a_dependency_that_changes_between_the_read_and_the_script_is_read_again(jobs, settings, monkeypatch):
    from app.jobs.engine import submit as engine_submit

    first = jobs.submit(_request(settings), owner="a")
    original, runs = engine_submit.run, []

    def meanwhile(connection, recorded, checks):  # noqa: ANN001, ANN202
        runs.append(checks.guards)
        if len(runs) == 1:  # another client cancels the dependency after it was read
            jobs.cancel(first["id"], ANONYMOUS)
        return original(connection, recorded, checks)

    monkeypatch.setattr(engine_submit, "run", meanwhile)
    with pytest.raises(InvalidSubmission):
        jobs.submit(_request(settings, depends_on=[first["id"]]), owner="a")
    # The script refused the stale read and wrote nothing; read again, the dependency is canceled.
    assert len(runs) == 1
    assert not jobs.connection.exists(f"rq:job:{first['id']}:dependents")


def test_a_batch_is_one_script(jobs, settings, trips):
    _warm(jobs, settings)
    items = [(index, _request(settings)) for index in range(20)]
    trips.clear()
    answer = jobs.submit_batch(
        items, owner=None, principal=ANONYMOUS, request_id=None,
        callback_url=None, metadata=None, rejected={}, problem=lambda errors: {"errors": errors},
    )  # fmt: skip
    assert len(trips) == 1, f"{len(trips)} round trips for a batch of 20"
    assert answer["batch"]["total"] == 20 and jobs.queues["default"].count >= 20


def test_queue_full_is_checked_in_the_script_and_writes_nothing(jobs, settings, trips):
    _warm(jobs, settings)
    jobs.settings = settings.model_copy(update={"max_queue_depth": jobs.queues["default"].count})
    before = jobs.connection.dbsize()
    trips.clear()
    with pytest.raises(QueueFull):
        jobs.submit(_request(settings), owner=None)
    assert len(trips) == 1 and jobs.connection.dbsize() == before


def test_an_idempotency_answer_rides_the_same_script(jobs, settings, trips):
    _warm(jobs, settings)
    claim = claim_idempotency_key(jobs.connection, "a", "key-1", {"type": "noop"})
    trips.clear()
    answer = jobs.submit(_request(settings), owner="a", idempotency=claim)
    assert len(trips) == 1
    replay = claim_idempotency_key(jobs.connection, "a", "key-1", {"type": "noop"})
    assert replay.replay == answer


def test_an_idempotency_key_is_claimed_by_the_script_itself(jobs, settings, trips):
    _warm(jobs, settings)
    payload = {"type": "noop"}
    claim = jobs.idempotency("a", "key-2", payload)
    trips.clear()
    answer = jobs.submit(_request(settings), owner="a", idempotency=claim)
    assert len(trips) == 1, "claim, depth check and job in one script"
    assert claim.replay is None
    queued = jobs.queues["default"].count
    again = jobs.idempotency("a", "key-2", payload)
    trips.clear()
    assert jobs.submit(_request(settings), owner="a", idempotency=again) == answer
    assert len(trips) == 1 and again.replay == answer and jobs.queues["default"].count == queued
    with pytest.raises(IdempotencyConflict):
        jobs.submit(_request(settings), owner="a", idempotency=jobs.idempotency("a", "key-2", {"type": "noop", "x": 1}))
    assert jobs.queues["default"].count == queued


def test_a_key_for_a_job_that_cannot_be_one_script_is_claimed_first(jobs, settings):
    payload = {"type": "noop", "concurrency_key": "k"}
    answer = jobs.submit(_request(settings, concurrency_key="k"), owner="a", idempotency=jobs.idempotency("a", "key-3", payload))
    again = jobs.idempotency("a", "key-3", payload)
    assert jobs.submit(_request(settings, concurrency_key="k"), owner="a", idempotency=again) == answer
    assert again.replay == answer
