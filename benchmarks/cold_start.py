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
* ``api``: ``fit_background(video)`` then ``model.foreground(video)`` from Python;
* ``cli-warm-up``: the offline CLI fit on an empty cache without its warm-up child
  (``NAPARI_GMM_BG_WARMUP=0``: every kernel compiled in turn) and with it (the scoring
  kernels compiled in a second process while the first reads the clip and compiles the
  fit's);
* ``panel``: napari's panel on an empty cache (needs a display: run under
  ``xvfb-run -a``): the panel opens, the clip is added as a layer, Fit is clicked at
  once or after a pause (a user finding their file), and the time from the click to the
  mask on the canvas is measured, with the warm-up off, with it on, and with it on but
  the fit not waiting for it (compiling beside it); with the longest stall of the GUI
  thread meanwhile (a 5 ms timer's largest gap).

CLIP is an 80-frame 160x120 RGB clip: the traffic clip of the reference data when present
(see the README's Benchmark data), else the built-in synthetic sample saved as a TIFF
stack.  Prints each wall time and CPU time, and the import alone for scale.
"""

import argparse
import json
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
CASES = ("cli-offline", "cli-online", "api", "cli-warm-up", "panel")
#: Seconds between the panel opening and the click on Fit, in the panel case.
PANEL_PAUSES = (0.0, 10.0)

# One napari session, timed from the click on Fit to the mask's frame computed for the
# canvas; prints a JSON line.  argv: clip, pause before the click, "wait" or "no-wait".
PANEL = """
import json, sys, time
import numpy as np
from numba.core import event
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

compiled = []

class Compiles(event.Listener):
    def on_start(self, ev):
        func = getattr(ev.data.get("dispatcher"), "py_func", None)
        if getattr(func, "__module__", "").startswith("napari_gmm_bg"):
            compiled.append(func.__qualname__)

    def on_end(self, ev):
        pass

event.register("numba:compile", Compiles())
import napari
from napari_gmm_bg._napari import widgets
from napari_gmm_bg._napari.panel import open_panel
from napari_gmm_bg.cli import read_input

if sys.argv[3] == "no-wait":
    widgets.WARM_UP_WAIT = 0.0
video = np.asarray(read_input(sys.argv[1]))
viewer = napari.Viewer()
app = QApplication.instance()
gaps, last = [], [time.perf_counter()]

def tick():
    now = time.perf_counter()
    gaps.append(now - last[0])
    last[0] = now

timer = QTimer()
timer.setInterval(5)
timer.timeout.connect(tick)
opened = time.perf_counter()
panel = open_panel(viewer)
layer = viewer.add_image(video, name="clip", rgb=video.ndim == 4)
while time.perf_counter() - opened < float(sys.argv[2]):
    app.processEvents()
    time.sleep(0.01)
timer.start()
last[0] = clicked = time.perf_counter()
assert panel.fit.fit() is not None
while panel.fit.job.running:
    app.processEvents()
    time.sleep(0.005)
app.processEvents()
np.asarray(viewer.layers["clip GMM mask"].data[viewer.dims.current_step[0]])
seconds = time.perf_counter() - clicked
timer.stop()
print(json.dumps({
    "seconds": seconds,
    "stall": max(gaps, default=0.0) - 0.005,
    "compiled": len(compiled),
    "warm_up": panel.fit.warm_up is not None,
}))
viewer.close()
"""

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


def _run(
    args: list[str], cache: Path, env_extra: dict | None = None, out: list | None = None
) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, its children's included) of one fresh
    process; its standard output is appended to ``out``."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    env.update(env_extra or {})
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
    if out is not None:
        out.append(result.stdout)
    return seconds, cpu


def _cell(run: tuple[float, float]) -> str:
    return f"{run[0]:6.1f} / {run[1]:5.1f}"


def _panel(root: Path, clip: Path, pauses: list[float]) -> None:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        print("panel: no display (run under xvfb-run -a): not measured")
        return
    print("panel, empty cache: click on Fit to the mask on the canvas, wall / CPU seconds")
    print("(CPU: the napari process and its warm-up children, from start to exit)")
    variants = (("warm-up off", "0", "wait"), ("warm-up on", "1", "wait"))
    variants += (("warm-up on, fit not waiting", "1", "no-wait"),)
    for pause in pauses:
        for name, switch, wait in variants:
            out: list[str] = []
            cache = root / f"cache-panel-{switch}-{wait}-{pause:g}"
            command = ["-c", PANEL, str(clip), str(pause), wait]
            _, cpu = _run(command, cache, {"NAPARI_GMM_BG_WARMUP": switch}, out)
            report = json.loads(out[0].strip().splitlines()[-1])
            print(
                f"  click {pause:4.0f} s after opening, {name:28s} {report['seconds']:6.1f} s"
                f" / {cpu:5.1f} (longest GUI stall {report['stall']:.2f} s, "
                f"{report['compiled']} kernels compiled in napari's process)",
                flush=True,
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"from {','.join(CASES)}")
    parser.add_argument(
        "--pauses",
        default=",".join(f"{p:g}" for p in PANEL_PAUSES),
        help="panel case: seconds between opening the panel and clicking Fit",
    )
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
        if "cli-warm-up" in cases:
            for name, switch in (("without warm-up", "0"), ("with warm-up child", "1")):
                cold = _run(
                    offline, root / f"cache-cli-{switch}", {"NAPARI_GMM_BG_WARMUP": switch}
                )
                print(f"{'CLI offline, ' + name:28s} {_cell(cold):>14s}", flush=True)
        if "panel" in cases:
            _panel(root, clip, [float(p) for p in args.pauses.split(",") if p])
        imported = _run(["-c", "import napari_gmm_bg.cli"], root / "cache-import")
        print(f"{'import napari_gmm_bg.cli':28s} {'':>14s} {_cell(imported):>14s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
