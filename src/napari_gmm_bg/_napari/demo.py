"""Open napari with the plugin's panel docked and the built-in sample fitted."""

import napari
from qtpy.QtWidgets import QApplication

from .panel import GmmPanel, open_panel
from .widgets import FitWidget


def open_demo_viewer(show: bool = True) -> tuple[napari.Viewer, FitWidget]:
    """Open a viewer with the RGB sample, dock the plugin's panel and start a fit.

    Parameters
    ----------
    show : bool
        Show the window.

    Returns
    -------
    tuple
        The viewer and the panel's Fit tool (its ``worker`` is the running fit; the
        panel is its ``panel`` attribute).
    """
    viewer = napari.Viewer(title="napari-gmm-bg demo", show=show)
    viewer.open_sample("napari-gmm-bg", "moving-shapes")
    panel: GmmPanel = open_panel(viewer)
    # The dock squeezes the canvas: let the layout settle, then fit the frame in view.
    QApplication.processEvents()
    viewer.reset_view()
    widget = panel.fit
    widget.panel = panel
    widget._video.value = viewer.layers["moving-shapes"]
    widget.fit()
    return viewer, widget


def run_demo() -> None:
    """Run the demo until the window is closed."""
    open_demo_viewer(show=True)
    napari.run()
