import json

import dask.array as da
import numpy as np
import pytest
from napari.layers import Image, Labels

from napari_gmm_bg._napari.compare_widget import CompareWidget, StatsWidget
from napari_gmm_bg._napari.methods_widget import MethodsWidget
from napari_gmm_bg.cli import main
from napari_gmm_bg.core.metrics import METRIC_NAMES
from napari_gmm_bg.core.mog2 import Mog2Settings, run_mog2
from tests.napari.conftest import names, run_fit, wait_for_job


def wait(qtbot, widget, worker):
    assert worker is not None
    wait_for_job(qtbot, widget)


@pytest.fixture
def mog2_widget(viewer):
    w = MethodsWidget(viewer)
    w.choose("mog2")
    viewer.window.add_dock_widget(w)
    return w


@pytest.fixture
def compare(viewer):
    w = CompareWidget(viewer)
    viewer.window.add_dock_widget(w)
    return w


def test_mog2_widget_layers_shadows_and_in_place_update(
    qtbot, viewer, mog2_widget, video_layer, rgb_sample
):
    mog2_widget._video.value = video_layer
    mog2_widget._settings["history"].value = 40
    mog2_widget._settings["shadow_threshold"].value = 0.6
    wait(qtbot, mog2_widget, mog2_widget.run())
    mask = viewer.layers["traffic MOG2 mask"]
    background = viewer.layers["traffic MOG2 background"]
    assert isinstance(mask, Labels) and isinstance(background, Image) and background.rgb
    assert mask.data.shape == (60, 64, 96) and mask.data.dtype == np.uint8
    assert tuple(mask.scale) == (1, 0.5, 0.5)
    expected = run_mog2(rgb_sample.video, Mog2Settings(history=40, shadow_threshold=0.6))
    np.testing.assert_array_equal(mask.data, expected.mask)
    assert set(np.unique(mask.data)) <= {0, 1, 2}
    # Run again without shadows: same layers, no label 2.
    mog2_widget._settings["detect_shadows"].value = False
    wait(qtbot, mog2_widget, mog2_widget.run())
    assert names(viewer) == ["traffic", "traffic MOG2 mask", "traffic MOG2 background"]
    assert viewer.layers["traffic MOG2 mask"] is mask
    assert not (mask.data == 2).any()


def test_mog2_shadow_label_on_a_darkening_patch(qtbot, viewer, mog2_widget):
    video = np.full((60, 40, 40, 3), 160, np.uint8)
    for t in range(40, 60):
        patch = video[t, 10:30, t - 40 : t - 20]
        video[t, 10:30, t - 40 : t - 20] = (patch * 0.7).astype(np.uint8)
    layer = viewer.add_image(video, name="shade", rgb=True)
    wait(qtbot, mog2_widget, mog2_widget.run(layer))
    assert (viewer.layers["shade MOG2 mask"].data == 2).sum() > 100


def test_mog2_widget_refuses_bad_input(viewer, mog2_widget, errors):
    layer = viewer.add_image(np.zeros((20, 20), np.uint8), name="flat")
    assert mog2_widget.run(layer) is None
    assert "2-D" in errors[0] and names(viewer) == ["flat"]


def test_comparison_table_equals_the_cli(
    qtbot, make_napari_viewer, cdnet_folder, capsys, monkeypatch, tmp_path
):
    viewer = make_napari_viewer(show=False)
    viewer.open(str(cdnet_folder), plugin="napari-gmm-bg")
    assert names(viewer) == ["highway", "highway ground truth", "highway ROI"]
    from napari_gmm_bg._napari.widgets import FitWidget

    fit = FitWidget(viewer)
    viewer.window.add_dock_widget(fit)
    fit.reset_choices()
    fit._video.value = viewer.layers["highway"]
    fit._region.value = viewer.layers["highway ROI"]
    run_fit(qtbot, fit)
    mog2 = MethodsWidget(viewer)
    viewer.window.add_dock_widget(mog2)
    mog2._video.value = viewer.layers["highway"]
    wait(qtbot, mog2, mog2.run())

    compare = CompareWidget(viewer)
    viewer.window.add_dock_widget(compare)
    compare.reset_choices()
    compare._mask_a.value = viewer.layers["highway GMM mask"]
    compare._mask_b.value = viewer.layers["highway MOG2 mask"]
    compare._truth.value = viewer.layers["highway ground truth"]
    compare._region.value = viewer.layers["highway ROI"]
    compare._range.enabled.value = True
    compare._range.start.value, compare._range.stop.value = 5, 60
    wait(qtbot, compare, compare.compare())

    diff = viewer.layers["highway GMM mask vs highway MOG2 mask difference"]
    a = np.asarray(viewer.layers["highway GMM mask"].data)
    b = np.asarray(viewer.layers["highway MOG2 mask"].data)
    np.testing.assert_array_equal(np.asarray(diff.data) == 2, (a == 1) & (b != 1))

    assert main(["evaluate", str(cdnet_folder), "--methods", "gmm,mog2", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)["methods"]
    table = compare.table.value
    assert list(table["columns"]) == ["highway GMM mask", "highway MOG2 mask"]
    for row, metric in zip(table["data"], METRIC_NAMES, strict=True):
        assert row[0] == pytest.approx(cli["gmm"][metric], abs=1e-6), metric
        assert row[1] == pytest.approx(cli["mog2"][metric], abs=1e-6), metric

    # The GMM's precision-recall curve over thresholds, with the MOG2 point on the plot.
    assert compare.curve is not None and len(compare.curve["threshold"]) > 10
    points = compare.figure.axes[0].collections
    mog2_point = points[1].get_offsets()[0]
    assert tuple(mog2_point) == pytest.approx((cli["mog2"]["recall"], cli["mog2"]["precision"]))

    import napari_gmm_bg._napari.compare_widget as module

    monkeypatch.setattr(module, "ask_csv_path", lambda parent, title: str(tmp_path / "t.csv"))
    compare._export_button.clicked.emit(True)
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines[0] == "metric,highway GMM mask,highway MOG2 mask"
    assert lines[7].startswith("f_measure,")
    assert float(lines[7].split(",")[1]) == pytest.approx(cli["gmm"]["f_measure"])


@pytest.mark.parametrize("case", ["shapes", "truth-values", "range"])
def test_compare_bad_input_changes_nothing(qtbot, viewer, compare, errors, case):
    a = viewer.add_labels(np.zeros((4, 8, 8), np.uint8), name="a")
    b = viewer.add_labels(
        np.zeros((4, 8, 9) if case == "shapes" else (4, 8, 8), np.uint8), name="b"
    )
    truth = viewer.add_labels(np.full((4, 8, 8), 7, np.uint8), name="truth")
    compare.reset_choices()
    compare._mask_a.value, compare._mask_b.value = a, b
    if case == "truth-values":
        compare._truth.value = truth
    if case == "range":
        compare._range.enabled.value = True
        compare._range.start.value, compare._range.stop.value = 2, 9
    before = names(viewer)
    worker = compare.compare()
    if worker is not None:
        wait(qtbot, compare, worker)
    message = {"shapes": "differ", "truth-values": "neither binary", "range": "not inside"}[case]
    assert len(errors) == 1 and message in errors[0], errors
    assert names(viewer) == before
    assert compare.scores is None


def test_stats_widget_plots_and_exports(qtbot, viewer, tmp_path, monkeypatch, errors):
    mask = np.zeros((3, 10, 10), np.uint8)
    mask[1, 1:3, 1:3] = 1
    mask[1, 6:9, 6:9] = 1
    layer = viewer.add_labels(mask, name="m")
    widget = StatsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget._mask.value = layer
    wait(qtbot, widget, widget.compute())
    axes = widget.figure.axes
    np.testing.assert_array_equal(axes[0].lines[0].get_ydata(), [0, 13, 0])
    np.testing.assert_array_equal(axes[1].lines[0].get_ydata(), [0, 2, 0])
    path = widget.export_csv(str(tmp_path / "s.csv"))
    assert path.read_text().splitlines()[2] == "1,13,0.13,2"
    # A destination that cannot be written: a notification, and no file.
    assert widget.export_csv(str(tmp_path / "missing" / "s.csv")) is None
    assert "cannot write" in errors[0] and not (tmp_path / "missing").exists()


def test_reader_opens_videos_and_frame_folders(make_napari_viewer, sample_mp4, sample_folder):
    viewer = make_napari_viewer(show=False)
    viewer.open(str(sample_mp4), plugin="napari-gmm-bg")
    viewer.open(str(sample_folder), plugin="napari-gmm-bg")
    assert names(viewer) == ["clip", "frames"]
    clip = viewer.layers["clip"]
    assert isinstance(clip.data, da.Array)  # decoded on demand
    assert clip.data.shape == (60, 64, 96, 3)
    assert len(clip.metadata["timestamps"]) == 60
    assert viewer.layers["frames"].rgb
    from napari_gmm_bg._napari.reader import get_reader

    assert get_reader(str(sample_mp4.with_suffix(".txt"))) is None


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_save_and_reopen_a_lazy_mask_layer(qtbot, viewer, widget, video_layer, tmp_path, suffix):
    widget._video.value = video_layer
    run_fit(qtbot, widget)
    mask = viewer.layers["traffic GMM mask"]
    path = tmp_path / f"mask{suffix}"
    viewer.layers.selection.active = mask
    written = viewer.layers.save(str(path), selected=True, plugin="napari-gmm-bg")
    assert written == [str(path)]
    viewer.layers.remove(mask)
    viewer.open(str(path), plugin="napari-gmm-bg")
    reopened = viewer.layers["traffic GMM mask"]
    assert isinstance(reopened, Labels)
    np.testing.assert_array_equal(np.asarray(reopened.data), np.asarray(mask.data))
    assert tuple(reopened.scale) == (1, 0.5, 0.5) and tuple(reopened.translate) == (0, 3, 4)
    assert reopened.metadata["napari-gmm-bg"]["threshold"] == widget._threshold.value


def test_every_comparison_method_is_offered_with_a_form_from_its_settings(viewer):
    from dataclasses import fields

    from napari_gmm_bg.core.registry import comparison_methods

    widget = MethodsWidget(viewer)
    offered = list(widget._methods)
    assert offered == [m.name for m in comparison_methods()]
    assert {"mog2", "knn", "baseline"} <= set(offered)
    for name in offered:
        widget.choose(name)
        settings_type = widget.method.settings_type
        assert list(widget._settings) == [f.name for f in fields(settings_type)]
        assert widget.settings() == settings_type()  # the controls show the defaults
        for control in widget._settings.values():
            assert control.tooltip  # every control explains itself


def test_every_mog2_setting_reaches_opencv_unchanged(viewer, monkeypatch):
    # Two decimals turned a learning rate of 0.002 into 0.0 (OpenCV then never updates).
    widget = MethodsWidget(viewer)
    widget.choose("mog2")
    values = {
        "history": 123,
        "var_threshold": 16.25,
        "detect_shadows": False,
        "learning_rate": 0.002,
        "n_mixtures": 4,
        "background_ratio": 0.85,
        "var_threshold_gen": 7.5,
        "var_init": 12.5,
        "var_min": 3.25,
        "var_max": 80.5,
        "complexity_reduction_threshold": 0.005,
        "shadow_threshold": 0.55,
    }
    for name, value in values.items():
        widget._settings[name].value = value
    assert widget.settings() == Mog2Settings(**values)
    created = {}
    import cv2

    real = cv2.createBackgroundSubtractorMOG2

    def spy(**kwargs):
        subtractor = real(**kwargs)
        created["mog2"] = subtractor
        return subtractor

    monkeypatch.setattr(cv2, "createBackgroundSubtractorMOG2", spy)
    Mog2Settings(**values).create()
    mog2 = created["mog2"]
    assert mog2.getHistory() == 123 and not mog2.getDetectShadows()
    assert mog2.getComplexityReductionThreshold() == pytest.approx(0.005)
    assert mog2.getVarThreshold() == pytest.approx(16.25)
    assert mog2.getVarMin() == pytest.approx(3.25) and mog2.getVarMax() == pytest.approx(80.5)


def test_knn_and_baseline_layers_in_their_own_colours(qtbot, viewer, video_layer, rgb_sample):
    from napari_gmm_bg._napari.layers import mask_colour
    from napari_gmm_bg.core.registry import get_method

    widget = MethodsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget._video.value = video_layer
    widget.choose("knn")
    wait(qtbot, widget, widget.run())
    widget.choose("baseline")
    widget._settings["distance"].value = 30.0
    wait(qtbot, widget, widget.run())
    assert names(viewer) == [
        "traffic",
        "traffic KNN mask",
        "traffic KNN background",
        "traffic median baseline mask",
        "traffic median baseline background",
        "traffic median baseline colour distance",
    ]
    knn = viewer.layers["traffic KNN mask"]
    expected = get_method("knn").run(rgb_sample.video).labels()
    np.testing.assert_array_equal(knn.data, expected)
    baseline = viewer.layers["traffic median baseline mask"]
    score = viewer.layers["traffic median baseline colour distance"]
    assert not score.visible and score.data.dtype == np.float32
    # The score is what the threshold compares: its raw decision, before the median filter.
    raw = np.asarray(score.data) > 30.0
    assert (np.asarray(baseline.data) == 1).mean() == pytest.approx(raw.mean(), abs=0.02)
    colours = {
        tuple(np.round(layer.colormap.map(np.array([1]))[0][:3], 2)) for layer in (knn, baseline)
    }
    assert len(colours) == 2
    assert mask_colour("knn") != mask_colour("baseline") != mask_colour("gmm")


def test_compare_prefills_cdnet_and_offers_two_different_masks(
    qtbot, make_napari_viewer, cdnet_folder, monkeypatch
):
    import napari_gmm_bg._napari.compare_widget as module

    viewer = make_napari_viewer(show=False)
    viewer.open(str(cdnet_folder), plugin="napari-gmm-bg")
    truth = viewer.layers["highway ground truth"]
    # The "not scored" values are clear, the moving objects drawn.
    colours = truth.colormap.map(np.array([85, 170, 255]))
    assert colours[0][3] == 0 and colours[1][3] == 0 and colours[2][3] > 0
    video = np.asarray(viewer.layers["highway"].data)
    a = viewer.add_labels((video[..., 0] > 128).astype(np.uint8), name="bright")
    b = viewer.add_labels((video[..., 0] > 100).astype(np.uint8), name="brighter")
    compare = CompareWidget(viewer)
    viewer.window.add_dock_widget(compare)
    compare._mask_a.value = a
    assert a not in compare._mask_b.choices and b in compare._mask_b.choices
    assert compare._truth.value is truth
    assert compare._region.value is viewer.layers["highway ROI"]
    start, stop = truth.metadata["temporal_roi"]
    assert compare._range.value == (start, min(stop, len(video)))
    compare._mask_b.value = b
    reads = []
    real = module._compute
    monkeypatch.setattr(module, "_compute", lambda *x: reads.append(1) or real(*x))
    wait(qtbot, compare, compare.compare())
    n = compare._range.value[1] - compare._range.value[0]
    assert len(reads) == -(-n // module.BLOCK_FRAMES)  # a block of frames per read
    # The difference layer's colours are fixed and explained in the panel.
    diff = viewer.layers["bright vs brighter difference"]
    for label, colour in module.DIFFERENCE_COLOURS.items():
        np.testing.assert_allclose(
            diff.colormap.map(np.array([label]))[0][:3],
            [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)],
            atol=1e-2,
        )
    assert not compare.legend.native.isHidden() and "only A (bright)" in compare.legend.value
    # The table shows all its rows.
    table = compare.table.native
    assert table.height() >= sum(table.rowHeight(r) for r in range(table.rowCount()))
    assert table.minimumHeight() >= sum(table.rowHeight(r) for r in range(7))


def test_stats_counts_cdnet_truth_and_says_what_it_counts(qtbot, viewer):
    truth = np.zeros((3, 10, 10), np.uint8)
    truth[1, 2:5, 2:5] = 255
    truth[2, 0:2, 0:2] = 170  # not foreground
    layer = viewer.add_labels(truth, name="gt", metadata={"temporal_roi": [0, 3]})
    widget = StatsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget._mask.value = layer
    wait(qtbot, widget, widget.compute())
    np.testing.assert_array_equal(widget.stats["foreground_pixels"], [0, 9, 0])
    assert "255" in widget._status.value
    other = viewer.add_labels(truth, name="painted")
    widget._mask.value = other
    wait(qtbot, widget, widget.compute())
    np.testing.assert_array_equal(widget.stats["foreground_pixels"], [0, 9, 4])
    assert "non-zero" in widget._status.value


def test_a_long_clips_mog2_mask_is_read_from_disk_and_freed_with_its_layer(
    qtbot, viewer, mog2_widget, video_layer, rgb_sample, monkeypatch, tmp_path
):
    """Beyond the in-memory limit the mask layer reads its labels from a temporary
    folder, block by block, instead of holding the whole clip's labels."""
    import gc
    import tempfile

    from napari_gmm_bg.core import label_store

    monkeypatch.setattr(label_store, "IN_MEMORY_BYTES", 10_000)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # this test's folders only
    mog2_widget._video.value = video_layer
    mog2_widget._settings["history"].value = 50
    wait(qtbot, mog2_widget, mog2_widget.run())
    layer = viewer.layers["traffic MOG2 mask"]
    assert isinstance(layer.data, da.Array)
    expected = run_mog2(rgb_sample.video, Mog2Settings(history=50)).mask
    np.testing.assert_array_equal(np.asarray(layer.data), expected)
    viewer.dims.set_current_step(0, 7)
    np.testing.assert_array_equal(np.asarray(layer._slice.image.raw), expected[7])
    assert list(tmp_path.glob("napari-gmm-bg-labels-*"))  # the labels are on disk
    viewer.layers.remove(layer)
    del layer
    gc.collect()
    qtbot.waitUntil(lambda: not list(tmp_path.glob("napari-gmm-bg-labels-*")), timeout=10_000)
