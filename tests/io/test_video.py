import os

import cv2
import dask.array as da
import numpy as np
import PIL.Image
import pytest
import tifffile

from napari_gmm_bg.io.video import image_size, open_frame_folder, read_video


def test_mp4_avi_and_folder_read_back_close_to_the_source(
    rgb_sample, sample_mp4, sample_avi, sample_folder
):
    source = rgb_sample.video.astype(int)
    for path, tolerance in ((sample_mp4, 6), (sample_avi, 8), (sample_folder, 0)):
        video = read_video(path)
        assert video.shape == source.shape and video.dtype == np.uint8
        # RGB order, not BGR: the mean error would be large if channels were swapped.
        assert np.abs(video.astype(int) - source).mean() <= tolerance, path


def test_bad_paths(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        read_video(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    with pytest.raises(ValueError, match="cannot read video"):
        read_video(junk)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="unknown video type"):
        read_video(text)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no image files"):
        read_video(empty)


def test_folder_of_mixed_sizes_is_refused(tmp_path):
    cv2.imwrite(str(tmp_path / "a1.png"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "a2.png"), np.zeros((9, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="differ in size"):
        read_video(tmp_path)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".tif"])
def test_image_size_from_the_header(tmp_path, suffix):
    path = tmp_path / f"frame{suffix}"
    cv2.imwrite(str(path), np.zeros((37, 53, 3), np.uint8))
    assert image_size(path) == (53, 37)
    with PIL.Image.open(path) as image:
        assert image.size == (53, 37)


def test_image_size_of_a_jpeg_with_a_long_exif_block(tmp_path):
    path = tmp_path / "exif.jpg"
    exif = PIL.Image.Exif()
    exif[0x010E] = "x" * 20000  # ImageDescription: the frame header comes after 20 kB
    PIL.Image.new("RGB", (71, 29)).save(path, exif=exif.tobytes())
    assert image_size(path) == (71, 29)


def test_frame_folder_opens_lazily(sample_folder, rgb_sample):
    video, files = open_frame_folder(sample_folder)
    assert isinstance(video, da.Array) and len(files) == 60
    np.testing.assert_array_equal(video[[3, 40, 59]].compute(), rgb_sample.video[[3, 40, 59]])
    np.testing.assert_array_equal(video.compute(), read_video(sample_folder))


def test_a_frame_of_another_kind_is_found_when_read(tmp_path):
    for i in range(4):
        image = np.zeros((8, 8, 3), np.uint8) if i != 2 else np.zeros((8, 8), np.uint8)
        cv2.imwrite(str(tmp_path / f"in{i + 1}.png"), image)
    video, _ = open_frame_folder(tmp_path, chunk=1)  # same size: opens
    assert video[1].compute().shape == (8, 8, 3)
    with pytest.raises(ValueError, match="in3.png"):
        video[2].compute()


def test_a_folder_of_float_tiff_frames_opens_lazily(tmp_path):
    frames = np.random.default_rng(1).normal(0, 1, (5, 12, 16)).astype(np.float64)
    for i, frame in enumerate(frames):
        tifffile.imwrite(tmp_path / f"f{i + 1:03d}.tif", frame)
    assert image_size(tmp_path / "f001.tif") == (16, 12)
    video, _ = open_frame_folder(tmp_path)
    np.testing.assert_array_equal(video.compute(), frames)
    tifffile.imwrite(tmp_path / "f006.tif", frames[0, :, :8])
    with pytest.raises(ValueError, match="differ in size"):
        open_frame_folder(tmp_path)


def test_editing_a_frame_gives_the_folder_a_new_dask_name(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"in{i + 1}.png"), np.full((8, 8), i, np.uint8))
    before = open_frame_folder(tmp_path)[0].name
    middle = tmp_path / "in2.png"
    os.utime(middle, ns=(middle.stat().st_atime_ns, middle.stat().st_mtime_ns + 10**9))
    assert open_frame_folder(tmp_path)[0].name != before
