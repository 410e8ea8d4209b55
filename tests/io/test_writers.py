import errno

import cv2
import dask.array as da
import numpy as np
import pytest
import zarr

from napari_gmm_bg.io import writers
from napari_gmm_bg.io.lazy_video import open_video
from napari_gmm_bg.io.stacks import open_tiff, open_zarr
from napari_gmm_bg.io.writers import (
    LABEL_COLOURS,
    frame_blocks,
    labels_to_rgb,
    save_mp4,
    save_png,
    save_tiff,
    save_zarr,
)
from tests._filesystems import UNWRITABLE_FOLDER, read_only, small_disk


@pytest.fixture
def stack():
    return np.random.default_rng(0).integers(0, 255, (20, 16, 24), dtype=np.uint8)


@pytest.mark.parametrize(
    ("save", "open_", "name"), [(save_tiff, open_tiff, "s.tif"), (save_zarr, open_zarr, "s.zarr")]
)
def test_round_trip_lazy_with_metadata(tmp_path, stack, save, open_, name):
    lazy = da.from_array(stack, chunks=(7, -1, -1))
    meta = {"threshold": -13.0, "model": object(), "times": np.arange(3.0)}
    path = save(tmp_path / name, lazy, meta)
    data, read_meta = open_(path)
    assert isinstance(data, da.Array)
    np.testing.assert_array_equal(data.compute(), stack)
    assert data.dtype == stack.dtype
    assert read_meta["threshold"] == -13.0 and read_meta["times"] == [0.0, 1.0, 2.0]
    assert "model" not in read_meta  # what JSON cannot hold is dropped
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary left


@pytest.mark.parametrize(("save", "name"), [(save_tiff, "s.tif"), (save_zarr, "s.zarr")])
def test_a_failed_write_keeps_the_existing_file(tmp_path, stack, save, name):
    path = save(tmp_path / name, stack, {"version": 1})

    def broken(block):
        raise OSError(28, "No space left on device")

    failing = da.from_array(stack, chunks=(5, -1, -1)).map_blocks(broken, dtype=stack.dtype)
    with pytest.raises(OSError, match="No space"):
        save(tmp_path / name, failing, {"version": 2})
    opener = open_tiff if name.endswith(".tif") else open_zarr
    data, meta = opener(path)
    np.testing.assert_array_equal(np.asarray(data), stack)
    assert meta["version"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


# --- helpers -----------------------------------------------------------------------------


def snapshot(path):
    """Every byte of a file, or of every file in a folder (a zarr store)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return {p.relative_to(path): p.read_bytes() for p in files}
    return path.read_bytes()


def psnr(a, b):
    mse = np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)
    return np.inf if mse == 0 else 10 * np.log10(255**2 / mse)


def counted(array, chunks):
    """A dask array over ``array`` that counts how often each chunk is computed."""
    calls = []

    def block(x, block_info=None):
        calls.append(block_info[0]["chunk-location"][0])
        return x

    lazy = da.from_array(array, chunks=chunks).map_blocks(block, dtype=array.dtype)
    return lazy, calls


def save_any(fmt, path, data):
    if fmt == "tif":
        return save_tiff(path, data, {"version": 2})
    if fmt == "zarr":
        return save_zarr(path, data, {"version": 2})
    if fmt == "mp4":
        return save_mp4(path, data)
    return save_png(path, data[0])


FORMATS = ["tif", "zarr", "mp4", "png"]


# --- streaming ---------------------------------------------------------------------------


def test_frame_blocks_follow_the_chunks_and_split_huge_ones(stack, monkeypatch):
    lazy, calls = counted(stack, (7, -1, -1))
    blocks = list(frame_blocks(lazy, step=7))
    assert [start for start, _ in blocks] == [0, 7, 14]
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), stack)
    assert sorted(calls) == [0, 1, 2]  # each chunk computed once
    # Small chunks (a mask of one frame per chunk) are joined into blocks of `step`.
    lazy, calls = counted(stack, (1, -1, -1))
    blocks = list(frame_blocks(lazy))
    assert [start for start, _ in blocks] == [0, 16]
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), stack)
    assert sorted(calls) == list(range(20))
    monkeypatch.setattr(writers, "_BLOCK_BYTES", 5 * stack[0].nbytes)
    assert [start for start, _ in frame_blocks(da.from_array(stack))] == [0, 5, 10, 15]
    assert [start for start, _ in frame_blocks(stack, step=8)] == [0, 8, 16]


@pytest.mark.parametrize("fmt", ["tif", "zarr", "mp4"])
def test_a_lazy_stack_is_computed_one_chunk_at_a_time(tmp_path, stack, fmt):
    lazy, calls = counted(stack, (4, -1, -1))
    seen = []
    saver = {"tif": save_tiff, "zarr": save_zarr}.get(fmt)
    if saver:
        saver(tmp_path / f"s.{fmt}", lazy, progress=seen.append)
    else:
        save_mp4(tmp_path / "s.mp4", lazy, progress=seen.append)
    assert sorted(calls) == [0, 1, 2, 3, 4]
    assert seen == [16, 20]  # chunks of 4 joined into blocks of 16 frames


# --- MP4 preview -------------------------------------------------------------------------


def test_mp4_preview_of_an_odd_sized_rgb_clip_reads_back_close(tmp_path, rgb_sample):
    video = rgb_sample.video[:, :63, :95]  # odd sizes: padded to 64 x 96
    path = save_mp4(tmp_path / "clip.mp4", da.from_array(video, chunks=(16, -1, -1, -1)))
    back, _ = open_video(path)
    assert back.shape == (60, 64, 96, 3)
    back = np.asarray(back)
    # 4:2:0 chroma subsampling alone costs this sharp-edged clip about 30 dB.
    assert psnr(back[:, :63, :95], video) > 27
    np.testing.assert_allclose(back[:, 63].mean(), back[:, 62].mean(), atol=3)  # row repeated


@pytest.mark.parametrize(
    ("dtype", "limits", "expected_range"),
    [
        ("uint16", (0, 4000), (0, 4000)),  # the layer's contrast limits
        ("uint16", None, (0, 65535)),  # else the dtype's range
        ("float32", None, None),  # floats: the data's range
    ],
)
def test_mp4_preview_scales_to_8_bits(tmp_path, dtype, limits, expected_range):
    yy, xx = np.mgrid[0:48, 0:64]
    frames = np.stack([np.sin(xx / 9 + t / 3) + np.cos(yy / 7) for t in range(12)])
    if dtype == "uint16":
        data = ((frames + 2) / 4 * expected_range[1]).astype(np.uint16)
    else:
        data = (frames * 3.5 - 1).astype(np.float32)
        data[0, 0, 0] = np.nan  # NaN is written as 0, not a failure
        expected_range = (np.nanmin(data), np.nanmax(data))
    low, high = expected_range
    expected = np.clip((np.nan_to_num(data, nan=low) - low) / (high - low) * 255, 0, 255)
    back, _ = open_video(save_mp4(tmp_path / "g.mp4", data, contrast_limits=limits))
    back = np.asarray(back)
    assert back.shape == (12, 48, 64, 3)
    assert psnr(back[..., 1], expected) > 38


def test_mp4_preview_of_labels_shows_them_distinctly(tmp_path):
    labels = np.zeros((10, 64, 96), np.int32)
    labels[:, 8:24, 8:40] = 1
    labels[:, 32:56, 8:40] = 2
    labels[:, 8:56, 56:88] = 3
    path = save_mp4(tmp_path / "mask.mp4", da.from_array(labels, chunks=(3, -1, -1)), labels=True)
    back = np.asarray(open_video(path)[0]).astype(float)
    assert back.shape == (10, 64, 96, 3)

    def colour(region):
        return back[(slice(None), *region)].mean(axis=(0, 1, 2))

    np.testing.assert_allclose(colour((slice(0, 4), slice(0, 96))), [0, 0, 0], atol=3)
    np.testing.assert_allclose(colour((slice(12, 20), slice(12, 36))), [255, 255, 255], atol=3)
    np.testing.assert_allclose(colour((slice(36, 52), slice(12, 36))), [128, 128, 128], atol=3)
    np.testing.assert_allclose(colour((slice(12, 52), slice(60, 84))), LABEL_COLOURS[3], atol=6)


@pytest.mark.parametrize("shape", [(16, 24), (4, 3, 16, 24), (4, 16, 24, 5)])
def test_mp4_preview_refuses_what_is_not_a_stack_of_frames(tmp_path, shape):
    with pytest.raises(ValueError, match="stack of 2-D frames"):
        save_mp4(tmp_path / "x.mp4", np.zeros(shape, np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_labels_colours():
    rgb = labels_to_rgb(np.array([0, 1, 2, 3, 10, 11, -1]))
    np.testing.assert_array_equal(rgb[:4], LABEL_COLOURS[:4])
    np.testing.assert_array_equal(rgb[4], LABEL_COLOURS[10])
    np.testing.assert_array_equal(rgb[5], LABEL_COLOURS[3])  # the colours cycle
    small = labels_to_rgb(np.arange(256, dtype=np.uint8))  # the uint8 fast path agrees
    np.testing.assert_array_equal(small, labels_to_rgb(np.arange(256)))


# --- PNG ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "labels", "dtype"),
    [
        (np.arange(12 * 16, dtype=np.uint8).reshape(12, 16), False, np.uint8),
        (np.arange(12 * 16, dtype=np.uint16).reshape(12, 16) * 300, False, np.uint16),
        (np.random.default_rng(0).integers(0, 255, (12, 16, 3), dtype=np.uint8), False, None),
        (np.random.default_rng(1).integers(0, 255, (12, 16, 4), dtype=np.uint8), False, None),
        (np.arange(12 * 16, dtype=np.int32).reshape(12, 16) % 3, True, np.uint8),
        (np.arange(12 * 16, dtype=np.int64).reshape(12, 16) * 200, True, np.uint16),
        (np.eye(12, 16, dtype=bool), True, np.uint8),
    ],
)
def test_png_round_trip(tmp_path, image, labels, dtype):
    path = save_png(tmp_path / "x.png", da.from_array(image), labels=labels)
    back = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if back.ndim == 3:
        code = cv2.COLOR_BGR2RGB if back.shape[-1] == 3 else cv2.COLOR_BGRA2RGBA
        back = cv2.cvtColor(back, code)
    np.testing.assert_array_equal(back, image)
    assert back.dtype == (dtype or image.dtype)
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


@pytest.mark.parametrize(
    ("image", "labels", "message"),
    [
        (np.zeros((3, 12, 16), np.uint8), False, "one 2-D image"),
        (np.zeros((12, 16, 3), np.uint8), True, "one 2-D image"),
        (np.zeros((12, 16), np.float32), False, "not float32"),
        (np.full((12, 16), -1, np.int16), True, "span -1..-1"),
        (np.full((12, 16), 70000, np.int32), True, "span 70000"),
        (np.zeros((0, 16), np.uint8), False, "nothing to save"),
    ],
)
def test_png_refuses_what_it_cannot_hold_and_keeps_the_existing_file(
    tmp_path, image, labels, message
):
    path = save_png(tmp_path / "x.png", np.ones((4, 4), np.uint8))
    before = snapshot(path)
    with pytest.raises(ValueError, match=message):
        save_png(path, image, labels=labels)
    assert snapshot(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_png_grey_stack_of_three_is_not_taken_for_rgb(tmp_path):
    with pytest.raises(ValueError, match="one 2-D image"):
        save_png(tmp_path / "x.png", np.zeros((12, 16, 3), np.uint8), rgb=False)


# --- bad input: nothing lost -------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["tif", "zarr", "mp4"])
def test_zero_frames_are_refused(tmp_path, fmt):
    with pytest.raises(ValueError, match="nothing to save"):
        save_any(fmt, tmp_path / f"x.{fmt}", np.zeros((0, 16, 24), np.uint8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_an_error_in_the_data_keeps_the_existing_file(tmp_path, stack, fmt, error):
    path = save_any(fmt, tmp_path / f"x.{fmt}", stack)
    before = snapshot(path)
    computed = []
    fails_at = 0 if fmt == "png" else 1  # PNG: one frame, one chunk

    def broken(block, block_info=None):
        computed.append(block_info[0]["chunk-location"][0])
        if len(computed) > fails_at:
            raise error
        return block

    failing = da.from_array(stack, chunks=(1, -1, -1)).map_blocks(broken, dtype=stack.dtype)
    with pytest.raises(type(error)):
        save_any(fmt, path, failing)
    assert snapshot(path) == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.parametrize("fmt", ["tif", "zarr", "mp4"])
def test_an_interrupt_mid_write_keeps_the_existing_file(tmp_path, stack, fmt):
    """Ctrl+C (or a Cancel) arrives between blocks: KeyboardInterrupt from the callback."""
    saver = {"tif": save_tiff, "zarr": save_zarr, "mp4": save_mp4}[fmt]
    path = saver(tmp_path / f"x.{fmt}", stack)
    before = snapshot(path)
    seen = []

    def interrupt(done):
        seen.append(done)
        if done >= 16:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        saver(path, da.from_array(stack[::-1], chunks=(8, -1, -1)), progress=interrupt)
    assert seen == [16]  # the first block of 16 frames written, the rest never
    assert snapshot(path) == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_read_only_folder_keeps_the_existing_file(tmp_path, stack, fmt):
    folder = tmp_path / "out"
    folder.mkdir()
    path = save_any(fmt, folder / f"x.{fmt}", stack)
    before = snapshot(path)
    with read_only(folder):
        with pytest.raises(OSError) as caught:
            save_any(fmt, path, stack[::-1])
        assert caught.value.errno in (errno.EROFS, errno.EACCES)
    assert snapshot(path) == before
    assert [p.name for p in folder.iterdir()] == [path.name]


@pytest.mark.parametrize("fmt", FORMATS)
def test_unwritable_destinations_fail_clearly(tmp_path, stack, fmt):
    with pytest.raises(OSError) as refused:
        save_any(fmt, UNWRITABLE_FOLDER / f"napari-gmm-bg-test.{fmt}", stack)
    # sysfs says EACCES; a read-only /sys (as in a default Docker container) says EROFS
    assert refused.value.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
    assert not (UNWRITABLE_FOLDER / f"napari-gmm-bg-test.{fmt}").exists()
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    with pytest.raises(NotADirectoryError):
        save_any(fmt, a_file / f"x.{fmt}", stack)
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_full_disk_keeps_the_existing_file(tmp_path, fmt):
    """A real 512 KB file system, filled by the write (root with mount rights only)."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (4, 16, 16), dtype=np.uint8)
    big = rng.integers(0, 255, (64, 128, 128), dtype=np.uint8)  # 1 MB, and noise for mp4
    if fmt == "png":
        big = rng.integers(0, 65535, (1, 512, 512), dtype=np.uint16)
    with small_disk(tmp_path / "disk", 512) as disk:
        path = save_any(fmt, disk / f"x.{fmt}", small)
        before = snapshot(path)
        with pytest.raises(OSError) as caught:
            save_any(fmt, path, da.from_array(big, chunks=(8, -1, -1)))
        assert caught.value.errno == errno.ENOSPC
        assert snapshot(path) == before
        assert [p.name for p in disk.iterdir()] == [path.name]


def test_frame_blocks_of_a_zarr_array(tmp_path, stack):
    stored = zarr.open_array(
        tmp_path / "z.zarr", mode="w", shape=stack.shape, chunks=(1, 8, 8), dtype=stack.dtype
    )
    stored[:] = stack
    blocks = list(frame_blocks(stored, step=6))
    assert [start for start, _ in blocks] == [0, 6, 12, 18]
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), stack)
