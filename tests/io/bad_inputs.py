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
