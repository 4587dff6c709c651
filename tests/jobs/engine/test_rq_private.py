"""What offload relies on of RQ beyond its public API, one test a fact, on a real Valkey.

Offload pins ``rq>=3.0,<3.1``. It calls a few of RQ's private methods and attributes and reads and
writes RQ's storage format by hand, all of it in :mod:`app.jobs.engine` (:mod:`~app.jobs.engine.private`,
:mod:`~app.jobs.engine.storage`, the job, queue and Lua scripts there). Each test below pins one
such name or fact and fails naming it and the RQ version, so moving to another RQ starts here:
run ``tests/jobs/engine``, mend what fails in ``app/jobs/engine``, then widen the pin
(docs/architecture.md, "Supported RQ versions").

The last tests hold every other module to it: outside ``app/jobs/engine`` nothing touches a name
RQ keeps private (read from RQ's own source, so a name RQ adds is covered too).
"""

from __future__ import annotations

import ast
import functools
import inspect
from datetime import UTC, datetime
from pathlib import Path

import pytest
import rq
from rq import Queue, Retry, Worker
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.rate_limit import RateLimit, RateLimitRegistry
from rq.registry import CanceledJobRegistry, FailedJobRegistry
from rq.results import Result
from rq.serializers import JSONSerializer
from rq.suspension import WORKERS_SUSPENDED, suspend
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from app.jobs.engine import private, scripts, storage
from app.jobs.engine.job import OffloadJob
from app.jobs.engine.queue import SUSPENDED, Dequeue, OffloadQueue
from app.jobs.keys import EVENTS_CHANNEL, PAUSED_QUEUES_KEY
from tests.conftest import ROOT

VERSION = rq.__version__


def pinned(holds: bool, name: str, what: str) -> None:
    """Fail loudly: which of RQ's names or storage facts changed, in which RQ."""
    assert holds, f"RQ {VERSION}: {name} {what} -- offload relies on it (app/jobs/engine); mend it there"


@pytest.fixture
def connection(clean_valkey):
    client = clean_valkey.client()
    yield client
    client.close()


def _queue(connection, name: str = "default") -> OffloadQueue:
    return OffloadQueue(name, connection=connection, serializer=JSONSerializer, job_class=OffloadJob)


def _job(queue: Queue, **options) -> Job:
    options.setdefault("meta", {"type": "noop"})
    return queue.create_job("app.tasks.noop", kwargs={}, **options)


# --- private attributes and methods -------------------------------------------------------------


def test_job_status_is_kept_in_job__status_and_get_status_reads_it(connection):
    job = _job(_queue(connection))
    pinned(hasattr(job, "_status"), "Job._status", "is gone")
    job._status = JobStatus.FINISHED
    pinned(job.get_status(refresh=False) == JobStatus.FINISHED, "Job._status", "is no longer what get_status(refresh=False) answers")


def test_job__dependency_ids_is_what_register_dependency_registers(connection):
    queue = _queue(connection)
    first, second = _job(queue), _job(queue)
    first.save()
    private.set_dependency_ids(second, [first.id])
    with connection.pipeline() as pipe:
        pipe.multi()
        second.register_dependency(pipeline=pipe)
        pipe.execute()
    dependents = {raw.decode() for raw in connection.smembers(storage.dependents_key(first.id))}
    pinned(dependents == {second.id}, "Job._dependency_ids", "is not what register_dependency() registers")
    pinned(second.dependency_ids == [first.id], "Job._dependency_ids", "is not what register_dependency() records as the job's")


def test_queue__enqueue_rate_limited_job_takes_a_pipeline_in_multi(connection):
    queue = _queue(connection)
    job = _job(queue, rate_limit=RateLimit("offload:test", 1))
    with connection.pipeline() as pipe:
        pipe.multi()
        private.enqueue_rate_limited(queue, job, pipe)
        pipe.execute()
    pinned(job.id.encode() in connection.lrange(queue.key, 0, -1), "Queue._enqueue_rate_limited_job(job, pipeline=)",
           "no longer queues a job whose limit has a free slot in the caller's transaction")


def test_queue__enqueue_job_puts_a_job_at_the_front_in_a_pipeline(connection):
    queue = _queue(connection)
    later, first = _job(queue), _job(queue)
    queue.enqueue_job(later)
    with connection.pipeline() as pipe:
        private.enqueue_at_front(queue, first, pipe)
        pipe.execute()
    pinned(queue.get_job_ids() == [first.id, later.id], "Queue._enqueue_job(job, pipeline=, at_front=True)", "no longer queues at the front")


def test_job__handle_failure_records_a_final_failure_in_the_callers_transaction(connection):
    queue = _queue(connection)
    job = _job(queue)
    job.save()
    with connection.pipeline() as pipe:
        pipe.multi()
        job.set_status(JobStatus.FAILED, pipeline=pipe)
        private.record_failure(job, "ValueError: no", pipe)
        pipe.execute()
    registry = FailedJobRegistry(queue.name, connection=connection)
    pinned(job.id in registry.get_job_ids(), "Job._handle_failure(exc_string, pipeline)", "no longer adds the job to its failed registry")
    result = job.latest_result()
    pinned(result is not None and "ValueError" in (result.exc_string or ""), "Job._handle_failure", "no longer keeps the error as a result")


@pytest.mark.parametrize("name", ["_handle_success", "_handle_failure", "_execute"])
def test_the_job_methods_offloadjob_overrides_are_rqs_with_the_same_parameters(name):
    ours, theirs = getattr(OffloadJob, name), getattr(Job, name, None)
    pinned(theirs is not None, f"Job.{name}", "is gone: OffloadJob's override would never be called")
    ours_params = list(inspect.signature(ours).parameters)
    theirs_params = list(inspect.signature(theirs).parameters)
    if ours_params[-2:] == ["args", "kwargs"]:
        ours_params = ours_params[:-2]
    pinned(theirs_params[: len(ours_params)] == ours_params, f"Job.{name}{inspect.signature(theirs)}",
           f"no longer takes what OffloadJob.{name}{inspect.signature(ours)} passes on")


# --- storage format -------------------------------------------------------------------------------


def test_a_job_hash_has_the_fields_offload_reads_and_writes_by_hand(connection):
    queue = _queue(connection)
    job = _job(queue, rate_limit=RateLimit("offload:test", 2), timeout=30)
    queue.enqueue_job(job)
    fields = {name.decode() for name in connection.hgetall(storage.job_key(job.id))}
    wanted = {*storage.SUMMARY_FIELDS, "enqueued_at"}
    pinned(wanted <= fields, f"the job hash ({sorted(fields)})", f"lacks {sorted(wanted - fields)}")
    summary = storage.read_summaries(connection, [job.id])[0]
    pinned(
        summary is not None and summary["origin"] == "default" and summary["meta"] == {"type": "noop"}
        and summary["timeout"] == 30 and summary["rate_limit_concurrency"] == 2,
        "the job hash's fields", f"no longer read as storage.read_summaries reads them: {summary}",
    )  # fmt: skip


def test_the_keys_offload_spells_are_rqs(connection):
    queue = _queue(connection)
    job = _job(queue)
    pinned(storage.job_key(job.id) == job.key, "Job.key", "is no longer rq:job:<id> (Job.key_for)")
    pinned(storage.job_id_of(job.key) == job.id, "Job.redis_job_namespace_prefix", "no longer prefixes the job key")
    pinned(storage.dependents_key(job.id) == job.dependents_key, "Job.dependents_key", "moved")
    pinned(storage.dependencies_key(job.id) == job.dependencies_key, "Job.dependencies_key", "moved")
    pinned(storage.queue_key("default") == queue.key, "Queue.redis_queue_namespace_prefix", "no longer prefixes the queue key")
    pinned(Result.get_key(job.id) == f"{rq.defaults.RQ_KEY_PREFIX}:results:{job.id}", "Result.get_key", "moved")


def test_queue_intermediate_queue_key_is_the_list_rq_and_offload_dequeue_onto(connection):
    queue = _queue(connection)
    rqs = IntermediateQueue.get_intermediate_queue_key(queue.key)
    pinned(queue.intermediate_queue_key == rqs, "Queue.intermediate_queue_key", "is not RQ's IntermediateQueue key")
    job = _job(queue)
    queue.enqueue_job(job)
    found = Dequeue(connection, job_class=OffloadJob, serializer=JSONSerializer).take([queue])
    pinned(isinstance(found, tuple) and found[0].id == job.id, "dequeue.lua", "took no job")
    pinned(IntermediateQueue(queue.key, connection=connection).get_job_ids() == [job.id], "IntermediateQueue",
           "does not see the job dequeue.lua moved onto queue.intermediate_queue_key")


def test_a_dequeued_job_restored_from_its_hash_is_the_job_rq_fetches(connection):
    queue = _queue(connection)
    job = _job(queue, meta={"type": "noop", "owner": "a"}, retry=Retry(max=2, interval=[1, 2]))
    queue.enqueue_job(job)
    taken, _ = Dequeue(connection, job_class=OffloadJob, serializer=JSONSerializer).take([queue])
    fetched = OffloadJob.fetch(job.id, connection=connection, serializer=JSONSerializer)
    for name in ("func_name", "kwargs", "meta", "origin", "timeout", "retries_left", "retry_intervals", "created_at"):
        pinned(getattr(taken, name) == getattr(fetched, name), f"Job.restore (the HGETALL dequeue.lua answers) {name}",
               "differs from Job.fetch's")


def test_rq_suspend_sets_the_key_dequeue_lua_checks(connection):
    queue = _queue(connection)
    queue.enqueue_job(_job(queue))
    suspend(connection)
    pinned(connection.exists(WORKERS_SUSPENDED) == 1, "rq.suspension.WORKERS_SUSPENDED", "is not the key suspend() sets")
    pinned(Dequeue(connection, job_class=OffloadJob).take([queue]) == SUSPENDED, "WORKERS_SUSPENDED", "is not what dequeue.lua checks")
    connection.sadd(PAUSED_QUEUES_KEY, "default")  # offload's own, checked beside it


def test_the_job_statuses_offload_writes_as_text_are_rqs():
    for value in ("queued", "canceled", "rate_limited", "failed", "finished", "deferred", "started", "stopped", "scheduled"):
        pinned(JobStatus(value).value == value, f"JobStatus({value!r})", "is gone (offload's Lua and storage.py write it as text)")


def test_storage_requeue_writes_what_rqs_requeue_does(connection):
    queue = _queue(connection)
    ours, theirs = _job(queue), _job(queue)
    for job in (ours, theirs):
        job.save()
        with connection.pipeline() as pipe:
            job.set_status(JobStatus.FAILED, pipeline=pipe)
            job.ended_at = datetime.now(UTC)
            pipe.hset(job.key, "ended_at", "2026-01-01T00:00:00.000000Z")
            FailedJobRegistry(queue.name, connection=connection).add(job, pipeline=pipe)
            pipe.execute()
    FailedJobRegistry(queue.name, connection=connection, job_class=OffloadJob, serializer=JSONSerializer).requeue(theirs)
    with connection.pipeline() as pipe:
        storage.requeue(connection, {queue.name: [ours.id]}, pipe)
        pipe.execute()
    for job in (ours, theirs):
        job.refresh()
    pinned(ours.get_status() == theirs.get_status() == JobStatus.QUEUED, "FailedJobRegistry.requeue", "no longer leaves a job queued")
    pinned(not ours.ended_at and not theirs.ended_at, "FailedJobRegistry.requeue", "no longer clears ended_at")
    pinned(bool(ours.enqueued_at) and bool(theirs.enqueued_at), "FailedJobRegistry.requeue", "no longer sets enqueued_at")
    for registry_class in (FailedJobRegistry, CanceledJobRegistry):
        registry = registry_class(queue.name, connection=connection)
        pinned(ours.id not in registry.get_job_ids() and theirs.id not in registry.get_job_ids(), f"{registry_class.__name__}.key",
               "still lists a requeued job")


def test_the_rate_limit_config_and_waiting_set_are_where_offload_reads_them(connection):
    registry = RateLimitRegistry("offload:test", connection)
    with connection.pipeline() as pipe:
        registry.register(3, pipe)
        pipe.execute()
    with connection.pipeline(transaction=False) as pipe:
        storage.ask_limit(pipe, registry)
        (limit,) = pipe.execute()
    pinned(limit == b"3", "RateLimitRegistry.config_key's 'concurrency' field", f"is {limit!r}, not the limit registered")
    pinned(storage.waiting_key(connection, "offload:test") == registry.rate_limited_key, "RateLimitRegistry.rate_limited_key", "moved")


def test_a_workers_registration_is_in_the_per_queue_set_offload_reads(connection):
    queue = _queue(connection)
    worker = Worker([queue], connection=connection)
    worker.register_birth()
    try:
        members = {raw.decode() for raw in connection.smembers(storage.workers_key(queue.name))}
        pinned(storage.workers_key(queue.name) == WORKERS_BY_QUEUE_KEY % queue.name, "WORKERS_BY_QUEUE_KEY", "changed")
        pinned(worker.key in members, "WORKERS_BY_QUEUE_KEY", "no longer lists the queue's workers")
    finally:
        worker.register_death()


def test_meta_saved_by_hand_is_read_back_by_rq(connection):
    job = _job(_queue(connection))
    job.save()
    job.meta["progress"] = {"done": 1, "total": 2}
    with connection.pipeline() as pipe:
        storage.save_meta(job, pipe)
        pipe.execute()
    pinned(Job.fetch(job.id, connection=connection, serializer=JSONSerializer).meta == job.meta, "the job hash's meta field",
           "is no longer the serializer's dump of Job.meta")


def test_the_cancel_script_cancels_a_queued_job_as_rq_would(connection):
    queue = _queue(connection)
    job = _job(queue)
    queue.enqueue_job(job)
    done = storage.QueuedCanceler(connection)([(job.id, queue.name, None)], EVENTS_CHANNEL)
    job.refresh()
    pinned(done == [job.id] and job.get_status() == JobStatus.CANCELED, "cancel_queued.lua", "did not cancel the queued job")
    pinned(job.id in CanceledJobRegistry(queue.name, connection=connection).get_job_ids(), "CanceledJobRegistry.key",
           "does not list the job canceled by hand")


def test_latest_results_reads_rqs_results_stream(connection):
    queue = _queue(connection)
    job = _job(queue)
    job.save()
    Result.create_failure(job, ttl=60, exc_string="KeyError: x")
    (found,) = storage.latest_results(connection, [job.id])
    pinned(found is not None and found.exc_string == job.latest_result().exc_string, "Result.get_key (a stream)",
           "is not where RQ keeps a job's results")


# --- nothing outside the engine uses RQ's private names ------------------------------------------------


@functools.cache
def rq_private_names() -> frozenset[str]:
    """Every ``_name`` (not ``__dunder__``) RQ's own source uses as an attribute or defines as a
    method: its private vocabulary, read from the installed RQ."""
    found = set()
    for path in Path(rq.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            name = node.attr if isinstance(node, ast.Attribute) else node.name if isinstance(node, ast.FunctionDef) else None
            if name and name.startswith("_") and not name.startswith("__"):
                found.add(name)
    return frozenset(found)


def _rq_sided_classes(trees: dict[Path, ast.Module]) -> set[str]:
    """Offload's classes built on RQ's (by name), and the mixins mixed into them: in them, ``self._x``
    is RQ's ``_x``."""
    rq_names = {alias.asname or alias.name for tree in trees.values() for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "rq" for alias in node.names}  # fmt: skip
    classes = [node for tree in trees.values() for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    sided = set()
    changed = True
    while changed:
        changed = False
        for node in classes:
            bases = {base.id if isinstance(base, ast.Name) else getattr(base, "attr", "") for base in node.bases}
            if node.name not in sided and bases & (rq_names | sided):
                sided |= {node.name} | bases
                changed = True
    return sided - rq_names


def _own_names(node: ast.ClassDef) -> set[str]:
    """What a class declares as its own: names assigned in its body, its methods, and the
    attributes its ``__init__`` sets on ``self``."""
    own = set()
    for child in node.body:
        if isinstance(child, ast.FunctionDef):
            own.add(child.name)
            if child.name == "__init__":
                own |= {target.attr for sub in ast.walk(child) if isinstance(sub, (ast.Assign, ast.AnnAssign))
                        for target in (sub.targets if isinstance(sub, ast.Assign) else [sub.target])
                        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self"}  # fmt: skip
        elif isinstance(child, ast.Assign):
            own |= {target.id for target in child.targets if isinstance(target, ast.Name)}
        elif isinstance(child, ast.AnnAssign) and isinstance(child.target, ast.Name):
            own.add(child.target.id)
    return own


def private_uses(source: str, path: str, sided: set[str]) -> list[str]:
    """Each use of one of RQ's private names in ``source``, as ``path:line: name``: ``obj._x``, and
    a method ``_x`` defined in a class built on RQ's (an override). ``self._x`` counts in a class
    built on RQ's, and in any other class that does not declare ``_x`` itself (a mixin made into
    an RQ class at run time); ``os._exit`` and the like, of a module offload imports, never."""
    vocabulary = rq_private_names()
    tree = ast.parse(source)
    modules = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    # ... and names imported from another library (Flask's ``request``: werkzeug's _get_current_object).
    modules |= {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] not in ("rq", "app")
        for alias in node.names
    }
    found = []

    def visit(node: ast.AST, in_class: ast.ClassDef | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, child)
                continue
            rq_sided = in_class is not None and in_class.name in sided
            if isinstance(child, ast.FunctionDef) and rq_sided and child.name in vocabulary:
                found.append(f"{path}:{child.lineno}: def {child.name}")
            if isinstance(child, ast.Attribute) and child.attr in vocabulary:
                owner = child.value.id if isinstance(child.value, ast.Name) else None
                own = owner in ("self", "cls") and in_class is not None and not rq_sided and child.attr in _own_names(in_class)
                if not own and owner not in modules:
                    found.append(f"{path}:{child.lineno}: {child.attr}")
            visit(child, in_class)

    visit(tree, None)
    return found


def test_the_private_name_checker_reads_attributes_overrides_and_own_names():
    source = (
        "import os\n"
        "from flask import request\n"
        "from rq.job import Job\n"
        "class Mine(Job):\n    def _handle_success(self): self._status = 1\n"
        "class Own:\n    def __init__(self): self._connection = None\n    def use(self): return self._connection\n"
        "class Mixin:\n    def data(self): return self._data\n"
        "def f(job, queue):\n    job._dependency_ids = []\n    queue._enqueue_job(job)\n    os._exit(0)\n"
        "def g():\n    return request._get_current_object(), job._get_current_object()\n"
    )
    found = private_uses(source, "x.py", {"Mine"})
    assert found == [
        "x.py:5: def _handle_success", "x.py:5: _status", "x.py:10: _data", "x.py:12: _dependency_ids", "x.py:13: _enqueue_job",
        "x.py:16: _get_current_object",
    ]  # fmt: skip
    tree = ast.parse("from rq import Worker\nclass M:\n    pass\nclass W(M, Worker):\n    pass\n")
    assert _rq_sided_classes({Path("x.py"): tree}) == {"M", "W"}


LAYERS = ["app/jobs", "app/web", "app/tasks", "app/dev", "offload", "app/worker"]


@pytest.mark.parametrize("layer", LAYERS)
def test_no_module_outside_the_engine_uses_rqs_private_names(layer):
    paths = sorted(path for path in (ROOT / layer).rglob("*.py") if "jobs/engine" not in path.relative_to(ROOT).as_posix())
    trees = {path: ast.parse(path.read_text()) for path in sorted((ROOT / "app").rglob("*.py"))}
    sided = _rq_sided_classes(trees)
    found = [use for path in paths for use in private_uses(path.read_text(), str(path.relative_to(ROOT)), sided)]
    assert not found, f"RQ {VERSION}'s private names outside app/jobs/engine (put them behind a function there):\n" + "\n".join(found)


def test_every_lua_script_is_a_file_loaded_by_name():
    inline = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "redis.call(" in node.value:
                inline.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not inline, (
        "Lua written inline (keep it in app/jobs/engine/lua/*.lua, loaded by scripts.register; the web's rate"
        " limiter, which talks to Redis through Flask-Limiter's storage, keeps its one script in app/web/ratelimit.lua):\n"
        + "\n".join(inline)
    )
    assert sorted(path.name for path in (ROOT / "app").rglob("*.lua") if "jobs/engine/lua" not in path.as_posix()) == [
        "ratelimit.lua"
    ]
    assert {"dequeue", "cancel_queued", "batch_job_ended", "orphaning", "server_time", "due_schedules", "submit"} <= set(scripts.names())
