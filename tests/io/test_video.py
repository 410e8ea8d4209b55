import cv2
import numpy as np
import pytest

from napari_gmm_bg.io.video import read_video


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
