#!/usr/bin/env bash
# Prove the Dockerfile and docker-compose.yml on a real Docker engine (`make test-compose`).
#
# What it does, failing loudly at the first step that goes wrong:
#   1. installs docker.io, debootstrap and docker-compose from apt when missing;
#   2. starts its own dockerd on a private socket (../shared/CONTAINERS.md), never touching
#      another engine;
#   3. builds stand-ins for the base images, since no public registry is reachable here:
#      localhost/debian:bookworm (debootstrap, mirror taken from apt's configuration), then
#      python:3.11-slim and redis:7-bookworm on top of it, tagged exactly as the Dockerfile
#      and docker-compose.yml name them (so nothing is ever pulled);
#   4. builds the project's image and checks it: non-root user, no compiler, a HEALTHCHECK;
#      then the worked example's image on top of it (examples/csv_report/Dockerfile, FROM the
#      project's image, pip-installing a team's own task package) and checks it the same way;
#   5. `docker-compose up -d`, then through the published port:
#      - submits a count_words and a send_email job and sees both finish (and the mail
#        arrive in the SMTP sink's volume);
#      - scales to 3 workers and sees all three in the dashboard's workers.json;
#      - runs a `sleep` job, stops (SIGTERM) the worker container running it mid-job, sees
#        that worker finish the job before it exits (warm shutdown) while the others keep
#        serving new jobs;
#      - restarts the Redis container while 20 accepted jobs wait in the schedule and sees
#        every job accepted so far, before and after, still there and finished;
#      - sees offload's own image refuse the example's `csv_report` type, then recreates web
#        and worker from the example's image (examples/csv_report/docker-compose.example.yml
#        over docker-compose.yml) and sees csv_report listed in GET /tasks, csv_report jobs
#        sent as JSON, as a multipart upload and by the CLI finish with the expected report,
#        and one with a column the file lacks fail at once (PermanentFailure: one attempt);
#   6. `docker-compose down -v` and stops the engine by the pid it saved.
# Whatever happens, the stack is taken down and the engine stopped (trap on EXIT).
#
# Run as root (dockerd needs it). Knobs (environment):
#   OFFLOAD_CI_DIR=/tmp/offload-docker   engine state, stand-in rootfs, logs
#   OFFLOAD_CI_CACHE=/var/cache/offload-ci  debootstrap's package cache, kept between runs
#   OFFLOAD_CI_BUILD_TIMEOUT=600          seconds allowed for each image build and debootstrap
#   OFFLOAD_CI_REUSE=1                   keep the engine's image store between runs and
#                                        reuse stand-in base images already in it (faster
#                                        reruns; the default starts from an empty store)

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
W=${OFFLOAD_CI_DIR:-/tmp/offload-docker}
REUSE=${OFFLOAD_CI_REUSE:-0}
CACHE=${OFFLOAD_CI_CACHE:-/var/cache/offload-ci}
BUILD_TIMEOUT=${OFFLOAD_CI_BUILD_TIMEOUT:-600}
PROJECT=offloadci
IMAGE=offload:latest
# The worked example of a team's own task: offload's image plus examples/csv_report.
EXAMPLE_DIR=examples/csv_report
EXAMPLE_IMAGE=offload-csv-report:latest
source "$ROOT/ci/docker-env.sh"

T0=$(date +%s.%N)
STEP_T=$T0
STEP_NAME=""
TIMINGS=()
DOCKERD_PID=""
STACK_UP=0
FAILED=1

log() { printf '[compose-test %6ss] %s\n' "$(secs "$T0" "$(now)")" "$*"; }
end_step() {
    if [[ -n $STEP_NAME ]]; then
        local took
        took=$(secs "$STEP_T" "$(now)")
        TIMINGS+=("$(printf '%7ss  %s' "$took" "$STEP_NAME")")
        log "done: $STEP_NAME (${took}s)"
    fi
    STEP_NAME=""
}
step() {
    end_step
    STEP_NAME=$*
    STEP_T=$(now)
    log "=== $STEP_NAME"
}
WARNINGS=()
warn() { WARNINGS+=("$*"); log "WARNING: $*"; }
die() {
    printf '\ncompose-test: FAILED%s: %s\n' "${STEP_NAME:+ in step \"$STEP_NAME\"}" "$*" >&2
    exit 1
}

compose() { docker-compose -p "$PROJECT" -f "$ROOT/docker-compose.yml" --project-directory "$ROOT" --env-file "$W/ci.env" "$@"; }
# The same project with the example's override file: web and worker run $EXAMPLE_IMAGE.
compose_example() {
    docker-compose -p "$PROJECT" -f "$ROOT/docker-compose.yml" -f "$ROOT/$EXAMPLE_DIR/docker-compose.example.yml" \
        --project-directory "$ROOT" --env-file "$W/ci.env" "$@"
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [[ $FAILED == 1 || $rc != 0 ]]; then
        rc=$(( rc == 0 ? 1 : rc ))
        echo "--- diagnostics -----------------------------------------------------------" >&2
        if [[ $STACK_UP == 1 ]]; then
            compose ps >&2
            compose logs --no-color --tail=60 >&2
        fi
        [[ -f $W/resp.json ]] && { echo "last HTTP answer (status ${HTTP_STATUS:-?}):" >&2; head -c 2000 "$W/resp.json" >&2; echo >&2; }
        [[ -f $W/dockerd.log ]] && { echo "dockerd.log (tail):" >&2; tail -n 20 "$W/dockerd.log" >&2; }
    fi
    if [[ $STACK_UP == 1 ]]; then
        log "cleanup: docker-compose down -v"
        compose down -v --remove-orphans --timeout 10 >/dev/null 2>&1 || echo "compose-test: warning: docker-compose down failed" >&2
    fi
    stop_engine
    if [[ $REUSE != 1 && -d $W/data ]]; then
        rm -rf "$W/data" 2>/dev/null || echo "compose-test: warning: could not remove $W/data" >&2
    fi
    rm -rf "$W/rootfs" "$W/ctx" 2>/dev/null
    log "total $(secs "$T0" "$(now)")s"
    if [[ $rc == 0 ]]; then
        echo "compose-test: PASSED"
    else
        echo "compose-test: FAILED (exit $rc); engine log: $W/dockerd.log" >&2
    fi
    exit "$rc"
}

stop_engine() {
    [[ -n $DOCKERD_PID ]] || return 0
    if kill -0 "$DOCKERD_PID" 2>/dev/null; then
        log "stopping dockerd (pid $DOCKERD_PID)"
        kill -TERM "$DOCKERD_PID"
        for _ in $(seq 1 150); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$DOCKERD_PID" 2>/dev/null; then
            echo "compose-test: dockerd did not stop in 30 s; killing pid $DOCKERD_PID" >&2
            kill -KILL "$DOCKERD_PID" 2>/dev/null
        fi
    fi
    wait "$DOCKERD_PID" 2>/dev/null
    rm -f "$W/dockerd.bgpid"
    DOCKERD_PID=""
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- HTTP helpers (curl + python3 for JSON) -----------------------------------------------
HTTP_STATUS=""
# req METHOD PATH [JSON]: the answer's body goes to $W/resp.json, its status to HTTP_STATUS.
req() {
    local method=$1 path=$2 data=${3-}
    local args=(-sS -o "$W/resp.json" -w '%{http_code}' -X "$method" --max-time 45
                -H "Authorization: Bearer $API_SECRET")
    if [[ -n $data ]]; then args+=(-H 'Content-Type: application/json' --data "$data"); fi
    HTTP_STATUS=$(curl "${args[@]}" "$BASE$path" 2>"$W/curl.err") || HTTP_STATUS=000
}
# jget EXPR: evaluate a Python expression over the last answer, bound to `d`.
jget() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$W/resp.json" "$1"; }

# submit JSON: POST /jobs, expect 202, print the job id.
submit() {
    req POST /jobs "$1"
    [[ $HTTP_STATUS == 202 ]] || die "POST /jobs $1 answered $HTTP_STATUS: $(head -c 500 "$W/resp.json")"
    jget 'd["id"]'
}

# submit_form FIELD=VALUE...: POST /jobs as multipart/form-data (curl -F syntax, so
# csv=@FILE uploads a file), expect 202, print the job id.
submit_form() {
    local args=(-sS -o "$W/resp.json" -w '%{http_code}' -X POST --max-time 45 -H "Authorization: Bearer $API_SECRET")
    local part
    for part in "$@"; do args+=(-F "$part"); done
    HTTP_STATUS=$(curl "${args[@]}" "$BASE/jobs" 2>"$W/curl.err") || HTTP_STATUS=000
    [[ $HTTP_STATUS == 202 ]] || die "POST /jobs (multipart: $*) answered $HTTP_STATUS: $(head -c 500 "$W/resp.json")"
    jget 'd["id"]'
}

TERMINAL="finished failed canceled stopped"
# wait_job ID SECONDS: poll GET /jobs/ID?wait= until terminal; print the final status.
wait_job() {
    local id=$1 limit=$2 deadline status
    deadline=$(( $(date +%s) + limit ))
    while :; do
        req GET "/jobs/$id?wait=10"
        [[ $HTTP_STATUS == 200 ]] || die "GET /jobs/$id answered $HTTP_STATUS: $(head -c 500 "$W/resp.json")"
        status=$(jget 'd["status"]')
        if [[ " $TERMINAL " == *" $status "* ]]; then echo "$status"; return 0; fi
        (( $(date +%s) < deadline )) || die "job $id still '$status' after ${limit}s"
    done
}
# expect_finished ID SECONDS [label]
expect_finished() {
    local status
    status=$(wait_job "$1" "$2")
    [[ $status == finished ]] || die "job $1${3:+ ($3)} ended '$status': $(jget 'd.get("error")')"
}

# all_finished SECONDS ID...: wait (in one process) until every job is terminal; fail unless
# all of them finished.
all_finished() {
    local limit=$1
    shift
    python3 - "$BASE" "$API_SECRET" "$limit" "$@" <<'PY' || die "not every job finished (see above)"
import json, sys, time, urllib.error, urllib.request
base, secret, limit, ids = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
deadline = time.monotonic() + limit
terminal = {"finished", "failed", "canceled", "stopped"}
bad = []
for job_id in ids:
    while True:
        request = urllib.request.Request(f"{base}/jobs/{job_id}?wait=10", headers={"Authorization": f"Bearer {secret}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                job = json.load(answer)
        except urllib.error.HTTPError as exc:
            bad.append(f"{job_id}: GET answered {exc.code} (lost?)")
            break
        if job["status"] in terminal:
            if job["status"] != "finished":
                bad.append(f"{job_id}: ended {job['status']}: {job.get('error')}")
            break
        if time.monotonic() > deadline:
            bad.append(f"{job_id}: still {job['status']} after {limit:.0f}s")
            break
for line in bad:
    print(f"  {line}", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

# until_ok SECONDS DESCRIPTION COMMAND...: retry COMMAND every 0.5 s until it succeeds.
until_ok() {
    local limit=$1 what=$2 deadline
    shift 2
    deadline=$(( $(date +%s) + limit ))
    until "$@" >/dev/null 2>&1; do
        (( $(date +%s) < deadline )) || die "timed out after ${limit}s waiting for $what"
        sleep 0.5
    done
}
http_ok() { req GET "$1"; [[ $HTTP_STATUS == 200 ]]; }
health_is() { [[ $(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$1") == "$2" ]]; }
workers_registered() {
    req GET /dashboard/0/data/workers.json
    [[ $HTTP_STATUS == 200 ]] && [[ $(jget 'len(d["workers"])') == "$1" ]]
}

# ==========================================================================================
[[ $(id -u) == 0 ]] || die "run as root: dockerd, debootstrap and apt-get need it"
mkdir -p "$W"
: >"$W/resp.json"

step "tools (docker.io, debootstrap, docker-compose)"
missing=()
[[ -x /usr/bin/docker && -x /usr/sbin/dockerd ]] || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if (( ${#missing[@]} )) || ! command -v docker-compose >/dev/null; then
    log "installing from apt: ${missing[*]} $(command -v docker-compose >/dev/null || echo docker-compose)"
    apt-get update -qq || die "apt-get update failed"
    if (( ${#missing[@]} )); then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
    fi
    if ! command -v docker-compose >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null \
            || die "apt-get install docker-compose failed"
    fi
fi
for tool in curl python3 docker dockerd docker-compose debootstrap; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
log "$(docker --version | head -1); $(docker-compose --version | head -1)"

step "start dockerd on $W/docker.sock"
if [[ -f $W/dockerd.bgpid ]]; then
    old=$(cat "$W/dockerd.bgpid")
    # A dockerd left by an earlier run of this script (same private socket): stop that one.
    if kill -0 "$old" 2>/dev/null && tr '\0' ' ' <"/proc/$old/cmdline" | grep -q -- "$W/docker.sock"; then
        log "stopping dockerd left over from an earlier run (pid $old)"
        DOCKERD_PID=$old
        kill -TERM "$old"
        for _ in $(seq 1 150); do kill -0 "$old" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$old" 2>/dev/null && kill -KILL "$old"
        DOCKERD_PID=""
    fi
    rm -f "$W/dockerd.bgpid"
fi
if [[ $REUSE != 1 ]]; then
    rm -rf "$W/data" || die "cannot empty $W/data (mounts left by a crashed engine? umount them)"
fi
mkdir -p "$W/data" "$W/exec"
dockerd --data-root "$W/data" --exec-root "$W/exec" -H "unix://$W/docker.sock" \
    --pidfile "$W/dockerd.pid" >"$W/dockerd.log" 2>&1 &
DOCKERD_PID=$!
echo "$DOCKERD_PID" >"$W/dockerd.bgpid"
deadline=$(( $(date +%s) + 60 ))
until docker version >/dev/null 2>&1; do
    kill -0 "$DOCKERD_PID" 2>/dev/null || die "dockerd exited at start; see $W/dockerd.log: $(tail -n 5 "$W/dockerd.log")"
    (( $(date +%s) < deadline )) || die "dockerd did not answer within 60 s; see $W/dockerd.log"
    sleep 0.2
done
log "dockerd pid $DOCKERD_PID, server $(docker version -f '{{.Server.Version}}')"

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

step "stand-in base image localhost/debian:bookworm (debootstrap)"
if [[ $REUSE == 1 ]] && have_image localhost/debian:bookworm; then
    log "reusing localhost/debian:bookworm"
else
    # The Debian mirror apt already uses on this machine (deb822 .sources or one-line .list).
    MIRROR=$(python3 - <<'PY'
import glob, re
uris = []
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
        if fields.get("Enabled", "yes").lower() == "no" or "deb" not in fields.get("Types", "").split():
            continue
        if "bookworm" in fields.get("Suites", "").split():
            uris += fields.get("URIs", "").split()
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        m = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s", line + " ")
        if m:
            uris.append(m.group(1))
print(next((u for u in uris if u.startswith(("http://", "https://"))), ""))
PY
)
    [[ -n $MIRROR ]] || die "no Debian bookworm mirror found in /etc/apt/sources.list{,.d/*}"
    log "mirror: $MIRROR"
    rm -rf "$W/rootfs"
    # Downloaded packages are kept in a cache outside the work tree, for the next run on this machine.
    mkdir -p "$CACHE/debootstrap"
    timeout "$BUILD_TIMEOUT" debootstrap --variant=minbase --include=ca-certificates --cache-dir="$CACHE/debootstrap" \
        bookworm "$W/rootfs" "$MIRROR" >"$W/debootstrap.log" 2>&1 \
        || die "debootstrap failed; see $W/debootstrap.log: $(tail -n 5 "$W/debootstrap.log")"
    # Outgoing HTTPS here passes a proxy whose CA the host trusts: the images must trust it too.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$W/rootfs/usr/local/share/ca-certificates/"
        chroot "$W/rootfs" update-ca-certificates >/dev/null
    fi
    rm -rf "$W/rootfs/var/cache/apt/archives/"*.deb "$W/rootfs/var/lib/apt/lists/"*
    tar -C "$W/rootfs" -c . | docker import --change 'CMD ["/bin/bash"]' - localhost/debian:bookworm >/dev/null \
        || die "docker import of the debootstrap rootfs failed"
    rm -rf "$W/rootfs"
fi

step "stand-in images python:3.11-slim and redis:7-bookworm"
mkdir -p "$W/ctx/python" "$W/ctx/redis"
cat >"$W/ctx/python/Dockerfile" <<'EOF'
# CI stand-in for the official python:3.11-slim: Debian's Python 3.11 as a venv in /usr/local,
# so that `python`, `pip` and `python -m venv` behave as in the official image.
FROM localhost/debian:bookworm
ENV LANG=C.UTF-8
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
    && python3 -m venv /usr/local \
    && python --version && pip --version
CMD ["python3"]
EOF
cat >"$W/ctx/redis/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# Like the official image: `redis-server` is the default, options alone are passed to it,
# and protected mode is off (the official image patches it off: the network is the fence).
set -e
if [ "${1#-}" != "$1" ]; then set -- redis-server "$@"; fi
if [ "$1" = redis-server ]; then set -- "$@" --protected-mode no; fi
exec "$@"
EOF
cat >"$W/ctx/redis/Dockerfile" <<'EOF'
# CI stand-in for the official redis:7-bookworm: Debian bookworm's Redis 7, running as the
# redis user in /data, listening on all interfaces.
FROM localhost/debian:bookworm
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
    && mkdir -p /data && chown redis:redis /data
COPY docker-entrypoint.sh /usr/local/bin/
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh
VOLUME /data
WORKDIR /data
USER redis
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
EOF
build_standin() {  # TAG DIR
    if [[ $REUSE == 1 ]] && have_image "$1"; then log "reusing $1"; return 0; fi
    timeout "$BUILD_TIMEOUT" docker build --progress=plain -t "$1" "$2" >"$2/build.log" 2>&1
}
build_standin python:3.11-slim "$W/ctx/python" & py_pid=$!
build_standin redis:7-bookworm "$W/ctx/redis" & redis_pid=$!
wait "$py_pid" || die "building the python:3.11-slim stand-in failed: $(tail -n 15 "$W/ctx/python/build.log")"
wait "$redis_pid" || die "building the redis:7-bookworm stand-in failed: $(tail -n 15 "$W/ctx/redis/build.log")"

step "build the project image ($IMAGE)"
timeout "$BUILD_TIMEOUT" docker build --progress=plain -t "$IMAGE" "$ROOT" >"$W/build.log" 2>&1 \
    || die "docker build failed or took over ${BUILD_TIMEOUT}s: $(tail -n 30 "$W/build.log")"
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
base=$(docker image inspect -f '{{.Size}}' python:3.11-slim)
IMAGE_MB=$(( size / 1000000 ))
log "image $IMAGE: ${IMAGE_MB} MB (stand-in python:3.11-slim base $(( base / 1000000 )) MB + offload $(( (size - base) / 1000000 )) MB)"
user=$(docker image inspect -f '{{.Config.User}}' "$IMAGE")
[[ -n $user && $user != root && $user != 0 && $user != 0:* ]] || die "the image runs as '${user:-root}', not a non-root user"
[[ -n $(docker image inspect -f '{{if .Config.Healthcheck}}yes{{end}}' "$IMAGE") ]] || die "the image has no HEALTHCHECK"
docker run --rm --entrypoint sh "$IMAGE" -c 'test "$(id -u)" != 0' || die "a container of $IMAGE runs as root"
if docker run --rm --entrypoint sh "$IMAGE" -c 'for c in gcc cc c++ g++ clang make; do command -v $c && exit 0; done; exit 1' >"$W/compilers.txt"; then
    die "the final image contains a compiler: $(cat "$W/compilers.txt")"
fi
log "image runs as $user, has a HEALTHCHECK, no compiler"

step "build the worked example's image ($EXAMPLE_IMAGE FROM $IMAGE, $EXAMPLE_DIR/Dockerfile)"
timeout "$BUILD_TIMEOUT" docker build --progress=plain --build-arg "OFFLOAD_IMAGE=$IMAGE" -t "$EXAMPLE_IMAGE" "$ROOT/$EXAMPLE_DIR" \
    >"$W/build-example.log" 2>&1 \
    || die "docker build of $EXAMPLE_DIR failed or took over ${BUILD_TIMEOUT}s: $(tail -n 30 "$W/build-example.log")"
[[ $(docker image inspect -f '{{.Config.User}}' "$EXAMPLE_IMAGE") == "$user" ]] \
    || die "the example image runs as '$(docker image inspect -f '{{.Config.User}}' "$EXAMPLE_IMAGE")', not offload's $user"
[[ -n $(docker image inspect -f '{{if .Config.Healthcheck}}yes{{end}}' "$EXAMPLE_IMAGE") ]] || die "the example image lost the HEALTHCHECK"
# The entry point, as every process loads it at start (OFFLOAD_TASKS unset: only entry points),
# and nothing of the build left behind: no pip, no copied sources.
docker run --rm --entrypoint sh "$EXAMPLE_IMAGE" -c \
    'test "$(id -u)" != 0 && ! python -m pip --version 2>/dev/null && ! test -e /tmp/offload-csv-report && python -c "from offload import tasks; print(tasks.load(\"\")); assert \"csv_report\" in tasks.registry"' \
    >"$W/example-check.txt" 2>&1 || die "the example image's check failed: $(cat "$W/example-check.txt")"
log "example image $EXAMPLE_IMAGE: $(( $(docker image inspect -f '{{.Size}}' "$EXAMPLE_IMAGE") / 1000000 )) MB, runs as $user, loads $(tail -n 1 "$W/example-check.txt")"

step "docker-compose up -d"
API_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
# The test's own env file, used both for substitution (--env-file) and by the services
# (OFFLOAD_ENV_FILE), so a developer's .env is neither read nor touched.
cat >"$W/ci.env" <<EOF
OFFLOAD_ENV_FILE=$W/ci.env
OFFLOAD_BIND=127.0.0.1
OFFLOAD_PORT=$PORT
OFFLOAD_IMAGE=$IMAGE
OFFLOAD_EXAMPLE_IMAGE=$EXAMPLE_IMAGE
API_KEYS=ci:admin:$API_SECRET
ENABLE_DIAGNOSTIC_TASKS=1
MAX_TIMEOUT_SECONDS=600
WEB_CONCURRENCY=2
WEB_THREADS=8
LOG_LEVEL=INFO
EOF
chmod 600 "$W/ci.env"
# The committed template must be a working env file for the compose file as it stands.
OFFLOAD_ENV_FILE="$ROOT/.env.example" docker-compose -f "$ROOT/docker-compose.yml" --project-directory "$ROOT" \
    --env-file "$ROOT/.env.example" config -q 2>"$W/compose-config.log" \
    || die "docker-compose config with .env.example failed: $(cat "$W/compose-config.log")"
OFFLOAD_ENV_FILE="$ROOT/.env.example" docker-compose -f "$ROOT/docker-compose.yml" -f "$ROOT/$EXAMPLE_DIR/docker-compose.example.yml" \
    --project-directory "$ROOT" --env-file "$ROOT/.env.example" config -q 2>"$W/compose-config.log" \
    || die "docker-compose config with $EXAMPLE_DIR/docker-compose.example.yml failed: $(cat "$W/compose-config.log")"
STACK_UP=1
compose up -d --no-build >"$W/compose-up.log" 2>&1 || die "docker-compose up failed: $(cat "$W/compose-up.log")"
until_ok 60 "GET /readyz to answer 200 on $BASE" http_ok /readyz
log "web ready on $BASE"

step "count_words and send_email jobs finish"
text='the quick brown fox\njumps over\nthe lazy dog'
id_words=$(submit "{\"type\": \"count_words\", \"text\": \"$text\"}")
id_mail=$(submit '{"type": "send_email", "to": "someone@example.com", "subject": "compose test", "body": "Hello from the compose test."}')
expect_finished "$id_words" 60 count_words
[[ $(jget 'd["result"]') == "{'words': 9, 'characters': 43, 'lines': 3}" ]] \
    || die "count_words result is $(jget 'd["result"]'), expected 9 words, 43 characters, 3 lines"
expect_finished "$id_mail" 60 send_email
message_id=$(jget 'd["result"]["message_id"]')
[[ $(jget 'd["result"]["accepted"]') == "['someone@example.com']" ]] || die "send_email accepted $(jget 'd["result"]["accepted"]')"
compose exec -T smtp grep -rlF -- "$message_id" /data/mail >/dev/null \
    || die "message $message_id is not in the SMTP sink's /data/mail"
log "count_words $id_words finished; send_email $id_mail delivered $message_id to the sink"
ALL_IDS=("$id_words" "$id_mail")

step "pages, docs and their assets are served from the image"
# Templates and static files are package data: a wheel without them serves 500s here.
for path in / /static/offload.js /static/offload.css /docs /openapi.json /dashboard/ /metrics; do
    req GET "$path"
    [[ $HTTP_STATUS == 200 ]] || die "GET $path answered $HTTP_STATUS (package data such as app/templates or app/static missing from the wheel?): $(head -c 300 "$W/resp.json")"
done
log "/, /docs, /openapi.json, /dashboard/, /metrics and static assets answer 200"

step "scale to 3 workers, all three in the dashboard"
compose up -d --no-build --scale worker=3 >"$W/compose-scale.log" 2>&1 || die "docker-compose up --scale worker=3 failed: $(cat "$W/compose-scale.log")"
until_ok 60 "3 workers in /dashboard/0/data/workers.json" workers_registered 3
log "workers: $(jget '", ".join(w["name"][:12] + " " + w["state"] for w in d["workers"])')"

step "stop a worker mid-job: the job finishes (warm shutdown), others keep serving"
id_sleep=$(submit '{"type": "sleep", "seconds": 8}')
ALL_IDS+=("$id_sleep")
started() { req GET "/jobs/$id_sleep"; [[ $(jget 'd["status"]') == started ]]; }
until_ok 30 "the sleep job to start" started
# Which container runs it: its worker logs the job id when it takes the job.
victim=""
for _ in $(seq 1 20); do
    for cid in $(compose ps -q worker); do
        docker logs "$cid" >"$W/worker.log" 2>&1 || die "docker logs $cid failed"
        if grep -qF -- "$id_sleep" "$W/worker.log"; then victim=$cid; break 2; fi
    done
    sleep 0.25
done
[[ -n $victim ]] || die "no worker container logged taking job $id_sleep"
# The dashboard should show that worker busy with it (reported, not fatal: see WARNINGS).
req GET /dashboard/0/data/workers.json
if [[ $HTTP_STATUS != 200 ]]; then
    warn "dashboard workers.json answers $HTTP_STATUS while a worker is busy (app bug: rq-dashboard reads the current job without the JSON serializer)"
elif [[ -z $(jget "next((w['name'] for w in d['workers'] if isinstance(w['current_job'], dict) and w['current_job'].get('job_id') == '$id_sleep'), '')") ]]; then
    warn "dashboard workers.json does not show job $id_sleep as a worker's current job"
fi
stop_timeout=$(docker inspect -f '{{.Config.StopTimeout}}' "$victim")
(( stop_timeout > 600 )) || die "worker stop timeout is ${stop_timeout}s, not above MAX_TIMEOUT_SECONDS (600)"
log "job $id_sleep runs in worker container ${victim:0:12} (stop timeout ${stop_timeout}s); docker stop"
t_stop=$(now)
docker stop "$victim" >"$W/docker-stop.log" 2>&1 &
stop_pid=$!
sleep 1
# While that worker drains, the other two take new work.
id_during=$(submit '{"type": "count_words", "text": "served while a worker drains"}')
ALL_IDS+=("$id_during")
expect_finished "$id_during" 30 "count_words during the stop"
kill -0 "$stop_pid" 2>/dev/null || die "the worker container stopped before its job could have finished (no warm shutdown)"
wait "$stop_pid" || die "docker stop failed: $(cat "$W/docker-stop.log")"
stop_took=$(secs "$t_stop" "$(now)")
expect_finished "$id_sleep" 30 "sleep job on the stopped worker"
[[ $(jget 'd["attempts"]') == 1 ]] || die "the sleep job took $(jget 'd["attempts"]') attempts; expected it to finish on its first"
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$victim")
[[ $exit_code == 0 ]] || die "the stopped worker exited with $exit_code (killed rather than a warm shutdown?)"
docker logs "$victim" >"$W/worker.log" 2>&1 || die "docker logs $victim failed"
grep -qiE 'warm shut ?down' "$W/worker.log" || die "the stopped worker's log shows no warm shutdown"
! grep -qF -- "$id_during" "$W/worker.log" || die "job $id_during ran on the worker that was shutting down"
log "worker stopped in ${stop_took}s after finishing job $id_sleep; a new job meanwhile finished elsewhere"
until_ok 60 "2 workers left in workers.json" workers_registered 2

step "restart Redis with accepted jobs waiting: none lost"
batch=()
for i in $(seq 1 20); do
    batch+=("$(submit "{\"type\": \"count_words\", \"text\": \"job $i of the batch\", \"delay_seconds\": 10}")")
done
ALL_IDS+=("${batch[@]}")
req GET "/jobs/${batch[-1]}"
[[ $(jget 'd["status"]') == scheduled ]] || die "job ${batch[-1]} is '$(jget 'd["status"]')', expected it to wait in the schedule"
log "20 jobs accepted with delay_seconds=10 and waiting; restarting Redis"
redis_cid=$(compose ps -q redis)
compose restart redis >"$W/compose-restart.log" 2>&1 || die "docker-compose restart redis failed: $(cat "$W/compose-restart.log")"
log "Redis restarted"
until_ok 60 "Redis to be healthy again" health_is "$redis_cid" healthy
until_ok 60 "GET /readyz to answer 200 after the Redis restart" http_ok /readyz
log "Redis healthy, web ready again"
id_after=$(submit '{"type": "count_words", "text": "after the restart"}')
ALL_IDS+=("$id_after")
all_finished 90 "${ALL_IDS[@]}"
log "all ${#ALL_IDS[@]} jobs accepted so far are finished after the restart"

step "container health (web and remaining workers)"
web_cid=$(compose ps -q web)
until_ok 60 "the web container to be healthy (Dockerfile HEALTHCHECK)" health_is "$web_cid" healthy
for cid in $(compose ps -q worker); do
    [[ $cid == "$victim" ]] && continue
    until_ok 60 "worker ${cid:0:12} to be healthy" health_is "$cid" healthy
done
until_ok 30 "the smtp container to be healthy" health_is "$(compose ps -q smtp)" healthy

step "offload's own image does not know the example's csv_report"
req POST /jobs '{"type": "csv_report", "csv": "a\n1\n"}'
[[ $HTTP_STATUS == 422 ]] || die "POST /jobs csv_report to offload's own image answered $HTTP_STATUS, expected 422: $(head -c 300 "$W/resp.json")"
log "csv_report refused with 422 by offload:latest"

step "web and worker on the example's image: csv_report jobs run"
compose_example up -d --no-build --scale worker=1 web worker >"$W/compose-example-up.log" 2>&1 \
    || die "docker-compose up with $EXAMPLE_DIR/docker-compose.example.yml failed: $(cat "$W/compose-example-up.log")"
for service in web worker; do
    for cid in $(compose ps -q "$service"); do
        [[ $(docker inspect -f '{{.State.Running}}' "$cid") == true ]] || continue
        used=$(docker inspect -f '{{.Config.Image}}' "$cid")
        [[ $used == "$EXAMPLE_IMAGE" ]] || die "the running $service container ${cid:0:12} runs $used, not $EXAMPLE_IMAGE"
    done
done
until_ok 60 "GET /readyz to answer 200 from the example's web" http_ok /readyz
until_ok 60 "a worker of the example's image to register" workers_registered 1
req GET /tasks
[[ $HTTP_STATUS == 200 ]] || die "GET /tasks answered $HTTP_STATUS: $(head -c 300 "$W/resp.json")"
python3 - "$W/resp.json" <<'PY' || die "GET /tasks does not list csv_report on the example's web: $(head -c 500 "$W/resp.json")"
import json, sys
def types(node):
    if isinstance(node, dict):
        if isinstance(node.get("type"), str):
            yield node["type"]
        for value in node.values():
            yield from types(value)
    elif isinstance(node, list):
        for value in node:
            yield from types(value)
sys.exit(0 if "csv_report" in set(types(json.load(open(sys.argv[1])))) else 1)
PY
printf 'region,amount\nnorth,10\nsouth,5.5\nnorth,2.25\nnorth,oops\n' >"$W/sales.csv"
report_body=$(python3 -c 'import json, sys; print(json.dumps({"type": "csv_report", "csv": open(sys.argv[1]).read(), "group_by": "region", "sum": ["amount"]}))' "$W/sales.csv")
id_report=$(submit "$report_body")
expect_finished "$id_report" 60 csv_report
[[ $(jget 'd["queue"]') == low ]] || die "csv_report ran on queue $(jget 'd["queue"]'), not its default 'low'"
# expected_report: the last answer's result is the report of sales.csv grouped by region.
expected_report() {
    python3 - "$W/resp.json" <<'PY'
import json, sys
result = json.load(open(sys.argv[1]))["result"]
expected = {
    "rows": 4, "columns": ["region", "amount"],
    "totals": {"amount": {"sum": 17.75, "count": 3, "mean": 17.75 / 3}},
    "groups": {"north": {"rows": 2, "totals": {"amount": {"sum": 12.25, "count": 2, "mean": 6.125}}},
               "south": {"rows": 1, "totals": {"amount": {"sum": 5.5, "count": 1, "mean": 5.5}}}},
    "bad_rows": [{"line": 5, "error": "column 'amount': 'oops' is not a number"}], "bad_row_count": 1,
}
sys.exit(0 if result == expected else 1)
PY
}
expected_report || die "csv_report's result is not the expected report: $(jget 'd["result"]')"
chars=$(wc -c <"$W/sales.csv")
[[ $(jget 'd["progress"] and (d["progress"]["done"], d["progress"]["total"])') == "($chars, $chars)" ]] \
    || die "csv_report's last progress is $(jget 'd["progress"]'), expected $chars of $chars characters"
log "csv_report $id_report finished on queue low: $(jget 'd["result"]["rows"]') rows, north $(jget 'd["result"]["groups"]["north"]["totals"]["amount"]["sum"]'), 1 bad row (line 5)"
# As the page sends it: the file as a part, the other fields as form fields (a list once per item).
id_upload=$(submit_form type=csv_report "csv=@$W/sales.csv;type=text/csv" group_by=region sum=amount)
expect_finished "$id_upload" 60 "csv_report from an uploaded file"
expected_report || die "the uploaded file's report is $(jget 'd["result"]')"
log "csv_report $id_upload from a multipart upload finished with the same report"
# The CLI in the example's image, as the README shows it (the file from stdin).
compose exec -T -e "OFFLOAD_API_KEY=$API_SECRET" web offload --url http://127.0.0.1:8000 \
    submit csv_report --csv @- --group-by region --sum amount --wait --json <"$W/sales.csv" >"$W/resp.json" 2>"$W/cli.err" \
    || die "offload submit csv_report in the web container failed: $(cat "$W/cli.err") $(head -c 300 "$W/resp.json")"
[[ $(jget 'd["status"]') == finished ]] || die "offload submit csv_report --wait ended $(jget 'd["status"]')"
expected_report || die "the CLI's csv_report result is $(jget 'd["result"]')"
log "offload submit csv_report --csv @- --wait in the web container: $(jget 'd["id"]') finished with the same report"
id_missing=$(submit '{"type": "csv_report", "csv": "region,amount\nnorth,1\n", "group_by": "country"}')
status=$(wait_job "$id_missing" 60)
[[ $status == failed ]] || die "csv_report with a missing column ended '$status', expected failed"
[[ $(jget 'd["attempts"]') == 1 ]] || die "csv_report with a missing column took $(jget 'd["attempts"]') attempts: a PermanentFailure must not be retried (max_retries=1)"
[[ $(jget '"not in the header" in (d["error"] or {}).get("message", "")') == True ]] \
    || die "csv_report with a missing column failed with $(jget 'd["error"]'), not the task's message"
log "csv_report $id_missing with a missing column failed after 1 attempt: $(jget 'd["error"]["type"]'): $(jget 'd["error"]["message"][:80]')"

step "docker-compose down -v"
compose logs --no-color --timestamps >"$W/compose-logs.txt" 2>&1 || true
compose down -v --remove-orphans >"$W/compose-down.log" 2>&1 || die "docker-compose down -v failed: $(cat "$W/compose-down.log")"
STACK_UP=0
[[ -z $(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT") ]] || die "volumes left after down -v"

step "stop dockerd"
stop_engine
end_step

FAILED=0
echo
echo "compose-test timings:"
printf '%s\n' "${TIMINGS[@]}"
echo "image $IMAGE: ${IMAGE_MB} MB (with stand-in base)"
if (( ${#WARNINGS[@]} )); then
    echo "WARNINGS (not failures):"
    printf '  - %s\n' "${WARNINGS[@]}"
fi
