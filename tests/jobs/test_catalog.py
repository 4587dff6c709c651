"""Only the task table runs (app/jobs/catalog.py, app/jobs/context.py): a job naming any other
function, or whose arguments no longer validate, fails clearly and runs nothing."""

from __future__ import annotations

from ..conftest import run_jobs


def test_unknown_function_is_refused_and_not_run(job_queue, tmp_path):
    marker = tmp_path / "made"
    job = job_queue.queues["default"].enqueue_call("os.mkdir", args=[str(marker)])
    run_jobs(job_queue)
    job.refresh()
    assert job.get_status() == "failed"
    assert "is not an offload task" in job.latest_result().exc_string
    assert not marker.exists()


def test_arguments_that_no_longer_validate_fail_clearly(job_queue, settings):
    job = job_queue.queues["default"].enqueue_call("app.tasks.count_words", kwargs={"text": ""})
    job.meta["type"] = "count_words"
    job.save_meta()
    run_jobs(job_queue)
    error = job_queue.get(job.id)["error"]
    assert error["type"] == "InvalidArgumentsError"
    assert "text" in error["message"]
