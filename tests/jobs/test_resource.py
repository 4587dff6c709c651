"""The job resource (app/jobs/resource.py): how a stored exception is described to clients."""

from __future__ import annotations

from app.jobs.reading.resource import describe_exception


def test_describe_exception():
    assert describe_exception("Traceback...\napp.tasks.SmtpError: server said 554") == {
        "type": "SmtpError",
        "message": "server said 554",
    }
    timeout = describe_exception("rq.timeouts.JobTimeoutException: Task exceeded maximum timeout value (3 seconds)", 3)
    assert timeout["type"] == "JobTimeout" and "timed out" in timeout["message"]
    assert describe_exception("Work-horse terminated unexpectedly; waitpid returned 9")["type"] == "WorkerDied"
    assert describe_exception("Moved to FailedJobRegistry, due to AbandonedJobError, at x")["type"] == "WorkerDied"
    assert describe_exception("something odd happened")["type"] == "Error"
