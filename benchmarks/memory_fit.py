"""Peak memory of fitting a long dask-backed clip: only the learning frames are read.

    python benchmarks/memory_fit.py [--frames 3000] [--height 720] [--width 1280]

The clip is a dask array whose frames are made on demand (nothing holds the whole clip);
the fit gathers its learning frames, and the mask of every frame is then streamed to a
TIFF file.  Prints the peak RSS after each step (target: below 2 GB for the fit).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import dask.array as da
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _data import peak_rss_mb, synthetic_rgb_block  # noqa: E402

from napari_gmm_bg import fit_background  # noqa: E402
from napari_gmm_bg.io.writers import write_tiff_stack  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    chunks = (
        (16,) * (args.frames // 16) + ((args.frames % 16,) if args.frames % 16 else ()),
        (args.height,),
        (args.width,),
        (3,),
    )
    video = da.map_blocks(
        synthetic_rgb_block, chunks=chunks, dtype=np.uint8, height=args.height, width=args.width
    )
    print(
        f"clip: {args.frames} frames {args.width}x{args.height} RGB, "
        f"{video.nbytes / 1e9:.1f} GB if held in memory; start RSS {peak_rss_mb():.0f} MB"
    )
    start = time.perf_counter()
    model = fit_background(video)
    print(f"fit: {time.perf_counter() - start:.1f} s, peak RSS {peak_rss_mb():.0f} MB")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        mask = model.foreground(video[:300])
        write_tiff_stack(Path(tmp) / "mask.tif", mask)
        print(
            f"mask of 300 frames streamed to TIFF: {time.perf_counter() - start:.1f} s, "
            f"peak RSS {peak_rss_mb():.0f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
