"""Scrubbing a video: open time, random and next-frame latency, peak memory, frame accuracy.

    python benchmarks/video_scrub.py            # 900 frames of 1080p, a 30-minute file
    python benchmarks/video_scrub.py --quick    # 300 frames of 720p, a 10-minute file

Makes its own clips in a temporary folder: H.264 with a keyframe every 250 frames and 3
B-frames (constant rate, and the same packets remuxed with variable timestamps), each
frame showing its number as a 12-bit code of black and white squares, so any reader's
frame can be checked whatever its colour conversion; and a 30-minute 1080p file made by
remuxing a short clip's packets with shifted timestamps (as .mp4, read from its sample
tables, and as .mkv, demuxed once).  Each reader runs in its own process: the lazy reader
of this package, and napari-video and napari-pyav when they are installed (driven through
their own reader functions; `pip install napari-video napari-pyav` to compare, they are
no dependency of this package).  Prints open time and extra RSS (first and second open),
random-frame latency (median and max over the same frames for every reader), next-frame
latency after a random jump (back to back, and at 30 frames per second), the peak RSS
while scrubbing, the frames each reader got wrong, and our median over the best other
reader's.  Then checks that random access equals a sequential decode on the shared clips
(../shared/data), when present.
"""

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _data import current_rss_mb, peak_rss_mb, reset_peak, shared  # noqa: E402

BITS = 12
GOP = 250


# --- clips ------------------------------------------------------------------------------
def frame_image(i: int, base: np.ndarray, noise: np.ndarray, block: int) -> np.ndarray:
    height, width = base.shape[:2]
    frame = base + noise[(i * 13) % 64 : (i * 13) % 64 + height, :width] // 16
    x = (i * 7) % (width - width // 10)
    frame[height // 3 : height // 3 + height // 5, x : x + width // 10] = (255, 30, 30)
    for b in range(BITS):  # the frame number, most significant bit first
        frame[:block, b * block : (b + 1) * block] = 255 if i >> (BITS - 1 - b) & 1 else 0
    return frame


def frame_number(image: np.ndarray, block: int) -> int:
    grey = image.mean(axis=-1) if image.ndim == 3 else image
    bits = [
        grey[4 : block - 4, b * block + 4 : (b + 1) * block - 4].mean() > 128 for b in range(BITS)
    ]
    return int("".join("1" if bit else "0" for bit in bits), 2)


def encode_clip(path: Path, n: int, width: int, height: int, preset: str = "veryfast") -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack(
        [xx * 255 // width, yy * 255 // height, (xx + yy) * 255 // (width + height)], -1
    ).astype(np.uint8)
    base = base // 2 + rng.integers(0, 40, base.shape, dtype=np.uint8)  # texture
    noise = rng.integers(0, 40, (height + 64, width, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {
            "crf": "23",
            "preset": preset,
            "g": str(GOP),
            "keyint_min": str(GOP),
            "sc_threshold": "0",
            "bf": "3",
            "x264-params": "b-adapt=0",  # always 3 B-frames between references
        }
        for i in range(n):
            image = frame_image(i, base, noise, width // 30)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def remux(src: Path, dst: Path, repeats: int = 1, warp: np.ndarray | None = None) -> None:
    """Copy packets, repeated with shifted timestamps, or with timestamps warped (VFR)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        in_stream = inp.streams.video[0]
        out_stream = out.add_stream_from_template(in_stream)
        packets = [p for p in inp.demux(in_stream) if p.size]
        step = packets[1].dts - packets[0].dts
        span = max(p.pts for p in packets) - min(p.pts for p in packets) + step
        for r in range(repeats):
            for p in packets:
                q = av.Packet(bytes(p))
                q.pts, q.dts = p.pts + r * span, p.dts + r * span
                if warp is not None:  # a monotonic map of the frame grid keeps dts <= pts
                    q.pts, q.dts = (int(warp[t // step + 8]) for t in (p.pts, p.dts))
                q.is_keyframe, q.time_base, q.stream = p.is_keyframe, p.time_base, out_stream
                out.mux(q)


def vfr_warp(n: int, step: int, seed: int = 1) -> np.ndarray:
    """Timestamps of grid points -8..n: gaps of 0.5 to 3 frame durations."""
    gaps = np.random.default_rng(seed).uniform(0.5, 3.0, n + 8) * step
    warp = np.concatenate([[0], np.cumsum(gaps)]).astype(np.int64)
    return warp - warp[8]


# --- one reader in its own process ------------------------------------------------------
def open_reader(kind: str, path: str):
    if kind == "ours":
        from napari_gmm_bg.io.lazy_video import open_video

        video, _ = open_video(path)
        return video.shape[0], lambda i: np.asarray(video[i].compute())
    if kind == "napari-pyav":
        from napari_pyav._reader import reader_function

        array = reader_function(path)[0][0]
        return array.shape[0], lambda i: np.asarray(array[i])
    from napari_video.napari_video import video_file_reader

    array = video_file_reader(path)[0][0]
    return array.shape[0], lambda i: np.asarray(array[i])


def child(args: dict) -> dict:
    import warnings

    warnings.simplefilter("ignore")
    kind, path, block = args["kind"], args["path"], args["block"]
    if kind == "ours":
        import napari_gmm_bg.io.lazy_video  # noqa: F401 - imports are not the open
    elif kind == "napari-pyav":
        import napari_pyav._reader  # noqa: F401
    else:
        import napari_video.napari_video  # noqa: F401
    before = current_rss_mb()
    reset_peak()
    start = time.perf_counter()
    n, get = open_reader(kind, path)
    result = {"open_s": time.perf_counter() - start, "open_mb": current_rss_mb() - before, "n": n}
    if args.get("open_only"):
        return result
    wrong, random_s, next_s, paced_s = 0, [], [], []
    for t in args["random"]:
        start = time.perf_counter()
        image = get(t)
        random_s.append(time.perf_counter() - start)
        wrong += frame_number(image, block) != t
    for t in args["jumps"]:  # a fresh random frame, then the next ones
        get(t)
        for j, pause in ((1, 0), (2, 0), (3, 0), (4, 0), (5, 1 / 30), (6, 1 / 30), (7, 1 / 30)):
            time.sleep(pause)
            start = time.perf_counter()
            image = get(t + j)
            (paced_s if pause else next_s).append(time.perf_counter() - start)
            wrong += frame_number(image, block) != t + j
    result.update(
        random_s=random_s,
        next_s=next_s,
        paced_s=paced_s,
        wrong=wrong,
        checked=len(args["random"]) + 7 * len(args["jumps"]),
        peak_mb=peak_rss_mb() - before,
    )
    return result


def run_child(**args) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the shared clips -------------------------------------------------------------------
def check_shared_clips(folder: Path) -> None:
    import dask

    from napari_gmm_bg.io.lazy_video import open_video
    from napari_gmm_bg.io.video import read_video_file

    names = [
        ("opencv_samples", "vtest.avi"),
        ("opencv_samples", "tree.avi"),
        ("bgslibrary", "video.avi"),
        ("bgslibrary", "video02.avi"),
        ("lrslibrary", "escalator.avi"),
        ("lrslibrary", "shop.avi"),
        ("seed_traffic", "traffic.mp4"),
        ("seed_traffic", "traffic.gif"),
    ]
    print("\nshared clips: random access against a sequential decode")
    for parts in names:
        source = shared(*parts)
        if source is None:
            print(f"  {'/'.join(parts):28s} absent")
            continue
        path = folder / source.name  # a copy: the index is kept beside it, not in shared/
        shutil.copy(source, path)
        start = time.perf_counter()
        video, index = open_video(path)
        opened = time.perf_counter() - start
        sequential = read_video_file(path)
        rng = np.random.default_rng(0)
        bad = [
            int(i)
            for i in rng.permutation(len(sequential))[:60]
            if not np.array_equal(video[int(i)].compute(), sequential[int(i)])
        ]
        with dask.config.set(scheduler="threads", num_workers=4):
            every = open_video(path)[0].compute()
        same = every.shape == sequential.shape and np.array_equal(every, sequential)
        print(
            f"  {'/'.join(parts):28s} {len(sequential):4d} frames, open {opened * 1000:5.1f} ms,"
            f" index {'timestamps' if index.ordered else 'decoded once'}:"
            f" {'equal' if same and not bad else f'DIFFERENT {bad[:5]}'}"
        )


# --- main -------------------------------------------------------------------------------
def summary(times: list[float]) -> str:
    return f"{statistics.median(times) * 1000:7.1f} {max(times) * 1000:7.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    n, (width, height), minutes = (300, (1280, 720), 10) if args.quick else (900, (1920, 1080), 30)
    block = width // 30
    readers = ["ours"] + [
        kind
        for kind, module in (("napari-video", "napari_video"), ("napari-pyav", "napari_pyav"))
        if importlib.util.find_spec(module) is not None
    ]
    skipped = {"napari-video", "napari-pyav"} - set(readers)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        encode_clip(tmp / "clip.mp4", n, width, height)
        with av.open(str(tmp / "clip.mp4")) as c:
            step = round(1 / (30 * c.streams.video[0].time_base))  # one frame at 30 fps
        remux(tmp / "clip.mp4", tmp / "vfr.mp4", warp=vfr_warp(n, step))
        short = tmp / "short.mp4"
        encode_clip(short, 300, width, height, preset="ultrafast")
        repeats = minutes * 60 * 30 // 300
        remux(short, tmp / "long.mp4", repeats)
        remux(short, tmp / "long.mkv", repeats)
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
        print(f"load average {load} on {os.cpu_count()} cores")
        print(
            f"clips: {n} frames {width}x{height} H.264 (GOP {GOP}, 3 B-frames), the same as"
            f" VFR, and {minutes} minutes ({repeats * 300} frames) as .mp4 and .mkv;"
            f" made in {time.perf_counter() - start:.0f} s"
        )
        if skipped:
            print(f"not installed, skipped: {', '.join(sorted(skipped))}")

        print(f"\nopen a {minutes}-minute {height}p file (each in a fresh process)")
        print(f"  {'reader':14s} {'file':9s} {'open':>14s} {'extra RSS':>10s}  frames")
        for kind in readers:
            for name in ("long.mp4", "long.mkv"):
                for attempt in ("first", "second") if kind == "ours" else ("first",):
                    r = run_child(kind=kind, path=str(tmp / name), block=block, open_only=True)
                    if "error" in r:
                        print(f"  {kind:14s} {name:9s} error: {r['error']}")
                        continue
                    print(
                        f"  {kind:14s} {name:9s} {attempt:6s} {r['open_s'] * 1000:6.0f} ms"
                        f" {r['open_mb']:7.1f} MB  {r['n']}"
                    )

        rng = np.random.default_rng(7)
        random_frames = [int(t) for t in rng.integers(0, n, 30 if not args.quick else 15)]
        jumps = [int(t) for t in rng.integers(0, n - 8, 6)]
        results = {}
        for clip in ("clip.mp4", "vfr.mp4"):
            print(f"\nscrub {clip} (ms; the same frames for every reader)")
            print(
                f"  {'reader':14s} {'random: median':>15s} {'max':>7s}   {'next: median':>12s}"
                f" {'max':>7s}   {'at 30 fps':>9s} {'max':>7s}  {'peak RSS':>9s}  wrong"
            )
            for kind in readers:
                r = run_child(
                    kind=kind, path=str(tmp / clip), block=block, random=random_frames, jumps=jumps
                )
                results[kind, clip] = r
                if "error" in r:
                    print(f"  {kind:14s} error: {r['error']}")
                    continue
                print(
                    f"  {kind:14s} {summary(r['random_s']):>23s}   {summary(r['next_s']):>20s}"
                    f"   {summary(r['paced_s']):>17s}  {r['peak_mb']:6.0f} MB"
                    f"  {r['wrong']}/{r['checked']}"
                )
        ours = results["ours", "clip.mp4"]
        others = [
            statistics.median(results[k, "clip.mp4"]["random_s"])
            for k in readers[1:]
            if "random_s" in results[k, "clip.mp4"]
        ]
        if others and "random_s" in ours:
            ratio = statistics.median(ours["random_s"]) / min(others)
            print(f"\nrandom frame, ours / best other reader (median, constant rate): {ratio:.2f}")
        check_shared_clips(tmp)


if __name__ == "__main__":
    main()
