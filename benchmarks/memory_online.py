"""Peak memory of the on-line CLI (``napari-gmm-bg fit --mode online``) at two clip lengths.

    python benchmarks/memory_online.py [--frames 795 3000] [--height 576] [--width 768]

Each length runs in a fresh process: the CLI's on-line path on a dask clip whose frames
are made on demand (benchmarks/_data.py; nothing holds the whole clip), writing the
log-likelihood and mask stacks and the background image into a temporary folder.  The
command streams block by block, so its peak RSS should not grow with the clip (it grew
from 2.26 GB at 795 frames of 768x576 to 5.72 GB at 2,385 when it held every score).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(frames: int, height: int, width: int) -> dict:
    sys.path.insert(0, str(HERE))
    import dask.array as da
    import numpy as np
    from _data import peak_rss_mb, synthetic_rgb_block

    import napari_gmm_bg.cli as cli

    chunks = ((16,) * (frames // 16) + ((frames % 16,) if frames % 16 else ()),)
    video = da.map_blocks(
        synthetic_rgb_block,
        chunks=(*chunks, (height,), (width,), (3,)),
        dtype=np.uint8,
        height=height,
        width=width,
    )
    cli.read_input = lambda path: video  # the CLI as it is, on the synthetic clip
    start_rss = peak_rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        code = cli.main(["fit", "synthetic", "--out", tmp, "--mode", "online"])
        seconds = time.perf_counter() - start
        written = sum(p.stat().st_size for p in Path(tmp).iterdir())
    return {
        "frames": frames,
        "exit": code,
        "seconds": round(seconds, 1),
        "written_gb": round(written / 1e9, 2),
        "start_rss_mb": round(start_rss),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, nargs="+", default=[795, 3000])
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.frames[0], args.height, args.width)))
        return 0
    print(f"on-line CLI, {args.width}x{args.height} RGB synthetic clip")
    results = []
    for frames in args.frames:
        run = subprocess.run(
            [sys.executable, __file__, "--child", "--frames", str(frames)]
            + ["--height", str(args.height), "--width", str(args.width)],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(run.stdout.strip().splitlines()[-1])
        results.append(result)
        print(
            f"{frames:6d} frames: peak RSS {result['peak_rss_mb']} MB "
            f"(after imports {result['start_rss_mb']} MB), {result['seconds']} s, "
            f"{result['written_gb']} GB written, exit {result['exit']}"
        )
    if len(results) > 1:
        first, last = results[0], results[-1]
        print(
            f"peak RSS ratio {last['frames']}/{first['frames']} frames: "
            f"{last['peak_rss_mb'] / first['peak_rss_mb']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
