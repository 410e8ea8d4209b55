from fractions import Fraction

import av
import dask.array as da
import numpy as np
import pytest

from napari_gmm_bg.io.lazy_video import build_index, open_video
from napari_gmm_bg.io.video import read_video_file
from tests.conftest import encode_avi


def encode(path, frames, codec="libx264", pts=None, rate=25, options=None):
    """Encode RGB frames; with ``pts`` (in milliseconds) the frame rate is variable."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = options or {"crf": "10", "bf": "3", "g": "12"}
        if pts is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
            stream.time_base = Fraction(1, 1000)
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if pts is not None:
                vf.pts = int(pts[i])
                vf.time_base = Fraction(1, 1000)
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def numbered():
    """Frames that say which they are: frame i is a flat grey of level 3 i (+ a marker)."""
    n = 70
    frames = np.zeros((n, 48, 64, 3), np.uint8)
    for i in range(n):
        frames[i] = 3 * i
        frames[i, 4:12, (i % 8) * 8 : (i % 8) * 8 + 8] = 255
    return frames


def assert_random_access_matches_sequential(path, n_expected):
    video, index = open_video(path)
    sequential = read_video_file(path)
    assert video.shape[0] == len(sequential) == n_expected
    rng = np.random.default_rng(0)
    for i in rng.permutation(n_expected)[:25]:
        np.testing.assert_array_equal(video[int(i)].compute(), sequential[int(i)])
    np.testing.assert_array_equal(video[-5:].compute(), sequential[-5:])
    return index


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_h264_with_b_frames_is_frame_accurate(tmp_path, numbered, suffix):
    path = encode(tmp_path / f"clip{suffix}", numbered)
    assert_random_access_matches_sequential(path, len(numbered))


def test_variable_frame_rate_is_frame_accurate(tmp_path, numbered):
    gaps = np.random.default_rng(1).integers(15, 90, len(numbered))
    pts = np.concatenate([[0], np.cumsum(gaps[:-1])])
    path = encode(tmp_path / "vfr.mp4", numbered, pts=pts)
    index = assert_random_access_matches_sequential(path, len(numbered))
    np.testing.assert_allclose(np.diff(index.seconds), gaps[:-1] / 1000, atol=2e-3)


def test_avi_and_opening_decodes_nothing(tmp_path, numbered, monkeypatch):
    path = encode_avi(tmp_path / "clip.avi", numbered)
    assert_random_access_matches_sequential(path, len(numbered))
    # Opening again reads the index kept beside the file: no demux, no decode.
    import napari_gmm_bg.io.lazy_video as module

    monkeypatch.setattr(module, "build_index", lambda p: pytest.fail("index rebuilt"))
    video, _ = open_video(path)
    assert isinstance(video, da.Array) and video.shape == (70, 48, 64, 3)


def test_bad_files(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 500)
    with pytest.raises(ValueError, match="cannot read video"):
        build_index(junk)
    with pytest.raises(ValueError, match="no such file"):
        open_video(tmp_path / "missing.mp4")
