"""Single-thread cost per pixel of the fit and of the cleaned mask, at 1080p.

    python benchmarks/cost_per_pixel.py [--workers-efficiency 0.83]

The README's estimate of an hour of 4K footage on a cluster multiplies these costs out.
It runs with one numba thread, as a single-threaded dask worker would (it restarts
itself with ``NUMBA_NUM_THREADS=1``).  The parallel efficiency comes from
``python benchmarks/distributed_speedup.py``.
"""

import argparse
import os
import sys
import time

import numba

from napari_gmm_bg import fit_background, make_sample


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers-efficiency", type=float, default=0.83)
    parser.add_argument("--decode-fps", type=float, default=40.0, help="4K decode per core")
    args = parser.parse_args()
    if numba.config.NUMBA_NUM_THREADS != 1:  # single-thread costs: run again with one thread
        env = dict(os.environ, NUMBA_NUM_THREADS="1")
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    clip = make_sample("moving-shapes", n_frames=60, shape=(1080, 1920), seed=0).video
    fit_background(clip[:, :64]).foreground(clip[:4, :64])  # load the kernels
    start = time.perf_counter()
    model = fit_background(clip)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    model.foreground(clip[:20])
    mask_s = (time.perf_counter() - start) / 20
    pixels = 1080 * 1920
    fit_us = 1e6 * fit_s / pixels
    mask_ns = 1e9 * mask_s / pixels
    print(f"fit ({model.params.learning_frames} learning frames): {fit_us:.2f} us per pixel")
    print(f"cleaned mask: {mask_ns:.1f} ns per pixel per frame ({1e3 * mask_s:.0f} ms a frame)")
    uhd, frames = 3840 * 2160, 30 * 3600
    fit_core_s = uhd * fit_us * 1e-6
    mask_core_s = frames * uhd * mask_ns * 1e-9
    decode_core_s = frames / args.decode_fps
    total = fit_core_s + mask_core_s + decode_core_s
    print(
        f"an hour of 4K at 30 fps: fit {fit_core_s:.0f} s, masks {mask_core_s:,.0f} s, "
        f"decoding ~{decode_core_s:,.0f} s: {total:,.0f} core-seconds"
    )
    for n in (1, 16, 64):
        hours = total / (args.workers_efficiency * n) / 3600
        print(f"  {n:3d} single-threaded workers: {hours * 60:6.0f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
