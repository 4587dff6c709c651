"""``make bench`` works: a cut-down ``--quick`` run (its own Valkey and gunicorn, the fast
worker, the asyncio load generator) writes a well-formed results file. No figure is judged."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.integration


def _quick_bench(tmp_path, phases: str, contenders: str, name: str, timeout: float = 240) -> dict:
    """``python -m bench --quick`` of ``phases`` and ``contenders``; its JSON results."""
    command = [
        sys.executable, "-m", "bench", "--quick", "--phases", phases, "--contenders", contenders,
        "--python-load", "--no-install", "--no-chart", "--wait-quiet", "0", "--out", str(tmp_path), "--name", name,
    ]  # fmt: skip
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads((tmp_path / f"{name}.json").read_text())


def test_quick_bench_writes_well_formed_results(tmp_path):
    results = _quick_bench(tmp_path, "intake,drain,latency", "offload-fast", "smoke")
    assert "TARGETS" in (tmp_path / "smoke.txt").read_text()

    assert results["schema"] == 1 and results["mode"] == "quick"
    assert results["machine"]["cpus"] >= 1
    assert results["versions"]["rq"] and results["versions"]["valkey"]
    assert set(results["load"]) == {"intake", "drain", "latency"}
    for phase in results["load"].values():
        assert {"busy_cores", "bench_cores", "foreign_cores", "loadavg_1m_at_start"} <= set(phase)

    intake = results["intake"]
    for which in ("healthz", "submit", "submit_user_task"):
        assert intake[which]["rps"] > 0 and intake[which]["p50_ms"] > 0 and intake[which]["p99_ms"] >= intake[which]["p50_ms"]
        assert intake[which]["non_2xx"] == 0, "every submission is accepted: the raised rate limit never bites"
    assert isinstance(intake["ratio"], float)
    assert all(isinstance(ratio, float) for ratio in intake["user_task_to_builtin"])  # a team's task, submitted alike

    for kind in ("noop", "count_words"):
        cell = results["drain"][kind]["offload-fast"]
        assert cell["jobs_per_s"] > 0 and cell["rounds"][0]["measured_jobs"] > 0

    latency = results["latency"]["offload-fast"]
    assert latency["n"] > 0 and 0 < latency["p50_ms"] <= latency["p99_ms"]
    # the job's life on one clock: each step measured, together about the whole (ms timestamps)
    steps = [latency[f"{step}_p50_ms"] for step in ("to_enqueued", "enqueued_to_started", "started_to_ended", "ended_to_answered")]
    assert all(step is not None and step >= -1 for step in steps), steps
    assert abs(sum(steps) - latency["p50_ms"]) < latency["p50_ms"], (steps, latency["p50_ms"])
    assert "p50 of each step" in (tmp_path / "smoke.txt").read_text()

    assert results["memory"]["web_peak_rss_mib"]["max_worker"] > 0
    assert results["memory"]["worker_peak_rss_mib"]["offload-fast"]["main_mib"] > 0
    assert all({"name", "value", "target", "met"} <= set(t) for t in results["targets"])
    assert any(t["name"].startswith("intake") for t in results["targets"])


def test_quick_batch_phase_measures_jobs_accepted_per_second(tmp_path):
    """``--phases batch`` alone (what ``make bench`` runs among the others): POST /jobs beside
    batches of 100 and 1,000 jobs, every answer a 202."""
    command = [
        sys.executable, "-m", "bench", "--quick", "--phases", "batch", "--python-load", "--no-install", "--no-chart",
        "--wait-quiet", "0", "--out", str(tmp_path), "--name", "batch",
    ]  # fmt: skip
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    batch = json.loads((tmp_path / "batch.json").read_text())["batch"]
    for size in ("1", "100", "1000"):
        assert batch[size]["jobs_per_s"] > 0 and batch[size]["non_2xx"] == 0 and batch[size]["errors"] == 0
    assert set(batch["speedup"]) == {"100", "1000"}
    assert "BATCH SUBMIT" in (tmp_path / "batch.txt").read_text()


@pytest.mark.benchextra
def test_quick_intake_and_latency_put_celery_and_flower_beside_offload(tmp_path):
    """Issue 15: Celery + Flower 2's HTTP API (async-apply, then result?timeout=) in the same
    intake and latency rounds as offload, with basic auth on, and the ratios in the table."""
    pytest.importorskip("flower", reason="Celery + Flower are the bench extra: pip install -e '.[bench]'")
    results = _quick_bench(tmp_path, "intake,latency", "offload-fast,flower", "flower")
    intake, latency = results["intake"], results["latency"]
    assert intake["flower_submit"]["rps"] > 0 and intake["flower_submit"]["non_2xx"] == 0
    assert intake["ratio_to_flower"] > 0 and intake["flower"]["auth"] == "basic"
    assert latency["flower"]["n"] > 0 and 0 < latency["flower"]["p50_ms"] <= latency["flower"]["p99_ms"]
    assert set(latency["ratios_to_flower"]) == {"offload-fast"}
    table = (tmp_path / "flower.txt").read_text()
    assert "Flower async-apply" in table and "offload POST /jobs / Flower async-apply" in table
    assert "Celery + Flower 2 HTTP API" in table


def test_targets_hold_the_drain_to_the_anchors_at_equal_guarantees_and_the_table_names_a_what_if_run():
    """report.targets judges the no-op drain as issue 26 asks: >= 1.5x Celery configured not to
    lose tasks and >= 1.0x Celery's defaults (issue 15 held it to 1.5x the defaults); the table
    marks a run on a Valkey without ``appendfsync always`` as not the shipped setup."""
    from bench import report

    def drain(ratios: dict) -> dict:
        results = {"drain": {"noop": {"ratios": ratios}}}
        return {t["name"]: t for t in report.targets(results)}

    marks = drain({"offload-fast/celery": 1.04, "offload-fast/celery-safe": 1.6})
    safe, defaults = marks["no-op drain vs Celery not losing tasks"], marks["no-op drain vs Celery's defaults"]
    assert (safe["target"], safe["met"], defaults["target"], defaults["met"]) == (">= 1.5", True, ">= 1.0", True)
    marks = drain({"offload-fast/celery": 0.99, "offload-fast/celery-safe": 1.49})
    assert not marks["no-op drain vs Celery not losing tasks"]["met"] and not marks["no-op drain vs Celery's defaults"]["met"]

    shipped = report.table({"config": {"appendfsync": "always"}})
    what_if = report.table({"config": {"appendfsync": "no"}})
    assert "Valkey appendfsync: always\n" in shipped and "NOT as shipped" not in shipped
    assert "Valkey appendfsync: no (NOT as shipped: a what-if run)" in what_if


def test_the_table_says_what_a_sigkill_did_to_each_contenders_job():
    from bench import report

    sigkill = {
        "sleep_seconds": 3.0, "wait_seconds": 30.0,
        "offload-fast": {"outcome": "run again", "runs": 2, "after_seconds": 11.7, "timeout": "JOB_HEARTBEAT_SECONDS 2 s here (10 s by default)"},
        "celery": {"outcome": "lost", "runs": 1, "waited_seconds": 30.0, "timeout": "visibility_timeout 10 s here (1 h by default)"},
    }  # fmt: skip
    table = report.table({"sigkill": sigkill})
    assert "SIGKILL (" in table
    assert re.search(r"offload, fast worker \(default\) +run again after 11.7 s, 2 runs +\[JOB_HEARTBEAT_SECONDS 2 s", table)
    assert re.search(r"Celery prefork \(its defaults\) +lost, 1 run +\[visibility_timeout 10 s here \(1 h by default\)\]", table)


@pytest.mark.benchextra
@pytest.mark.timeout(540)
def test_quick_drain_and_sigkill_put_celery_not_losing_tasks_and_dramatiq_beside_offload(tmp_path):
    """Issue 26, item 5: Celery at its defaults, Celery configured not to lose tasks and Dramatiq
    on its Redis broker drain in the same rounds as offload, and a worker SIGKILLed mid-job loses
    the job only under Celery's defaults (acknowledged on receipt); the others run it again."""
    pytest.importorskip("dramatiq", reason="Dramatiq is the bench extra: pip install -e '.[bench]'")
    pytest.importorskip("celery", reason="Celery is the bench extra: pip install -e '.[bench]'")
    contenders = "offload-fast,celery,celery-safe,dramatiq"
    results = _quick_bench(tmp_path, "drain,sigkill", contenders, "anchors", timeout=480)
    for kind in ("noop", "count_words"):
        for name in contenders.split(","):
            assert results["drain"][kind][name]["jobs_per_s"] > 0, (kind, name)
        assert {"offload-fast/celery", "offload-fast/celery-safe", "offload-fast/dramatiq"} <= set(results["drain"][kind]["ratios"])
    outcomes = {name: results["sigkill"][name]["outcome"] for name in contenders.split(",")}
    assert outcomes == {"offload-fast": "run again", "celery": "lost", "celery-safe": "run again", "dramatiq": "run again"}, results["sigkill"]
    assert results["sigkill"]["offload-fast"]["runs"] == 2 and results["sigkill"]["celery"]["runs"] == 1
    table = (tmp_path / "anchors.txt").read_text()
    assert "Celery prefork, not losing tasks" in table and "Dramatiq, Redis broker" in table and "SIGKILL (" in table
    assert "no-op drain vs Celery not losing tasks" in table and "no-op drain vs Celery's defaults" in table
