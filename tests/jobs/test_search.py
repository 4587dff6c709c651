"""The index walk and the search filters (app/jobs/search.py) on fakeredis, jobs run in-process:
positions by score (ties included), id prefix, metadata, error type, owners, the scan budget."""

from __future__ import annotations

from app.jobs import Principal
from app.jobs.keys import JOB_INDEX_KEY
from app.jobs.reading.search import JobFilter, scan_index, search_jobs

from ..conftest import run_jobs, submit

ADMIN = Principal(None, True)


def all_pages(connection, job_filter, limit, principal=ADMIN, scan_budget=20_000):
    seen, cursor, pages = [], None, 0
    while True:
        page, cursor = search_jobs(connection, principal, job_filter, limit=limit, cursor=cursor, scan_budget=scan_budget)
        seen += [job["id"] for job in page]
        pages += 1
        if cursor is None:
            return seen, pages


def test_scan_walks_ties_across_batches_without_repeats_or_gaps(fake_redis):
    # 23 entries, 9 of them on one score: batches of 4 must cross the tie group.
    scores = {f"job-{n:02d}": float(n // 3 if n < 14 else 100) for n in range(23)}
    fake_redis.zadd(JOB_INDEX_KEY, scores)
    walked = [job_id for batch in scan_index(fake_redis, batch=4) for job_id, _ in batch]
    expected = [member.decode() for member in fake_redis.zrevrange(JOB_INDEX_KEY, 0, -1)]
    assert walked == expected
    # From a cursor in the middle of the tie group: exactly the rest.
    from app.jobs.reading.search import position

    middle = expected[4]
    rest = [job_id for batch in scan_index(fake_redis, cursor=position(middle, scores[middle]), batch=3) for job_id, _ in batch]
    assert rest == expected[5:]
    # A time range is a score range: [3, 100).
    ranged = [job_id for batch in scan_index(fake_redis, newest=100.0, oldest=3.0, batch=2) for job_id, _ in batch]
    assert ranged == [job_id for job_id in expected if 3 <= scores[job_id] < 100]


def test_id_prefix_metadata_and_error_type(job_queue, settings):
    one = submit(job_queue, settings, type="count_words", text="a", metadata={"order": 1234, "shop": "north"})
    two = submit(job_queue, settings, type="count_words", text="b", metadata={"order": 99, "shop": "north"})
    failed = submit(job_queue, settings, type="fail", message="boom", metadata={"shop": "south"})
    run_jobs(job_queue)
    connection = job_queue.connection

    assert all_pages(connection, JobFilter(id_prefix=one["id"][:6]), 10)[0] == [one["id"]]
    assert all_pages(connection, JobFilter(metadata={"order": "1234"}), 10)[0] == [one["id"]]
    assert all_pages(connection, JobFilter(metadata={"shop": "north"}), 10)[0] == [two["id"], one["id"]]
    assert all_pages(connection, JobFilter(metadata={"shop": "north", "order": "99"}), 10)[0] == [two["id"]]
    assert all_pages(connection, JobFilter(error_type="RuntimeError"), 10)[0] == [failed["id"]]
    assert all_pages(connection, JobFilter(error_type="ValueError"), 10)[0] == []
    assert all_pages(connection, JobFilter(statuses=frozenset({"finished"}), metadata={"shop": "south"}), 10)[0] == []


def test_pages_and_the_scan_budget(job_queue, settings):
    ids = [submit(job_queue, settings, type="count_words", text="x", metadata={"n": n % 3})["id"] for n in range(30)]
    wanted = [job_id for n, job_id in enumerate(ids) if n % 3 == 0][::-1]
    seen, _ = all_pages(job_queue.connection, JobFilter(metadata={"n": "0"}), 4)
    assert seen == wanted
    # A budget smaller than a batch: short pages with cursors, but the same jobs in the end.
    seen, pages = all_pages(job_queue.connection, JobFilter(metadata={"n": "0"}), 4, scan_budget=1)
    assert seen == wanted and pages > 3


def test_a_client_finds_only_its_own_jobs(job_queue, settings):
    mine = submit(job_queue, settings, owner="shop", type="count_words", text="x", metadata={"k": "v"})
    submit(job_queue, settings, owner="blog", type="count_words", text="x", metadata={"k": "v"})
    found, _ = all_pages(job_queue.connection, JobFilter(metadata={"k": "v"}), 10, principal=Principal("shop", False))
    assert found == [mine["id"]]
    assert len(all_pages(job_queue.connection, JobFilter(metadata={"k": "v"}), 10)[0]) == 2
