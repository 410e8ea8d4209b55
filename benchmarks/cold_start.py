"""First-run times: a fresh process with an empty numba cache, then the same with it warm.

    python benchmarks/cold_start.py            # every case below
    python benchmarks/cold_start.py --cases cli-offline,api

What a newcomer waits for after installing: numba compiles the kernels a call needs on
first use and caches them on disk (see the README's Speed section).  Each case runs in its
own process, with ``NUMBA_CACHE_DIR`` pointing at a fresh empty folder (cold), then again
with that folder as the first run left it (warm):

* ``cli-offline``: ``napari-gmm-bg fit CLIP --out ...`` (fit, log-likelihood, mask,
  background, model written);
* ``cli-online``: ``napari-gmm-bg fit CLIP --mode online --out ...``, on its own empty
  cache, and once more after an offline fit filled the cache (``online after offline``);
* ``api``: ``fit_background(video)`` then ``model.foreground(video)`` from Python.

CLIP is an 80-frame 160x120 RGB clip: the traffic clip of the reference data when present
(see the README's Benchmark data), else the built-in synthetic sample saved as a TIFF
stack.  Prints each wall time and CPU time, and the import alone for scale.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).parent))
from _data import shared  # noqa: E402

from napari_gmm_bg import make_sample  # noqa: E402

SOURCE = str(Path(__file__).resolve().parents[1] / "src")
CASES = ("cli-offline", "cli-online", "api")

API = """
import sys
from napari_gmm_bg import fit_background
from napari_gmm_bg.cli import read_input
video = read_input(sys.argv[1])
model = fit_background(video)
mask = model.foreground(video)
assert mask.shape == video.shape[:3]
"""


def _clip(folder: Path) -> Path:
    traffic = shared("seed_traffic", "traffic.mp4")
    if traffic is not None:
        return traffic
    path = folder / "moving-shapes.tif"
    tifffile.imwrite(path, np.asarray(make_sample("moving-shapes").video))
    return path


def _run(args: list[str], cache: Path) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one fresh process."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SOURCE, env.get("PYTHONPATH")) if p)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def _cell(run: tuple[float, float]) -> str:
    return f"{run[0]:6.1f} / {run[1]:5.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"from {','.join(CASES)}")
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip = _clip(root)
        cli = ["-m", "napari_gmm_bg.cli", "fit", str(clip), "--out"]
        offline = [*cli, str(root / "offline")]
        online = [*cli, str(root / "online"), "--mode", "online"]
        api = ["-c", API, str(clip)]
        print(f"clip: {clip} ({', '.join(cases)}); {os.cpu_count()} CPUs")
        print("wall / CPU seconds (user + system; on a busy machine the wall time grows)")
        print(f"{'case':28s} {'cold cache':>14s} {'warm cache':>14s}")
        rows = []
        if "cli-offline" in cases:
            rows.append(("CLI offline fit", offline, root / "cache-offline"))
        if "cli-online" in cases:
            rows.append(("CLI on-line fit", online, root / "cache-online"))
        if "api" in cases:
            rows.append(("API fit + foreground", api, root / "cache-api"))
        for name, command, cache in rows:
            cold = _run(command, cache)
            warm = _run(command, cache)
            print(f"{name:28s} {_cell(cold):>14s} {_cell(warm):>14s}", flush=True)
        if "cli-offline" in cases and "cli-online" in cases:
            after = _run(online, root / "cache-offline")  # the offline kernels are cached
            print(f"{'CLI on-line after offline':28s} {_cell(after):>14s}", flush=True)
        imported = _run(["-c", "import napari_gmm_bg.cli"], root / "cache-import")
        print(f"{'import napari_gmm_bg.cli':28s} {'':>14s} {_cell(imported):>14s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
