"""Bad input files, made by the tests themselves: truncated, corrupt, empty, undecodable."""

from pathlib import Path

import av
import cv2
import numpy as np

from tests.conftest import encode_avi
from tests.io.test_lazy_video import encode


def clip(n: int = 40) -> np.ndarray:
    """A moving square on a gradient (compresses into P- and B-frames)."""
    frames = np.zeros((n, 48, 64, 3), np.uint8)
    frames[:] = (np.arange(64) * 3)[None, None, :, None]
    for i in range(n):
        frames[i, 10:20, i % 50 : i % 50 + 10] = (250, 20, 20)
    return frames


def _first_half(path: Path, name: str) -> Path:
    data = path.read_bytes()
    half = path.with_name(name)
    half.write_bytes(data[: len(data) // 2])
    return half


def make_bad_inputs(folder: Path) -> dict[str, tuple[Path, str]]:
    """Write every kind of bad input under ``folder``: name -> (path, expected message)."""
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "good"
    good.mkdir()
    frames = clip()
    cases = {}
    # Truncated: the first half of the bytes. PyAV writes the moov box last, so half an
    # .mp4 has no index at all; with faststart the index survives and the data is cut.
    mp4 = encode(good / "clip.mp4", frames)
    cases["truncated-mp4"] = (_first_half(mp4, "half.mp4"), "damaged/truncated")
    fast = encode(good / "fast.mp4", frames, container_options={"movflags": "+faststart"})
    cases["truncated-faststart-mp4"] = (_first_half(fast, "half-fast.mp4"), "is truncated")
    mkv = encode(good / "clip.mkv", frames)
    cases["truncated-mkv"] = (_first_half(mkv, "half.mkv"), "is truncated")
    avi = encode_avi(good / "clip.avi", frames)
    cases["truncated-avi"] = (_first_half(avi, "half.avi"), "is truncated")
    # Corrupt: junk bytes, and an empty file.
    junk = folder / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    cases["junk"] = (junk, "not a video")
    empty = folder / "empty.avi"
    empty.write_bytes(b"")
    cases["empty-file"] = (empty, "is empty")
    # Zero frames: an AVI with its headers and no frame.
    mjpg = cv2.VideoWriter_fourcc(*"MJPG")
    writer = cv2.VideoWriter(str(folder / "zero.avi"), mjpg, 10, (64, 48))
    writer.release()
    cases["zero-frames"] = (folder / "zero.avi", "holds no frames")
    # An audio file with a video suffix.
    audio = folder / "audio.mkv"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), "s16", "mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    cases["no-video-stream"] = (audio, "no video")
    # Unsupported codec: the sample entry's code changed to one no decoder knows.
    data = bytearray(mp4.read_bytes())
    at = data.index(b"avc1", data.index(b"stsd"))
    data[at : at + 4] = b"zzzz"
    unknown = folder / "unknown-codec.mp4"
    unknown.write_bytes(bytes(data))
    cases["unsupported-codec"] = (unknown, "'zzzz') cannot be decoded")
    # A folder of frames of two sizes.
    mixed = folder / "mixed"
    mixed.mkdir()
    for i in range(5):
        size = (48, 64) if i != 3 else (40, 64)
        cv2.imwrite(str(mixed / f"in{i + 1:06d}.png"), np.full((*size, 3), 9 * i, np.uint8))
    cases["mixed-sizes"] = (mixed, "differ in size")
    # An extension that is no video.
    text = folder / "notes.txt"
    text.write_text("not a video")
    cases["unknown-extension"] = (text, "unknown video type")
    return cases


# --- damage the decoder conceals ------------------------------------------------------
def textured_clip(n: int = 96) -> np.ndarray:
    """A moving square on coarse noise: frames of a few kB, with data worth damaging."""
    base = np.random.default_rng(1).integers(0, 8, (96, 128, 3), np.uint8) * 32
    frames = np.repeat(base[None], n, 0)
    for i in range(n):
        frames[i, 20:50, (2 * i) % 100 : (2 * i) % 100 + 24] = (250, 30, 30)
    return frames


CONCEALED_CODECS = {
    # name: (encode options, the frame whose data is damaged). H.264 and MJPEG decoders
    # fail on these with err_detect=explode; msmpeg4 (vtest.avi's codec) conceals the
    # damage and flags the frame.
    "h264.mp4": ("libx264", {"crf": "10", "bf": "3", "g": "12"}, 24),
    "mjpeg.avi": (None, None, 30),
    "msmpeg4.avi": ("msmpeg4", {"g": "12", "qscale": "3"}, 24),
}


def encode_concealed_case(folder: Path, name: str) -> tuple[Path, Path, int]:
    """Encode ``name`` of CONCEALED_CODECS clean, and a copy with one frame's data damaged.

    Returns the clean file, the damaged one and the damaged frame's number.
    """
    codec, options, frame = CONCEALED_CODECS[name]
    folder.mkdir(parents=True, exist_ok=True)
    clean = folder / f"clean-{name}"
    if codec is None:
        encode_avi(clean, textured_clip())
    else:
        encode(clean, textured_clip(), codec, options=options)
    return clean, damage_frame(clean, frame, folder / f"damaged-{name}"), frame


def damage_frame(path: Path, frame: int, out: Path, size: int = 64) -> Path:
    """Copy a video with ``size`` bytes of noise in the middle of frame ``frame``'s data.

    The frame is counted in presentation (timestamp) order; the file's structure
    (container, headers, index) is left intact, as a bad sector or a bad copy would.
    """
    with av.open(str(path)) as container:
        packets = sorted((p.pts, p.pos, p.size) for p in container.demux(video=0) if p.size)
    _, pos, length = packets[frame]
    assert length > 2 * size, "the frame's data is too small to damage in its middle"
    data = bytearray(path.read_bytes())
    at = pos + (length - size) // 2
    data[at : at + size] = np.random.default_rng(0).integers(0, 256, size, np.uint8).tobytes()
    out.write_bytes(bytes(data))
    return out


def plain_decode(path: Path) -> np.ndarray:
    """Every frame as PyAV decodes it by default (FFmpeg conceals damage: no error)."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
