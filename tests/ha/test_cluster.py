"""The whole service on a Redis Cluster with real servers (three primaries, one binary).

The integration suite runs on a cluster too: the tests marked
``@pytest.mark.deployments(..., "cluster")`` (see ``tests/conftest.py``).
"""

from __future__ import annotations

import pytest
import redis

from ..conftest import Stack, wait_until
from .harness import Address, hash_tag


@pytest.mark.integration
@pytest.mark.ha
@pytest.mark.timeout(120)
def test_the_whole_service_runs_on_a_redis_cluster(redis_cluster, smtp, tmp_path):
    """Web, two workers, the scheduler, the limiter, the dashboard and the job events on a
    3-primary cluster; every key they write shares the hash tag, so one slot (one node)."""
    nodes = redis_cluster
    stack = Stack(
        Address(f"redis://127.0.0.1:{nodes[0].port}/0"),
        smtp.url,
        tmp_path,
        {
            "REDIS_CLUSTER": "1",
            "RQ_KEY_PREFIX": "{offload}",
            "DEFAULT_MAX_RETRIES": "0",
            "RETRY_BACKOFF_BASE_SECONDS": "1",
            "RATE_LIMIT_ENABLED": "1",
            "RATE_LIMIT_SUBMIT": "100000/second",
            "RATE_LIMIT_READ": "100000/second",
        },
    )
    try:
        stack.start_web()
        stack.start_worker()
        stack.start_worker()

        # A round trip, woken by the job-ended event (pub/sub on the cluster).
        text = "the quick brown fox\njumps over the lazy dog"
        response = stack.post({"type": "count_words", "text": text})
        assert response.status_code == 202, response.text
        body = stack.get(f"/jobs/{response.json()['id']}?wait=20").json()
        assert body["status"] == "finished", body
        assert body["result"] == {"words": 9, "characters": len(text), "lines": 2}

        # An email, through the SMTP server.
        mail = stack.post({"type": "send_email", "to": "a@example.com", "subject": "cluster", "body": "hi"}).json()
        assert stack.wait_for(mail["id"])["status"] == "finished"
        assert smtp.messages and smtp.messages[-1]["Subject"] == "cluster"

        # The scheduler (a process of its own, rebuilding its client through the adapter):
        # a delayed job, and a retry with backoff.
        delayed = stack.post({"type": "count_words", "text": "later", "delay_seconds": 1}).json()
        assert delayed["status"] == "scheduled"
        failing = stack.post({"type": "fail", "message": "boom", "max_retries": 1}).json()
        assert stack.wait_for(delayed["id"], timeout=30)["status"] == "finished"
        failed = stack.wait_for(failing["id"], timeout=30)
        assert failed["status"] == "failed" and failed["attempts"] == 2, failed

        # Cancel a running job: RQ's stop command over pub/sub to the worker.
        sleeper = stack.post({"type": "sleep", "seconds": 30}).json()
        wait_until(lambda: stack.get(f"/jobs/{sleeper['id']}").json()["status"] == "started", timeout=20, what="start")
        assert stack.session_post(f"/jobs/{sleeper['id']}/cancel").status_code == 202
        assert stack.wait_for(sleeper["id"], timeout=20)["status"] == "stopped"

        # Idempotency: the key's record and the job in one transaction (MULTI/EXEC on one node).
        first = stack.post({"type": "noop"}, headers={"Idempotency-Key": "cluster-1"})
        again = stack.post({"type": "noop"}, headers={"Idempotency-Key": "cluster-1"})
        assert first.status_code == again.status_code == 202
        assert again.headers.get("Idempotent-Replayed") == "true" and again.json()["id"] == first.json()["id"]

        # Listing, metrics, the limiter's headers, the dashboard.
        listed = stack.get("/jobs?limit=100").json()
        assert {body["id"], mail["id"], delayed["id"]} <= {job["id"] for job in listed["jobs"]}
        assert stack.get("/metrics").status_code == 200
        assert "RateLimit" in stack.get(f"/jobs/{body['id']}").headers
        queues = stack.get("/dashboard/0/data/queues.json")
        assert queues.status_code == 200, queues.text
        assert {"high", "default", "low"} <= {queue["name"] for queue in queues.json()["queues"]}
        workers = stack.get("/dashboard/0/data/workers.json")
        assert workers.status_code == 200, workers.text
        assert len(workers.json()["workers"]) == 2

        # Every key is in the {offload} slot: on one node, and none elsewhere.
        slot = redis.cluster.key_slot(b"{offload}")
        keys_by_node = {node.port: [key.decode() for key in node.client().scan_iter(count=1000)] for node in nodes}
        holders = [port for port, keys in keys_by_node.items() if keys]
        assert len(holders) == 1, {port: keys[:5] for port, keys in keys_by_node.items()}
        keys = keys_by_node[holders[0]]
        assert all(hash_tag(key) == "offload" for key in keys), [key for key in keys if hash_tag(key) != "offload"]
        # RQ's keys, offload's own, and the limiter's ("LIMITS:LIMITER/{offload}:offload:ratelimit/...").
        for part in ("{offload}:job:", "{offload}:queues", "{offload}:worker:", "{offload}:offload:idempotency", "{offload}:offload:ratelimit"):
            assert any(part in key for key in keys), part
        owner = next(node for node in nodes if node.port == holders[0])
        with owner.client().pipeline(transaction=True) as pipe:  # one moment: keys come and go
            pipe.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
            pipe.dbsize()
            in_slot, on_node = pipe.execute()
        assert in_slot == on_node > 0
        print(f"\nCluster: {len(keys)} keys, all in slot {slot} on the node at port {holders[0]}")
    finally:
        stack.stop()
        print(stack.logs()[-3000:] if stack.web and stack.web.returncode not in (None, 0, -15) else "")


@pytest.mark.integration
@pytest.mark.ha
@pytest.mark.deployments("cluster")
def test_rate_limits_answer_429_on_the_cluster(stack_factory):
    stack = stack_factory(workers=0, RATE_LIMIT_ENABLED="1", RATE_LIMIT_SUBMIT="3/minute")
    codes = [stack.post({"type": "noop"}).status_code for _ in range(4)]
    assert codes == [202, 202, 202, 429], codes
    limited = stack.post({"type": "noop"})
    assert limited.headers["Retry-After"] and limited.headers["Content-Type"].startswith("application/problem+json")
    assert stack.valkey.client().keys("LIMITS:LIMITER/{offload}:offload:ratelimit/*")
