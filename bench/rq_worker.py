"""``rq worker`` with the benchmark's task module imported first, as RQ's docs advise for
forking workers (otherwise every work horse imports it again, costing ~0.5 s a job here)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench.rq_tasks  # noqa: E402, F401
from rq.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.argv[0] = "rq"
    sys.exit(main())
