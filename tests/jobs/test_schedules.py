"""Periodic schedules on fakeredis: cadences (app/jobs/cadence.py), the store
(app/jobs/schedules.py) and the claim (app/jobs/ticker.py): one job per tick with two tickers
interleaved, one catch-up run after downtime, edits racing claims.

Time is the tickers' ``now`` argument (the server's clock in production), so no test sleeps."""

from __future__ import annotations

import calendar

import fakeredis
import pytest

from app.jobs import Principal
from app.jobs.scheduling.cadence import Cadence, check_cron
from app.jobs.errors import JobNotFound
from app.jobs.keys import METRICS_KEY, SCHEDULE_DUE_KEY, SCHEDULE_INDEX_KEY, schedule_key
from app.jobs.contract.schedule_schemas import SchedulePatch, ScheduleRequest
from app.jobs.scheduling.schedules import ScheduleLimitReached, ScheduleNotFound, ScheduleStore
from app.jobs.scheduling.ticker import ScheduleTicker, job_id_for
from app.settings import get_settings

from ..conftest import queued_count, run_jobs

ADMIN = Principal(None, True)
T0 = calendar.timegm((2027, 1, 15, 8, 0, 0))  # a whole minute, a Friday
PAST = calendar.timegm((2020, 1, 1, 0, 0, 0))  # due, by any server's clock


# --- cadences ------------------------------------------------------------------------------------


def test_an_interval_ticks_from_its_anchor():
    every = Cadence(every_seconds=10, anchor=T0)
    assert every.next_after(T0 - 100) == T0
    assert every.next_after(T0) == T0 + 10  # strictly after
    assert every.next_after(T0 + 0.001) == T0 + 10
    assert every.next_after(T0 + 9.999) == T0 + 10
    assert every.next_after(T0 + 10) == T0 + 20
    assert every.next_after(T0 + 55) == T0 + 60


def test_cron_ticks_in_utc_whole_minutes():
    five = Cadence(cron="*/5 * * * *")
    assert five.next_after(T0) == T0 + 300
    assert five.next_after(T0 - 0.5) == T0
    assert five.next_after(T0 + 299.9) == T0 + 300
    weekdays = Cadence(cron="0 7 * * MON-FRI")
    saturday_noon = calendar.timegm((2027, 1, 23, 12, 0, 0))
    assert weekdays.next_after(saturday_noon) == calendar.timegm((2027, 1, 25, 7, 0, 0))  # Monday
    assert Cadence(cron="@daily").next_after(T0) == T0 + 16 * 3600  # the next midnight, UTC


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "empty"),
        ("* * * *", "5 fields"),
        ("*/15 * * * * 10", "5 fields"),  # croniter's seconds field: not standard cron
        ("@reboot", "@-name"),
        ("0 0 31 2 *", "never fires"),
        ("R * * * *", "random"),
        ("61 * * * *", "not a cron expression of the form"),
        ("*/0 * * * *", "not a cron expression of the form"),
        ("a b c d e", "not a cron expression of the form"),
    ],
)
def test_bad_cron_expressions_say_why(expression, message):
    with pytest.raises(ValueError, match=message):
        check_cron(expression)


def test_cron_is_taken_exactly_as_the_document_declares_it():
    """The OpenAPI document declares CRON_PATTERN, so the server takes exactly what it matches:
    no extra spaces, @-names in lower case, month and weekday names in capitals."""
    import re

    from app.jobs.scheduling.cadence import CRON_PATTERN

    for good in ("*/5 * * * *", "@hourly", "0 12 * MAR FRI", "0-30/15 8-18 1,15 */2 MON-FRI"):
        assert check_cron(good) == good and re.fullmatch(CRON_PATTERN, good)
    assert check_cron("0 12 * MAR FRI") == "0 12 * MAR FRI"  # names with an R in them are not "R"
    for bad in ("  */5   *  * * *  ", "*/5  * * * *", "@HOURLY", "0 12 * mar fri", "0 0 ? * *"):
        assert not re.fullmatch(CRON_PATTERN, bad)
        with pytest.raises(ValueError):
            check_cron(bad)


# --- the store -----------------------------------------------------------------------------------


@pytest.fixture
def store(fake_redis, settings) -> ScheduleStore:
    return ScheduleStore(fake_redis, settings)


def make(store: ScheduleStore, owner: str | None = None, **fields) -> dict:
    body = {"job": {"type": "count_words", "text": "tick tock"}, "every_seconds": 10, **fields}
    return store.create(ScheduleRequest.model_validate(body, context={"settings": store.settings}), owner=owner)


def set_next(store: ScheduleStore, schedule_id: str, tick: int, anchor: int | None = None) -> None:
    """Put the schedule's next tick at a known time (creation takes the server's clock)."""
    fields = {"next_run_at": tick} if anchor is None else {"next_run_at": tick, "anchor": anchor}
    store.connection.hset(schedule_key(schedule_id), mapping=fields)
    store.connection.zadd(SCHEDULE_DUE_KEY, {schedule_id: tick})


def test_create_get_list_update_delete(store):
    first = make(store, name="first")
    second = make(store, cron="0 * * * *", every_seconds=None)
    assert first["next_run_at"] and first["enabled"] and first["every_seconds"] == 10 and first["cron"] is None
    assert store.get(first["id"], ADMIN) == first
    page, cursor = store.list(ADMIN, limit=1)
    assert [s["id"] for s in page] == [second["id"]] and cursor
    page, cursor = store.list(ADMIN, limit=1, cursor=cursor)
    assert [s["id"] for s in page] == [first["id"]] and cursor is None

    off = store.update(first["id"], SchedulePatch(enabled=False), ADMIN)
    assert off["enabled"] is False and off["next_run_at"] is None
    assert store.connection.zscore(SCHEDULE_DUE_KEY, first["id"]) is None
    on = store.update(first["id"], SchedulePatch(enabled=True, name=None), ADMIN)
    assert on["enabled"] and on["next_run_at"] and on["name"] is None
    cron = store.update(first["id"], SchedulePatch(cron="*/5 * * * *"), ADMIN)
    assert cron["cron"] == "*/5 * * * *" and cron["every_seconds"] is None and cron["next_run_at"].endswith(":00.000Z")

    store.delete(first["id"], ADMIN)
    with pytest.raises(ScheduleNotFound):
        store.get(first["id"], ADMIN)
    assert store.connection.zrange(SCHEDULE_INDEX_KEY, 0, -1) == [second["id"].encode()]
    assert store.connection.zrange(SCHEDULE_DUE_KEY, 0, -1) == [second["id"].encode()]


def test_a_client_sees_only_its_own_schedules(store):
    mine = make(store, owner="shop")
    make(store, owner="blog")
    shop, blog = Principal("shop", False), Principal("blog", False)
    assert [s["id"] for s in store.list(shop)[0]] == [mine["id"]]
    assert len(store.list(ADMIN)[0]) == 2
    for action in (
        lambda: store.get(mine["id"], blog),
        lambda: store.update(mine["id"], SchedulePatch(enabled=False), blog),
        lambda: store.delete(mine["id"], blog),
    ):
        with pytest.raises(ScheduleNotFound):
            action()
    assert store.get(mine["id"], shop)["enabled"]


def test_the_limit_of_schedules(monkeypatch, fake_redis):
    monkeypatch.setenv("MAX_SCHEDULES", "2")
    store = ScheduleStore(fake_redis, get_settings())
    make(store)
    make(store)
    with pytest.raises(ScheduleLimitReached):
        make(store)
    assert fake_redis.zcard(SCHEDULE_INDEX_KEY) == 2


# --- claims --------------------------------------------------------------------------------------


@pytest.fixture
def ticker(fake_redis, settings) -> ScheduleTicker:
    return ScheduleTicker(fake_redis, settings)


def enqueued(connection) -> int:
    return int(connection.hget(METRICS_KEY, "enqueued:count_words") or 0)


def test_a_due_tick_starts_one_job_of_the_schedules_owner(store, ticker, job_queue):
    schedule = make(store, owner="shop")
    set_next(store, schedule["id"], T0 + 10, anchor=T0)
    assert ticker.claim(schedule["id"], now=T0 + 9.9) is None  # not yet due
    job_id = ticker.claim(schedule["id"], now=T0 + 10.01)
    assert job_id == job_id_for(schedule["id"], T0 + 10)
    assert ticker.claim(schedule["id"], now=T0 + 10.02) is None  # the next tick is T0 + 20
    job = job_queue.get(job_id, Principal("shop", False))
    assert job["schedule_id"] == schedule["id"] and job["status"] == "queued"
    with pytest.raises(JobNotFound):
        job_queue.get(job_id, Principal("blog", False))
    after = store.get(schedule["id"], ADMIN)
    assert after["last_job_id"] == job_id and after["last_error"] is None
    assert after["next_run_at"] == "2027-01-15T08:00:20.000Z"
    run_jobs(job_queue)
    assert job_queue.get(job_id)["result"] == {"words": 2, "characters": 9, "lines": 1}


def test_two_tickers_interleaved_start_the_tick_once(store, fake_redis, settings):
    """Ticker A has read the schedule (under WATCH) when ticker B claims the same tick: A's
    transaction fails on the WATCH and A starts nothing."""
    schedule = make(store)
    set_next(store, schedule["id"], T0 + 10, anchor=T0)
    server = fake_redis.connection_pool.connection_kwargs["server"]
    a = ScheduleTicker(fakeredis.FakeRedis(server=server), settings)
    b = ScheduleTicker(fakeredis.FakeRedis(server=server), settings)
    claimed_by_b = []
    validated = a._validated

    def b_claims_meanwhile(submission):
        claimed_by_b.append(b.claim(schedule["id"], now=T0 + 10.2))
        return validated(submission)

    a._validated = b_claims_meanwhile
    assert a.claim(schedule["id"], now=T0 + 10.1) is None
    assert claimed_by_b == [job_id_for(schedule["id"], T0 + 10)]
    assert enqueued(fake_redis) == 1 and queued_count(ScheduleTicker(fake_redis, settings).jobs) == 1
    # Both go on polling: the next tick is claimed once too.
    a._validated = validated
    assert a.claim(schedule["id"], now=T0 + 20.1) == job_id_for(schedule["id"], T0 + 20)
    assert b.claim(schedule["id"], now=T0 + 20.2) is None
    assert enqueued(fake_redis) == 2


def test_tickers_polling_together_start_each_tick_once(store, fake_redis, settings):
    """tick() as every worker runs it: two tickers, many schedules, all due at once."""
    schedules = [make(store) for _ in range(5)]
    for schedule in schedules:
        set_next(store, schedule["id"], PAST, anchor=PAST - 10)
    server = fake_redis.connection_pool.connection_kwargs["server"]
    tickers = [ScheduleTicker(fakeredis.FakeRedis(server=server), settings) for _ in range(2)]
    for ticker in tickers + tickers:
        ticker.tick()
    assert enqueued(fake_redis) == 5
    for schedule in schedules:
        assert store.get(schedule["id"], ADMIN)["last_job_id"] == job_id_for(schedule["id"], PAST)


def test_after_downtime_the_missed_tick_runs_once_then_the_next_future_one(store, ticker, fake_redis):
    schedule = make(store)
    set_next(store, schedule["id"], T0 + 10, anchor=T0)
    # Down from T0 + 5 to T0 + 55: ticks T0+10 ... T0+50 were missed.
    assert ticker.claim(schedule["id"], now=T0 + 55) == job_id_for(schedule["id"], T0 + 10)
    assert store.get(schedule["id"], ADMIN)["next_run_at"] == "2027-01-15T08:01:00.000Z"  # T0 + 60: no burst
    assert ticker.claim(schedule["id"], now=T0 + 56) is None
    assert ticker.claim(schedule["id"], now=T0 + 60.01) == job_id_for(schedule["id"], T0 + 60)
    assert enqueued(fake_redis) == 2


def test_a_cron_schedule_catches_up_once_too(store, ticker, fake_redis):
    schedule = make(store, cron="*/5 * * * *", every_seconds=None)
    set_next(store, schedule["id"], T0)
    assert ticker.claim(schedule["id"], now=T0 + 3600 + 30) == job_id_for(schedule["id"], T0)
    assert store.get(schedule["id"], ADMIN)["next_run_at"] == "2027-01-15T09:05:00.000Z"
    assert enqueued(fake_redis) == 1


def test_an_edit_racing_a_claim_wins_and_no_job_starts(store, ticker, fake_redis):
    schedule = make(store)
    set_next(store, schedule["id"], T0 + 10, anchor=T0)
    validated = ticker._validated

    def disabled_meanwhile(submission):
        store.update(schedule["id"], SchedulePatch(enabled=False), ADMIN)
        return validated(submission)

    ticker._validated = disabled_meanwhile
    assert ticker.claim(schedule["id"], now=T0 + 10.1) is None
    assert enqueued(fake_redis) == 0
    assert store.get(schedule["id"], ADMIN)["enabled"] is False
    assert fake_redis.zscore(SCHEDULE_DUE_KEY, schedule["id"]) is None


def test_a_deleted_or_disabled_schedule_leaves_the_due_set(store, ticker, fake_redis):
    gone, off = make(store), make(store)
    store.delete(gone["id"], ADMIN)
    store.update(off["id"], SchedulePatch(enabled=False), ADMIN)
    for schedule in (gone, off):  # as if a ticker's poll had seen them due just before
        fake_redis.zadd(SCHEDULE_DUE_KEY, {schedule["id"]: T0})
        assert ticker.claim(schedule["id"], now=T0 + 1) is None
    assert fake_redis.zcard(SCHEDULE_DUE_KEY) == 0 and enqueued(fake_redis) == 0


def test_a_tick_whose_job_exists_already_does_not_enqueue_it_again(store, ticker, fake_redis, job_queue):
    schedule = make(store)
    set_next(store, schedule["id"], T0 + 10, anchor=T0)
    job_id = ticker.claim(schedule["id"], now=T0 + 10.5)
    set_next(store, schedule["id"], T0 + 10)  # the schedule put back, as a lost write would
    assert ticker.claim(schedule["id"], now=T0 + 11) is None
    assert enqueued(fake_redis) == 1 and queued_count(job_queue) == 1
    assert store.get(schedule["id"], ADMIN)["last_job_id"] == job_id


def test_a_full_queue_skips_the_tick_and_says_so(monkeypatch, store, fake_redis, job_queue):
    monkeypatch.setenv("MAX_QUEUE_DEPTH", "1")
    get_settings.cache_clear()
    ticker = ScheduleTicker(fake_redis, get_settings())
    schedule = make(store)
    set_next(store, schedule["id"], T0 + 10, anchor=T0)
    ticker.jobs.queues["default"].enqueue_call("app.tasks.noop")  # the queue is full
    assert ticker.claim(schedule["id"], now=T0 + 10.1) is None
    after = store.get(schedule["id"], ADMIN)
    assert after["last_error"]["type"] == "QueueFull" and after["last_job_id"] is None
    assert after["next_run_at"] == "2027-01-15T08:00:20.000Z"
    assert enqueued(fake_redis) == 0


def test_a_job_that_no_longer_validates_is_skipped_with_the_reason(monkeypatch, store, fake_redis):
    schedule = store.create(
        ScheduleRequest.model_validate({"job": {"type": "noop"}, "every_seconds": 10}, context={"settings": store.settings}),
        owner=None,
    )
    set_next(store, schedule["id"], T0 + 10, anchor=T0)
    monkeypatch.setenv("ENABLE_DIAGNOSTIC_TASKS", "0")  # the workers no longer run noop jobs
    get_settings.cache_clear()
    ticker = ScheduleTicker(fake_redis, get_settings())
    assert ticker.claim(schedule["id"], now=T0 + 10.1) is None
    error = store.get(schedule["id"], ADMIN)["last_error"]
    assert error["type"] == "InvalidJob" and "type" in error["message"]


def test_tick_polls_by_the_servers_clock_and_says_how_long_to_sleep(store, ticker, fake_redis):
    assert ticker.tick() == 1.0  # nothing scheduled: the longest sleep
    schedule = make(store, every_seconds=3600)
    wait = ticker.tick()
    assert 0 < wait <= 1.0
    set_next(store, schedule["id"], PAST)
    assert ticker.tick() == 0.0
    assert enqueued(fake_redis) == 1
    assert 0 < ticker.tick() <= 1.0


def test_claims_wait_for_replicas_once_per_poll(monkeypatch, store, ticker, fake_redis):
    """As POST /jobs does under Sentinel; one WAIT covers every claim of a poll before it."""
    from app import connections

    schedules = [make(store) for _ in range(3)]
    for schedule in schedules:
        set_next(store, schedule["id"], PAST, anchor=PAST - 10)
    waits = []
    monkeypatch.setattr(connections, "wait_for_replicas", lambda connection, settings: waits.append(connection))
    ticker.tick()
    assert enqueued(fake_redis) == 3 and len(waits) == 1
    set_next(store, schedules[0]["id"], T0 + 10, anchor=T0)
    ticker.claim(schedules[0]["id"], now=T0 + 10.5)
    assert len(waits) == 2
    ticker.claim(schedules[0]["id"], now=T0 + 10.6)  # nothing claimed: nothing to wait for
    assert len(waits) == 2
