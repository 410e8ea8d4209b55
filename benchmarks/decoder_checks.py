"""What the decoder checks catch, what they cost, and that clean clips pass them.

    python benchmarks/decoder_checks.py [--copies 4] [--rounds 3]

FFmpeg conceals damaged data by default; the readers ask its decoders to fail on it
(``io.video.DECODER_OPTIONS``) and refuse the frames they flag as concealed.  For every
reference clip (and a few clips encoded here: H.264, MPEG-4, msmpeg4, MJPEG), this
script

* reads the clean clip with the checks: any error is a false alarm;
* writes ``--copies`` damaged copies (8 to 512 bytes of noise at 30-70 % of the file)
  and counts those whose damage FFmpeg hides by default (every frame decodes, some
  differ from the clean clip's) and, of those, how many the readers refuse;
* times reading the clean clips, vtest.avi lazily and CDnet highway's JPEG frames with
  and without the checks, alternately, and prints the ratios (a fit only adds its own
  work to the reading).
"""

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _data import SHARED_DATA  # noqa: E402

import napari_gmm_bg.io.video as video_module  # noqa: E402
from napari_gmm_bg.io.lazy_video import open_video  # noqa: E402
from napari_gmm_bg.io.video import read_frame_folder, read_video_file  # noqa: E402


def plain(path: Path) -> np.ndarray | None:
    """Every frame as PyAV decodes it by default; None if it raises."""
    try:
        with av.open(str(path)) as container:
            return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    except av.FFmpegError:
        return None


def encode_clips(folder: Path) -> list[Path]:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 8, (96, 128, 3), np.uint8) * 32
    frames = np.repeat(base[None], 60, 0)
    for i in range(60):
        frames[i, 20:50, 2 * i % 100 : 2 * i % 100 + 24] = (250, 30, 30)
    made = []
    for name, codec, fmt, options in [
        ("h264.mp4", "libx264", "yuv420p", {"bf": "3", "g": "12"}),
        ("h264.mkv", "libx264", "yuv420p", {"g": "12"}),
        ("mpeg4.avi", "mpeg4", "yuv420p", {"bf": "2", "g": "12", "qscale": "3"}),
        ("msmpeg4.avi", "msmpeg4", "yuv420p", {"g": "12", "qscale": "3"}),
        ("mjpeg.mkv", "mjpeg", "yuvj420p", {}),
    ]:
        path = folder / f"encoded-{name}"
        with av.open(str(path), "w") as container:
            stream = container.add_stream(codec, rate=10)
            stream.width, stream.height, stream.pix_fmt = 128, 96, fmt
            stream.options = options
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        made.append(path)
    return made


@contextlib.contextmanager
def checks(on: bool) -> Iterator[None]:
    """The decoders' checks and the JPEG check as shipped, or off (frame flags stay)."""
    options = dict(video_module.DECODER_OPTIONS)
    check_jpeg = video_module._check_jpeg
    if not on:
        video_module.DECODER_OPTIONS.clear()
        video_module._check_jpeg = lambda path: None
    try:
        yield
    finally:
        video_module.DECODER_OPTIONS.update(options)
        video_module._check_jpeg = check_jpeg


def refused(path: Path) -> str | None:
    """The readers' error for a clip (eager and lazy must agree), or None."""
    errors = []
    for read in (read_video_file, lambda p: open_video(p)[0].compute()):
        try:
            read(path)
            errors.append(None)
        except ValueError as exc:
            errors.append(str(exc))
    if (errors[0] is None) != (errors[1] is None):
        print(f"  readers disagree on {path.name}: {errors}")
    return errors[0] or errors[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="decoder_checks_"))
    try:
        clips = []
        for pattern in ("*/*.avi", "*/*.mp4", "*/*/*.webm"):
            for source in sorted(SHARED_DATA.glob(pattern)):
                clips.append(shutil.copy(source, work / source.name))  # indexes kept there
        clips = [Path(c) for c in clips] + encode_clips(work)
        rng = np.random.default_rng(100)
        hidden = caught = 0
        print(f"{'clip':32s} {'clean':>8s} {'hidden':>7s} {'caught':>7s}")
        for clip in clips:
            alarm = refused(clip)
            reference = plain(clip)
            clip_hidden = clip_caught = 0
            for copy in range(args.copies):
                data = bytearray(clip.read_bytes())
                size = int(rng.choice([8, 64, 512]))
                at = int(len(data) * (0.3 + 0.4 * rng.random()))
                data[at : at + size] = rng.integers(0, 256, size, np.uint8).tobytes()
                damaged = work / f"damaged{copy}-{clip.name}"
                damaged.write_bytes(bytes(data))
                decoded = plain(damaged)
                if (
                    decoded is None
                    or reference is None
                    or decoded.shape != reference.shape
                    or np.array_equal(decoded, reference)
                ):
                    continue  # FFmpeg raises anyway, or the noise changed no frame
                clip_hidden += 1
                clip_caught += refused(damaged) is not None
            hidden, caught = hidden + clip_hidden, caught + clip_caught
            verdict = "ok" if alarm is None else "ALARM"
            print(f"{clip.name:32s} {verdict:>8s} {clip_hidden:7d} {clip_caught:7d}")
            if alarm:
                print(f"  {alarm}")
        print(f"damage hidden by FFmpeg's defaults: {hidden}; refused by the readers: {caught}")

        # Cost: the same reads with and without the checks, alternately, best of rounds.
        vtest = work / "vtest.avi"
        highway = SHARED_DATA / "cdnet_highway_dev" / "input"
        reads = {"every clean clip, eagerly": lambda: [read_video_file(c) for c in clips]}
        if vtest.is_file():
            reads["vtest.avi, lazily (dask)"] = lambda: open_video(vtest)[0].compute()
        if highway.is_dir():
            reads["CDnet highway's 1700 JPEGs"] = lambda: read_frame_folder(highway)
        for label, read in reads.items():
            times = {True: [], False: []}
            for _ in range(args.rounds):
                for on in (True, False):
                    with checks(on):
                        start = time.process_time()  # CPU, all threads: a shared
                        read()  # machine's load moves the wall clock far more
                        times[on].append(time.process_time() - start)
            with_, without = min(times[True]), min(times[False])
            print(
                f"{label}: {with_:.2f} CPU s with the checks, {without:.2f} without "
                f"(best of {args.rounds}): ratio {with_ / without:.2f}"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
