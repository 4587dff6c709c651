#!/usr/bin/env bash
# Validate deploy/kubernetes/ without a cluster (`make k8s-validate`).
#
# 1. kubernetes-validate (PyPI; it ships the Kubernetes OpenAPI schemas) checks every built-in
#    resource strictly (unknown fields are errors) against the oldest and newest Kubernetes
#    versions we claim: 1.29 and 1.37.
# 2. The KEDA ScaledObject, a custom resource those schemas lack, is checked against
#    cloudcoil.models.keda (PyPI; models generated from KEDA's CRDs), unknown fields included,
#    and its Redis triggers against the keys of KEDA's Redis list scaler.
# 3. Cross-checks between the manifests and the code: the triggers watch exactly RQ's lists for
#    app.settings.QUEUE_NAMES on the Redis Service; at least one worker always runs (the RQ
#    scheduler lives in workers); the worker's grace period exceeds MAX_TIMEOUT_SECONDS; every
#    ConfigMap key is a setting the app knows; kustomization.yaml lists every manifest; each
#    example overlay (examples/*/kubernetes) builds on these manifests and replaces the image
#    that both the web and the worker Deployment name.
#
# The validators are installed into a virtualenv outside the work tree
# (OFFLOAD_K8S_VENV, default ~/.cache/offload-k8s-validate), pinned, reused between runs.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=$ROOT/deploy/kubernetes
VENV=${OFFLOAD_K8S_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/offload-k8s-validate}
K8S_VERSIONS=(1.29.0 1.37.0)
PINS=("kubernetes-validate==1.37.0" "cloudcoil.models.keda==2.16.1.0")
T0=$(date +%s)

die() { echo "k8s-validate: FAILED: $*" >&2; exit 1; }

[[ -d $DIR ]] || die "$DIR does not exist"
command -v python3 >/dev/null || die "python3 is not installed"

if ! "$VENV/bin/python" - "${PINS[@]}" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, _, wanted = pin.partition("==")
    if version(name) != wanted:
        sys.exit(1)
PY
then
    echo "k8s-validate: installing ${PINS[*]} into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "cannot create a virtualenv at $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}" \
        || die "pip install ${PINS[*]} failed"
fi

mapfile -t manifests < <(cd "$DIR" && ls -1 ./*.yaml | sed 's|^\./||' | grep -vx kustomization.yaml)
builtin=()
for f in "${manifests[@]}"; do
    grep -q '^kind: ScaledObject' "$DIR/$f" || builtin+=("$DIR/$f")
done
(( ${#builtin[@]} )) || die "no manifests found in $DIR"

for version in "${K8S_VERSIONS[@]}"; do
    out=$("$VENV/bin/kubernetes-validate" --strict -k "$version" "${builtin[@]}" 2>&1) || {
        echo "$out" >&2
        die "kubernetes-validate --strict -k $version found errors"
    }
    # A resource without a schema is only a warning there; here every built-in kind must be known.
    if grep -q '^WARN' <<<"$out"; then
        echo "$out" >&2
        die "kubernetes-validate could not check some resources against $version"
    fi
    echo "$out" | sed "s|$DIR/||"
done

"$VENV/bin/python" - "$DIR" "$ROOT/app/settings.py" <<'PY'
"""The ScaledObject against KEDA's models, and the manifests against each other and the code."""

import ast
import json
import sys
from pathlib import Path

import yaml
from cloudcoil.models.keda.v1alpha1 import ScaledObject
from pydantic import ValidationError

directory, settings_py = Path(sys.argv[1]), Path(sys.argv[2])
problems: list[str] = []


def problem(message: str) -> None:
    problems.append(message)


# --- what the code says -------------------------------------------------------------------
tree = ast.parse(settings_py.read_text())
queue_names: tuple[str, ...] = ()
setting_names: set[str] = set()
for node in tree.body:
    if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "QUEUE_NAMES":
        queue_names = ast.literal_eval(node.value)
    if isinstance(node, ast.ClassDef) and node.name == "Settings":
        setting_names = {
            item.target.id.upper()
            for item in node.body
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
        }
if not queue_names or not setting_names:
    sys.exit("k8s-validate: FAILED: could not read QUEUE_NAMES and Settings from app/settings.py")

# --- the manifests --------------------------------------------------------------------------
kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
listed = set(kustomization.get("resources", []))
present = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
for name in sorted(present - listed):
    problem(f"kustomization.yaml does not list {name}")
for name in sorted(listed - present):
    problem(f"kustomization.yaml lists {name}, which does not exist")
namespace = kustomization.get("namespace", "default")

resources: dict[tuple[str, str], dict] = {}
for path in sorted(present):
    for doc in yaml.safe_load_all((directory / path).read_text()):
        if doc:
            resources[(doc["kind"], doc["metadata"]["name"])] = doc

# --- the ScaledObject against KEDA's CRD models -------------------------------------------------
def unknown_fields(given, known, where=""):
    """Keys of `given` that the model dropped: fields KEDA's CRD does not have."""
    if isinstance(given, dict) and isinstance(known, dict):
        for key, value in given.items():
            if key not in known:
                yield f"{where}.{key}".lstrip(".")
            else:
                yield from unknown_fields(value, known[key], f"{where}.{key}")
    elif isinstance(given, list) and isinstance(known, list):
        for i, (a, b) in enumerate(zip(given, known)):
            yield from unknown_fields(a, b, f"{where}[{i}]")


REDIS_LIST_KEYS = {
    "address", "addressFromEnv", "host", "hostFromEnv", "port", "portFromEnv", "username",
    "usernameFromEnv", "password", "passwordFromEnv", "databaseIndex", "enableTLS", "unsafeSsl",
    "listName", "listLength", "activationListLength",
}

scaled = [doc for (kind, _), doc in resources.items() if kind == "ScaledObject"]
if not scaled:
    problem("no KEDA ScaledObject in the manifests")
for doc in scaled:
    name = doc["metadata"]["name"]
    try:
        model = ScaledObject.model_validate(doc)
    except ValidationError as exc:
        problem(f"ScaledObject/{name} does not match KEDA's schema: {exc}")
        continue
    known = json.loads(model.model_dump_json(by_alias=True, exclude_unset=True))
    for field in unknown_fields(doc, known):
        problem(f"ScaledObject/{name}: unknown field {field}")
    spec = doc["spec"]

    target = spec["scaleTargetRef"]
    workload = resources.get((target.get("kind", "Deployment"), target["name"]))
    if workload is None:
        problem(f"ScaledObject/{name} scales {target.get('kind', 'Deployment')}/{target['name']}, not in the manifests")
    if spec.get("minReplicaCount", 0) < 1:
        problem(f"ScaledObject/{name}: minReplicaCount must be at least 1 (RQ's scheduler runs in a worker)")
    if spec.get("maxReplicaCount", 100) < spec.get("minReplicaCount", 0):
        problem(f"ScaledObject/{name}: maxReplicaCount is below minReplicaCount")

    watched = []
    for i, trigger in enumerate(spec["triggers"]):
        meta = trigger.get("metadata", {})
        where = f"ScaledObject/{name} trigger {i}"
        if trigger["type"] != "redis":
            problem(f"{where}: type {trigger['type']!r}, expected the Redis list scaler 'redis'")
            continue
        for key in sorted(set(meta) - REDIS_LIST_KEYS):
            problem(f"{where}: {key!r} is not a setting of KEDA's Redis list scaler")
        if "listName" not in meta:
            problem(f"{where}: no listName")
        watched.append(meta.get("listName"))
        for key in ("listLength", "activationListLength", "databaseIndex"):
            if key in meta and not str(meta[key]).isdigit():
                problem(f"{where}: {key} must be a whole number, not {meta[key]!r}")
        if int(meta.get("listLength", "0") or 0) < 1:
            problem(f"{where}: listLength must be at least 1")
        address = meta.get("address") or f"{meta.get('host', '')}:{meta.get('port', '6379')}"
        host, _, port = address.rpartition(":")
        service = resources.get(("Service", host.split(".")[0]))
        if service is None:
            problem(f"{where}: address {address} names no Service in the manifests")
        else:
            if host.count(".") and host.split(".")[1] != namespace:
                problem(f"{where}: address {address} is not in namespace {namespace!r}")
            if int(port) not in {p["port"] for p in service["spec"]["ports"]}:
                problem(f"{where}: Service {service['metadata']['name']} has no port {port}")
    expected = [f"rq:queue:{q}" for q in queue_names]
    if sorted(filter(None, watched)) != sorted(expected):
        problem(f"ScaledObject/{name} watches {watched}; RQ's queue lists are {expected}")

# --- the rest against the code ------------------------------------------------------------------
config = resources.get(("ConfigMap", "offload-config"), {}).get("data", {})
for key in sorted(set(config) - setting_names):
    problem(f"ConfigMap offload-config: {key} is not a setting of app/settings.py")
max_timeout = int(config.get("MAX_TIMEOUT_SECONDS", 3600))
worker = resources.get(("Deployment", "worker"))
if worker is None:
    problem("no Deployment/worker")
else:
    grace = worker["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
    if grace <= max_timeout:
        problem(f"Deployment/worker: terminationGracePeriodSeconds {grace} must exceed MAX_TIMEOUT_SECONDS {max_timeout}")
    command = worker["spec"]["template"]["spec"]["containers"][0].get("command", [])
    if command[-1:] != ["worker.py"]:
        problem(f"Deployment/worker runs {command}, expected python worker.py")
redis_url = config.get("REDIS_URL", "")
if not any(redis_url.startswith(f"redis://{name}:") for kind, name in resources if kind == "Service"):
    problem(f"ConfigMap offload-config: REDIS_URL {redis_url!r} names no Service in the manifests")
for (kind, name), doc in resources.items():
    if kind in ("Deployment", "StatefulSet"):
        pod = doc["spec"]["template"]["spec"]
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            problem(f"{kind}/{name}: pod must set securityContext.runAsNonRoot")
        selector = doc["spec"]["selector"]["matchLabels"]
        labels = doc["spec"]["template"]["metadata"]["labels"]
        if any(labels.get(k) != v for k, v in selector.items()):
            problem(f"{kind}/{name}: the selector does not match the pod template's labels")

# --- overlays that run a team's image (examples/*/kubernetes) -----------------------------------
# They replace offload's image by name: if a Deployment's image were renamed, the overlay would
# silently leave it on offload's own image, and a web would accept jobs no worker can run.
def image_name(image: str) -> str:
    """``registry:5000/team/offload:1.0@sha256:...`` without its tag and digest (what kustomize matches)."""
    head, _, last = image.split("@", 1)[0].rpartition("/")
    return f"{head}/{last.split(':')[0]}" if head else last.split(":")[0]


task_images = {
    name: {image_name(c["image"]) for c in resources[("Deployment", name)]["spec"]["template"]["spec"]["containers"]}
    for name in ("web", "worker")
    if ("Deployment", name) in resources
}
overlays = sorted(directory.parent.parent.glob("examples/*/kubernetes/kustomization.yaml"))
for path in overlays:
    where = path.relative_to(directory.parent.parent)
    overlay = yaml.safe_load(path.read_text())
    bases = [(path.parent / r).resolve() for r in overlay.get("resources", [])]
    if directory.resolve() not in bases:
        problem(f"{where}: resources do not include {directory.name}/ (offload's manifests)")
    replaced = {entry.get("name") for entry in overlay.get("images", []) if entry.get("newName") or entry.get("newTag")}
    for deployment, names in sorted(task_images.items()):
        if not names & replaced:
            problem(f"{where}: images replace {sorted(replaced)}, not Deployment/{deployment}'s {sorted(names)}")

if problems:
    print("k8s-validate: FAILED:", file=sys.stderr)
    for message in problems:
        print(f"  - {message}", file=sys.stderr)
    sys.exit(1)
print(f"INFO ScaledObject and cross-checks passed ({len(resources)} resources; queues {', '.join(queue_names)};"
      f" {len(overlays)} example overlay(s) replace web's and worker's image)")
PY

echo "k8s-validate: PASSED ($(( $(date +%s) - T0 ))s)"
