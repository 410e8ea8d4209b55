import numpy as np
import pytest

from napari_gmm_bg._napari.widgets import FitWidget


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer(show=False)


@pytest.fixture
def widget(viewer):
    w = FitWidget(viewer)
    viewer.window.add_dock_widget(w, name="Fit GMM background")
    return w


@pytest.fixture
def video_layer(viewer, rgb_sample):
    return viewer.add_image(
        rgb_sample.video,
        name="traffic",
        rgb=True,
        scale=(1, 0.5, 0.5),
        translate=(0, 3, 4),
        axis_labels=("t", "y", "x"),
    )


def wait_for_job(qtbot, widget, timeout=60_000):
    """Wait until the widget's job has finished and its results reached the widget.

    Waiting on ``worker.finished`` races with a job quicker than the test: a signal
    emitted before the wait connects to it is never seen.
    """
    qtbot.waitUntil(lambda: not widget.job.running, timeout=timeout)


def run_fit(qtbot, widget, layer=None, timeout=60_000):
    """Start a fit and wait for it; returns the worker."""
    worker = widget.fit(layer)
    assert worker is not None, "the fit was refused"
    wait_for_job(qtbot, widget, timeout)
    return worker


def names(viewer):
    return [layer.name for layer in viewer.layers]


@pytest.fixture
def errors(monkeypatch):
    """Collect the error notifications the widget shows."""
    shown = []
    import napari_gmm_bg._napari._jobs as jobs
    import napari_gmm_bg._napari._plots as plots
    import napari_gmm_bg._napari.compare_widget as compare_widget
    import napari_gmm_bg._napari.inspector as inspector
    import napari_gmm_bg._napari.methods_widget as methods_widget
    import napari_gmm_bg._napari.widgets as widgets

    for module in (widgets, jobs, methods_widget, compare_widget, plots, inspector):
        monkeypatch.setattr(module, "show_error", lambda message: shown.append(str(message)))
    return shown


def frame(layer, t):
    return np.asarray(layer.data[t])
