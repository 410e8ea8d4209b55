import dataclasses
import pickle
import time
from fractions import Fraction

import av
import dask
import dask.array as da
import numpy as np
import pytest

from napari_gmm_bg.io.lazy_video import build_index, open_video, reader_of
from napari_gmm_bg.io.video import read_video_file
from tests.conftest import encode_avi


def encode(path, frames, codec="libx264", pts=None, rate=25, options=None, container_options=None):
    """Encode RGB (or grey) frames; with ``pts`` (in milliseconds) the frame rate is variable."""
    grey = frames.ndim == 3
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "gray" if grey else "yuv420p"
        stream.options = options or {"crf": "10", "bf": "3", "g": "12"}
        if pts is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
            stream.time_base = Fraction(1, 1000)
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="gray" if grey else "rgb24")
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


@pytest.fixture(scope="module")
def long_gop(tmp_path_factory):
    """150 numbered frames as H.264 with 3 B-frames and a keyframe every 60 frames."""
    n = 150
    frames = np.zeros((n, 48, 64, 3), np.uint8)
    frames[:] = (np.arange(64) * 3)[None, None, :, None]
    for i in range(n):
        frames[i, 30:40, :] = i  # a band whose level is the frame number
        frames[i, 10:20, (i % 50) : (i % 50) + 10] = (250, 20, 20)
    path = tmp_path_factory.mktemp("gop") / "gop.mp4"
    options = {"crf": "12", "bf": "3", "g": "60", "keyint_min": "60", "sc_threshold": "0"}
    options["x264-params"] = "b-adapt=0"  # always 3 B-frames between references
    encode(path, frames, options=options)
    return path, read_video_file(path)


@pytest.mark.parametrize("chunk", [1, None])
def test_scrubbing_in_any_order_matches_a_sequential_decode(long_gop, chunk):
    path, sequential = long_gop
    video, _ = open_video(path, chunk=chunk)
    n = len(sequential)
    rng = np.random.default_rng(3)
    order = list(rng.permutation(n)[:40])  # random jumps
    order += list(range(97, 60, -1))  # stepping backwards across a keyframe
    order += list(range(20, 75))  # stepping forwards across a keyframe
    for i in order:
        np.testing.assert_array_equal(video[int(i)].compute(), sequential[int(i)], f"frame {i}")
    for start in rng.integers(0, n - 10, 5):
        np.testing.assert_array_equal(
            video[start : start + 10].compute(), sequential[start : start + 10]
        )


@pytest.mark.parametrize("max_decoders", [1, 3])
def test_threads_reading_at_once_get_the_right_frames(long_gop, max_decoders):
    path, sequential = long_gop
    video, _ = open_video(path, chunk=1, max_decoders=max_decoders)
    with dask.config.set(scheduler="threads", num_workers=6):
        np.testing.assert_array_equal(video.compute(), sequential)
        picks = np.random.default_rng(4).permutation(len(sequential))[:30]
        np.testing.assert_array_equal(video[picks].compute(), sequential[picks])


def test_the_next_frame_continues_the_decoder_without_seeking(long_gop):
    path, sequential = long_gop
    video, _ = open_video(path, chunk=1)
    reader = reader_of(video)
    video[40].compute()
    seeks = reader.stats["seeks"]
    for i in range(41, 130):  # through the keyframe at 60 and 120: still no seek
        np.testing.assert_array_equal(video[i].compute(), sequential[i])
    assert reader.stats["seeks"] == seeks


def test_non_reference_frames_before_the_wanted_one_are_skipped(long_gop):
    path, sequential = long_gop
    video, _ = open_video(path, chunk=1, prefetch=0)
    reader = reader_of(video)
    np.testing.assert_array_equal(video[58].compute(), sequential[58])
    # 59 frames from the keyframe at 0: about half are non-reference B-frames.
    assert reader.stats["seeks"] == 1
    assert reader.stats["decoded"] < 45
    assert reader.stats["converted"] == 1  # only the wanted frame became RGB


def test_the_cache_stays_within_its_limit(long_gop):
    path, sequential = long_gop
    frame_bytes = sequential[0].nbytes
    video, _ = open_video(path, chunk=1, cache_bytes=10 * frame_bytes)
    reader = reader_of(video)
    for i in np.random.default_rng(5).permutation(len(sequential))[:60]:
        np.testing.assert_array_equal(video[int(i)].compute(), sequential[int(i)])
        assert reader.cached_bytes() <= 10 * frame_bytes


def test_the_reader_pickles_for_dask_workers(long_gop):
    path, sequential = long_gop
    video, _ = open_video(path, chunk=4)
    reader = reader_of(video)
    reader.read(10, 14)
    clone = pickle.loads(pickle.dumps(reader))
    np.testing.assert_array_equal(clone.read(100, 104), sequential[100:104])
    assert clone.stats["seeks"] == 1  # a fresh pool: nothing carried over


def test_avi_with_b_frames_keeps_the_decoders_order(tmp_path, numbered):
    # AVI stores no presentation timestamps: the index is built by decoding once.
    path = encode(tmp_path / "b.avi", numbered, codec="mpeg4", options={"bf": "2", "g": "12"})
    index = assert_random_access_matches_sequential(path, len(numbered))
    assert not index.ordered


def test_grey_video_gives_grey_frames(tmp_path, numbered):
    grey = numbered[..., 0].copy()
    path = encode(tmp_path / "grey.mkv", grey, codec="ffv1", options={})
    video, _ = open_video(path)
    assert video.shape == grey.shape
    np.testing.assert_array_equal(video.compute(), grey)  # lossless


def test_mp4_opens_from_its_sample_tables(tmp_path, numbered, monkeypatch):
    import napari_gmm_bg.io.lazy_video as module

    path = encode(tmp_path / "clip.mp4", numbered)
    monkeypatch.setattr(module, "build_index", lambda p: pytest.fail("demuxed"))
    assert_random_access_matches_sequential(path, len(numbered))
    assert not list(tmp_path.glob(".*.frames.npz"))  # nothing kept beside it


def remux_with_warped_timestamps(src, dst, seed=6):
    """Copy the packets of a constant-rate file, moving every timestamp (pts and dts
    alike) by one monotonic map of the frame grid: variable frame rate, same frames."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        in_stream = inp.streams.video[0]
        out_stream = out.add_stream_from_template(in_stream)
        packets = [p for p in inp.demux(in_stream) if p.size]
        step = packets[1].dts - packets[0].dts
        gaps = np.random.default_rng(seed).uniform(0.5, 3.0, len(packets) + 8) * step
        warp = np.concatenate([[0], np.cumsum(gaps)]).astype(np.int64)
        warp -= warp[8]
        for p in packets:
            q = av.Packet(bytes(p))
            q.pts, q.dts = (int(warp[t // step + 8]) for t in (p.pts, p.dts))
            q.is_keyframe, q.time_base, q.stream = p.is_keyframe, p.time_base, out_stream
            out.mux(q)
    return dst


def test_a_seek_on_variable_frame_rate_lands_on_the_nearest_keyframe(tmp_path, long_gop):
    path = remux_with_warped_timestamps(long_gop[0], tmp_path / "vfr.mp4")
    sequential = read_video_file(path)
    np.testing.assert_array_equal(sequential, long_gop[1])  # same frames, new times
    for target in (60, 121, 125):
        video, _ = open_video(path, chunk=1, prefetch=0)
        reader = reader_of(video)
        np.testing.assert_array_equal(video[target].compute(), sequential[target])
        # From the keyframe at 60 or 120, not the one before (60 more frames).
        assert reader.stats["decoded"] < 20, (target, reader.stats)


@pytest.mark.parametrize("gop", ["closed", "open"])
def test_mpeg_program_stream_is_frame_accurate(tmp_path, long_gop, gop):
    # MPEG-PS timestamps are partly guessed by the demuxer, differently after a seek:
    # these files are read from a keyframe's byte offset and their frames counted.
    _, frames = long_gop
    options = {"bf": "2", "g": "15"}
    if gop == "closed":
        options.update(flags="+cgop", sc_threshold="1000000000")
    path = encode(tmp_path / "clip.mpg", frames, codec="mpeg2video", options=options)
    index = assert_random_access_matches_sequential(path, len(frames))
    assert index.counted
    video, _ = open_video(path, chunk=1)
    sequential = read_video_file(path)
    for i in range(120, 88, -1):  # backwards over keyframes
        np.testing.assert_array_equal(video[i].compute(), sequential[i])


def test_a_frame_missing_from_the_stream_fails_and_the_decoder_stops(long_gop):
    path, sequential = long_gop
    video, index = open_video(path, chunk=1)
    reader = reader_of(video)
    # An index that promises one frame more than the file holds.
    step = int(index.pts[-1] - index.pts[-2])
    reader.index = dataclasses.replace(index, pts=np.append(index.pts, index.pts[-1] + step))
    reader.n += 1
    with pytest.raises(ValueError, match="cannot be decoded"):
        reader.read(reader.n - 1, reader.n)
    deadline = time.monotonic() + 30
    while any(d.busy for d in reader._decoders) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(d.busy for d in reader._decoders), "a decoder kept seeking"
    np.testing.assert_array_equal(reader.read(5, 6)[0], sequential[5])  # still serves


def test_a_damaged_index_beside_the_video_is_rebuilt(tmp_path, numbered):
    path = encode_avi(tmp_path / "clip.avi", numbered)
    open_video(path)
    (kept,) = tmp_path.glob(".clip.avi.*.frames.npz")
    kept.write_bytes(b"PK\x03\x04 not really a zip file")
    video, _ = open_video(path)
    np.testing.assert_array_equal(video[7].compute(), read_video_file(path)[7])
    assert {p.name for p in tmp_path.iterdir()} == {"clip.avi", kept.name}  # no .part left


# --- more than 8 bits: read as uint16 -------------------------------------------------
def _encode_deep(path, frames, codec, pix_fmt, fmt):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format=fmt)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_a_16_bit_grey_video_is_read_as_uint16_exactly(tmp_path):
    from napari_gmm_bg.io.lazy_video import video_bit_depth
    from napari_gmm_bg.io.video import read_video

    frames = (np.random.default_rng(0).integers(0, 1024, (12, 32, 48)) * 64).astype(np.uint16)
    path = _encode_deep(tmp_path / "g16.mkv", frames, "ffv1", "gray16le", "gray16le")
    video, _ = open_video(path)
    assert video.dtype == np.uint16 and video_bit_depth(path) == 16
    np.testing.assert_array_equal(np.asarray(video), frames)  # lossless: every bit kept
    np.testing.assert_array_equal(read_video(path), frames)


@pytest.mark.parametrize("codec", ["ffv1", "libx264"])
def test_a_10_bit_video_is_read_as_uint16(tmp_path, codec):
    from napari_gmm_bg.io.lazy_video import video_bit_depth

    # Smooth frames: 4:2:0 chroma and a lossy codec keep them close.
    ramp = np.linspace(0, 60000, 512, dtype=np.float64)[None, None, :, None]
    frames = np.broadcast_to(ramp, (6, 16, 512, 3)).astype(np.uint16).copy()
    frames[..., 1] = 30000
    try:
        path = _encode_deep(tmp_path / f"c10_{codec}.mkv", frames, codec, "yuv420p10le", "rgb48le")
    except Exception as exc:  # noqa: BLE001 - an FFmpeg built without this encoder
        pytest.skip(f"no 10-bit {codec} encoder here: {exc}")
    video, _ = open_video(path)
    assert video.dtype == np.uint16 and video.shape == frames.shape
    assert video_bit_depth(path) == 10
    decoded = np.asarray(video).astype(np.int64)
    assert np.abs(decoded - frames).mean() < 600  # 10 bits: steps of 64 on 0-65535
    assert len(np.unique(decoded[..., 0])) > 256  # more levels than 8 bits could hold
