# offload: `make run` starts the whole dev stack, `make test` runs the test suite.
# Both bootstrap .venv with the Python found on PATH (3.11 or newer).
#
# Your own tasks: `make run TASKS="path/to/your-package ..."` pip-installs each path (editable)
# into .venv first; a package that names its module in the `offload.tasks` entry-point group is
# then loaded by every process (examples/csv_report/README.md). It stays installed (later runs
# and test stacks load it too) until `.venv/bin/python -m pip uninstall NAME` or `make clean`.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test venv clean soak test-compose k8s-validate bench bench-bulk test-bench test-forking-worker test-ha test-compose-ha

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "offload needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(if $(strip $(TASKS)),$(BIN)/python -m pip install --quiet $(addprefix -e ,$(TASKS)))
	$(BIN)/python -m app.dev

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache

# Performance (issues 8 and 15): its own servers, offload against plain RQ, Celery and Celery + Flower 2's
# HTTP API (intake and latency); prints a table and writes bench/results/bench.{json,txt,png}.
# BENCH_ARGS=--quick for a one-minute smoke run.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench $(BENCH_ARGS)

# The bench's own tests that need its extra (Celery, Flower), deselected in make test.
test-bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m pytest -m benchextra tests $(PYTEST_ARGS)

# Search and bulk retry over 200,000 failed jobs on their own Valkey and gunicorn (~4 min): prints
# figures, writes bench/results/bulk.json (bench/FINDINGS.md section 10). BULK_ARGS=--jobs 20000 for less.
bench-bulk: $(STAMP)
	$(BIN)/python -m bench.bulk $(BULK_ARGS)

# Reliability soak (5,000 jobs, workers killed, Redis restarted): prints figures, writes bench/results/soak.json.
soak: $(STAMP)
	$(BIN)/python tests/soak.py

# The Dockerfile and docker-compose.yml built and run on a real Docker engine (see ci/compose-test.sh).
test-compose:
	bash ci/compose-test.sh

# The Kubernetes manifests checked against the Kubernetes and KEDA schemas.
k8s-validate:
	bash ci/k8s-validate.sh

# The fault, integration and lifecycle tests again, against RQ's forking worker (WORKER_CLASS=forking):
# the tests marked @pytest.mark.deployments(..., "forking"), see tests/conftest.py.
test-forking-worker: $(STAMP)
	$(BIN)/python -m pytest -m forkingworker tests $(PYTEST_ARGS)

# Sentinel failover and Redis Cluster, with real servers (tests/ha/), and the integration tests
# again on a Redis Cluster (the "cluster" deployment of tests/conftest.py).
test-ha: $(STAMP)
	$(BIN)/python -m pytest -m ha tests $(PYTEST_ARGS)

# docker-compose.ha.yml on a real Docker engine: a Sentinel failover drill (ci/compose-ha-test.sh;
# ~2 min warm, longer on the first run, which builds the stand-in base images).
test-compose-ha:
	bash ci/compose-ha-test.sh
