"""Speed-up of the fit from 1 to 2 single-threaded dask worker processes.

    python benchmarks/distributed_speedup.py [--frames 50] [--height 1080] [--width 1920]

Each configuration starts a LocalCluster of single-threaded worker processes (numba
limited to one thread each) and times fit_background(..., client=...) three times; the
median is reported, with the per-pixel cost it implies, which the README's estimate for
an hour of 4K footage uses.  The video is a dask array whose frames the workers make
themselves, as they would read them from shared storage in a real deployment: nothing
but parameters crosses the network.
"""

import argparse
import statistics
import sys
import time

import dask.array as da
import numpy as np
from distributed import Client, LocalCluster

from napari_gmm_bg import fit_background


def _frames(block_info=None, height=1080, width=1920):
    """Frames made where they are needed: a fixed textured scene, a moving bar, noise."""
    (t0, t1), (y0, y1) = block_info[None]["array-location"][:2]
    yy, xx = np.mgrid[y0:y1, 0:width]
    scene = 120 + 60 * np.sin(xx / 37.0)[..., None] * np.cos(yy / 23.0)[..., None] * [1, 0.8, 0.6]
    out = np.empty((t1 - t0, y1 - y0, width, 3), np.uint8)
    for i, t in enumerate(range(t0, t1)):
        rng = np.random.default_rng(t * 100_003 + y0)
        frame = scene + rng.normal(0, 3, scene.shape)
        bar = (xx >= (t * 37) % width) & (xx < (t * 37) % width + 200)
        frame[bar] = [200, 40, 40]
        out[i] = np.clip(frame, 0, 255)
    return out


def lazy_video(n_frames, height, width, rows=8):
    chunks = (
        (1,) * n_frames,
        (rows,) * (height // rows) + ((height % rows,) if height % rows else ()),
        (width,),
        (3,),
    )
    return da.map_blocks(_frames, chunks=chunks, dtype=np.uint8, height=height, width=width)


def timed_fits(video, n_workers, repeat=3):
    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env={"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
        ) as cluster,
        Client(cluster) as client,
    ):
        fit_background(video[:, :64], client=client)  # warm the workers (numba cache load)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            fit_background(video, client=client)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=50, help="learning frames (default 50)")
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--width", type=int, default=1920)
    args = parser.parse_args()
    video = lazy_video(args.frames, args.height, args.width)
    pixels = args.height * args.width
    print(f"fit of {args.frames} learning frames, {args.width}x{args.height} RGB, median of 3")
    one = timed_fits(video, 1)
    two = timed_fits(video, 2)
    print(f"  1 worker process : {one:7.2f} s   ({1e6 * one / pixels:.2f} us per pixel)")
    print(f"  2 worker processes: {two:7.2f} s   speed-up {one / two:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
