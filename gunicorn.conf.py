"""Gunicorn's configuration for offload: ``gunicorn --config gunicorn.conf.py wsgi:app``.

Everything comes from the same environment variables the app reads, validated by the same
code (:mod:`app.settings`), so gunicorn and the app never disagree about them:

==================  ========================================================  =============
variable            gunicorn setting                                          default
==================  ========================================================  =============
HOST, PORT          ``bind`` (an IPv6 host is bracketed)                      127.0.0.1:8000
WEB_CONCURRENCY     ``workers`` (processes)                                   2
WEB_THREADS         ``threads`` per process, ``worker_class = "gthread"``     16
MAX_WAIT_SECONDS    ``graceful_timeout`` = MAX_WAIT_SECONDS + 5 (a ``?wait=`` 30 (so 35 s)
                    in flight answers at once on SIGTERM: app/web/jobs.py)
LOG_LEVEL           ``loglevel``                                              INFO
==================  ========================================================  =============

(The Docker image sets ``HOST=0.0.0.0``.) Any other gunicorn option can be given on the
command line or in ``GUNICORN_CMD_ARGS``, which take precedence over this file.

A bad setting, or a non-loopback HOST without API_KEYS, stops gunicorn here, before it
binds, with one line per problem on stderr (never the offending value: it may be a secret).
"""

from __future__ import annotations

import os
import sys

# Prometheus multiprocess mode: each gunicorn process writes its HTTP metrics to files in a
# directory of this server's own (made fresh at start), and /metrics sums them, whichever
# process answers the scrape. Job metrics come from Redis instead (see app/web/metrics.py).
# Set before anything imports prometheus_client (importing app.settings imports the app).
# The directory is this master's (its pid in the name): removed when the master exits
# (on_exit below), and one left by a master that was killed is removed by the next start.
_METRICS_PREFIX = "offload-metrics-"
_OWN_METRICS_DIR = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    _OWN_METRICS_DIR = tempfile.mkdtemp(prefix=f"{_METRICS_PREFIX}{os.getpid()}-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _OWN_METRICS_DIR

from pydantic import ValidationError  # noqa: E402

from app.settings import get_settings  # noqa: E402


def _fail(message: str) -> None:
    sys.stderr.write(f"offload: cannot start: {message}\n")
    sys.stderr.flush()
    raise SystemExit(1)  # not an Exception: gunicorn does not catch it and exits with 1


try:
    _settings = get_settings()
except ValidationError as exc:
    _fail(
        "; ".join(
            f"{'.'.join(str(part) for part in error['loc']).upper() or 'settings'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
    )
try:
    _settings.check_bind_is_safe()
except RuntimeError as exc:
    _fail(str(exc))

# The team's tasks (OFFLOAD_TASKS, the offload.tasks entry points), in the master first: a module
# that cannot be loaded stops gunicorn here with its name, before any worker is forked.
from app.jobs import catalog  # noqa: E402

catalog.load_or_exit(worker=False)


def _bind_address(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6
    return f"{host}:{port}"


#: glibc's mallopt() parameter that caps the malloc arenas (malloc.h: M_ARENA_MAX).
_M_ARENA_MAX = -8


def _limit_malloc_arenas(limit: int = 2) -> None:
    """At most ``limit`` malloc arenas in this process and the workers it forks.

    glibc gives a thread that allocates an arena of its own (up to eight a core), and the
    gthread workers run 16 threads each: what one request frees stays in its thread's arena, and
    a worker's RSS grows with the busiest moment of every thread. Two arenas, as
    ``MALLOC_ARENA_MAX=2`` in the environment would give (glibc reads that only when the process
    starts, too late for this file): after ``make bench``'s batch phase (four 1,000-job batches at
    once) a worker peaked at 164 MiB RSS instead of 235 (bench/FINDINGS.md, section 17). A
    ``MALLOC_ARENA_MAX`` in the environment wins; elsewhere than glibc there is nothing to do."""
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt to speak of)
        return
    mallopt(_M_ARENA_MAX, limit)


_limit_malloc_arenas()  # in the master, before it forks a worker: every worker inherits it

wsgi_app = "wsgi:app"
proc_name = "offload-web"

bind = [_bind_address(_settings.host, _settings.port)]
workers = _settings.web_concurrency
worker_class = "gthread"
threads = _settings.web_threads

# A gthread worker that stops heart-beating for this long is killed and replaced. Requests
# may take longer (``?wait=`` holds one up to MAX_WAIT_SECONDS): threads keep the heartbeat.
timeout = 60
# On SIGTERM, in-flight requests get this long to finish before workers are killed.
graceful_timeout = _settings.max_wait_seconds + 5
keepalive = 5

# The app logs every request itself (with its request id); gunicorn's access log would
# only duplicate it. Gunicorn's own messages ("Booting worker", "Handling signal") are JSON
# lines like everything else the service writes (issue 25, item 7), on stdout.
accesslog = None
errorlog = "-"
loglevel = _settings.log_level.lower()


def _json_logger_class():  # noqa: ANN202
    from gunicorn.glogging import Logger

    class JsonLogger(Logger):
        """gunicorn's logger, its error log written as offload's JSON lines (app/logs.py)."""

        def setup(self, cfg):  # noqa: ANN001, ANN202 - gunicorn's signature
            super().setup(cfg)
            from app import logs

            self.error_log.handlers[:] = [logs.json_handler("web")]

    return JsonLogger


logger_class = _json_logger_class()

# No runtime control socket (gunicorn 25.1+): it would go to $HOME/.gunicorn, which is not
# writable for the image's user, and two servers on one host would fight over it.
control_socket_disable = True

# Heartbeat files on a tmpfs when there is one (in containers /tmp may be an overlay).
if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
    worker_tmp_dir = "/dev/shm"


def _remove_metrics_dirs_of_dead_masters() -> None:
    """``offload-metrics-<pid>-*`` directories whose master is gone (SIGKILL, OOM, a crash)."""
    import shutil
    import tempfile
    from pathlib import Path

    for path in Path(tempfile.gettempdir()).glob(f"{_METRICS_PREFIX}*"):
        pid = path.name[len(_METRICS_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or str(path) == _OWN_METRICS_DIR:
            continue  # a name of the old form (no pid), or ours
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            pass  # alive, another user's


def on_starting(server):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    if _OWN_METRICS_DIR is not None:
        _remove_metrics_dirs_of_dead_masters()


def on_exit(server):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    """The master is stopping: its metrics directory goes with it."""
    if _OWN_METRICS_DIR is not None:
        import shutil

        shutil.rmtree(_OWN_METRICS_DIR, ignore_errors=True)


def post_worker_init(worker):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    """Tell the app what only gunicorn knows: its real thread count (``--threads`` on the
    command line wins over WEB_THREADS), from which the bound on live-event streams is
    derived, and whether the worker is shutting down, so that open streams end at once
    instead of holding the graceful shutdown up (see app/web/events.py)."""
    extensions = getattr(worker.wsgi, "extensions", None)
    if extensions is not None:
        extensions["offload.web_threads"] = worker.cfg.threads
        extensions["offload.server_alive"] = lambda: worker.alive


def child_exit(server, worker):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
