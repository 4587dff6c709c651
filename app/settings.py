"""Configuration, read from environment variables and validated once at start-up.

Every process (web, worker, dev stack) calls :func:`get_settings` and gets the same
validated, immutable object. A bad value stops the process at start-up with a message
naming the variable, instead of surfacing as a strange failure on the first request.

Secrets (the SMTP password, API key secrets) are held as :class:`~pydantic.SecretStr`
so that ``repr()`` and logs never show them.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

QUEUE_NAMES: tuple[str, ...] = ("high", "default", "low")
"""The queues, in the order workers serve them: a worker takes from ``high`` first."""


class SmtpTarget(BaseModel):
    """Where ``send_email`` delivers: parsed from ``SMTP_URL``."""

    model_config = {"frozen": True}

    host: str
    port: int
    implicit_tls: bool
    username: str | None = None
    password: SecretStr | None = None

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("SMTP_URL must start with smtp:// or smtps://")
        if not parts.hostname:
            raise ValueError("SMTP_URL needs a host")
        implicit_tls = parts.scheme == "smtps"
        try:
            port = parts.port or (465 if implicit_tls else 25)
        except ValueError as exc:  # urlsplit raises on a non-numeric port
            raise ValueError("SMTP_URL has an invalid port") from exc
        return cls(
            host=parts.hostname,
            port=port,
            implicit_tls=implicit_tls,
            username=unquote(parts.username) if parts.username else None,
            password=SecretStr(unquote(parts.password)) if parts.password else None,
        )

    def redacted(self) -> str:
        """The URL with the password masked, fit for logs and start-up banners."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        auth = f"{self.username}:***@" if self.username else ""
        return f"{scheme}://{auth}{self.host}:{self.port}"


class ApiKey(BaseModel):
    """One entry of ``API_KEYS`` (``name:role:secret``)."""

    model_config = {"frozen": True}

    name: str
    role: str
    secret: SecretStr


class Settings(BaseSettings):
    """All of offload's settings. docs/configuration.md has a table of them."""

    # hide_input_in_errors: a bad value may be a secret; errors name the variable, not the value.
    model_config = SettingsConfigDict(
        env_prefix="", case_sensitive=False, extra="ignore", frozen=True, hide_input_in_errors=True
    )

    # Where things live.
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_socket_timeout: float = Field(2.0, gt=0, le=60)
    smtp_url: str = "smtp://127.0.0.1:8025"
    smtp_timeout: float = Field(10.0, gt=0, le=300)
    mail_from: str = "offload@localhost"

    # HTTP server.
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    web_concurrency: int = Field(2, ge=1, le=64)
    web_threads: int = Field(16, ge=1, le=256)

    # Access.
    api_keys: Annotated[tuple[ApiKey, ...], NoDecode] = ()
    allow_anonymous: bool = False

    # Rate limits and backpressure.
    rate_limit_enabled: bool = True
    rate_limit_submit: str = "50/second;2000/minute"
    rate_limit_read: str = "200/second"
    # fixed-window: one INCR script per limit; moving-window: a list entry per request and
    # three scripts per submission; sliding-window-counter: two counters, not on a cluster.
    rate_limit_strategy: Literal["fixed-window", "sliding-window-counter", "moving-window"] = "fixed-window"
    max_queue_depth: int = Field(100_000, ge=1)
    # Jobs of one API key queued or running at once (0: no cap); see app/jobs/concurrency.py.
    fair_share: int = Field(0, ge=0, le=100_000)
    # Ceiling of a job's concurrency_limit.
    max_concurrency_limit: int = Field(1000, ge=1, le=100_000)

    # Job contract limits and defaults.
    max_text_bytes: int = Field(1024 * 1024, ge=1)
    max_metadata_bytes: int = Field(4096, ge=2)
    # A task's result, as JSON: kept with the job and sent to every poller (app/jobs/context.py).
    max_result_bytes: int = Field(1024 * 1024, ge=64)
    # Seconds a running task has to see ctx.cancelled() and stop by itself before it is killed.
    cancel_grace_seconds: float = Field(2.0, ge=0, le=60)
    max_batch_jobs: int = Field(1000, ge=1, le=10_000)  # jobs in one POST /jobs/batch
    default_timeout_seconds: int = Field(180, ge=1)
    max_timeout_seconds: int = Field(3600, ge=1)
    default_max_retries: int = Field(3, ge=0, le=25)
    max_retries_limit: int = Field(10, ge=0, le=25)
    retry_backoff_base_seconds: int = Field(5, ge=1)
    retry_backoff_max_seconds: int = Field(600, ge=1)
    result_ttl_seconds: int = Field(7 * 24 * 3600, ge=1)
    failure_ttl_seconds: int = Field(30 * 24 * 3600, ge=1)
    max_wait_seconds: int = Field(30, ge=0, le=30)

    # Webhooks (callback_url).
    webhook_secret: SecretStr | None = None
    allow_private_callbacks: bool = False
    webhook_max_retries: int = Field(8, ge=0, le=25)
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=60)

    # Workers and the dev stack.
    worker_count: int = Field(2, ge=1, le=64)
    job_heartbeat_seconds: int = Field(10, ge=1, le=300)
    #: "fast": one long-lived work horse per worker and three Redis round trips a job
    #: (app/worker/fast/), ~7x the jobs/s of "forking", RQ's worker with a fresh fork and
    #: ~27 round trips per job. Both pass the same fault-injection tests and soak.
    worker_class: Literal["forking", "fast"] = "fast"
    log_level: str = "INFO"
    enable_diagnostic_tasks: bool = False
    var_dir: str = "var"

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        keys = []
        for entry in filter(None, (part.strip() for part in value.split(","))):
            name, sep1, rest = entry.partition(":")
            role, sep2, secret = rest.partition(":")
            if not (sep1 and sep2 and name and secret):
                # Never echo the entry: it holds a secret.
                raise ValueError("API_KEYS entries must look like name:role:secret")
            if role not in ("client", "admin"):
                raise ValueError(f"API_KEYS entry {name!r}: role must be 'client' or 'admin'")
            keys.append(ApiKey(name=name, role=role, secret=SecretStr(secret)))
        names = [key.name for key in keys]
        if len(names) != len(set(names)):
            raise ValueError("API_KEYS names must be unique")
        return tuple(keys)

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _empty_webhook_secret_is_none(cls, value: object) -> object:
        """``WEBHOOK_SECRET=`` (empty) turns callbacks off, as leaving it unset does: an empty
        key would sign every callback with no secret at all."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: str) -> str:
        SmtpTarget.parse(value)
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("REDIS_URL must start with redis://, rediss:// or unix://")
        return value

    @field_validator("rate_limit_submit", "rate_limit_read")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError("rate limits look like '50/second;2000/minute'") from None
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        value = value.upper()
        if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.default_timeout_seconds > self.max_timeout_seconds:
            raise ValueError("DEFAULT_TIMEOUT_SECONDS must not exceed MAX_TIMEOUT_SECONDS")
        if self.default_max_retries > self.max_retries_limit:
            raise ValueError("DEFAULT_MAX_RETRIES must not exceed MAX_RETRIES_LIMIT")
        return self

    @property
    def smtp(self) -> SmtpTarget:
        return SmtpTarget.parse(self.smtp_url)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys)

    @property
    def max_request_bytes(self) -> int:
        """Largest request body accepted before parsing.

        JSON escaping can make a text up to six times longer (``\\u00e9`` for ``é``, as
        Python's ``json.dumps`` writes by default), so the body may be six times the text limit
        plus room for the other fields. The text itself is measured after parsing.
        """
        return 6 * self.max_text_bytes + 64 * 1024

    def redis_url_redacted(self) -> str:
        parts = urlsplit(self.redis_url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return parts._replace(netloc=netloc).geturl()
        return self.redis_url

    def check_bind_is_safe(self) -> None:
        """Refuse to serve anonymously on anything but loopback (see docs/api.md, Access)."""
        if self.auth_enabled or self.allow_anonymous or is_loopback(self.host):
            return
        raise RuntimeError(
            f"refusing to listen on {self.host} without API keys: anyone who can reach it could run jobs. "
            "Set API_KEYS, or ALLOW_ANONYMOUS=1 if anonymous access is really wanted."
        )

    # --- High availability (docs/ha.md): Sentinel or Cluster instead of one server. ---
    # Appended as one block; app/connections/ is what uses them.
    redis_sentinels: Annotated[tuple[tuple[str, int], ...], NoDecode] = ()
    redis_sentinel_master: str = "mymaster"
    redis_sentinel_password: SecretStr | None = None
    redis_password: SecretStr | None = None
    redis_cluster: bool = False
    # WAIT after each submission: replicas that must hold a job before its 202 (default: 1
    # with Sentinel, 0 otherwise), and how long to wait for them before answering 503.
    redis_wait_replicas: int | None = Field(None, ge=0, le=16)
    redis_wait_timeout: float = Field(0.5, gt=0, le=30)

    # --- Periodic schedules (/schedules, app/jobs/schedules.py). ---
    # The most schedules the service keeps (each is looked at by every worker when due), and
    # the shortest interval an every_seconds schedule may have.
    max_schedules: int = Field(1000, ge=0, le=100_000)
    min_schedule_seconds: int = Field(1, ge=1, le=86_400)

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _parse_sentinels(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        sentinels = []
        for entry in filter(None, (part.strip() for part in value.split(","))):
            parts = urlsplit(f"//{entry}")
            try:
                port = parts.port or 26379
            except ValueError:
                raise ValueError(f"REDIS_SENTINELS entry {entry!r}: the port must be a number") from None
            if not parts.hostname:
                raise ValueError(f"REDIS_SENTINELS entry {entry!r} must look like host:port")
            sentinels.append((parts.hostname, port))
        return tuple(sentinels)

    @model_validator(mode="after")
    def _check_redis_topology(self) -> Settings:
        if self.redis_sentinels and self.redis_cluster:
            raise ValueError("REDIS_SENTINELS and REDIS_CLUSTER=1 exclude each other")
        if (self.redis_sentinels or self.redis_cluster) and self.redis_url.startswith("unix:"):
            raise ValueError("with REDIS_SENTINELS or REDIS_CLUSTER, REDIS_URL must be redis:// or rediss://")
        if self.redis_cluster and self.rate_limit_strategy == "sliding-window-counter":
            raise ValueError(
                "RATE_LIMIT_STRATEGY=sliding-window-counter cannot run on REDIS_CLUSTER=1: limits wraps its keys "
                "in a hash tag of their own, out of offload's cluster slot; use fixed-window or moving-window"
            )
        if self.redis_cluster and not redis_hash_tag():
            raise ValueError(
                "REDIS_CLUSTER=1 needs RQ_KEY_PREFIX with a hash tag, e.g. RQ_KEY_PREFIX='{offload}', "
                "so that all of offload's keys share one cluster slot"
            )
        if self.redis_wait_replicas_effective and self.redis_wait_timeout >= self.redis_socket_timeout:
            raise ValueError("REDIS_WAIT_TIMEOUT must be shorter than REDIS_SOCKET_TIMEOUT")
        return self

    @property
    def redis_wait_replicas_effective(self) -> int:
        if self.redis_wait_replicas is not None:
            return self.redis_wait_replicas
        return 1 if self.redis_sentinels else 0

    # --- Live events (GET /jobs/{id}/events, app/web/events.py). Appended as one block. ---
    # Streams one web process keeps open at once. None: half of its threads, so the rest of
    # the API always has threads free (a stream holds a thread for as long as it is open).
    sse_max_streams: int | None = Field(None, ge=0, le=255)
    # Seconds a stream stays open at most; the client then reconnects (EventSource does so by
    # itself), so a stream never holds a thread for good.
    sse_max_seconds: float = Field(600, gt=0, le=86400)

    @model_validator(mode="after")
    def _check_sse(self) -> Settings:
        if self.sse_max_streams is not None and self.sse_max_streams >= self.web_threads:
            raise ValueError("SSE_MAX_STREAMS must be less than WEB_THREADS: the rest of the API needs a thread")
        return self

    # --- Tracing (app/tracing.py: W3C traceparent, always on; app/telemetry.py: OTLP export). ---
    # Appended as one block. With no endpoint nothing is exported and the SDK is never imported.
    # OFFLOAD_OTEL_ENDPOINT and OTEL_EXPORTER_OTLP_ENDPOINT are a collector's base URL (offload
    # posts to <base>/v1/traces); OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is the full URL, used as is.
    offload_otel_endpoint: str | None = None
    otel_exporter_otlp_traces_endpoint: str | None = None
    otel_exporter_otlp_endpoint: str | None = None
    # "key=value,key2=value2" (values URL-encoded), sent with every export: often an API key.
    otel_exporter_otlp_headers: SecretStr | None = None
    otel_exporter_otlp_traces_headers: SecretStr | None = None
    otel_service_name: str | None = None

    @field_validator(
        "offload_otel_endpoint", "otel_exporter_otlp_traces_endpoint", "otel_exporter_otlp_endpoint", mode="before"
    )
    @classmethod
    def _check_otel_endpoint(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None  # set but empty: not configured, as the OpenTelemetry SDK reads it
        if isinstance(value, str):
            parts = urlsplit(value.strip())
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("OTLP endpoints must be http:// or https:// URLs with a host (OTLP/HTTP)")
            return value.strip()
        return value

    @field_validator("otel_exporter_otlp_headers", "otel_exporter_otlp_traces_headers", mode="before")
    @classmethod
    def _check_otel_headers(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return None
            parse_otlp_headers(value)  # its error never shows the value: it may be an API key
        return value

    @property
    def otel_traces_url(self) -> str | None:
        """Where spans are exported (OTLP/HTTP protobuf), or None: tracing export is off."""
        if self.offload_otel_endpoint or not self.otel_exporter_otlp_traces_endpoint:
            base = self.offload_otel_endpoint or self.otel_exporter_otlp_endpoint
            return base.rstrip("/") + "/v1/traces" if base else None
        return self.otel_exporter_otlp_traces_endpoint

    @property
    def otel_headers(self) -> dict[str, str]:
        """The headers sent with every export: the traces' own variable, else the general one."""
        chosen = self.otel_exporter_otlp_traces_headers or self.otel_exporter_otlp_headers
        return parse_otlp_headers(chosen.get_secret_value()) if chosen else {}


def parse_otlp_headers(value: str) -> dict[str, str]:
    """``OTEL_EXPORTER_OTLP_HEADERS`` (``k=v,k2=v2``, URL-encoded) as a dict. A malformed entry
    raises ValueError naming its position only: the values are credentials."""
    headers = {}
    for position, entry in enumerate(filter(None, (part.strip() for part in value.split(","))), 1):
        name, sep, item = entry.partition("=")
        name = unquote(name).strip()
        if not sep or not name or any(ch in name for ch in " \t\r\n:") or any(ch in item for ch in "\r\n"):
            raise ValueError(f"OTLP headers: entry {position} must look like name=value")
        headers[name] = unquote(item).strip()
    return headers


def redis_hash_tag() -> str | None:
    """The hash tag of RQ's key prefix (``offload`` for ``{offload}``), or None.

    RQ reads ``RQ_KEY_PREFIX`` from the environment when it is first imported, and offload's
    own keys start with that prefix, so the tag is the same for every key of the service.
    """
    from rq.defaults import RQ_KEY_PREFIX

    start = RQ_KEY_PREFIX.find("{")
    end = RQ_KEY_PREFIX.find("}", start + 1)
    return RQ_KEY_PREFIX[start + 1 : end] or None if start >= 0 and end > start else None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, validated on first use."""
    return Settings()
