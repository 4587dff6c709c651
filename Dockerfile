# offload: one image for the web API (gunicorn, the default command), the RQ workers
# (`python worker.py`) and the dev SMTP sink (`python -m app.dev.smtp_sink ...`).
#
#   docker build -t offload:latest .
#   docker run --rm -p 127.0.0.1:8000:8000 -e REDIS_URL=redis://... -e API_KEYS=ops:admin:... offload:latest
#
# docker-compose.yml wires it to Redis; docs/containers.md explains the setup.
# Both stages are Debian (bookworm) based. No `# syntax=` line on purpose: the builder's
# built-in Dockerfile frontend is used, so nothing is fetched from a registry but the base.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: resolve and install everything into a virtualenv at /opt/venv -------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

# --upgrade-deps: a current pip, whatever the base ships; old resolvers (pip 23) can backtrack
# for many minutes through conflicting extras that a current one settles in seconds.
RUN python -m venv --upgrade-deps /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when the
# dependency list changes, not on every code change. All of them ship wheels, so no
# compiler is needed here either.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip install -r requirements.txt

# Then the project itself. README.md is matched by a glob so that a missing README does not
# break COPY (pyproject.toml names it as the long description).
COPY README.m[d] ./
COPY app ./app
COPY offload ./offload
COPY worker.py wsgi.py ./
RUN pip install --no-deps . \
    # The runtime needs neither pip nor setuptools: drop them (about 20 MB).
    && pip uninstall --yes pip setuptools \
    # Fail the build here, not at start-up, if an import is broken.
    && cd / && python -c "import app, worker, offload.cli"

# --- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="offload" \
      org.opencontainers.image.description="HTTP job API on Flask, RQ and Redis: web, worker and SMTP sink in one image" \
      org.opencontainers.image.licenses="MIT"

# A fixed, unprivileged uid/gid (not 1000, which often maps to a real user on the host).
# /data/mail exists and belongs to it so that a named volume mounted there (the SMTP sink's
# maildir) starts out writable by the sink.
RUN groupadd --system --gid 10001 offload \
    && useradd --system --uid 10001 --gid offload --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin offload \
    && mkdir -p /data/mail \
    && chown -R offload:offload /data

# The code is owned by root and read-only for the service user.
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY worker.py wsgi.py gunicorn.conf.py ./

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    # In a container the service must listen on all interfaces; the app still refuses to
    # do that without API_KEYS (or ALLOW_ANONYMOUS=1).
    HOST=0.0.0.0 \
    PORT=8000

USER 10001:10001
EXPOSE 8000

# Liveness of the web process (/healthz says nothing about Redis; /readyz does). The worker
# and the SMTP sink run other commands and override this check in docker-compose.yml.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request as u; h = os.environ.get('HOST', '0.0.0.0'); h = '127.0.0.1' if h in ('0.0.0.0', '::', '') else h; h = '[%s]' % h if ':' in h else h; u.urlopen('http://%s:%s/healthz' % (h, os.environ.get('PORT', '8000')), timeout=4)"

# gunicorn reads HOST, PORT, WEB_CONCURRENCY, WEB_THREADS through gunicorn.conf.py;
# GUNICORN_CMD_ARGS can add any other gunicorn option.
CMD ["gunicorn", "--config", "/app/gunicorn.conf.py", "wsgi:app"]
