"""``worker.py`` for the benchmark, honouring ``WORKER_CLASS=fast`` even before the setting
is wired into ``app.workers.build_worker`` (then this only runs ``worker.py``).

``BENCH_HORSE_MAX_JOBS`` overrides how many jobs a fast worker's horse runs before it is
replaced (0: never), so that the memory phase sees a leak instead of hiding it."""

import os
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import workers  # noqa: E402
from app.settings import Settings  # noqa: E402

if os.environ.get("WORKER_CLASS", "forking") == "fast":
    from app.fastworker import OffloadFastWorker, PersistentHorseWorker

    if "worker_class" not in Settings.model_fields:
        workers.OffloadWorker = OffloadFastWorker  # type: ignore[misc]
    if os.environ.get("BENCH_HORSE_MAX_JOBS"):
        PersistentHorseWorker.horse_max_jobs = int(os.environ["BENCH_HORSE_MAX_JOBS"])

sys.argv = [str(ROOT / "worker.py"), *sys.argv[1:]]
runpy.run_path(str(ROOT / "worker.py"), run_name="__main__")
