"""Retake the README's screenshots from the real flow: open, fit, compare, inspect.

Run under a virtual display large enough for the biggest size:

    xvfb-run -a -s "-screen 0 1920x1200x24" python scripts/screenshot.py

Opens the CDnet highway folder through the plugin's reader when the shared data is
there (``../shared/data/cdnet_highway_dev``), else the built-in synthetic sample; docks
the plugin's panel, fits, runs MOG2, compares both masks with the ground truth, clicks
a pixel, and saves what the window shows at 1280x800 and 1920x1200 into ``docs/``.
"""

import sys
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from napari_gmm_bg._napari.panel import open_panel

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs"
CDNET = ROOT.parent / "shared" / "data" / "cdnet_highway_dev"
SIZES = ((1280, 800), (1920, 1200))


def settle(seconds: float = 0.3) -> None:
    """Let Qt draw (and workers report) for a while."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def wait(tool, timeout: float = 600.0) -> None:
    """Wait for a tool's background job to finish."""
    end = time.perf_counter() + timeout
    while tool.job.running and time.perf_counter() < end:
        settle(0.05)
    settle(0.3)


def open_data(viewer: napari.Viewer) -> tuple[str, int, int]:
    """Open the clip; return the video layer's name and a pixel to inspect."""
    if CDNET.is_dir():
        viewer.open(str(CDNET), plugin="napari-gmm-bg")
        return "cdnet_highway_dev", 120, 150  # on the road
    viewer.open_sample("napari-gmm-bg", "moving-shapes")
    return "moving-shapes", 40, 60


def shoot(viewer: napari.Viewer, panel, tab: str, name: str) -> None:
    """Save the window at every size with a tab of the panel open."""
    panel.show_tab(tab)
    for width, height in SIZES:
        viewer.window._qt_window.resize(width, height)
        settle(0.5)
        viewer.reset_view()
        settle(0.5)
        path = OUT / f"{name}-{width}x{height}.png"
        viewer.screenshot(str(path), canvas_only=False)
        print(f"wrote {path.relative_to(ROOT)}")


def main() -> int:
    viewer = napari.Viewer(title="napari-gmm-bg", show=True)
    viewer.window._qt_window.resize(*SIZES[0])
    name, y, x = open_data(viewer)
    panel = open_panel(viewer)
    settle()
    video = viewer.layers[name]
    fit = panel.show_tab("Fit")
    fit._video.value = video
    if f"{name} ROI" in viewer.layers:
        fit._region.value = viewer.layers[f"{name} ROI"]
    fit.fit()
    wait(fit)
    for other in viewer.layers:
        if "ground truth" in other.name:
            other.visible = False
    frame = int(0.8 * video.data.shape[0])
    viewer.dims.set_current_step(0, frame)
    shoot(viewer, panel, "Fit", "fit")

    methods = panel.show_tab("Methods")
    methods._video.value = video
    methods.choose("mog2")
    methods.run()
    wait(methods)
    compare = panel.show_tab("Evaluate")
    compare.reset_choices()
    compare._mask_a.value = viewer.layers[f"{name} GMM mask"]
    compare._mask_b.value = viewer.layers[f"{name} MOG2 mask"]
    truth = f"{name} ground truth"
    if truth in viewer.layers and compare._truth.value is None:
        compare._truth.value = viewer.layers[truth]
    compare.compare()
    wait(compare)
    for other in viewer.layers:
        other.visible = other is video or other.name.endswith("difference")
    shoot(viewer, panel, "Evaluate", "compare")

    for other in viewer.layers:
        other.visible = other is video or other.name == f"{name} GMM mask"
    inspector = panel.show_tab("Inspect")
    inspector._video.value = video
    world = np.asarray(video.data_to_world((frame, y, x)))
    inspector.click(tuple(world))
    wait(inspector)
    inspector.view.wait()  # the plots are drawn off the GUI thread
    settle(0.5)
    shoot(viewer, panel, "Inspect", "inspect")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
