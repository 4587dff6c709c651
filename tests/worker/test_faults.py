"""Fault injection with real processes: workers, the Redis server and the SMTP server are
killed and restarted for real, and no accepted job is lost or silently left behind.

Every test here runs with the default (fast) worker and again with RQ's forking worker
(``make test-forking-worker``)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from aiosmtpd.controller import Controller

from app.dev.smtp_sink import MailSink

from ..conftest import free_port, wait_until
from ..smtp_holding import start_holding_smtp

pytestmark = [pytest.mark.integration, pytest.mark.deployments("default", "forking")]

TERMINAL = ("finished", "failed", "canceled", "stopped")


def started(stack, job_id: str) -> bool:
    return stack.get(f"/jobs/{job_id}").json()["status"] == "started"


@pytest.mark.parametrize("slow_task", ["sleep", "crunch"])  # a built-in, and a team's own (tests/user_tasks.py)
def test_sigkilled_worker_job_is_retried_within_the_bound(stack_factory, slow_task):
    stack = stack_factory(workers=1)  # JOB_HEARTBEAT_SECONDS=2 in the test stack
    job_id = stack.post({"type": slow_task, "seconds": 2, "max_retries": 1}).json()["id"]
    wait_until(lambda: started(stack, job_id), what="the job to start")
    stack.workers[0].send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    stack.start_worker()
    done = stack.wait_for(job_id, timeout=60)
    recovered_in = time.monotonic() - killed_at
    assert done["status"] == "finished", done
    assert done["attempts"] == 2
    assert recovered_in < 30, recovered_in  # heartbeat 2 s: lapses after 9 s, maintenance every 2 s


def test_sigkilled_worker_job_without_retries_fails_saying_the_worker_died(stack_factory):
    stack = stack_factory(workers=1)
    job_id = stack.post({"type": "sleep", "seconds": 30, "max_retries": 0}).json()["id"]
    wait_until(lambda: started(stack, job_id), what="the job to start")
    stack.workers[0].send_signal(signal.SIGKILL)
    stack.start_worker()
    done = stack.wait_for(job_id, timeout=60)
    assert done["status"] == "failed"
    assert done["error"]["type"] == "WorkerDied"
    assert "died" in done["error"]["message"]


def test_the_work_horse_dies_with_its_worker(stack_factory):
    """No orphan keeps running (and later duplicating) the job of a killed worker."""
    stack = stack_factory(workers=1)
    job_id = stack.post({"type": "sleep", "seconds": 30, "max_retries": 0}).json()["id"]
    wait_until(lambda: started(stack, job_id), what="the job to start")
    worker = stack.workers[0]
    horses = [int(pid) for pid in open(f"/proc/{worker.pid}/task/{worker.pid}/children").read().split()]
    assert horses, "a forking worker runs the job in a child"
    worker.send_signal(signal.SIGKILL)
    worker.wait(5)
    wait_until(lambda: not any(os.path.exists(f"/proc/{pid}") and _alive(pid) for pid in horses), timeout=5,
               what="the work horse to die")  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("slow_task", ["sleep", "crunch"])  # a built-in, and a team's own (tests/user_tasks.py)
def test_second_sigterm_stops_the_job_and_requeues_it(stack_factory, slow_task):
    stack = stack_factory(workers=1)
    job_id = stack.post({"type": slow_task, "seconds": 30, "max_retries": 0}).json()["id"]
    wait_until(lambda: started(stack, job_id), what="the job to start")
    worker = stack.workers[0]
    worker.send_signal(signal.SIGTERM)
    time.sleep(1.5)  # RQ ignores a repeat within a second
    worker.send_signal(signal.SIGTERM)
    worker.wait(15)
    body = stack.get(f"/jobs/{job_id}").json()
    assert body["status"] == "queued", body
    assert body["error"]["type"] == "WorkerDied"
    stack.start_worker()
    wait_until(lambda: started(stack, job_id), what="another worker to take the job")
    assert stack.session_post(f"/jobs/{job_id}/cancel").status_code == 202


def test_redis_killed_and_restarted_on_its_aof_loses_no_accepted_job(stack_factory, clean_valkey):
    """With offload's Redis settings (AOF, appendfsync always) a 202 survives a SIGKILL of Redis.

    (With appendfsync everysec this lost one accepted job in about one run in eight on a loaded
    machine: Valkey postpones the AOF write, but not its reply, while a slow fsync runs.)"""
    assert clean_valkey.client().config_get("appendfsync")["appendfsync"] == "always"
    stack = stack_factory(workers=2)
    accepted: list[str] = []
    refused: list[float] = []
    stop = threading.Event()

    def submit_forever():
        n = 0
        while not stop.is_set():
            n += 1
            started_at = time.monotonic()
            try:
                response = stack.post({"type": "count_words", "text": f"job number {n}"})
            except requests.RequestException:
                continue
            if response.status_code == 202:
                accepted.append(response.json()["id"])
            else:
                assert response.status_code == 503, response.text
                assert response.headers["Retry-After"]
                refused.append(time.monotonic() - started_at)
                time.sleep(0.05)

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(submit_forever) for _ in range(3)]
        wait_until(lambda: len(accepted) > 50, what="some accepted jobs")
        clean_valkey.kill()  # SIGKILL
        time.sleep(2)
        down_ready = stack.get("/readyz")
        clean_valkey.start()  # same data dir: replays the AOF
        time.sleep(1)
        stop.set()
        for future in futures:
            future.result()
    assert down_ready.status_code == 503
    assert refused, "submissions during the outage must be refused with 503"
    assert max(refused) < 2.5, max(refused)
    # Every job that got a 202 still exists and ends.
    for job_id in accepted:
        body = stack.wait_for(job_id, timeout=30)
        assert body["status"] == "finished", body
    # Workers came back by themselves and show in the dashboard again.
    wait_until(lambda: len(stack.get("/dashboard/0/data/workers.json").json()["workers"]) >= 2, timeout=30,
               what="the workers to re-register")  # fmt: skip
    assert all(worker.poll() is None for worker in stack.workers)


def test_smtp_down_retries_then_fails_naming_the_smtp_failure(stack_factory):
    # A port held bound but not listening: connections are refused, and no other test running
    # beside this one (make test runs three processes) can start a server on it meanwhile.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        dead = f"smtp://127.0.0.1:{held.getsockname()[1]}"
        stack = stack_factory(SMTP_URL=dead, RETRY_BACKOFF_BASE_SECONDS="1", RETRY_BACKOFF_MAX_SECONDS="1")
        job_id = stack.post({"type": "send_email", "to": "a@example.com", "body": "x", "max_retries": 2}).json()["id"]
        done = stack.wait_for(job_id, timeout=40)
    assert done["status"] == "failed"
    assert done["attempts"] == 3
    assert done["error"]["type"] == "SmtpError"
    assert "could not deliver through SMTP server 127.0.0.1" in done["error"]["message"]


class QuitGatedSink(MailSink):
    """Accepts mail, then holds the QUIT answer until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.quitting = threading.Event()

    async def handle_QUIT(self, server, session, envelope):  # noqa: N802
        self.quitting.set()
        await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 30)
        return "221 Bye"


def test_retry_after_a_successful_send_does_not_send_again(stack_factory, clean_valkey):
    sink = QuitGatedSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        stack = stack_factory(workers=1, SMTP_URL=f"smtp://127.0.0.1:{port}")
        job_id = stack.post({"type": "send_email", "to": "once@example.com", "body": "only once", "max_retries": 2}).json()["id"]
        assert sink.quitting.wait(20), "the worker should reach QUIT"
        assert len(sink.messages) == 1
        stack.workers[0].send_signal(signal.SIGKILL)  # killed right after the send
        # Reaped before the QUIT is answered: the worker's exit has sent its horse SIGKILL
        # (PR_SET_PDEATHSIG), so the horse cannot read "221 Bye" and record the job's end
        # itself, as RQ's forking horse otherwise could in the moment between the two.
        stack.workers[0].wait(timeout=10)
        sink.gate.set()
        stack.start_worker()
        done = stack.wait_for(job_id, timeout=60)
        assert done["status"] == "finished", done
        assert done["attempts"] == 2
        assert len(sink.messages) == 1, "the retry must not send the message again"
        assert done["result"]["message_id"] == sink.messages[0]["Message-ID"]
    finally:
        sink.gate.set()
        controller.stop()


def test_raise_timeout_and_invalid_arguments_fail_clearly_and_the_worker_goes_on(stack, clean_valkey):
    from rq import Queue
    from rq.serializers import JSONSerializer

    raising = stack.post({"type": "fail", "message": "bad input", "max_retries": 0}).json()["id"]
    slow = stack.post({"type": "sleep", "seconds": 20, "timeout_seconds": 1, "max_retries": 0}).json()["id"]
    queue = Queue("default", connection=clean_valkey.client(), serializer=JSONSerializer)
    stale = queue.enqueue_call("app.tasks.count_words", kwargs={"text": "", "extra": 1}, meta={"type": "count_words"})
    after = stack.post({"type": "count_words", "text": "still working"}).json()["id"]
    assert stack.wait_for(raising)["error"] == {"type": "RuntimeError", "message": "bad input"}
    assert stack.wait_for(slow)["error"]["type"] == "JobTimeout"
    invalid = stack.wait_for(stale.id)
    assert invalid["status"] == "failed" and invalid["error"]["type"] == "InvalidArgumentsError"
    assert stack.wait_for(after)["result"]["words"] == 2
    assert stack.workers[0].poll() is None


def _horses(worker) -> list[int]:
    return [int(pid) for pid in open(f"/proc/{worker.pid}/task/{worker.pid}/children").read().split()]


def test_a_worker_killed_before_the_servers_354_is_retried_and_sends_the_message_once(stack_factory):
    """Issue 25: killed while the SMTP server had not yet answered DATA (no byte of the message
    sent), the attempt provably sent nothing: the retry sends the message, and it arrives once."""
    controller, sink, url = start_holding_smtp("354")
    try:
        stack = stack_factory(workers=1, SMTP_URL=url)
        job_id = stack.post({"type": "send_email", "to": "x@example.com", "body": "b", "max_retries": 3}).json()["id"]
        assert sink.holding.wait(20), "the worker should reach DATA"
        worker = stack.workers[0]
        horses = _horses(worker)
        worker.send_signal(signal.SIGKILL)
        worker.wait(5)
        wait_until(lambda: not any(_alive(pid) for pid in horses), timeout=5, what="the work horse to die")
        sink.gate.set()  # the held DATA is answered on a closed connection; the retry's is not held
        stack.start_worker()
        done = stack.wait_for(job_id, timeout=60)
        assert done["status"] == "finished", done
        assert done["attempts"] == 2
        assert sink.data_commands == 2
        assert len(sink.messages) == 1
        assert done["result"]["message_id"] == sink.messages[0]["Message-ID"]
    finally:
        sink.gate.set()
        controller.stop()


def test_a_worker_dying_after_the_end_of_the_message_leaves_a_clear_failure_not_a_duplicate(stack_factory):
    """Killed after the whole message, its end included, reached the server and before the answer:
    it may have been delivered, so the job fails DeliveryUnknown and the retry sends nothing."""
    controller, sink, url = start_holding_smtp("end")
    try:
        stack = stack_factory(workers=1, SMTP_URL=url)
        job_id = stack.post({"type": "send_email", "to": "x@example.com", "body": "b", "max_retries": 3}).json()["id"]
        assert sink.holding.wait(20)
        worker = stack.workers[0]
        horses = _horses(worker)
        worker.send_signal(signal.SIGKILL)  # the outcome of this transfer is unknown
        worker.wait(5)
        # Only once the horse is gone may the server answer: a horse still alive would read the
        # 250, record the receipt and finish the job, which is a correct outcome, not this test's.
        wait_until(lambda: not any(_alive(pid) for pid in horses), timeout=5, what="the work horse to die")
        sink.gate.set()
        stack.start_worker()
        done = stack.wait_for(job_id, timeout=60)
        assert done["status"] == "failed", done
        assert done["error"]["type"] == "DeliveryUnknown"
        assert done["attempts"] == 2  # no further retries: each could send a duplicate
        assert sink.data_commands == 1  # the retry did not start another transfer
        assert len(sink.messages) <= 1
    finally:
        sink.gate.set()
        controller.stop()


def test_a_worker_sigkilled_mid_send_email_at_default_settings_ends_its_job_within_35_s(stack_factory):
    """Issue 16: under ``make run`` defaults (10 s heartbeat, two workers, one restarted) a worker
    SIGKILLed mid-transfer left its job running for 62 s; docs/reliability.md promises under 35 s.

    The time went to: the heartbeat lapse (25 s after the last beat), an idle worker's maintenance
    running only every 15 s (it blocks on the queue for worker_ttl - 15 s), and the retry's backoff
    (5 s +-20 %) through the scheduler. Now: maintenance every half beat, idle workers included, and
    a job whose worker died is requeued at once: at most 25 + 5 s and a round trip."""
    controller, sink, url = start_holding_smtp("end")
    port = int(url.rpartition(":")[2])
    try:
        stack = stack_factory(workers=2, SMTP_URL=url, JOB_HEARTBEAT_SECONDS="10")
        job_id = stack.post({"type": "send_email", "to": "x@example.com", "body": "b", "max_retries": 3}).json()["id"]
        assert sink.holding.wait(20)
        worker = next(w for w in stack.workers if open(f"/proc/{w.pid}/task/{w.pid}/children").read().split()
                      and _in_transfer(w.pid, port))  # fmt: skip
        horses = _horses(worker)
        worker.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        worker.wait(5)
        wait_until(lambda: not any(_alive(pid) for pid in horses), timeout=5, what="the work horse to die")
        sink.gate.set()
        stack.start_worker()  # as supervisord restarts it
        done = stack.wait_for(job_id, timeout=90)
        ended_in = time.monotonic() - killed_at
        assert done["status"] == "failed" and done["error"]["type"] == "DeliveryUnknown", done
        assert ended_in < 35, f"the job ended {ended_in:.1f} s after its worker was killed"
    finally:
        sink.gate.set()
        controller.stop()


def _in_transfer(worker_pid: int, smtp_port: int) -> bool:
    """Whether one of the worker's children (its work horse) holds a connection to the SMTP port."""
    import subprocess

    children = open(f"/proc/{worker_pid}/task/{worker_pid}/children").read().split()
    sockets = subprocess.run(["ss", "-tnp"], capture_output=True, text=True).stdout
    return any(f":{smtp_port} " in line and f"pid={child}," in line for line in sockets.splitlines() for child in children)
