"""``worker.py`` for the benchmark, with one knob more.

``BENCH_HORSE_MAX_JOBS`` overrides how many jobs a fast worker's horse runs before it is
replaced (0: never), so that the memory phase sees a leak instead of hiding it."""

import os
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if os.environ.get("BENCH_HORSE_MAX_JOBS"):
    from app.jobs.engine.worker import PersistentHorseWorker  # noqa: E402

    PersistentHorseWorker.horse_max_jobs = int(os.environ["BENCH_HORSE_MAX_JOBS"])

sys.argv = [str(ROOT / "worker.py"), *sys.argv[1:]]
runpy.run_path(str(ROOT / "worker.py"), run_name="__main__")
