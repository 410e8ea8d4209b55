from fractions import Fraction

import av
import numpy as np
import pytest

from napari_gmm_bg.io.mp4_index import read_sample_table
from tests.io.test_lazy_video import encode


@pytest.fixture(scope="module")
def frames():
    """A moving square on a gradient: P- and B-frames, not a scene cut at every frame."""
    out = np.zeros((40, 48, 64, 3), np.uint8)
    out[:] = (np.arange(64) * 3)[None, None, :, None]
    for i in range(40):
        out[i, 10:20, i : i + 10] = (250, 20, 20)
    return out


def demuxed(path):
    """What FFmpeg says: each packet's pts, keyframe flag and the stream's id and rate."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [(p.pts, p.is_keyframe, p.dts) for p in container.demux(stream) if p.size]
        return (
            np.array([p[0] for p in packets]),
            np.array([p[1] for p in packets]),
            stream.id,
            stream.time_base,
            np.array([p[2] for p in packets]),
        )


VFR_MS = np.concatenate([[0], np.cumsum(np.random.default_rng(1).integers(15, 90, 39))])

CASES = {
    "b-frames.mp4": {},
    "no-b-frames.mp4": {"options": {"bf": "0", "g": "7"}},
    "b-frames.mov": {"options": {"bf": "2", "g": "10"}},
    "b-frames.m4v": {},
    "ntsc-rate.mp4": {"options": {"bf": "3", "g": "12"}, "rate": Fraction(30000, 1001)},
    "vfr.mp4": {"pts": VFR_MS},  # default options: crf 10, 3 B-frames, GOP 12
    "vfr-late-start.mp4": {"pts": VFR_MS + 500},  # an empty edit before the media
    "vfr-late-start-no-b.mp4": {"pts": VFR_MS + 500, "options": {"bf": "0", "g": "12"}},
    "mpeg4-part2.mp4": {"codec": "mpeg4", "options": {"bf": "2", "g": "10"}},
    "faststart.mp4": {"container_options": {"movflags": "+faststart"}},
}


@pytest.mark.parametrize("name", list(CASES))
def test_sample_tables_give_ffmpegs_timestamps(tmp_path, frames, name):
    path = encode(tmp_path / name, frames, **CASES[name])
    table = read_sample_table(path)
    assert table is not None
    pts, keys, track_id, time_base, dts = demuxed(path)
    np.testing.assert_array_equal(table.pts, pts)
    np.testing.assert_array_equal(table.dts, dts - dts[0])  # what seeking compares
    np.testing.assert_array_equal(table.keyframe, keys)
    assert table.track_id == track_id and Fraction(1, table.timescale) == time_base
    assert table.end.max() <= path.stat().st_size
    assert 1 < keys.sum() < len(keys)  # the keyframes are a real subset


def test_moov_at_the_end_and_64_bit_sizes(tmp_path, frames):
    path = encode(tmp_path / "clip.mp4", frames)
    data = path.read_bytes()
    # Rewrite the mdat header as a 64-bit "largesize" box: same payload, 8 more bytes.
    at = data.index(b"mdat") - 4
    size = int.from_bytes(data[at : at + 4], "big")
    large = (1).to_bytes(4, "big") + b"mdat" + (size + 8).to_bytes(8, "big")
    moov = data.index(b"moov") - 4
    assert moov > at  # PyAV writes the moov box after the media
    rewritten = data[:at] + large + data[at + 8 :]
    # The 64-bit size moves the media by 8 bytes; the stco offsets are not patched (this
    # checks the box parsing only, not decoding the rewritten file).
    table = read_sample_table(path)
    big = tmp_path / "big.mp4"
    big.write_bytes(rewritten)
    parsed = read_sample_table(big)
    assert parsed is not None
    np.testing.assert_array_equal(parsed.pts, table.pts)
    np.testing.assert_array_equal(parsed.end, table.end)  # offsets in stco are unchanged


@pytest.mark.parametrize(
    "container_options",
    [{"movflags": "+frag_keyframe+empty_moov"}, {"movflags": "+negative_cts_offsets"}],
)
def test_layouts_left_to_the_demuxer(tmp_path, frames, container_options):
    path = encode(tmp_path / "clip.mp4", frames, container_options=container_options)
    assert read_sample_table(path) is None


def test_not_an_mp4(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x10ftypisom" + b"\x01" * 40)
    assert read_sample_table(junk) is None
    assert read_sample_table(tmp_path / "missing.mp4") is None
