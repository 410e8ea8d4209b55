"""Retake the README's screenshot: napari with the Fit widget and the fitted sample.

Run under a virtual display:  xvfb-run -a python scripts/screenshot.py
"""

import sys
from pathlib import Path

from qtpy.QtWidgets import QApplication

from napari_gmm_bg._napari.demo import open_demo_viewer

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshot.png"


def main() -> int:
    viewer, widget = open_demo_viewer(show=True)
    viewer.window.resize(1400, 800)
    worker = widget.worker
    while worker is not None and worker.is_running or widget.worker is not None:
        QApplication.processEvents()
    viewer.dims.set_current_step(0, 40)
    viewer.layers["moving-shapes ground truth"].visible = False
    viewer.layers["moving-shapes GMM log-likelihood"].visible = False
    for _ in range(20):
        QApplication.processEvents()
    OUT.parent.mkdir(exist_ok=True)
    viewer.screenshot(str(OUT), canvas_only=False)
    print(f"wrote {OUT}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
