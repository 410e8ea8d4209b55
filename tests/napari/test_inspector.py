import dask.array as da
import numpy as np
import pytest
from napari.utils._proxies import ReadOnlyWrapper
from napari.utils.interactions import (
    mouse_move_callbacks,
    mouse_press_callbacks,
    mouse_release_callbacks,
)

from napari_gmm_bg._napari.inspector import InspectorWidget
from napari_gmm_bg.core.inspect import pixel_distance, precision_recall_curve
from tests.napari.conftest import run_fit, wait_for_job


class Click:
    """A mouse event as napari's canvas delivers it, at a world position."""

    def __init__(self, position, type="mouse_press", pos=(100, 100)):
        self.type = type
        self.position = tuple(position)
        self.pos = pos
        self.is_dragging = type == "mouse_move"
        self.view_direction = None
        self.dims_displayed = [1, 2]
        self.modifiers = []
        self.button = 1
        self.handled = False


def click(viewer, world_position):
    """Press and release at one place: a click."""
    mouse_press_callbacks(viewer, ReadOnlyWrapper(Click(world_position), exceptions=("handled",)))
    mouse_release_callbacks(viewer, Click(world_position, "mouse_release"))


def drag(viewer, world_position):
    """Press, move 40 screen pixels, release: a pan."""
    mouse_press_callbacks(viewer, ReadOnlyWrapper(Click(world_position), exceptions=("handled",)))
    mouse_move_callbacks(viewer, Click(world_position, "mouse_move", pos=(120, 100)))
    mouse_move_callbacks(viewer, Click(world_position, "mouse_move", pos=(140, 100)))
    mouse_release_callbacks(viewer, Click(world_position, "mouse_release", pos=(140, 100)))


def lazy_layer_inspected(viewer, sample):
    """The sample as a lazy video layer (chunks of 8 frames), chosen in a docked inspector."""
    lazy = da.from_array(sample.video, chunks=(8, -1, -1, -1))
    layer = viewer.add_image(
        lazy, name="lazy", rgb=True, contrast_limits=(0, 255), multiscale=False
    )
    inspector = InspectorWidget(viewer)
    viewer.window.add_dock_widget(inspector)
    inspector._video.value = layer
    return layer, inspector


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
    expected = model.distance(rgb_sample.video)[:, y, x]
    np.testing.assert_allclose(plotted["score"], expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(plotted["gmm_foreground"], expected > model.threshold)
    # What the axes hold is what was computed: the scatter's points are the samples.
    scatter = inspector.figure.axes[0].collections[0]
    np.testing.assert_allclose(np.asarray(scatter.get_array()), plotted["score"], rtol=1e-6)
    line = inspector.figure.axes[2].lines[0]
    np.testing.assert_allclose(line.get_ydata(), plotted["score"])
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
    np.testing.assert_array_equal(inspector.plotted["masks"]["MOG2"], mog2_column == 1)
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
    layer, inspector = lazy_layer_inspected(viewer, rgb_sample)
    shown = []
    show = inspector._show

    def record(composed):
        shown.append((len(composed[0]["samples"]), composed[1].complete))
        return show(composed)

    inspector._show = record
    worker = inspector.inspect(10, 12)
    assert worker is not None
    wait_for_job(qtbot, inspector)
    # The first chunk is drawn as soon as it arrives, the whole clip once it is read; the
    # partial plots in between at a bounded rate (the clip is read in well under
    # PARTIAL_DRAW_SECONDS here, so none).
    assert shown[0] == (8, False)
    assert shown[-1] == (60, True)
    assert len(shown) <= 2 + 60 // 8
    # The plots are drawn off the GUI thread, then shown.
    inspector.view.wait()
    qtbot.waitUntil(lambda: inspector.view.label.pixmap() is not None, timeout=10_000)
    qtbot.waitUntil(lambda: not inspector.view.label.pixmap().isNull(), timeout=10_000)
    np.testing.assert_array_equal(inspector.plotted["samples"], rgb_sample.video[:, 10, 12])
    assert inspector.plotted["score"] is None  # no model fitted yet: samples only


@pytest.mark.parametrize("lazy", [False, True])
def test_trace_equals_the_score_layer(qtbot, viewer, widget, rgb_sample, lazy):
    """The inspector scores as the score layer does: brightness compensation included."""
    video = rgb_sample.video.astype(np.float32)
    # A global brightness change over time: without compensation the scores differ.
    gain = np.linspace(0.7, 1.3, len(video), dtype=np.float32)[:, None, None, None]
    video = np.clip(video * gain + 10, 0, 255).astype(np.uint8)
    data = da.from_array(video, chunks=(16, -1, -1, -1)) if lazy else video
    layer = viewer.add_image(
        data, name="clip", rgb=True, contrast_limits=(0, 255), multiscale=False
    )
    widget._video.value = layer
    run_fit(qtbot, widget)
    assert widget.result.model.params.compensate_brightness
    score = viewer.layers["clip GMM distance"].data
    inspector = InspectorWidget(viewer)
    viewer.window.add_dock_widget(inspector)
    inspector._video.value = layer
    for y, x in ((20, 30), (5, 60)):
        inspector.inspect(y, x)
        wait_for_job(qtbot, inspector)
        expected = np.asarray(score[:, y, x])
        np.testing.assert_allclose(inspector.plotted["score"], expected, rtol=1e-5, atol=1e-3)
        threshold = widget.result.model.threshold
        np.testing.assert_array_equal(inspector.plotted["gmm_foreground"], expected > threshold)


def test_drag_does_not_inspect_but_a_click_does(qtbot, viewer, widget, video_layer):
    inspector = InspectorWidget(viewer)
    viewer.window.add_dock_widget(inspector)
    inspector._video.value = video_layer
    drag(viewer, (5, 3 + 0.5 * 20, 4 + 0.5 * 30))
    assert inspector.pixel is None  # a pan starts with a press: no read
    # A press alone does nothing yet: the release decides.
    mouse_press_callbacks(
        viewer, ReadOnlyWrapper(Click((5, 3 + 10, 4 + 15)), exceptions=("handled",))
    )
    assert inspector.pixel is None
    mouse_release_callbacks(viewer, Click((5, 3 + 10, 4 + 15), "mouse_release"))
    assert inspector.pixel == (20, 30)


def test_click_during_a_read_starts_the_new_one(qtbot, viewer, rgb_sample, monkeypatch):
    import threading

    from napari_gmm_bg._napari import inspector as module

    gate = threading.Event()
    real = module.pixel_trace_steps

    def slow(*args, **kwargs):
        for step in real(*args, **kwargs):
            gate.wait(5)
            yield step
        return step[2], step[3]

    monkeypatch.setattr(module, "pixel_trace_steps", slow)
    layer, inspector = lazy_layer_inspected(viewer, rgb_sample)
    assert inspector.inspect(1, 2) is not None
    inspector.inspect(10, 12)  # while the first read waits
    gate.set()
    qtbot.waitUntil(
        lambda: (
            inspector.plotted.get("pixel") == (10, 12)
            and len(inspector.plotted["samples"]) == 60
            and not inspector.job.running
        ),
        timeout=20_000,
    )
    np.testing.assert_array_equal(inspector.plotted["samples"], rgb_sample.video[:, 10, 12])


def test_click_on_a_2d_image_gives_a_notification(qtbot, viewer, monkeypatch):
    from napari_gmm_bg._napari import inspector as module

    shown = []
    monkeypatch.setattr(module, "show_info", lambda message: shown.append(message))
    layer = viewer.add_image(np.zeros((20, 30), np.uint8), name="flat")
    inspector = InspectorWidget(viewer)
    viewer.window.add_dock_widget(inspector)
    inspector._video.value = layer
    click(viewer, (5, 6))  # raised ValueError: not enough values to unpack
    assert shown and "2-D" in shown[0]
    rgb = viewer.add_image(np.zeros((20, 30, 3), np.uint8), name="photo", rgb=True)
    inspector._video.value = rgb
    click(viewer, (5, 6))
    assert len(shown) == 2


def test_current_frame_is_marked(qtbot, viewer, widget, video_layer):
    widget._video.value = video_layer
    run_fit(qtbot, widget)
    inspector = InspectorWidget(viewer)
    viewer.window.add_dock_widget(inspector)
    inspector._video.value = video_layer
    inspector.inspect(4, 5)
    viewer.dims.set_current_step(0, 17)
    # The picture shown is redrawn with the line at the new frame, and so is the figure
    # an export saves.
    qtbot.waitUntil(lambda: getattr(inspector.view.drawn, "frame", None) == 17, timeout=10_000)
    assert list(inspector.frame_line.get_xdata()) == [17, 17]
    assert inspector.frame_line in inspector.figure.axes[-1].lines


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


def test_pixel_distance_and_precision_recall(rgb_sample):
    from napari_gmm_bg import fit_background

    model = fit_background(rgb_sample.video)
    ll = model.distance(rgb_sample.video)
    np.testing.assert_allclose(
        pixel_distance(model, 7, 9, rgb_sample.video[:, 7, 9], model.brightness(rgb_sample.video)),
        ll[:, 7, 9],
        rtol=1e-5,
        atol=1e-4,
    )
    curve = precision_recall_curve(ll, rgb_sample.ground_truth)
    assert np.all(np.diff(curve["recall"]) <= 0)  # a higher threshold finds less
    t = np.argmin(np.abs(curve["threshold"] - model.threshold))
    raw = ll > curve["threshold"][t]
    truth = rgb_sample.ground_truth == 1
    assert curve["recall"][t] == (raw & truth).sum() / truth.sum()
    assert curve["precision"][t] == (raw & truth).sum() / raw.sum()


def test_plots_follow_the_light_theme_without_touching_rcparams(
    qtbot, viewer, widget, rgb_sample, monkeypatch
):
    """The figure is styled artist by artist, in the viewer's theme (light here); no
    process-wide matplotlib setting is written from the inspector's worker thread."""
    import threading

    import matplotlib
    from matplotlib.colors import to_hex
    from napari.utils.theme import get_theme

    written_off_main = []
    setitem = matplotlib.RcParams.__setitem__

    def spy(self, key, value):
        if threading.current_thread() is not threading.main_thread():
            written_off_main.append(key)
        return setitem(self, key, value)

    monkeypatch.setattr(matplotlib.RcParams, "__setitem__", spy)
    viewer.theme = "light"
    theme = get_theme("light")
    lazy = da.from_array(rgb_sample.video, chunks=(16, -1, -1, -1))
    layer = viewer.add_image(
        lazy, name="lazy", rgb=True, contrast_limits=(0, 255), multiscale=False
    )
    widget._video.value = layer
    run_fit(qtbot, widget)
    inspector = InspectorWidget(viewer)
    viewer.window.add_dock_widget(inspector)
    inspector._video.value = layer
    assert inspector.inspect(10, 12) is not None  # read and laid out in a worker thread
    wait_for_job(qtbot, inspector)
    inspector.view.wait()
    figure = inspector.figure
    assert to_hex(figure.get_facecolor()) == theme.background.as_hex()
    scatter, trace = figure.axes[0], figure.axes[-1]
    assert to_hex(trace.get_facecolor()) == theme.foreground.as_hex()
    for label in (trace.xaxis.label, trace.title, scatter.title, scatter.zaxis.label):
        assert to_hex(label.get_color()) == theme.text.as_hex()
    legend = trace.get_legend()
    assert to_hex(legend.get_texts()[0].get_color()) == theme.text.as_hex()
    assert to_hex(legend.get_frame().get_facecolor()) == theme.foreground.as_hex()
    assert written_off_main == []


def test_every_methods_mask_is_found_by_metadata_in_its_colour(qtbot, viewer, widget, video_layer):
    """Masks of every comparison method run on the video are drawn, each in its
    method's mask colour, and renaming the layers (the video's too) keeps them."""
    from matplotlib.colors import to_hex

    from napari_gmm_bg._napari.layers import mask_colour
    from napari_gmm_bg._napari.methods_widget import MethodsWidget

    widget._video.value = video_layer
    run_fit(qtbot, widget)
    methods = MethodsWidget(viewer)
    viewer.window.add_dock_widget(methods)
    methods._video.value = video_layer
    for name in ("mog2", "knn", "baseline"):
        methods.choose(name)
        assert methods.run() is not None
        wait_for_job(qtbot, methods)
    # A decoy: a labels layer named like a MOG2 mask but made by no method.
    viewer.add_labels(np.zeros(video_layer.data.shape[:3], np.uint8), name="x MOG2 mask")
    titles = {"mog2": "MOG2", "knn": "KNN", "baseline": "median baseline"}
    columns = {}
    for method, title in titles.items():
        layer = viewer.layers[f"traffic {title} mask"]
        layer.name = f"my {method}"  # renamed by the user
        columns[title] = np.asarray(layer.data[:, 20, 30]) == 1
    video_layer.name = "clip"
    viewer.layers["traffic GMM distance"].name = "scores"
    inspector = InspectorWidget(viewer)
    viewer.window.add_dock_widget(inspector)
    inspector._video.value = video_layer
    inspector.inspect(20, 30)
    assert inspector.plotted["score"] is not None  # the model is found after renames too
    assert set(inspector.plotted["masks"]) == set(titles.values())
    for title, column in columns.items():
        np.testing.assert_array_equal(inspector.plotted["masks"][title], column)
    trace = inspector.figure.axes[-1]
    drawn = {text.get_text(): handle for handle, text in zip(*_legend_items(trace), strict=True)}
    for method, title in titles.items():
        colour = drawn[f"{title} foreground"].get_facecolor()[0]
        assert to_hex(colour) == mask_colour(method)
    assert to_hex(drawn["GMM foreground"].get_facecolor()[0]) == mask_colour("gmm")


def _legend_items(ax):
    legend = ax.get_legend()
    return legend.legend_handles, legend.get_texts()


def test_a_lazy_video_is_decoded_in_a_child_process(qtbot, viewer, rgb_sample, monkeypatch):
    """Decoding holds the GIL the GUI thread needs: a lazy video is read in a child
    process (the same numbers), a clip held in memory in this one."""
    from napari_gmm_bg._napari import _pixel_reader

    layer, inspector = lazy_layer_inspected(viewer, rgb_sample)  # starts the children
    assert _pixel_reader.worth_a_process(layer.data)
    for kind in ("read", "draw"):  # until they are ready, reads and drawings happen here
        qtbot.waitUntil(_pixel_reader._get_child(kind).ready.is_set, timeout=60_000)
    assert inspector.inspect(10, 12) is not None
    wait_for_job(qtbot, inspector)
    child = _pixel_reader._children.get("read")
    assert child is not None and child.sent is not None and child.sent[0] is layer.data
    np.testing.assert_array_equal(inspector.plotted["samples"], rgb_sample.video[:, 10, 12])
    # A dask array holding a big clip in memory is not copied to the child.
    monkeypatch.setattr(_pixel_reader, "MAX_SHIPPED_BYTES", 1000)
    assert not _pixel_reader.worth_a_process(layer.data)
    assert not _pixel_reader.worth_a_process(rgb_sample.video)
    # The plots were drawn by the drawing child: the same pixels as drawn here.
    inspector.view.wait()
    qtbot.waitUntil(lambda: inspector.view.image is not None, timeout=20_000)
    drawn = inspector.view.image
    assert "draw" in _pixel_reader._children
    inspector.figure.canvas.draw()
    here = np.asarray(inspector.figure.canvas.buffer_rgba())
    assert drawn.shape == here.shape
    assert (drawn == here).mean() > 0.99


def test_the_reading_child_has_the_video_and_model_before_the_first_click(
    qtbot, viewer, widget, rgb_sample
):
    """The first click need not wait for the container to open or the model to travel:
    both go to the reading child when the video is chosen and when its fit ends."""
    from napari_gmm_bg._napari import _pixel_reader

    layer, inspector = lazy_layer_inspected(viewer, rgb_sample)
    child = _pixel_reader._get_child("read")

    def holds(model):
        return child.sent is not None and child.sent[0] is layer.data and child.sent[1] is model

    qtbot.waitUntil(lambda: holds(None), timeout=60_000)
    widget._video.value = layer
    run_fit(qtbot, widget)
    qtbot.waitUntil(lambda: holds(widget.result.model), timeout=60_000)
    assert inspector.pixel is None  # no click yet


def test_requests_carry_their_arrays_beside_the_pickle():
    """A model's arrays are written from their own memory, not copied into the pickle
    (that copy holds the GIL the GUI thread needs); every layout comes back equal."""
    import io
    import struct

    from napari_gmm_bg._napari._pixel_reader import receive_request, send_request

    big = np.arange(2**18, dtype=np.float32).reshape(64, 64, 64)
    request = ("open", {"c": big, "f": np.asfortranarray(big), "strided": big[:, ::2]}, 7)
    stream = io.BytesIO()
    send_request(stream, request)
    send_request(stream, ("read", 1, 2, 3, 0, 8))
    (head_length,) = struct.unpack("<Q", stream.getvalue()[:8])
    # Only the strided view (copied: it has no memory of its own) is in the pickle.
    assert head_length < big[:, ::2].nbytes + 2**12
    stream.seek(0)
    kind, arrays, number = receive_request(stream)
    assert (kind, number) == ("open", 7)
    for name, original in request[1].items():
        np.testing.assert_array_equal(arrays[name], original)
    assert receive_request(stream) == ("read", 1, 2, 3, 0, 8)
    with pytest.raises(EOFError):
        receive_request(stream)


def test_the_drawing_childs_first_drawing_runs_and_changes_no_settings():
    """The drawing child draws once as it starts (a failure there would be hidden: the
    child keeps serving), so run it here, where a failure shows."""
    import matplotlib

    from napari_gmm_bg._napari._pixel_figure import draw_once

    before = dict(matplotlib.rcParams)
    draw_once()
    assert dict(matplotlib.rcParams) == before
