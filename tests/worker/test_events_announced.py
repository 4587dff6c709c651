"""What a real worker announces on the job-events channel (a real Valkey, the deployment's worker
class): a job's start as ``<id> started`` (it cannot end the job: a ``?wait=`` does not read the
job again for it) and its end as the id alone. The fast worker's start is a recorded transaction
that ``lua/dequeue.lua`` replays for the job it takes, with the job's id put in for a placeholder,
inside the message too."""

from __future__ import annotations

import time

from app.jobs.keys import EVENTS_CHANNEL


def test_a_job_is_announced_started_then_ended(stack_factory, clean_valkey):
    stack = stack_factory(workers=1)
    pubsub = clean_valkey.client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(EVENTS_CHANNEL)
    pubsub.get_message(timeout=1)
    ids = [stack.post({"type": "noop"}).json()["id"] for _ in range(3)]
    for job_id in ids:
        assert stack.wait_for(job_id)["status"] == "finished"
    messages: list[str] = []
    deadline = time.monotonic() + 5
    while len(messages) < 6 and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message is not None and message["type"] == "message":
            messages.append(message["data"].decode())
    for job_id in ids:
        assert [m for m in messages if m.split(" ")[0] == job_id] == [f"{job_id} started", job_id], messages
