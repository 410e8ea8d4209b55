"""Time from a click to a drawn pixel inspector, for a video held in memory.

    xvfb-run -a python benchmarks/inspector_latency.py

Opens napari (a real window), fits the synthetic 240-frame 640x360 clip, then clicks 20
pixels and times the inspector's update including the canvas redraw.  The target is
100 ms.
"""

import statistics
import sys
import time

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from napari_gmm_bg import make_sample
from napari_gmm_bg._napari.inspector import InspectorWidget
from napari_gmm_bg._napari.widgets import FitWidget


def main():
    viewer = napari.Viewer(show=True)
    sample = make_sample("moving-shapes", n_frames=240, shape=(360, 640))
    layer = viewer.add_image(sample.video, name="clip", rgb=True)
    fit = FitWidget(viewer)
    viewer.window.add_dock_widget(fit)
    fit._video.value = layer
    fit.fit()
    while fit.job.running:
        QApplication.processEvents()
        time.sleep(0.01)
    inspector = InspectorWidget(viewer)
    viewer.window.add_dock_widget(inspector)
    inspector._video.value = layer
    rng = np.random.default_rng(0)
    times = []
    for _ in range(20):
        y, x = int(rng.integers(0, 360)), int(rng.integers(0, 640))
        start = time.perf_counter()
        inspector.inspect(y, x)
        inspector.view.wait()  # drawn by the render thread
        QApplication.processEvents()  # and shown
        times.append(time.perf_counter() - start)
    print(
        f"pixel inspector, 240 frames in memory: median {1000 * statistics.median(times):.0f} ms, "
        f"max {1000 * max(times):.0f} ms over 20 clicks (target 100 ms)"
    )
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
