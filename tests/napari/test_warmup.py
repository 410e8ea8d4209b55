"""The panel's first Fit on an empty numba cache: the kernels compile in the background
from the moment the panel opens, the panel says so, and the fit compiles nothing itself.

Each session runs in a fresh process on a cache folder of its own (empty, then as the
first session left it), so nothing this test process compiled or cached counts.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import napari_gmm_bg
from napari_gmm_bg._napari import widgets
from napari_gmm_bg.core._numba_cache import FIRST_RUN_MESSAGE
from napari_gmm_bg.core.warmup import PARTS, SWITCH

from .._numba import fresh_kernel
from .conftest import run_fit

# One napari session: open the panel, fit the sample offline then on-line through it,
# show a frame of every layer, then the command line's offline and on-line fits; report
# the warm-up started, the panel's status lines, and every kernel this process compiled.
SESSION = """
import json, sys, time
import numpy as np
from numba.core import event

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
from qtpy.QtWidgets import QApplication
from napari_gmm_bg import make_sample
from napari_gmm_bg._napari.panel import open_panel
from napari_gmm_bg.cli import main

viewer = napari.Viewer(show=False)
panel = open_panel(viewer)
warm = panel.fit.warm_up
report = {"started": [] if warm is None else sorted(warm.parts), "statuses": []}
set_status = panel.fit.job.set_status
panel.fit.job.set_status = lambda text: (report["statuses"].append(text), set_status(text))
sample = make_sample("moving-shapes", n_frames=30, shape=(64, 96))
viewer.add_image(sample.video, name="clip", rgb=True)
app = QApplication.instance()
for mode in ("offline", "online"):
    panel.fit._mode.value = mode
    assert panel.fit.fit() is not None
    while panel.fit.job.running:
        app.processEvents()
        time.sleep(0.01)
    app.processEvents()
    for layer in viewer.layers:
        np.asarray(layer.data[0])
out = sys.argv[1]
for mode in ("offline", "online"):
    assert main(["fit", "--sample", "moving-shapes", "--out", out, "--mode", mode]) == 0
report["compiled"] = compiled
report["layers"] = [layer.name for layer in viewer.layers]
print(json.dumps(report))
viewer.close()
"""


def _session(cache: Path, out: Path) -> dict:
    env = {
        **os.environ,
        SWITCH: "1",
        "NUMBA_CACHE_DIR": str(cache),
        "PYTHONPATH": str(Path(napari_gmm_bg.__file__).parents[1]),
    }
    result = subprocess.run(
        [sys.executable, "-c", SESSION, str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_first_fit_waits_for_the_background_warm_up_and_compiles_nothing(tmp_path):
    cache = tmp_path / "cache"
    first = _session(cache, tmp_path / "out")
    # The panel started every part at once, and the fit waited for them, saying why.
    assert first["started"] == sorted(PARTS)
    assert FIRST_RUN_MESSAGE in first["statuses"]
    assert first["statuses"][-1] == "fitted clip (online)"
    assert "fitted clip (offline)" in first["statuses"]
    assert {"clip GMM mask", "clip GMM background"} <= set(first["layers"])
    # Everything the panel and the command line ran was compiled by the warm-up: what
    # it runs is what a default fit runs.
    assert first["compiled"] == []
    # Warm: the next session starts nothing, and says nothing of preparing kernels.
    second = _session(cache, tmp_path / "out")
    assert second["started"] == [] and FIRST_RUN_MESSAGE not in second["statuses"]
    assert second["compiled"] == []


def test_a_kernel_the_fit_compiles_itself_is_announced_in_the_panel(
    qtbot, widget, video_layer, monkeypatch
):
    # No warm-up (switched off here), so the fit compiles in its worker: it says so.
    assert widget.warm_up is None
    kernel, scored = fresh_kernel(), widgets._scored
    monkeypatch.setattr(widgets, "_scored", lambda result: (kernel(1), scored(result))[1])
    statuses = []
    set_status = widget.job.set_status
    monkeypatch.setattr(widget.job, "set_status", lambda t: (statuses.append(t), set_status(t)))
    run_fit(qtbot, widget)
    qtbot.waitUntil(lambda: statuses[-1:] == ["fitted traffic (offline)"])
    assert FIRST_RUN_MESSAGE in statuses
