"""Every private name of RQ (and redis-py) that offload's workers use, and every RQ behaviour
their overrides rely on, one test each (``app/jobs/engine/worker/``). An RQ upgrade that renames,
removes or changes one fails here, with a message naming it and the RQ version, instead of
somewhere in a worker at run time."""

from __future__ import annotations

import inspect
import zlib

import pytest
import redis
import rq
from rq import SimpleWorker, Worker
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from app.jobs.engine.worker import ForkingWorker, PersistentHorseWorker, SimpleWorker as EngineSimpleWorker
from app.jobs.engine.job import OffloadJob
from app.jobs.engine.queue import OffloadQueue

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RQ = f"RQ {rq.__version__}"


def _says(what: str, where: str) -> str:
    return f"{RQ}: {what} is gone or changed; offload's worker relies on it in {where}"


def _worker(connection, cls=Worker):  # noqa: ANN001, ANN202
    return cls([Queue("default", connection=connection)], connection=connection, serializer=JSONSerializer)


def _has_method(cls: type, name: str, params: tuple[str, ...], where: str) -> None:
    method = getattr(cls, name, None)
    assert callable(method), _says(f"{cls.__name__}.{name}", where)
    found = tuple(inspect.signature(method).parameters)
    assert found[: len(params)] == params, _says(f"{cls.__name__}.{name}{params} (now {found})", where)


# -- the worker's attributes --


def test_worker_stopped_job_id(fake_redis):
    worker = _worker(fake_redis)
    assert worker._stopped_job_id is None, _says("Worker._stopped_job_id (the job a stop-job command named)", "base.handle_job_failure, base.handle_payload, horse._horse_lost")


def test_worker_exc_handlers(fake_redis):
    worker = _worker(fake_redis)
    assert isinstance(worker._exc_handlers, list), _says("Worker._exc_handlers", "base.clean_registries")


def test_worker_ordered_queues(fake_redis):
    worker = _worker(fake_redis)
    assert [q.name for q in worker._ordered_queues] == ["default"], _says("Worker._ordered_queues", "fast._pop_ready")


def test_worker_shutdown_requested_date(fake_redis):
    worker = _worker(fake_redis)
    assert worker._shutdown_requested_date is None, _says("Worker._shutdown_requested_date", "base.stop_asked")


def test_worker_stop_requested_flag(fake_redis):
    worker = _worker(fake_redis)
    assert worker._stop_requested is False, _says("Worker._stop_requested (the warm stop's flag)", "base._shutdown, fast.work")


def test_worker_state_and_is_horse(fake_redis):
    worker = _worker(fake_redis)
    assert worker._state == "starting" and worker._is_horse is False, _says("Worker._state, Worker._is_horse", "fast._beat, horse._horse_main")


def test_worker_horse_pid(fake_redis):
    worker = _worker(fake_redis)
    assert worker._horse_pid == 0 and worker.horse_pid == 0, _says("Worker._horse_pid (read by horse_pid)", "horse._run_in_horse, horse.kill_horse")


def test_worker_dequeue_strategy(fake_redis):
    worker = _worker(fake_redis)
    worker._dequeue_strategy = "default"
    worker.reorder_queues(worker.queues[0])  # reads it
    assert worker._ordered_queues == worker.queues, _says("Worker._dequeue_strategy", "fast.work")


# -- the worker's methods offload overrides or calls --


def test_worker_shutdown_is_what_request_stop_calls():
    source = inspect.getsource(Worker.request_stop)
    assert "self._shutdown()" in source, _says("Worker.request_stop calling self._shutdown()", "base._shutdown (a flag, not StopRequested)")


def test_worker_start_scheduler():
    _has_method(Worker, "_start_scheduler", ("self", "burst", "logging_level", "date_format", "log_format"), "base._start_scheduler")


def test_worker_install_signal_handlers():
    _has_method(Worker, "_install_signal_handlers", ("self",), "fast.work")


def test_worker_release_slot_safely_is_called_by_handle_job_failure():
    assert "self._release_slot_safely(job)" in inspect.getsource(Worker.handle_job_failure), _says(
        "Worker._release_slot_safely called by handle_job_failure", "base._release_slot_safely (the slots listener does it)"
    )


def test_worker_enqueue_dependents_safely():
    _has_method(Worker, "_enqueue_dependents_safely", ("self", "queue", "job"), "fast._succeeded")


def test_worker_handle_stopped_job():
    _has_method(Worker, "_handle_stopped_job", ("self", "job", "queue", "execution"), "horse._horse_lost")


def test_worker_outcome_methods():
    _has_method(Worker, "handle_job_success", ("self", "job", "queue", "started_job_registry", "execution"), "base.handle_job_success")
    _has_method(Worker, "handle_job_failure", ("self", "job", "queue", "started_job_registry", "exc_string", "execution"), "base.handle_job_failure")
    _has_method(Worker, "handle_execution_ended", ("self", "job", "queue", "heartbeat_ttl"), "fast._succeeded_as_rq")
    _has_method(Worker, "prepare_job_execution", ("self", "job", "remove_from_intermediate_queue"), "forking.prepare_job_execution")
    _has_method(Worker, "perform_job", ("self", "job", "queue", "execution"), "forking.perform_job")
    _has_method(Worker, "fork_work_horse", ("self", "job", "queue"), "forking.perform")
    _has_method(Worker, "monitor_work_horse", ("self", "job", "queue", "execution"), "forking.perform")
    _has_method(Worker, "prepare_execution", ("self", "job"), "forking.start")


@pytest.mark.parametrize("outcome", ["finished", "failed"])
def test_rq_outcome_code_counts_the_job_inside_its_outcome_transaction(fake_redis, job_queue, settings, outcome):
    """handle_job_success and handle_job_failure call increment_*_job_count with their outcome
    transaction: EngineWorker adds the lifecycle's outcome commands there (``_book_into``)."""
    from app.worker import OffloadSimpleWorker

    from ...conftest import submit

    seen = []

    class Spy:
        def run(self, worker, job, queue):  # noqa: ANN001, ANN202
            in_hand = worker.start(job, queue)
            worker.book(job, queue, in_hand, worker.perform(job, queue, in_hand))

        def started(self, worker, job, pipeline):  # noqa: ANN001, ANN202
            pass

        def booked(self, worker, job, outcome, pipeline):  # noqa: ANN001, ANN202
            seen.append((outcome, "booked", len(pipeline.command_stack) > 0, pipeline.explicit_transaction or pipeline.transaction))

        def settled(self, worker, job, outcome):  # noqa: ANN001, ANN202
            seen.append((outcome, "settled", job.get_status(refresh=True)))

        def maintained(self, worker):  # noqa: ANN001, ANN202
            pass

    class SpyWorker(OffloadSimpleWorker):
        lifecycle = Spy()

    if outcome == "finished":
        submit(job_queue, settings, type="count_words", text="a b")
    else:
        job = OffloadJob.create("app.nowhere", connection=fake_redis, serializer=JSONSerializer, origin="default", meta={"type": "x"})
        OffloadQueue("default", connection=fake_redis, serializer=JSONSerializer, job_class=OffloadJob).enqueue_job(job)
    SpyWorker(list(job_queue.queues.values()), connection=fake_redis, serializer=JSONSerializer).work(burst=True)
    status = JobStatus.FINISHED if outcome == "finished" else JobStatus.FAILED
    assert seen == [(outcome, "booked", True, True), (outcome, "settled", status)], _says(
        f"Worker.increment_{'successful' if outcome == 'finished' else 'failed'}_job_count(pipeline) called inside the "
        f"outcome transaction (seen: {seen})", "base._book_into"
    )


def test_simple_worker_execute_job_is_prepare_then_perform():
    source = inspect.getsource(SimpleWorker.execute_job)
    assert "self.prepare_execution(job)" in source and "self.perform_job(" in source, _says(
        "SimpleWorker.execute_job (prepare_execution, then perform_job)", "forking.SimpleWorker's start and perform"
    )


def test_our_classes_override_what_they_mean_to():
    for cls in (ForkingWorker, EngineSimpleWorker, PersistentHorseWorker):
        for name in ("execute_job", "handle_job_success", "handle_job_failure", "_shutdown", "_release_slot_safely", "clean_registries"):
            assert getattr(cls, name) is not getattr(Worker, name), f"{cls.__name__}.{name} must override RQ's"


# -- the job --


def test_job_private_outcome_fields(fake_redis):
    job = Job.create("app.tasks.builtin.noop", connection=fake_redis, serializer=JSONSerializer)
    job._result = 1
    job._status = JobStatus.FINISHED
    assert job.get_status(refresh=False) == JobStatus.FINISHED and job.return_value(refresh=False) in (1, None), _says(
        "Job._result, Job._status", "fast._succeeded"
    )


def test_job_serialize_meta(fake_redis):
    job = Job.create("app.tasks.builtin.noop", connection=fake_redis, serializer=JSONSerializer, meta={"a": 1})
    assert job.serializer.loads(job._serialize_meta()) == {"a": 1}, _says("Job._serialize_meta", "fast._succeeded (meta saved with the outcome)")


def test_job_handle_success():
    _has_method(Job, "_handle_success", ("self", "result_ttl", "pipeline", "worker_name", "execution_id"), "fast._succeeded")


def test_job_data_is_zlib_compressed_in_the_hash(fake_redis):
    """payload.py keeps the stored ``data`` field (zlib of the serialized function and arguments) as read."""
    job = Job.create("app.tasks.builtin.noop", kwargs={"x": 1}, connection=fake_redis, serializer=JSONSerializer)
    stored = job.to_dict()["data"]
    assert zlib.decompress(stored) == job.data, _says("Job.to_dict()['data'] as zlib of Job.data", "payload.py")
    assert isinstance(Job.data, property) and Job.data.fset is not None, _says("Job.data (a property with a setter)", "payload.py")
    assert hasattr(job, "_data"), _says("Job._data", "payload.py")


# -- the scheduler and redis-py --


def test_scheduler_private_names(fake_redis):
    scheduler = RQScheduler([Queue("default", connection=fake_redis)], connection=fake_redis)
    assert scheduler._stop_requested is False and scheduler._process is None, _says("RQScheduler._stop_requested, _process", "scheduler.work, base.stop_scheduler")
    assert scheduler._queue_names == {"default"}, _says("RQScheduler._queue_names", "scheduler.should_reacquire_locks")
    assert hasattr(scheduler, "_scheduled_job_registries"), _says("RQScheduler._scheduled_job_registries", "scheduler.work")
    assert callable(scheduler._install_signal_handlers), _says("RQScheduler._install_signal_handlers", "scheduler.work")


def test_pubsub_worker_thread_running_event():
    source = inspect.getsource(redis.client.PubSubWorkerThread)
    assert "self._running" in source, f"redis-py {redis.__version__}: PubSubWorkerThread._running is gone; base.unsubscribe relies on it"


# -- RQ's storage, as the fast worker's dequeue script writes it --


def test_the_dequeue_script_starts_a_job_as_the_start_transaction_does(clean_valkey, settings):
    """The fast worker takes and starts a job in one script (``lua/dequeue.lua``), running the
    start transaction's commands recorded for a placeholder job. Whatever RQ's start writes (the
    execution, the registries, the job's fields), the script writes the same for the job it takes."""
    import re

    from app.jobs import JobQueue
    from app.worker import build_worker

    from ...conftest import submit

    connection = clean_valkey.client()
    queue = JobQueue(connection, settings)
    by_transaction = submit(queue, settings, type="count_words", text="a b")["id"]
    by_script = submit(queue, settings, type="count_words", text="c d")["id"]
    worker = build_worker(connection, settings)
    # taken apart from its start (RQ's dequeue_any, the forking worker's way), then started by the transaction
    job, rq_queue = worker.queue_class.dequeue_any(
        worker._ordered_queues, 1, connection=connection, job_class=worker.job_class, serializer=worker.serializer
    )
    assert job.id == by_transaction
    worker._start(job, rq_queue)
    job, rq_queue = worker._pop_ready()
    assert job.id == by_script and len(worker.executions) == 2

    def written(job_id: str) -> dict:
        """Every key holding the job's id, with its type and, for a hash, its field names; the
        job's status, attempts and worker; in which sorted sets and sets it is a member."""
        found = {}
        for raw in connection.scan_iter(count=1000):
            key = raw.decode()
            kind = connection.type(key).decode()
            members = []
            if kind == "zset":
                members = [m.decode() for m in connection.zrange(key, 0, -1)]
            elif kind == "set":
                members = [m.decode() for m in connection.smembers(key)]
            if job_id in key:
                fields = sorted(f.decode() for f in connection.hkeys(key)) if kind == "hash" else None
                found[re.sub(r"[0-9a-f]{32}", "EXEC", key.replace(job_id, "JOB"))] = (kind, fields)
            elif any(job_id in m for m in members):
                found[re.sub(r"[0-9a-f]{32}", "EXEC", key)] = ("member of", kind)
        fields = connection.hmget(f"rq:job:{job_id}", "status", "offload_attempts", "worker_name")
        found["job"] = [f.decode() for f in fields]
        return found

    assert written(by_script) == written(by_transaction), _says(
        "RQ's start transaction (Execution.create, Job.prepare_for_execution)", "lua/dequeue.lua (a start recorded and replayed)"
    )
    from app.jobs.keys import METRICS_KEY

    assert connection.hget(METRICS_KEY, "started:count_words") == b"2"  # the listeners' start commands ran for both


def test_resolve_serializer_is_looked_up_by_name_where_the_fast_worker_remembers_it():
    """The fast worker makes RQ's ``resolve_serializer`` remember its answers (fast.py,
    ``_check_serializers_once``) in the modules that build an object per job, which call it by
    their own global name; remembered, it answers as RQ's does, and still refuses a bad one."""
    import importlib

    import rq.serializers

    from app.jobs.engine.worker.fast import _SERIALIZER_CHECKS, _check_serializers_once

    for name in _SERIALIZER_CHECKS:
        module = importlib.import_module(name)
        assert "resolve_serializer" in vars(module), _says(f"{name}.resolve_serializer", "fast.py, _check_serializers_once")
        assert "resolve_serializer(" in inspect.getsource(module), _says(f"{name} calling resolve_serializer", "fast.py")
    _check_serializers_once()
    original = rq.serializers.resolve_serializer
    for name in _SERIALIZER_CHECKS:
        remembered = importlib.import_module(name).resolve_serializer
        assert getattr(remembered, "offload_remembers", False), name
        for serializer in (JSONSerializer, "rq.serializers.JSONSerializer", None):
            assert remembered(serializer) is original(serializer)
            assert remembered(serializer) is original(serializer)  # and again, remembered
        with pytest.raises(NotImplementedError):
            remembered(object())
