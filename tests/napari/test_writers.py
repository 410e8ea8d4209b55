"""Saving layers from a real viewer and opening them again through napari."""

import errno
import shutil

import dask.array as da
import numpy as np
import pytest
from napari.layers import Image, Labels
from napari.plugins._npe2 import file_extensions_string_for_layers
from napari.utils.progress import progress
from qtpy.QtWidgets import QFileDialog

from napari_gmm_bg._napari.writer import SaveCancelled, SaveError
from napari_gmm_bg.io.lazy_video import open_video
from tests._filesystems import UNWRITABLE_FOLDER, read_only, small_disk

PLUGIN = "napari-gmm-bg"
FIT = {"napari-gmm-bg": {"source": "traffic", "threshold": -13.0, "components": 3}}


def make_layers(viewer):
    """Image and labels layers of every kind the writers promise to round-trip."""
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 4000, (9, 14, 22), dtype=np.uint16)
    floats = rng.normal(0, 1, (9, 14, 22)).astype(np.float32)
    mask = rng.integers(0, 3, (9, 14, 22)).astype(np.uint8)
    lazy = {"chunks": (4, -1, -1), "multiscale": False}
    return [
        viewer.add_image(
            rng.integers(0, 255, (9, 14, 22, 3), dtype=np.uint8),
            name="rgb",
            rgb=True,
            metadata=FIT,
            scale=(1, 0.5, 0.5),
            translate=(0, 3, 4),
        ),
        viewer.add_image(
            da.from_array(grey, chunks=lazy["chunks"]),
            name="grey16 lazy",
            contrast_limits=(0, 4000),
            multiscale=False,
            metadata=FIT,
        ),
        viewer.add_image(floats, name="float", metadata=FIT),
        viewer.add_image(
            da.from_array(floats, chunks=lazy["chunks"]),
            name="float lazy",
            contrast_limits=(-3, 3),
            multiscale=False,
        ),
        viewer.add_labels(mask.astype(np.int32), name="labels", metadata=FIT),
        viewer.add_labels(
            da.from_array(mask, chunks=lazy["chunks"]), name="labels lazy", metadata=FIT
        ),
    ]


def save(viewer, layer, path):
    viewer.layers.selection.active = layer
    return viewer.layers.save(str(path), selected=True, plugin=PLUGIN)


def save_with_dialog(viewer, monkeypatch, layer, filename, file_type):
    """File > Save Selected Layers, the user typing ``filename`` with ``file_type`` chosen."""
    viewer.layers.selection.active = layer
    choices, _ = file_extensions_string_for_layers([layer])
    chosen = next(c for c in choices.split(";;") if file_type in c)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(filename), chosen))
    viewer.window._qt_viewer._save_layers_dialog(selected=True)


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_lossless_round_trip_through_napari(viewer, tmp_path, suffix):
    layers = make_layers(viewer)
    expected = {layer.name: np.asarray(layer.data) for layer in layers}
    for layer in layers:
        path = tmp_path / f"{layer.name}{suffix}"
        assert save(viewer, layer, path) == [str(path)]
    viewer.layers.clear()
    for layer in layers:
        path = tmp_path / f"{layer.name}{suffix}"
        ours = viewer.open(str(path), plugin=PLUGIN)[0]
        builtin = viewer.open(str(path), plugin="napari")[0]
        for reopened in (ours, builtin):
            data = np.asarray(reopened.data)
            assert data.shape == expected[layer.name].shape
            assert data.dtype == expected[layer.name].dtype
            np.testing.assert_array_equal(data, expected[layer.name])
        # Ours restores the layer: its kind, name, placement and metadata (the fit's).
        assert isinstance(ours, type(layer)) and ours.name == layer.name
        assert isinstance(ours.data, da.Array)  # lazily
        assert ours.metadata == layer.metadata
        np.testing.assert_array_equal(ours.scale, layer.scale)
        np.testing.assert_array_equal(ours.translate, layer.translate)
        if isinstance(layer, Image):
            assert ours.rgb == layer.rgb
    assert listing(tmp_path) == sorted(f"{layer.name}{suffix}" for layer in layers)


def test_a_multiscale_layer_is_saved_at_full_resolution(viewer, tmp_path):
    full = np.random.default_rng(4).integers(0, 255, (6, 32, 48), dtype=np.uint8)
    layer = viewer.add_image([full, full[:, ::2, ::2]], multiscale=True, name="pyramid")
    path = tmp_path / "pyramid.tif"
    assert save(viewer, layer, path) == [str(path)]
    reopened = viewer.open(str(path), plugin=PLUGIN)[0]
    np.testing.assert_array_equal(np.asarray(reopened.data), full)


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_file_open_asks_which_reader_then_remembers(viewer, tmp_path, monkeypatch, suffix):
    """napari's builtins also read TIFF and zarr: File > Open asks once, if told to keep it."""
    from napari._qt.dialogs.qt_reader_dialog import QtReaderDialog

    layer = make_layers(viewer)[4]  # int32 labels with the fit's metadata
    path = tmp_path / f"mask{suffix}"
    save(viewer, layer, path)
    asked = []

    def choose(dialog):
        asked.append(dialog)
        return "GMM background", True  # our reader, and remember the choice

    monkeypatch.setattr(QtReaderDialog, "get_user_choices", choose)
    for _ in range(2):
        before = len(viewer.layers)
        viewer.window._qt_viewer._qt_open([str(path)], stack=False)
        reopened = viewer.layers[before]
        assert isinstance(reopened, Labels) and reopened.metadata == FIT
        np.testing.assert_array_equal(np.asarray(reopened.data), np.asarray(layer.data))
    assert len(asked) == 1


def test_mp4_preview_of_a_lazy_video_layer(viewer, tmp_path, sample_mp4, rgb_sample):
    """A video opened lazily, saved as a preview: same frames and frame rate, close values."""
    video = viewer.open(str(sample_mp4), plugin=PLUGIN)[0]
    assert isinstance(video.data, da.Array)
    path = tmp_path / "preview.mp4"
    assert save(viewer, video, path) == [str(path)]
    back, index = open_video(path)
    assert back.shape == rgb_sample.video.shape  # even sizes: nothing padded
    np.testing.assert_allclose(np.diff(index.seconds), 0.1, atol=1e-3)  # 10 fps kept
    mse = np.mean((np.asarray(back, float) - np.asarray(video.data, float)) ** 2)
    assert 10 * np.log10(255**2 / mse) > 27  # PSNR, dB: lossy, twice


def test_mp4_preview_of_labels_and_of_a_float_image(viewer, tmp_path):
    mask = np.zeros((12, 48, 64), np.uint8)
    yy, xx = np.mgrid[0:48, 0:64]
    floats = np.empty((12, 48, 64), np.float32)
    for t in range(12):
        mask[t, 10:30, 2 * t : 2 * t + 20] = 1  # a moving object
        mask[t, 30:36, 2 * t : 2 * t + 20] = 2  # and its shadow
        floats[t] = 3 * np.sin(xx / 10 + t / 4) * np.cos(yy / 12)
    labels = viewer.add_labels(da.from_array(mask, chunks=(5, -1, -1)), name="mask")
    image = viewer.add_image(
        da.from_array(floats, chunks=(5, -1, -1)),
        name="scores",
        contrast_limits=(-2, 2),
        multiscale=False,
    )
    expected = {
        "mask": np.array([0, 255, 128])[mask],  # 0 black, 1 white, 2 grey
        "scores": np.clip((floats + 2) / 4 * 255, 0, 255),  # the contrast limits
    }
    for layer in (labels, image):
        path = tmp_path / f"{layer.name}.mp4"
        assert save(viewer, layer, path) == [str(path)]
        reopened = viewer.open(str(path), plugin=PLUGIN)[0]
        data = np.asarray(reopened.data)
        assert data.shape == (12, 48, 64, 3)
        mse = np.mean((data[..., 1].astype(float) - expected[layer.name]) ** 2)
        assert 10 * np.log10(255**2 / mse) > 35


def test_the_save_dialog_offers_the_preview_as_lossy(viewer):
    layers = make_layers(viewer)
    for layer in (layers[0], layers[4]):
        choices, _ = file_extensions_string_for_layers([layer])
        assert "MP4 preview, lossy (napari-gmm-bg) (*.mp4)" in choices
        assert "PNG, one 2-D image (napari-gmm-bg) (*.png)" in choices


def test_png_of_a_2d_layer_and_refusal_of_a_stack(viewer, tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    image = viewer.add_image(rng.integers(0, 65535, (14, 22), dtype=np.uint16), name="frame")
    labels = viewer.add_labels(rng.integers(0, 3, (14, 22)).astype(np.uint8), name="roi")
    for layer in (image, labels):
        path = tmp_path / f"{layer.name}.png"
        assert save(viewer, layer, path) == [str(path)]
        reopened = viewer.open(str(path), plugin="napari")[0]
        np.testing.assert_array_equal(np.asarray(reopened.data), layer.data)
        assert reopened.data.dtype == layer.data.dtype
    stack = make_layers(viewer)[0]
    path = tmp_path / "frame.png"
    before = path.read_bytes()
    with pytest.raises(SaveError, match="PNG holds one 2-D image"):
        save_with_dialog(viewer, monkeypatch, stack, path, "PNG, one 2-D image")
    # napari would turn a ValueError from a writer into "not a valid writer": ours is not.
    with pytest.raises(SaveError, match=r"shape \(9, 14, 22, 3\)"):
        save(viewer, stack, path)
    assert path.read_bytes() == before
    assert listing(tmp_path) == ["frame.png", "roi.png"]


def test_a_name_ending_in_another_file_type_is_refused(viewer, tmp_path, monkeypatch):
    layer = make_layers(viewer)[0]
    with pytest.raises(SaveError, match=r"ends in \.xyz, but TIFF stack files end in"):
        save_with_dialog(viewer, monkeypatch, layer, tmp_path / "mask.xyz", "TIFF stack")
    with pytest.raises(SaveError, match=r"ends in \.png, but MP4 preview files end in \.mp4"):
        save_with_dialog(viewer, monkeypatch, layer, tmp_path / "mask.png", "MP4 preview")
    assert listing(tmp_path) == []
    # No file type: the chosen one's suffix is added.  A dot in a name is not a type.
    save_with_dialog(viewer, monkeypatch, layer, tmp_path / "mask v1.5", "TIFF stack")
    assert listing(tmp_path) == ["mask v1.5.tif"]
    # Without the dialog napari itself finds no writer for the extension, and says so.
    with pytest.warns(UserWarning, match="not a valid writer"):
        assert save(viewer, layer, tmp_path / "mask.xyz") == []
    assert listing(tmp_path) == ["mask v1.5.tif"]


@pytest.mark.parametrize("file_type", ["TIFF stack", "zarr", "MP4 preview"])
def test_a_read_only_folder_is_a_clear_message_and_keeps_the_file(
    viewer, tmp_path, monkeypatch, file_type
):
    suffix = {"TIFF stack": ".tif", "zarr": ".zarr", "MP4 preview": ".mp4"}[file_type]
    layer = make_layers(viewer)[5]
    folder = tmp_path / "out"
    folder.mkdir()
    path = folder / f"mask{suffix}"
    save_with_dialog(viewer, monkeypatch, layer, path, file_type)
    before = snapshot(path)
    with read_only(folder):
        with pytest.raises(SaveError) as caught:
            save_with_dialog(viewer, monkeypatch, layer, path, file_type)
    message = str(caught.value)
    assert "Read-only file system" in message or "Permission denied" in message
    assert "nothing was written; the existing file is unchanged." in message
    assert snapshot(path) == before and listing(folder) == [path.name]
    with pytest.raises(SaveError, match="(Permission denied|Read-only file system); nothing was"):
        save_with_dialog(viewer, monkeypatch, layer, UNWRITABLE_FOLDER / "m.tif", "TIFF stack")


def test_a_full_disk_is_a_clear_message_and_keeps_the_file(viewer, tmp_path, monkeypatch):
    noise = np.random.default_rng(2).integers(0, 255, (64, 128, 128), dtype=np.uint8)
    big = viewer.add_image(da.from_array(noise, chunks=(8, -1, -1)), name="big", multiscale=False)
    small = make_layers(viewer)[4]
    with small_disk(tmp_path / "disk", 512) as disk:
        for file_type, suffix in [("TIFF stack", ".tif"), ("zarr", ".zarr"), ("MP4", ".mp4")]:
            path = disk / f"clip{suffix}"
            save_with_dialog(viewer, monkeypatch, small, path, file_type)
            before = snapshot(path)
            with pytest.raises(SaveError, match="No space left on device") as caught:
                save_with_dialog(viewer, monkeypatch, big, path, file_type)
            assert "the existing file is unchanged" in str(caught.value)
            assert snapshot(path) == before and listing(disk) == [path.name]
            assert caught.value.__cause__.errno == errno.ENOSPC
            shutil.rmtree(path) if path.is_dir() else path.unlink()


@pytest.mark.parametrize("file_type", ["TIFF stack", "zarr", "MP4 preview"])
def test_cancel_on_the_progress_bar_stops_the_save(viewer, tmp_path, monkeypatch, file_type):
    suffix = {"TIFF stack": ".tif", "zarr": ".zarr", "MP4 preview": ".mp4"}[file_type]
    frames = np.random.default_rng(3).integers(0, 3, (64, 32, 48), dtype=np.uint8)
    computed = []

    def compute(block, block_info=None):
        computed.append(block_info[0]["chunk-location"][0])
        return block

    lazy = da.from_array(frames, chunks=(4, -1, -1)).map_blocks(compute, dtype=np.uint8)
    layer = viewer.add_labels(lazy, name="long mask")
    path = tmp_path / f"mask{suffix}"
    save_with_dialog(viewer, monkeypatch, layer, path, file_type)
    before = snapshot(path)
    computed.clear()
    dialog = viewer.window._qt_window._activity_dialog
    bars = []

    def click_cancel_at_frame_8(event):
        (prog,) = event.added or (None,)
        if prog is None or not prog.desc.startswith("Saving long mask"):
            return
        bar = dialog.get_pbar_from_prog(prog)
        bars.append(bar)
        prog.events.value.connect(lambda e: e.value >= 8 and bar.cancel_button.click())

    progress._all_instances.events.changed.connect(click_cancel_at_frame_8)
    try:
        with pytest.raises(SaveCancelled, match="'long mask' was cancelled: nothing was"):
            save_with_dialog(viewer, monkeypatch, layer, path, file_type)
    finally:
        progress._all_instances.events.changed.disconnect(click_cancel_at_frame_8)
    assert len(bars) == 1 and bars[0].cancel_button.text() == "Canceled"
    assert sorted(computed) == [0, 1, 2, 3]  # stopped after the first block of 16 frames
    assert snapshot(path) == before and listing(tmp_path) == [path.name]
    assert not [p for p in progress._all_instances if p.desc.startswith("Saving")]


def snapshot(path):
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return {p.relative_to(path): p.read_bytes() for p in files}
    return path.read_bytes()


@pytest.mark.parametrize("rgb", [False, True])
def test_a_single_image_is_saved_as_one_tiff_page(viewer, tmp_path, rgb):
    rng = np.random.default_rng(5)
    image = rng.integers(0, 255, (14, 22, 3) if rgb else (14, 22), dtype=np.uint8)
    layer = viewer.add_image(image, name="still", rgb=rgb)
    path = tmp_path / "still.tif"
    assert save(viewer, layer, path) == [str(path)]
    reopened = viewer.open(str(path), plugin=PLUGIN)[0]
    np.testing.assert_array_equal(np.asarray(reopened.data).reshape(image.shape), image)
    assert reopened.rgb == rgb
