#!/usr/bin/env bash
# docker-compose.ha.yml on a real Docker engine (`make test-compose-ha`): a Sentinel failover of
# the compose stack, end to end.
#
#   1. starts its own dockerd on a private socket (as ci/compose-test.sh, ../shared/CONTAINERS.md);
#      the stand-in base images (python:3.11-slim, redis:7-bookworm) are kept in the engine's
#      store in OFFLOAD_CI_DIR between runs; when they are missing, ci/compose-test.sh is run
#      once with OFFLOAD_CI_REUSE=1 in the same directory to build them (a few minutes);
#   2. builds the project image, then `docker-compose -f docker-compose.yml -f
#      docker-compose.ha.yml up -d`: primary `redis`, `redis-replica`, three sentinels, web,
#      two workers, the SMTP sink;
#   3. submits jobs (count_words, send_email, a delayed one) and sees them finish;
#   4. SIGKILLs the primary's redis-server from the host (a crash: compose's restart policy
#      brings the container back, and its start script makes it a replica of the new primary);
#   5. measures: kill -> the sentinels name redis-replica; kill -> the first 202; sees a job
#      submitted after the failover finish, the delayed job run, every job accepted before the
#      kill finished, the old primary back as a replica, and both workers still registered;
#   6. `docker-compose down -v` and stops the engine (trap on EXIT).
#
# Run as root. Knobs: OFFLOAD_CI_DIR (default /tmp/offload-ha-docker),
# OFFLOAD_CI_BUILD_TIMEOUT (600), SENTINEL_DOWN_AFTER_MS (5000, the override's default).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
W=${OFFLOAD_CI_DIR:-/tmp/offload-ha-docker}
BUILD_TIMEOUT=${OFFLOAD_CI_BUILD_TIMEOUT:-600}
PROJECT=offloadha
IMAGE=offload:latest
source "$ROOT/ci/docker-env.sh"

T0=$(date +%s.%N)
DOCKERD_PID=""
STACK_UP=0
log() { printf '[compose-ha-test %6ss] %s\n' "$(secs "$T0" "$(now)")" "$*"; }
die() { printf '\ncompose-ha-test: FAILED: %s\n' "$*" >&2; exit 1; }
compose() {
    docker-compose -p "$PROJECT" -f "$ROOT/docker-compose.yml" -f "$ROOT/docker-compose.ha.yml" \
        --project-directory "$ROOT" --env-file "$W/ha.env" "$@"
}

start_engine() {
    mkdir -p "$W/data" "$W/exec"
    dockerd --data-root "$W/data" --exec-root "$W/exec" -H "unix://$W/docker.sock" \
        --pidfile "$W/dockerd.pid" >"$W/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    local deadline=$(( $(date +%s) + 60 ))
    until docker version >/dev/null 2>&1; do
        kill -0 "$DOCKERD_PID" 2>/dev/null || die "dockerd exited at start; see $W/dockerd.log"
        (( $(date +%s) < deadline )) || die "dockerd did not answer within 60 s"
        sleep 0.2
    done
}
stop_engine() {
    [[ -n $DOCKERD_PID ]] || return 0
    kill -TERM "$DOCKERD_PID" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$DOCKERD_PID" 2>/dev/null || true
    wait "$DOCKERD_PID" 2>/dev/null || true
    DOCKERD_PID=""
}
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [[ $STACK_UP == 1 ]]; then
        if [[ $rc != 0 ]]; then compose ps >&2; compose logs --no-color --tail=40 >&2; fi
        compose down -v --remove-orphans --timeout 10 >/dev/null 2>&1
    fi
    stop_engine
    log "total $(secs "$T0" "$(now)")s"
    [[ $rc == 0 ]] && echo "compose-ha-test: PASSED" || echo "compose-ha-test: FAILED (exit $rc)" >&2
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[[ $(id -u) == 0 ]] || die "run as root: dockerd needs it"
command -v dockerd >/dev/null && command -v docker-compose >/dev/null \
    || die "needs docker.io and docker-compose (ci/compose-test.sh installs them)"
[[ -e $W/dockerd.pid ]] && kill -0 "$(cat "$W/dockerd.pid")" 2>/dev/null && die "a dockerd already runs on $W"
mkdir -p "$W"

have_image() { docker image inspect "$1" >/dev/null 2>&1; }
start_engine
if ! have_image python:3.11-slim || ! have_image redis:7-bookworm; then
    log "stand-in base images missing in $W: building them with ci/compose-test.sh (OFFLOAD_CI_REUSE=1)"
    stop_engine
    OFFLOAD_CI_DIR=$W OFFLOAD_CI_REUSE=1 bash "$ROOT/ci/compose-test.sh" >"$W/compose-test.log" 2>&1 \
        || die "ci/compose-test.sh failed; see $W/compose-test.log"
    start_engine
fi
log "dockerd pid $DOCKERD_PID; building $IMAGE"
timeout "$BUILD_TIMEOUT" docker build --progress=plain -t "$IMAGE" "$ROOT" >"$W/build.log" 2>&1 \
    || die "docker build failed: $(tail -n 20 "$W/build.log")"

API_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$W/ha.env" <<EOF
OFFLOAD_ENV_FILE=$W/ha.env
OFFLOAD_BIND=127.0.0.1
OFFLOAD_PORT=$PORT
OFFLOAD_IMAGE=$IMAGE
API_KEYS=ci:admin:$API_SECRET
WEB_CONCURRENCY=2
WEB_THREADS=8
LOG_LEVEL=INFO
EOF
chmod 600 "$W/ha.env"
compose config -q || die "docker-compose config of the two files failed"
T_UP=$(now)
STACK_UP=1
compose up -d --no-build --scale worker=2 >"$W/compose-up.log" 2>&1 || die "docker-compose up failed: $(cat "$W/compose-up.log")"
log "compose up returned; waiting for the API"

# The drill itself, in Python (HTTP, timing, the sentinels through `docker exec`).
python3 - "$PORT" "$API_SECRET" "$PROJECT" "$(secs "$T_UP" "$(now)")" <<'PY'
import json, subprocess, sys, time, urllib.error, urllib.request

port, secret, project, up_s = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
base = f"http://127.0.0.1:{port}"
terminal = {"finished", "failed", "canceled", "stopped"}
t0 = time.monotonic()


def log(message):
    print(f"[compose-ha-test drill {time.monotonic() - t0:6.1f}s] {message}", flush=True)


def fail(message):
    sys.exit(f"compose-ha-test: FAILED: {message}")


def http(method, path, body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers={"Authorization": f"Bearer {secret}"})
    if data:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.load(answer), dict(answer.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), dict(exc.headers)
    except OSError as exc:
        return None, {"detail": repr(exc)}, {}


def until(predicate, limit, what, interval=0.2):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    fail(f"timed out after {limit}s waiting for {what}")


def container(service):
    ids = subprocess.run(["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={project}",
                          "--filter", f"label=com.docker.compose.service={service}"],
                         capture_output=True, text=True, check=True).stdout.split()
    return ids[0] if ids else None


def redis_cli(service, *args, port="6379"):
    cid = container(service)
    if cid is None:
        return ""
    done = subprocess.run(["docker", "exec", cid, "redis-cli", "-p", port, "--raw", *args],
                          capture_output=True, text=True, timeout=10)
    return done.stdout.strip()


def primary_by_sentinels():
    names = []
    for sentinel in ("sentinel-1", "sentinel-2", "sentinel-3"):
        try:
            out = redis_cli(sentinel, "SENTINEL", "get-master-addr-by-name", "mymaster", port="26379")
        except subprocess.TimeoutExpired:
            continue
        if out:
            names.append(out.splitlines()[0])
    top = max(set(names), key=names.count) if names else None
    return top if top and names.count(top) >= 2 else None


def submit(body):
    status, job, headers = http("POST", "/jobs", body)
    if status != 202:
        fail(f"POST /jobs {body} answered {status}: {job}")
    return job["id"]


def finished(job_ids, limit):
    deadline = time.monotonic() + limit
    bad = []
    for job_id in job_ids:
        while True:
            status, job, _ = http("GET", f"/jobs/{job_id}?wait=10")
            if status == 200 and job["status"] in terminal:
                if job["status"] != "finished":
                    bad.append(f"{job_id} ended {job['status']}: {job.get('error')}")
                break
            if status == 404:
                bad.append(f"{job_id} lost (404)")
                break
            if time.monotonic() > deadline:
                bad.append(f"{job_id}: {status} {job.get('status', job)} after {limit}s")
                break
    if bad:
        fail("not every job finished: " + "; ".join(bad))


until(lambda: http("GET", "/readyz")[0] == 200, 120, "GET /readyz to answer 200")
ready_s = float(up_s) + time.monotonic() - t0
if primary_by_sentinels() != "redis":
    fail(f"the sentinels name {primary_by_sentinels()!r} as primary, not redis")
until(lambda: "connected_slaves:1" in redis_cli("redis", "INFO", "replication"), 60, "redis-replica to sync")
def sentinels_settled():
    # Sentinel learns the replicas from the primary's INFO every 10 s: until each sentinel
    # knows the replica (and the other two), a kill can only end in "failover-abort-no-good-slave".
    for sentinel in ("sentinel-1", "sentinel-2", "sentinel-3"):
        lines = redis_cli(sentinel, "SENTINEL", "master", "mymaster", port="26379").splitlines()
        fields = dict(zip(lines[::2], lines[1::2]))
        if fields.get("num-slaves") != "1" or fields.get("num-other-sentinels") != "2":
            return False
    return True
until(sentinels_settled, 60, "every sentinel to know the replica and the other sentinels")
workers = lambda: (lambda a: a[0] == 200 and len(a[1]["workers"]) == 2)(http("GET", "/dashboard/0/data/workers.json"))
until(workers, 60, "two workers in the dashboard")
log(f"stack ready {ready_s:.1f}s after `up`: primary redis, replica in sync, 2 workers")

before = [submit({"type": "count_words", "text": f"before the failover {i}"}) for i in range(10)]
before.append(submit({"type": "send_email", "to": "a@example.com", "subject": "ha", "body": "before the failover"}))
finished(before, 60)
delayed_for = 15
delayed = submit({"type": "count_words", "text": "delayed across the failover", "delay_seconds": delayed_for})
queued = [submit({"type": "count_words", "text": f"accepted just before the kill {i}"}) for i in range(10)]
log(f"{len(before)} jobs finished; {len(queued)} more and one delayed by {delayed_for}s accepted; killing the primary")

pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", container("redis")],
                     capture_output=True, text=True, check=True).stdout.strip()
killed = time.monotonic()
subprocess.run(["kill", "-KILL", pid], check=True)

until(lambda: primary_by_sentinels() == "redis-replica", 60, "the sentinels to promote redis-replica", interval=0.1)
failover_s = time.monotonic() - killed
log(f"failover: the sentinels name redis-replica {failover_s:.1f}s after the kill")

answers = []
def accepted_again():
    status, job, headers = http("POST", "/jobs", {"type": "count_words", "text": "after the failover"}, timeout=15)
    answers.append(status)
    if status not in (202, 503):
        fail(f"POST /jobs during the failover answered {status}: {job}")
    if status == 503 and not headers.get("Retry-After"):
        fail("a 503 without Retry-After")
    return job["id"] if status == 202 else None
after = until(accepted_again, 90, "POST /jobs to answer 202 again", interval=0.1)
first_202_s = time.monotonic() - killed
log(f"first 202 {first_202_s:.1f}s after the kill ({answers.count(503)} answers 503 + Retry-After before it)")
finished([after], 60)
after_done_s = time.monotonic() - killed
log(f"the job submitted after the failover finished {after_done_s:.1f}s after the kill")
finished(queued + [delayed], 60)
status, job, _ = http("GET", f"/jobs/{delayed}")
from datetime import datetime
created, started = (datetime.fromisoformat(job[k].replace("Z", "+00:00")) for k in ("created_at", "started_at"))
delayed_late_s = (started - created).total_seconds() - delayed_for
log(f"the {len(queued)} jobs accepted before the kill finished; the delayed job started {delayed_late_s:.1f}s after it was due")

until(lambda: "role:slave" in redis_cli("redis", "INFO", "replication")
      and "master_link_status:up" in redis_cli("redis", "INFO", "replication"), 90, "the old primary back as a replica")
back_s = time.monotonic() - killed
until(workers, 60, "both workers registered on the new primary")
log(f"the old primary is back as a replica of redis-replica {back_s:.1f}s after the kill; 2 workers registered")
if delayed_late_s > 10:
    fail(f"the delayed job started {delayed_late_s:.1f}s late")
print("compose-ha figures: " + json.dumps({
    "ready_after_up_s": round(ready_s, 1), "failover_s": round(failover_s, 1), "first_202_after_kill_s": round(first_202_s, 1),
    "refused_503": answers.count(503), "job_after_failover_done_s": round(after_done_s, 1),
    "delayed_job_late_s": round(delayed_late_s, 1), "old_primary_replica_again_s": round(back_s, 1),
}))
PY
log "drill passed"
