import dask.array as da
import numpy as np
from napari.utils.interactions import mouse_press_callbacks

from napari_gmm_bg._napari.inspector import InspectorWidget
from napari_gmm_bg.core.inspect import pixel_log_likelihood, precision_recall_curve
from tests.napari.conftest import run_fit, wait_for_job


class Click:
    """A mouse press as napari's canvas delivers it, at a world position."""

    def __init__(self, position):
        self.type = "mouse_press"
        self.position = tuple(position)
        self.view_direction = None
        self.dims_displayed = [1, 2]
        self.modifiers = []
        self.button = 1
        self.handled = False


def click(viewer, world_position):
    mouse_press_callbacks(viewer, Click(world_position))


def test_click_updates_the_plotted_data(qtbot, viewer, widget, video_layer, rgb_sample):
    widget._video.value = video_layer
    run_fit(qtbot, widget)
    model = widget.result.model
    inspector = InspectorWidget(viewer)
    viewer.window.add_dock_widget(inspector)
    inspector._video.value = video_layer
    # The video has scale 0.5 and translate (3, 4): world (t, 3 + 0.5 y, 4 + 0.5 x).
    y, x = 20, 30
    click(viewer, (5, 3 + 0.5 * y, 4 + 0.5 * x))
    plotted = inspector.plotted
    assert plotted["pixel"] == (y, x)
    np.testing.assert_array_equal(plotted["samples"], rgb_sample.video[:, y, x])
    expected = model.log_likelihood(rgb_sample.video)[:, y, x]
    np.testing.assert_allclose(plotted["loglik"], expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(plotted["gmm_foreground"], expected < model.threshold)
    # What the axes hold is what was computed: the scatter's points are the samples.
    scatter = inspector.figure.axes[0].collections[0]
    np.testing.assert_allclose(np.asarray(scatter.get_array()), plotted["loglik"], rtol=1e-6)
    line = inspector.figure.axes[2].lines[0]
    np.testing.assert_allclose(line.get_ydata(), plotted["loglik"])
    # Another click, another pixel.
    click(viewer, (5, 3 + 0.5 * 2, 4 + 0.5 * 3))
    assert inspector.plotted["pixel"] == (2, 3)


def test_mog2_frames_and_export_png(qtbot, viewer, widget, video_layer, tmp_path):
    from napari_gmm_bg._napari.methods_widget import MethodsWidget

    widget._video.value = video_layer
    run_fit(qtbot, widget)
    mog2 = MethodsWidget(viewer)
    viewer.window.add_dock_widget(mog2)
    mog2._video.value = video_layer
    mog2.run()
    wait_for_job(qtbot, mog2)
    inspector = InspectorWidget(viewer)
    viewer.window.add_dock_widget(inspector)
    inspector._video.value = video_layer
    truth_pixel = np.argwhere(viewer.layers["traffic MOG2 mask"].data.sum(0) > 3)[0]
    inspector.inspect(*truth_pixel)
    mog2_column = viewer.layers["traffic MOG2 mask"].data[:, truth_pixel[0], truth_pixel[1]]
    np.testing.assert_array_equal(inspector.plotted["mog2_foreground"], mog2_column == 1)
    path = inspector.export_png(str(tmp_path / "pixel.png"))
    import cv2

    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 300 and image.shape[1] > 300
    colours = np.unique(image.reshape(-1, 3), axis=0)
    assert len(colours) > 200  # a drawn plot, not a blank canvas
    # The purple log-likelihood line and the orange/blue foreground markers are drawn.
    purple = np.array([189, 103, 148])  # tab:purple in BGR
    assert (np.abs(image.astype(int) - purple).sum(-1) < 40).sum() > 50


def test_lazy_video_is_read_in_the_background(qtbot, viewer, rgb_sample):
    lazy = da.from_array(rgb_sample.video, chunks=(8, -1, -1, -1))
    layer = viewer.add_image(
        lazy, name="lazy", rgb=True, contrast_limits=(0, 255), multiscale=False
    )
    inspector = InspectorWidget(viewer)
    viewer.window.add_dock_widget(inspector)
    inspector._video.value = layer
    drawn = []
    draw = inspector._draw

    def record(*args, **kwargs):
        drawn.append(len(args[3]))  # the samples drawn so far
        return draw(*args, **kwargs)

    inspector._draw = record  # set before the worker starts: no yield is missed
    worker = inspector.inspect(10, 12)
    assert worker is not None
    wait_for_job(qtbot, inspector)
    assert drawn[:4] == [16, 32, 48, 60]  # drawn as the frames arrived, then once complete
    np.testing.assert_array_equal(inspector.plotted["samples"], rgb_sample.video[:, 10, 12])
    assert inspector.plotted["loglik"] is None  # no model fitted yet: samples only


def test_grey_pixel_plot(qtbot, viewer, widget, grey_sample):
    layer = viewer.add_image(grey_sample.video, name="grey")
    widget._video.value = layer
    run_fit(qtbot, widget)
    inspector = InspectorWidget(viewer)
    viewer.window.add_dock_widget(inspector)
    inspector._video.value = layer
    inspector.inspect(5, 6)
    assert inspector.plotted["samples"].shape == (80, 1)
    assert inspector.figure.axes[0].name == "rectilinear"


def test_pixel_log_likelihood_and_precision_recall(rgb_sample):
    from napari_gmm_bg import fit_background

    model = fit_background(rgb_sample.video)
    ll = model.log_likelihood(rgb_sample.video)
    np.testing.assert_allclose(
        pixel_log_likelihood(
            model, 7, 9, rgb_sample.video[:, 7, 9], model.brightness(rgb_sample.video)
        ),
        ll[:, 7, 9],
        rtol=1e-5,
        atol=1e-4,
    )
    curve = precision_recall_curve(ll, rgb_sample.ground_truth)
    assert np.all(np.diff(curve["recall"]) >= 0)  # more permissive threshold, more recall
    t = np.argmin(np.abs(curve["threshold"] - model.threshold))
    raw = ll < curve["threshold"][t]
    truth = rgb_sample.ground_truth == 1
    assert curve["recall"][t] == (raw & truth).sum() / truth.sum()
    assert curve["precision"][t] == (raw & truth).sum() / raw.sum()
