"""Open napari with the plugin docked and the built-in sample fitted."""

import napari

from .sample_data import moving_shapes
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
    for data, kwargs, layer_type in moving_shapes():
        viewer._add_layer_from_data(data, kwargs, layer_type)
    widget = FitWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Fit GMM background", area="right")
    widget._video.value = viewer.layers["moving-shapes"]
    widget.fit()
    return viewer, widget


def run_demo() -> None:
    """Run the demo until the window is closed."""
    open_demo_viewer(show=True)
    napari.run()
