"""RQ's forking worker (``WORKER_CLASS=forking``) keeps the same promises as the default fast
worker: every fault-injection test, and the worker-facing integration and lifecycle tests, run
again here with it. Opt-in (``make test-forking-worker``, about 4 minutes) to keep CI short."""

from __future__ import annotations

import pytest

from . import test_faults, test_integration, test_lifecycle
from .test_lifecycle import receiver  # noqa: F401 - a fixture the re-run lifecycle tests use

pytestmark = [pytest.mark.integration, pytest.mark.forkingworker]

# The same tests, collected again in this module so that the stack_factory below serves them.
_RERUN = {
    test_faults: [name for name in dir(test_faults) if name.startswith("test_")],
    test_integration: [
        "test_count_words_round_trip_over_http",
        "test_email_arrives_at_the_smtp_server",
        "test_smtp_refusal_fails_the_job_with_an_smtp_error",
        "test_wait_returns_as_soon_as_the_job_ends",
        "test_worker_refuses_a_function_that_is_not_an_offload_task",
        "test_priority_queues_are_served_high_first",
        "test_worker_warm_shutdown_finishes_the_job",
        "test_worker_waits_for_redis_and_reconnects",
        "test_dashboard_shows_queues_and_workers_with_json_serializer",
    ],
    test_lifecycle: [
        "test_delayed_job_is_scheduled_then_runs_on_time",
        "test_retries_with_backoff_count_attempts_and_keep_the_last_error",
        "test_timeout_fails_the_attempt_and_says_so",
        "test_cancel_a_running_job_stops_it",
        "test_progress_is_reported_while_count_words_runs",
        "test_callback_is_signed_and_retried_until_delivered",
        "test_callback_of_a_failed_job",
    ],
}
for _module, _names in _RERUN.items():
    for _name in _names:
        assert hasattr(_module, _name), f"{_module.__name__}.{_name} was renamed: update this list"
        globals()[f"{_name}__forking"] = getattr(_module, _name)


@pytest.fixture
def stack_factory(stack_factory):
    """conftest's stack_factory, with the forking worker."""

    def make(workers: int = 1, web: bool = True, **extra_env: str):
        return stack_factory(workers, web, **{"WORKER_CLASS": "forking", **extra_env})

    return make
