import dask.array as da
import numpy as np
import pytest
from napari.layers import Image, Labels
from qtpy.QtCore import Qt

from napari_gmm_bg import fit_background
from tests.conftest import iou
from tests.napari.conftest import frame, names, run_fit, wait_for_job

LAYERS = ["traffic GMM distance", "traffic GMM mask", "traffic GMM background"]


def test_widget_opens_from_the_manifest(make_napari_viewer):
    viewer = make_napari_viewer(show=False)
    dock, widget = viewer.window.add_plugin_dock_widget("napari-gmm-bg", "Fit GMM background")
    assert type(widget).__name__ == "FitWidget"


def test_fit_adds_three_layers(qtbot, viewer, widget, video_layer, rgb_sample):
    widget._video.value = video_layer
    run_fit(qtbot, widget)
    assert names(viewer) == ["traffic", *LAYERS]
    loglik, mask, background = (viewer.layers[n] for n in LAYERS)
    assert isinstance(loglik, Image) and isinstance(loglik.data, da.Array)
    assert loglik.data.shape == (60, 64, 96) and loglik.data.dtype == np.float32
    assert isinstance(mask, Labels) and mask.data.shape == (60, 64, 96)
    assert mask.data.dtype == np.uint8
    assert isinstance(background, Image) and background.rgb
    assert background.data.shape == (64, 96, 3) and background.data.dtype == np.uint8
    low, high = loglik.contrast_limits
    assert low < widget._threshold.value < high
    for layer in (loglik, mask):
        assert tuple(layer.scale) == (1, 0.5, 0.5) and tuple(layer.translate) == (0, 3, 4)
        assert tuple(layer.axis_labels) == ("t", "y", "x")
    assert tuple(background.scale) == (0.5, 0.5) and tuple(background.translate) == (3, 4)
    # The layers hold what the public API computes.
    model = fit_background(rgb_sample.video)
    np.testing.assert_array_equal(np.asarray(mask.data), model.foreground(rgb_sample.video))
    np.testing.assert_array_equal(
        np.asarray(loglik.data[7]), model.distance(rgb_sample.video[7:8])[0]
    )
    np.testing.assert_array_equal(background.data, model.background_image())


def test_refit_updates_layers_in_place(qtbot, viewer, widget, video_layer):
    widget._video.value = video_layer
    run_fit(qtbot, widget)
    first = [viewer.layers[n] for n in LAYERS]
    widget._components.value = 2
    run_fit(qtbot, widget)
    assert names(viewer) == ["traffic", *LAYERS]  # no "name [1]" twins
    assert [viewer.layers[n] for n in LAYERS] == first
    assert widget.result.model.n_components == 2


def test_scene_settings_reach_the_fit(qtbot, viewer, widget, video_layer, rgb_sample):
    widget._video.value = video_layer
    # The spin boxes say what their special values mean (superqt's box showed -1, 0).
    shown = {box: box.native.lineEdit().text() for box in (widget._absorb_after, widget._median)}
    assert list(shown.values()) == ["never", "auto"]
    for typed in ("9", "auto"):  # typed, then Enter
        widget._median.native.lineEdit().setText(typed)
        qtbot.keyClick(widget._median.native, Qt.Key.Key_Return)
        assert widget._median.value == (9 if typed == "9" else -1)
    assert widget._median.value == -1 and widget._median.native.lineEdit().text() == "auto"
    widget._absorb_after.value = 30
    widget._consensus_radius.value = 0
    run_fit(qtbot, widget)
    params = widget.result.model.params
    assert params.absorb_after == 30 and params.consensus_radius == 0
    expected = fit_background(rgb_sample.video, absorb_after=30, consensus_radius=0)
    np.testing.assert_array_equal(
        np.asarray(viewer.layers["traffic GMM mask"].data),
        expected.foreground(rgb_sample.video),
    )


def test_threshold_changes_the_mask_without_refit(qtbot, viewer, widget, video_layer):
    widget._video.value = video_layer
    run_fit(qtbot, widget)
    model = widget.result.model
    mask = viewer.layers["traffic GMM mask"]
    before = np.asarray(mask.data).sum()
    widget._threshold.value = 3.0
    widget.settle()  # the mask is redrawn once the value settles
    assert widget.result.model is model
    after = np.asarray(mask.data).sum()
    assert after < before
    np.testing.assert_array_equal(
        frame(mask, 3), model.foreground(np.asarray(video_layer.data[3:4]), threshold=3.0)[0]
    )


def test_region_limits_the_mask(qtbot, viewer, widget, video_layer):
    region = np.zeros((64, 96), np.uint8)
    region[10:40, 20:70] = 1
    labels = viewer.add_labels(region, name="road")
    widget.reset_choices()
    widget._video.value = video_layer
    widget._region.value = labels
    run_fit(qtbot, widget)
    mask = np.asarray(viewer.layers["traffic GMM mask"].data)
    assert mask.sum() > 0
    assert mask[:, region == 0].sum() == 0
    # A Shapes region works too, and redraws the mask without refitting.
    shapes = viewer.add_shapes([[[0, 0], [0, 30], [30, 30], [30, 0]]], name="box")
    widget.reset_choices()
    widget._region.value = shapes
    widget.settle()
    mask = np.asarray(viewer.layers["traffic GMM mask"].data)
    assert mask[:, 31:, :].sum() == 0 and mask[:, :, 31:].sum() == 0
    assert mask[:, :30, :30].sum() > 0


def test_cancel_leaves_no_layer(qtbot, viewer, widget, rgb_sample):
    big = np.repeat(np.repeat(rgb_sample.video, 4, axis=1), 4, axis=2)  # 256x384
    layer = viewer.add_image(big, name="big", rgb=True)
    widget._video.value = layer
    widget._learning_frames.value = 60
    worker = widget.fit()
    assert worker is not None
    worker.quit()
    wait_for_job(qtbot, widget)
    assert names(viewer) == ["big"]
    assert widget.result is None and widget._fit_button.enabled


@pytest.mark.parametrize("case", ["2d", "labels", "single-frame", "too-few-frames", "nan"])
def test_bad_input_notifies_and_changes_nothing(qtbot, viewer, widget, errors, case):
    rng = np.random.default_rng(0)
    if case == "2d":
        layer = viewer.add_image(rng.random((32, 32)), name="bad")
    elif case == "labels":
        layer = viewer.add_labels(np.zeros((5, 32, 32), np.uint8), name="bad")
    elif case == "single-frame":
        layer = viewer.add_image(rng.random((1, 32, 32)), name="bad")
    elif case == "too-few-frames":
        layer = viewer.add_image(rng.random((2, 32, 32)), name="bad")
    else:
        data = rng.random((6, 32, 32))
        data[2, 5, 5] = np.nan
        layer = viewer.add_image(data, name="bad")
    before = names(viewer)
    worker = widget.fit(layer)
    if worker is not None:  # problems found while reading pixels come from the worker
        wait_for_job(qtbot, widget)
    expected = {
        "2d": "2-D",
        "labels": "Labels layer",
        "single-frame": "at least 2 frames",
        "too-few-frames": "learning frames for 3 components",
        "nan": "NaN",
    }[case]
    assert len(errors) == 1 and expected in errors[0], errors
    assert names(viewer) == before
    assert widget.result is None


def test_save_and_load_model(qtbot, viewer, widget, video_layer, tmp_path, monkeypatch):
    widget._video.value = video_layer
    run_fit(qtbot, widget)
    import napari_gmm_bg._napari.widgets as widgets

    path = tmp_path / "scene.npz"
    monkeypatch.setattr(widgets, "ask_model_path", lambda parent, save: str(path))
    widget._save_button.clicked.emit(True)
    assert path.is_file()
    for name in LAYERS:
        viewer.layers.remove(name)
    widget.result = None
    widget._load_button.clicked.emit(True)
    assert names(viewer) == ["traffic", *LAYERS]
    np.testing.assert_array_equal(
        widget.result.model.means, fit_background(np.asarray(video_layer.data)).means
    )


def test_load_model_of_another_scene_is_refused(qtbot, viewer, widget, tmp_path, errors):
    other = fit_background(np.random.default_rng(1).integers(0, 255, (8, 10, 12), np.uint8))
    path = other.save(tmp_path / "other.npz")
    layer = viewer.add_image(np.zeros((5, 20, 20), np.uint8), name="clip")
    widget._video.value = layer
    assert widget.load_model(str(path)) is None
    assert "do not match" in errors[0]
    assert names(viewer) == ["clip"]


@pytest.mark.parametrize("damage", ["nan-variances", "not-a-model", "list-metadata"])
def test_load_of_an_invalid_model_file_is_a_notification(viewer, widget, tmp_path, errors, damage):
    import json

    clip = np.random.default_rng(1).integers(0, 255, (8, 10, 12), np.uint8)
    path = fit_background(clip, learning_frames=4).save(tmp_path / "m.npz")
    with np.load(path) as z:
        arrays = {name: z[name] for name in z.files}
    if damage == "nan-variances":
        arrays["variances"][0, 0, 0] = np.nan
    elif damage == "list-metadata":
        arrays["meta"] = np.array(json.dumps([1, 2]))
    np.savez(path, **arrays)
    if damage == "not-a-model":
        path.write_bytes(b"PK\x03\x04 not really a zip")
    layer = viewer.add_image(clip, name="clip")
    widget._video.value = layer
    assert widget.load_model(str(path)) is None
    assert len(errors) == 1 and "not a saved" in errors[0], errors
    assert names(viewer) == ["clip"] and widget.result is None


def test_sample_data_opens_with_ground_truth(make_napari_viewer):
    viewer = make_napari_viewer(show=False)
    viewer.open_sample("napari-gmm-bg", "moving-shapes")
    assert names(viewer) == ["moving-shapes", "moving-shapes ground truth"]
    assert viewer.layers["moving-shapes"].rgb
    assert isinstance(viewer.layers["moving-shapes ground truth"], Labels)
    viewer.open_sample("napari-gmm-bg", "moving-shapes-grey")
    assert viewer.layers["moving-shapes-grey"].data.ndim == 3


def test_closing_the_viewer_stops_a_running_fit(qtbot, make_napari_viewer, rgb_sample):
    from napari_gmm_bg._napari.widgets import FitWidget

    viewer = make_napari_viewer(show=False)
    big = np.repeat(np.repeat(rgb_sample.video, 4, axis=1), 4, axis=2)
    layer = viewer.add_image(big, name="big", rgb=True)
    widget = FitWidget(viewer)
    viewer.window.add_dock_widget(widget)
    worker = widget.fit(layer)
    viewer.close()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=60_000)


@pytest.mark.slow
def test_widget_fits_on_a_configured_dask_cluster(qtbot, viewer, widget, video_layer, rgb_sample):
    from distributed import Client, LocalCluster, get_task_stream

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,  # the default client, as if made in napari's console
        get_task_stream(client) as stream,
    ):
        widget._video.value = video_layer
        run_fit(qtbot, widget)
    tiles = [task for task in stream.data if "fit_tile" in str(task["key"])]  # filled on exit
    assert tiles, "no tile was fitted on the cluster"
    np.testing.assert_array_equal(
        widget.result.model.means, fit_background(rgb_sample.video).means
    )


def test_shadow_setting_redraws_the_mask_with_label_2(qtbot, viewer, widget):
    video = np.full((40, 48, 64, 3), (150, 120, 90), np.uint8)
    video += np.random.default_rng(0).integers(0, 4, video.shape, dtype=np.uint8)
    for t in range(30, 33):  # a shadow passes: the scene darkened to 60%, same hue
        video[t, 10:30, 10:40] = (video[t, 10:30, 10:40] * 0.6).astype(np.uint8)
    layer = viewer.add_image(video, name="shade", rgb=True)
    widget._video.value = layer
    widget._compensate.value = False  # the patch is 20% of the frame; keep the test plain
    run_fit(qtbot, widget)
    mask = viewer.layers["shade GMM mask"]
    assert (np.asarray(mask.data[31]) == 1).sum() > 300  # off: the shadow is foreground
    widget._shadows.value = "show"
    widget.settle()
    assert (np.asarray(mask.data[31]) == 2).sum() > 300
    widget._shadows.value = "background"
    widget.settle()
    assert np.asarray(mask.data[31]).max() == 0


def test_online_run_keeps_the_panels_cleanup(qtbot, viewer, widget, video_layer, rgb_sample):
    """The on-line model is built with the panel's clean-up, so what it records (and what
    is saved from it) is what the mask shows, not the default clean-up."""
    from napari_gmm_bg.core.cleanup import MaskCleanup
    from napari_gmm_bg.core.online import OnlineSettings, run_online

    widget._video.value = video_layer
    widget._mode.value = "online"
    widget._history.value = 50
    widget._median.value = 3
    widget._min_area.value = 4
    run_fit(qtbot, widget)
    cleanup = MaskCleanup(median=3, min_area=4)
    assert widget.result.model.settings.cleanup == cleanup
    assert widget.result.model.settings.cleanup != OnlineSettings().cleanup
    expected = run_online(rgb_sample.video, OnlineSettings(history=50, cleanup=cleanup))
    np.testing.assert_array_equal(
        np.asarray(viewer.layers["traffic GMM mask"].data), expected.foreground()
    )


def test_online_mode_in_the_widget(qtbot, viewer, widget, video_layer, rgb_sample, errors):
    from napari_gmm_bg.core.online import OnlineSettings, run_online

    widget._video.value = video_layer
    widget._mode.value = "online"
    widget._history.value = 50
    widget._consensus_radius.value = 2
    assert widget._learning_frames.native.isHidden() and not widget._history.native.isHidden()
    assert widget._absorb_after.native.isHidden()  # the on-line mode forgets by history
    run_fit(qtbot, widget)
    assert names(viewer) == ["traffic", *LAYERS]
    expected = run_online(rgb_sample.video, OnlineSettings(history=50, consensus_radius=2))
    mask = viewer.layers["traffic GMM mask"]
    np.testing.assert_array_equal(np.asarray(mask.data), expected.foreground())
    # To the last bit but one: a kernel numba compiles afresh and one loaded from its
    # cache (the widget's frames come in another array layout) may differ by 1 ulp.
    np.testing.assert_allclose(
        viewer.layers["traffic GMM distance"].data,
        expected.distance,
        rtol=1e-6,
        atol=1e-5,
    )
    widget._threshold.value = 2.0  # re-thresholds the stored scores, no refit
    widget.settle()
    np.testing.assert_array_equal(np.asarray(mask.data), expected.foreground(threshold=2.0))
    assert not widget._save_button.enabled
    # Shadows were not computed on-line: asking for them is said, and the mask is kept.
    widget._shadows.value = "show"
    widget.settle()
    assert errors and "did not compute" in errors[-1]
    np.testing.assert_array_equal(np.asarray(mask.data), expected.foreground(threshold=2.0))


def test_fit_on_a_lazily_opened_video_file(qtbot, viewer, widget, sample_mp4, rgb_sample):
    viewer.open(str(sample_mp4), plugin="napari-gmm-bg")
    layer = viewer.layers["clip"]
    widget.reset_choices()
    widget._video.value = layer
    run_fit(qtbot, widget)
    mask = viewer.layers["clip GMM mask"]
    assert mask.data.shape == (60, 64, 96)
    assert iou(np.asarray(mask.data), rgb_sample.ground_truth) > 0.5


def test_frame_range_bounds_follow_the_check_box_and_the_mode(widget):
    bounds = (widget._range.start.native, widget._range.stop.native)
    assert all(b.isHidden() for b in bounds)
    widget._range.enabled.value = True
    assert not any(b.isHidden() for b in bounds)
    widget._mode.value = "online"  # no learning frames on-line: the range goes away
    assert widget._range.enabled.native.isHidden() and all(b.isHidden() for b in bounds)
    widget._mode.value = "offline"
    assert not any(b.isHidden() for b in bounds)


def test_after_fit_the_video_shows_with_its_mask(qtbot, viewer, widget, video_layer):
    widget._video.value = video_layer
    run_fit(qtbot, widget)
    # The score heatmap is there to toggle, not on top of the video.
    assert not viewer.layers["traffic GMM distance"].visible
    assert video_layer.visible and viewer.layers["traffic GMM mask"].visible
    mask = viewer.layers["traffic GMM mask"]
    assert viewer.layers.index(mask) > viewer.layers.index(video_layer)
    colour = mask.colormap.map(np.array([1]))[0]
    assert colour[3] > 0 and not np.allclose(colour[:3], colour[0])  # a colour, not grey


def test_threshold_slider_histogram_and_settling(qtbot, viewer, widget, video_layer):
    widget._video.value = video_layer
    assert widget.histogram is None
    run_fit(qtbot, widget)
    hist = widget.histogram
    assert hist is not None and hist["counts"].sum() > 0
    low, high = widget._slider.min, widget._slider.max
    assert low < widget._threshold.value < high
    assert widget._threshold_line is not None
    mask = viewer.layers["traffic GMM mask"]
    redraws = []
    mask.events.data.connect(lambda *_: redraws.append(1))
    for value in (1.5, 1.8, 2.0, 2.2):  # a drag: several values in a row
        widget._slider.value = value
    assert widget._threshold.value == 2.2
    assert list(widget._threshold_line.get_xdata()) == [2.2, 2.2]
    assert redraws == []  # not yet: the value has not settled
    qtbot.waitUntil(lambda: len(redraws) > 0, timeout=3000)
    qtbot.wait(400)
    assert len(redraws) == 1  # once, with the last value
    assert mask.metadata["napari-gmm-bg"]["threshold"] == 2.2


def test_progress_bar_in_the_widget(qtbot, viewer, widget, video_layer):
    widget._video.value = video_layer
    widget.fit()
    assert not widget.job.bar.native.isHidden()
    assert widget.job.bar.native.parent() is not None
    run_fit_done = lambda: not widget.job.running  # noqa: E731
    qtbot.waitUntil(run_fit_done, timeout=60_000)
    assert widget.job.bar.native.isHidden()
    widget.job._show_step(5, 10)
    assert widget.job.bar.native.format().startswith("Fitting GMM background: 5/10")


def test_removing_the_video_mid_fit_says_so(qtbot, viewer, widget, video_layer):
    widget._video.value = video_layer
    widget.fit()
    viewer.layers.remove(video_layer)
    qtbot.waitUntil(lambda: not widget.job.running, timeout=60_000)
    assert "fitting" not in widget._status.value
    assert "removed" in widget._status.value or "cancelled" in widget._status.value
    assert not [n for n in names(viewer) if "GMM" in n]


def test_threshold_after_deleting_the_mask_says_so(qtbot, viewer, widget, video_layer):
    widget._video.value = video_layer
    run_fit(qtbot, widget)
    viewer.layers.remove("traffic GMM mask")
    widget._threshold.value = 2.5
    widget.settle()
    assert "deleted" in widget._status.value


def test_renaming_the_video_and_refitting_keeps_one_set_of_layers(
    qtbot, viewer, widget, video_layer
):
    widget._video.value = video_layer
    run_fit(qtbot, widget)
    video_layer.name = "road"
    run_fit(qtbot, widget)
    assert names(viewer) == ["road", *(n.replace("traffic", "road") for n in LAYERS)]


def test_threshold_relabels_off_the_gui_thread_and_shows_only_the_latest(
    qtbot, viewer, widget, video_layer, rgb_sample, monkeypatch
):
    """An on-line run's relabel and clean-up (every frame) run in a worker: the GUI
    stays free, and a value superseded while it computes is never shown."""
    import threading

    from napari_gmm_bg._napari import widgets as module
    from napari_gmm_bg.core.online import OnlineSettings, run_online

    widget._video.value = video_layer
    widget._mode.value = "online"
    widget._history.value = 50
    run_fit(qtbot, widget)
    expected = run_online(rgb_sample.video, OnlineSettings(history=50))
    mask = viewer.layers["traffic GMM mask"]
    real = module.mask_data
    computed, gate = [], threading.Event()
    gate.set()

    def spy(result, threshold, *args):
        computed.append((threshold, threading.current_thread() is threading.main_thread()))
        gate.wait(10)
        return real(result, threshold, *args)

    monkeypatch.setattr(module, "mask_data", spy)
    widget._threshold.value = 2.0
    widget.settle()
    assert computed == [(2.0, False)]  # relabelled off the GUI thread
    np.testing.assert_array_equal(np.asarray(mask.data), expected.foreground(threshold=2.0))
    # Three values in a row while the first is still computing: the first finishes but
    # is not shown, the second is replaced before it starts, the third is shown.
    computed.clear()
    gate.clear()
    shown = []
    mask.events.data.connect(lambda *_: shown.append(1))
    for value in (1.5, 2.5, 1.8):
        widget._threshold.value = value
        widget.settle(wait=False)
    assert widget.redrawing
    gate.set()
    widget.settle()
    assert computed == [(1.5, False), (1.8, False)]
    assert len(shown) == 1
    assert mask.metadata["napari-gmm-bg"]["threshold"] == 1.8
    np.testing.assert_array_equal(np.asarray(mask.data), expected.foreground(threshold=1.8))
