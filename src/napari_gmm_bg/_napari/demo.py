"""Open napari with the plugin docked and the built-in sample fitted."""

import napari

from .widgets import FitWidget


def open_demo_viewer(show: bool = True) -> tuple[napari.Viewer, FitWidget]:
    """Open a viewer with the RGB sample, dock the Fit widget and start a fit.

    Parameters
    ----------
    show : bool
        Show the window.

    Returns
    -------
    tuple
        The viewer and the docked widget (its ``worker`` is the running fit).
    """
    viewer = napari.Viewer(title="napari-gmm-bg demo", show=show)
    viewer.open_sample("napari-gmm-bg", "moving-shapes")
    widget = FitWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Fit GMM background", area="right")
    widget._video.value = viewer.layers["moving-shapes"]
    widget.fit()
    return viewer, widget


def run_demo() -> None:
    """Run the demo until the window is closed."""
    open_demo_viewer(show=True)
    napari.run()
