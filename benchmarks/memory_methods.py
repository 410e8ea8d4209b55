"""Peak memory of a comparison method (MOG2, KNN) run on a long clip, labels in memory or on disk.

    python benchmarks/memory_methods.py [--method mog2] [--clip PATH]

Each mode runs in a fresh process, on vtest.avi (795 frames of 768x576, from
../shared/data/opencv_samples) opened lazily with the plugin's reader: the method runs
through its ``Method`` interface (what the "Compare with other methods" widget and
``evaluate`` call), then every frame of its labels is read once, as napari shows them.
"in memory" keeps every label in one array (as before the labels were written to disk);
"on disk" is the default: beyond ``label_store.IN_MEMORY_BYTES`` the labels are written
block by block to a temporary zarr folder and read back frame by frame.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(method: str, clip: str, on_disk: bool) -> dict:
    sys.path.insert(0, str(HERE))
    import numpy as np
    from _data import peak_rss_mb

    from napari_gmm_bg.core import label_store
    from napari_gmm_bg.core.registry import get_method
    from napari_gmm_bg.io.lazy_video import open_video

    if not on_disk:
        label_store.IN_MEMORY_BYTES = 2**62
    opened = open_video(clip)
    video = opened[0] if isinstance(opened, tuple) else opened
    start_rss = peak_rss_mb()
    start = time.perf_counter()
    result = get_method(method).run(video)
    labels = result.labels()
    foreground = 0
    for t in range(labels.shape[0]):  # as napari's slider shows them, frame by frame
        foreground += int((np.asarray(labels[t]) == 1).sum())
    return {
        "mode": "on disk" if on_disk else "in memory",
        "seconds": round(time.perf_counter() - start, 1),
        "peak_rss_mb": round(peak_rss_mb()),
        "rss_before_run_mb": round(start_rss),
        "labels_mb": round(labels.nbytes / 2**20),
        "foreground_pixels": foreground,
    }


def main() -> int:
    sys.path.insert(0, str(HERE))
    from _data import missing, shared

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="mog2")
    parser.add_argument("--clip", default=None)
    parser.add_argument("--child", choices=("memory", "disk"), default=None)
    args = parser.parse_args()
    clip = args.clip or shared("opencv_samples", "vtest.avi")
    if clip is None:
        print(missing("opencv_samples", "vtest.avi"))
        return 0
    if args.child:
        print(json.dumps(child(args.method, str(clip), args.child == "disk")))
        return 0
    rows = []
    for mode in ("memory", "disk"):
        out = subprocess.run(
            [sys.executable, __file__, "--method", args.method, "--clip", str(clip)]
            + ["--child", mode],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    memory, disk = rows
    assert memory["foreground_pixels"] == disk["foreground_pixels"], "labels differ"
    print(
        f"{args.method} on {Path(clip).name}: peak RSS {memory['peak_rss_mb']} MB with the "
        f"labels in memory, {disk['peak_rss_mb']} MB on disk (ratio "
        f"{disk['peak_rss_mb'] / memory['peak_rss_mb']:.2f}; labels "
        f"{memory['labels_mb']} MB); time {memory['seconds']} s vs {disk['seconds']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
