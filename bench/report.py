"""The benchmark's table, its targets (issues 8, 15 and 26) and its chart."""

from __future__ import annotations

from pathlib import Path

from bench.batch import table_lines as batch_table_lines

LABELS = {
    "offload-forking": "offload, forking worker (WORKER_CLASS=forking)",
    "offload-fast": "offload, fast worker (default)",
    "rq-forking": "plain rq worker (forking)",
    "rq-simple": "plain rq worker (SimpleWorker)",
    "celery": "Celery prefork (its defaults)",
    "celery-safe": "Celery prefork, not losing tasks",
    "dramatiq": "Dramatiq, Redis broker",
    "flower": "Celery + Flower 2 HTTP API",
}


def _get(data: dict, *path, default=None):  # noqa: ANN001, ANN202
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return default
        data = data[key]
    return data


def targets(results: dict) -> list[dict]:
    """The targets of issues 8, 15 and 26, each with the figure from this run and whether it is
    met. Issue 26 holds the drain to the anchors at equal guarantees: >= 1.5x Celery configured
    not to lose tasks, and >= 1.0x Celery's defaults (which lose a killed worker's task)."""
    out: list[dict] = []

    def add(name: str, contender: str | None, value, target: str, met) -> None:  # noqa: ANN001
        if value is not None:
            value = round(value, 3 if abs(value) < 10 else 1)
            out.append({"name": name, "contender": contender, "value": value, "target": target, "met": bool(met)})

    ratio = _get(results, "intake", "ratio")
    add("intake POST /jobs vs GET /healthz (same logging)", None, ratio, ">= 0.40", ratio is not None and ratio >= 0.40)
    for name in ("offload-forking", "offload-fast"):
        r = _get(results, "drain", "noop", "ratios", f"{name}/celery-safe")
        add("no-op drain vs Celery not losing tasks", name, r, ">= 1.5", r is not None and r >= 1.5)
        r = _get(results, "drain", "noop", "ratios", f"{name}/celery")
        add("no-op drain vs Celery's defaults", name, r, ">= 1.0", r is not None and r >= 1.0)
        p50, p99 = _get(results, "latency", name, "p50_ms"), _get(results, "latency", name, "p99_ms")
        add("latency p50 (ms)", name, p50, "< 5", p50 is not None and p50 < 5)
        add("latency p99 (ms)", name, p99, "< 15", p99 is not None and p99 < 15)
        b = _get(results, "bulk", name, "ratio")
        add("bulk vs in-process len(split)", name, b, ">= 0.80", b is not None and b >= 0.80)
        mem = _get(results, "memory", name) or {}
        for part in ("worker_rss", "horse_rss"):
            g = mem.get(f"{part}_growth_pct")
            if g is not None:
                first, last = _get(mem, "at_baseline", "jobs"), _get(mem, "at_end", "jobs")
                add(f"{part.replace('_', ' ')} growth {first:,} -> {last:,} jobs (%)", name, g, "< 10", g < 10)
    return out


def _fmt(value, digits: int = 1) -> str:  # noqa: ANN001
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(results: dict) -> str:
    m = results.get("machine", {})
    v = results.get("versions", {})
    fsync = _get(results, "config", "appendfsync", default="always")
    lines = [
        f"offload benchmark ({results.get('mode')} run, {results.get('started_at')}, {results.get('duration_s')} s)",
        f"machine: {m.get('cpus')} CPUs {m.get('cpu_model')}, {m.get('memory_mib')} MiB, Linux {m.get('kernel')}, Python {m.get('python')}",
        "versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
        f"Valkey appendfsync: {fsync}" + ("" if fsync == "always" else " (NOT as shipped: a what-if run)"),
        f"load average before: {_get(results, 'load_before', 'loadavg')}; CPU used by other processes, per phase (cores): "
        + ", ".join(f"{k} {val.get('foreign_cores')}" for k, val in results.get("load", {}).items()),
        "",
    ]
    intake = results.get("intake")
    if intake:
        lines += [
            f"INTAKE ({intake['tool']}, {intake['connections']} connections, {intake['seconds_each']} s x {len(intake['healthz']['rounds'])} rounds, median)",
            f"  {'':44s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'non-2xx':>8s}",
        ]
        for key, label in (
            ("healthz", "GET /healthz"),
            ("submit", "POST /jobs (auth, limits, idempotency, metrics)"),
            ("submit_user_task", "  same, a team's own task (@task, OFFLOAD_TASKS)"),
            ("submit_no_ratelimit", "  same, rate limiter off (diagnostic)"),
            ("flower_submit", "Flower async-apply (Celery, basic auth)"),
        ):
            d = intake.get(key)
            if d:
                lines.append(f"  {label:44s} {_fmt(d['rps'], 0):>9s} {_fmt(d['p50_ms'], 2):>8s} {_fmt(d['p99_ms'], 2):>8s} {d['non_2xx']:>8d}")
        lines.append(
            f"  POST / healthz: {_fmt(intake['ratio'], 3)} (rounds {intake['ratio_rounds']}); "
            f"with the limiter off {_fmt(intake.get('ratio_no_ratelimit'), 3)}"
        )
        if intake.get("user_task_to_builtin"):
            lines.append(f"  user task / count_words POST /jobs, per round: {intake['user_task_to_builtin']}")
        if intake.get("ratio_to_flower") is not None:
            lines.append(
                f"  offload POST /jobs / Flower async-apply: {_fmt(intake['ratio_to_flower'], 3)} (rounds {intake['ratio_to_flower_rounds']})"
            )
        lines.append("")
    lines += batch_table_lines(results.get("batch"))
    drain = results.get("drain")
    if drain:
        lines += [
            "DRAIN (jobs/s, 2 worker processes each, queue pre-filled, median of rounds; Celery not losing tasks: task_acks_late,",
            "       task_reject_on_worker_lost, worker_prefetch_multiplier=1; Dramatiq: 2 processes x 1 thread, prefetch 2 each)",
            f"  {'':44s} {'no-op':>9s} {'count_words':>12s}",
        ]
        for name in [k for k in drain.get("noop", {}) if k != "ratios"]:
            lines.append(
                f"  {LABELS.get(name, name):44s} {_fmt(_get(drain, 'noop', name, 'jobs_per_s'), 0):>9s} "
                f"{_fmt(_get(drain, 'count_words', name, 'jobs_per_s'), 0):>12s}"
            )
        for kind in ("noop", "count_words"):
            ratios = _get(drain, kind, "ratios") or {}
            if ratios:
                lines.append(f"  ratios ({kind}): " + ", ".join(f"{k} {val:.2f}" for k, val in ratios.items()))
        lines.append("")
    latency = results.get("latency")
    if latency:
        lines += [
            "LATENCY (submit to finished through HTTP, POST then GET ?wait=, idle workers; p50 of each part)",
            f"  {'':44s} {'n':>6s} {'p50 ms':>8s} {'p99 ms':>8s} {'POST':>7s} {'GET':>7s} {'enq->end':>9s}",
        ]
        for name, d in latency.items():
            if isinstance(d, dict) and "n" in d:
                lines.append(
                    f"  {LABELS.get(name, name):44s} {d['n']:>6d} {_fmt(d['p50_ms'], 2):>8s} {_fmt(d['p99_ms'], 2):>8s}"
                    f" {_fmt(d.get('post_p50_ms'), 2):>7s} {_fmt(d.get('wait_p50_ms'), 2):>7s} {_fmt(d.get('queue_to_end_p50_ms'), 1):>9s}"
                )
        for name, d in latency.items():
            if isinstance(d, dict) and d.get("to_enqueued_p50_ms") is not None:
                lines.append(
                    f"  {LABELS.get(name, name)}, p50 of each step: POST sent -> enqueued {d['to_enqueued_p50_ms']:.1f}, "
                    f"-> started {d['enqueued_to_started_p50_ms']:.1f}, -> ended {d['started_to_ended_p50_ms']:.1f}, "
                    f"-> answered {d['ended_to_answered_p50_ms']:.1f} ms"
                )
        for name, r in (latency.get("ratios_to_flower") or {}).items():
            lines.append(f"  {LABELS.get(name, name)} / Flower: p50 {r['p50']:.2f}, p99 {r['p99']:.2f} (below 1: offload answers sooner)")
        lines.append("")
    bulk = results.get("bulk")
    if bulk:
        lines += [
            f"BULK (count_words on {bulk['text_bytes']:,}-byte texts, one worker, MB/s)",
            f"  {'in-process len(text.split())':44s} {_fmt(bulk['in_process_split_mb_s']):>9s}"
            + (f"   rounds {bulk['in_process_split_rounds']}" if bulk.get("in_process_split_rounds") else ""),
            f"  {'in-process app.tasks.count_words':44s} {_fmt(bulk['in_process_count_words_mb_s']):>9s}",
        ]
        for name in ("offload-forking", "offload-fast"):
            if name in bulk:
                each = bulk[name].get("round_ratios")
                lines.append(
                    f"  {LABELS[name]:44s} {_fmt(bulk[name]['mb_s']):>9s}   ratio {bulk[name]['ratio']:.2f}"
                    + (f" (median of the rounds' {', '.join(f'{x:.2f}' for x in each)})" if each else "")
                )
        lines.append("")
    memory = results.get("memory")
    if memory:
        web = memory.get("web_peak_rss_mib") or {}
        lines += ["MEMORY (MiB)", f"  web: peak RSS of a gunicorn worker {_fmt(web.get('max_worker'))}, arbiter {_fmt(web.get('arbiter'))}"]
        for name, peaks in (memory.get("worker_peak_rss_mib") or {}).items():
            child = f", persistent child {peaks['child_mib']}" if peaks.get("child_mib") else ""
            lines.append(f"  {LABELS.get(name, name)}: peak RSS of the main process {peaks['main_mib']}{child}")
        for name in ("offload-fast", "offload-forking"):
            d = memory.get(name)
            if d and "at_end" in d:
                a, b = d.get("at_baseline", {}), d["at_end"]
                horse = f"; horse {a.get('horse_rss_mib')} -> {b.get('horse_rss_mib')}" if b.get("horse_rss_mib") else ""
                lines.append(
                    f"  {LABELS[name]}: worker RSS after {_fmt(a.get('jobs'))} jobs {a.get('worker_rss_mib')} -> after {_fmt(b['jobs'])} jobs {b['worker_rss_mib']}{horse}"
                )
        lines.append("")
    lines += sigkill_lines(results.get("sigkill"))
    marks = results.get("targets") or []
    if marks:
        lines += ["TARGETS (issues 8, 15 and 26)"]
        for t in marks:
            who = f" [{t['contender']}]" if t["contender"] else ""
            lines.append(f"  {'met ' if t['met'] else 'MISS'} {t['name']}{who}: {t['value']} (target {t['target']})")
    return "\n".join(lines)


def sigkill_lines(sigkill: dict | None) -> list[str]:
    """What a worker's SIGKILL did to the job in hand, per contender (bench/sigkill.py)."""
    if not sigkill:
        return []
    lines = [
        f"SIGKILL (one worker, all its processes killed while it runs a {sigkill['sleep_seconds']:.0f} s job; a new worker"
        f" started; the job watched {sigkill['wait_seconds']:.0f} s)"
    ]
    for name, d in sigkill.items():
        if not isinstance(d, dict):
            continue
        when = f" after {d['after_seconds']} s" if "after_seconds" in d else ""
        runs = f", {d['runs']} run{'' if d['runs'] == 1 else 's'}" if d.get("runs") is not None else ""
        detail = d.get("error") or d.get("timeout", "")
        lines.append(f"  {LABELS.get(name, name):47s} {d['outcome']}{when}{runs}   [{detail}]")
    return [*lines, ""]


SHORT = {
    "offload-forking": "offload\nforking",
    "offload-fast": "offload\nfast",
    "rq-forking": "rq worker\nforking",
    "rq-simple": "rq worker\nSimpleWorker",
    "celery": "Celery\nprefork",
    "celery-safe": "Celery\nacks_late",
    "dramatiq": "Dramatiq\nRedis",
    "flower": "Celery +\nFlower API",
}
COLORS = {
    "offload-forking": "#9aa5b1", "offload-fast": "#1f77b4", "rq-forking": "#c7b299", "rq-simple": "#e0a040", "celery": "#59a14f",
    "celery-safe": "#2e7d32", "dramatiq": "#b07aa1", "flower": "#8cd17d",
}  # fmt: skip


def chart(results: dict, path: Path) -> str | None:
    """A 2x3 PNG: drain, intake, latency, bulk, memory, targets. Returns a note when it could not be drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no chart"
    fig, axes = plt.subplots(2, 3, figsize=(17, 9.5))
    m = results.get("machine", {})
    load = _get(results, "load_before", "loadavg") or ["?"]
    foreign = max((v.get("foreign_cores", 0) for v in (results.get("load") or {}).values()), default=0)
    fig.suptitle(
        f"offload benchmark ({results.get('mode')} run, {results.get('started_at')}): {m.get('cpus')} CPUs {m.get('cpu_model')}, "
        f"load average before {load[0]}, other processes up to {foreign} cores during a phase",
        fontsize=11,
    )

    ax = axes[0][0]
    drain = results.get("drain") or {}
    names = [k for k in drain.get("noop", {}) if k != "ratios"]
    if names:
        kinds = ("noop", "count_words")
        width = 0.8 / len(names)
        top = 0.0
        for i, name in enumerate(names):
            values = [_get(drain, kind, name, "jobs_per_s") or 0 for kind in kinds]
            top = max(top, *values)
            bars = ax.bar([k + i * width for k in range(len(kinds))], values, width, label=SHORT.get(name, name).replace("\n", " "), color=COLORS.get(name))
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        ax.set_xticks([k + width * (len(names) - 1) / 2 for k in range(len(kinds))], ["no-op", "count_words (small)"])
        ax.set_ylim(0, top * 1.35)
        ax.set_ylabel("jobs/s, 2 worker processes each")
        ax.set_title("drain (queue pre-filled)")
        ax.legend(fontsize=7, loc="upper left", ncol=2)

    ax = axes[0][1]
    intake = results.get("intake")
    if intake:
        keys = [k for k in ("healthz", "submit", "submit_no_ratelimit", "flower_submit") if k in intake]
        labels = {
            "healthz": "GET /healthz", "submit": "POST /jobs", "submit_no_ratelimit": "POST /jobs\n(limiter off)",
            "flower_submit": "Flower\nasync-apply",
        }  # fmt: skip
        colors = {"healthz": "#9aa5b1", "submit": "#1f77b4", "submit_no_ratelimit": "#aec7e8", "flower_submit": "#59a14f"}
        values = [intake[k]["rps"] for k in keys]
        bars = ax.bar([labels[k] for k in keys], values, color=[colors[k] for k in keys])
        ax.bar_label(bars, labels=[f"{intake[k]['rps']:,.0f} req/s\np50 {intake[k]['p50_ms']:.1f} / p99 {intake[k]['p99_ms']:.0f} ms" for k in keys], fontsize=8)
        ax.axhline(0.4 * values[0], color="red", linestyle="--", linewidth=1, label="target: 40% of /healthz")
        ax.set_ylim(0, max(values) * 1.3)
        ax.set_ylabel(f"requests/s ({intake['tool']}, {intake['connections']} connections)")
        vs_flower = f", POST/Flower = {intake['ratio_to_flower']:.2f}" if intake.get("ratio_to_flower") else ""
        ax.set_title(f"intake, same gunicorn config: POST/healthz = {intake['ratio']:.2f}{vs_flower}", fontsize=10)
        ax.legend(fontsize=7)

    ax = axes[0][2]
    latency = {k: v for k, v in (results.get("latency") or {}).items() if isinstance(v, dict) and "p50_ms" in v}
    if latency:
        names = list(latency)
        x = range(len(names))
        p50 = [latency[n]["p50_ms"] for n in names]
        p99 = [latency[n]["p99_ms"] for n in names]
        b1 = ax.bar([i - 0.2 for i in x], p50, 0.4, label="p50", color="#1f77b4")
        b2 = ax.bar([i + 0.2 for i in x], p99, 0.4, label="p99", color="#ff7f0e")
        ax.bar_label(b1, fmt="%.1f", fontsize=8)
        ax.bar_label(b2, fmt="%.1f", fontsize=8)
        ax.axhline(5, color="#1f77b4", linestyle=":", linewidth=1, label="target p50: 5 ms")
        ax.axhline(15, color="#ff7f0e", linestyle=":", linewidth=1, label="target p99: 15 ms")
        ax.set_xticks(list(x), [SHORT.get(n, n) for n in names])
        ax.set_ylim(0, max(p99) * 1.2)
        ax.set_ylabel("ms, submit then wait until finished (HTTP)")
        ax.set_title("latency, idle workers")
        ax.legend(fontsize=7)

    ax = axes[1][0]
    bulk = results.get("bulk")
    if bulk:
        labels = ["in-process\nlen(split)", "in-process\ncount_words"]
        values = [bulk["in_process_split_mb_s"], bulk["in_process_count_words_mb_s"]]
        cols = ["#9aa5b1", "#c0c0c0"]
        for name in ("offload-forking", "offload-fast"):
            if name in bulk:
                labels.append(SHORT[name])
                values.append(bulk[name]["mb_s"])
                cols.append(COLORS[name])
        bars = ax.bar(labels, values, color=cols)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
        ax.axhline(0.8 * bulk["in_process_split_mb_s"], color="red", linestyle="--", linewidth=1, label="target: 80% of len(split)")
        ax.set_ylim(0, max(values) * 1.2)
        ax.set_ylabel("MB/s, 1 MiB texts, one worker")
        ax.set_title("bulk count_words")
        ax.legend(fontsize=7)

    ax = axes[1][1]
    memory = results.get("memory") or {}
    bars_data = []
    for name in ("offload-forking", "offload-fast"):
        d = memory.get(name) or {}
        a, b = d.get("at_baseline") or {}, d.get("at_end") or {}
        for part, label in (("worker_rss_mib", "worker"), ("horse_rss_mib", "horse")):
            if a.get(part) and b.get(part):
                bars_data.append((f"{SHORT[name]}\n{label}", a[part], b[part], a["jobs"], b["jobs"], COLORS[name]))
    if bars_data:
        x = range(len(bars_data))
        first = ax.bar([i - 0.2 for i in x], [d[1] for d in bars_data], 0.4, color="#d0d0d0", label="after ~1,000 jobs")
        last = ax.bar([i + 0.2 for i in x], [d[2] for d in bars_data], 0.4, color=[d[5] for d in bars_data], label="at the end")
        ax.bar_label(first, fmt="%.1f", fontsize=8)
        ax.bar_label(last, labels=[f"{d[2]:.1f}\n({d[4]:,} jobs)" for d in bars_data], fontsize=7)
        ax.set_xticks(list(x), [d[0] for d in bars_data], fontsize=8)
        ax.set_ylim(0, max(d[2] for d in bars_data) * 1.3)
        ax.set_ylabel("RSS, MiB (one worker)")
        ax.legend(fontsize=7, loc="lower right")
    web = memory.get("web_peak_rss_mib") or {}
    ax.set_title(f"memory: worker RSS growth; web worker peak {web.get('max_worker', '?')} MiB")

    ax = axes[1][2]
    ax.axis("off")
    lines = ["targets (issues 8, 15 and 26), this run:"]
    for t in results.get("targets") or []:
        who = f" [{t['contender']}]" if t["contender"] else ""
        lines.append(f"{'met ' if t['met'] else 'MISS'}  {t['name']}{who}: {t['value']} ({t['target']})")
    ax.text(0, 1, "\n".join(lines), va="top", ha="left", fontsize=7.5, family="monospace", wrap=True)

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None
