"""Save throughput and peak RSS of the layer writers on a long lazy mask.

    python benchmarks/save_layers.py                       # 3,000 frames of 1280x720
    python benchmarks/save_layers.py --frames 300 --formats tif,mp4
    python benchmarks/save_layers.py --napari              # through the npe2 writers
    python benchmarks/save_layers.py --formats tif,napari-builtin   # napari's own writer

The mask is a lazy uint8 Labels array, ``(T, 720, 1280)``, whose frames are made on
demand 16 at a time (a dask array: nothing holds the whole clip, 2.8 GB at 3,000
frames): by default a cheap synthetic mask (moving boxes labelled 1 with a "shadow"
labelled 2 under one, a moving disk), so that the figures are the writers' own; with
``--source model`` the cleaned foreground of a GMM fitted to a generated lazy clip (as in
``benchmarks/memory_fit.py``: far slower, the scoring dominates).

Each save runs in a fresh subprocess, so the peak RSS printed is that format's alone:
"base" is the process after imports with the data ready, "peak" the most it held during
the save (Linux: VmHWM reset just before; elsewhere the process's peak), whole process
included (target: below 1 GB).  ``napari-builtin`` saves the same lazy mask with
napari's own TIFF writer (it loads the layer whole).  An in-memory image save is shown for
reference: a 150-frame RGB numpy clip (415 MB, counted in its RSS).  Throughput is in MB
of layer data (uncompressed) per second; the MP4 preview is lossy.  Wall-clock figures
depend on the machine and its load: compare formats measured in the same run.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _data import current_rss_mb, peak_rss_mb, reset_peak, synthetic_rgb_block  # noqa: E402

CHUNK = 16


def _synthetic_block(block_info=None, height=720, width=1280):
    t0, t1 = block_info[None]["array-location"][0]
    out = np.zeros((t1 - t0, height, width), np.uint8)
    yy, xx = np.mgrid[-40:41, -40:41]
    disk = (yy**2 + xx**2) <= 40**2
    for i, t in enumerate(range(t0, t1)):
        for row, speed, size in [(100, 7, 160), (300, 13, 220), (520, 5, 120)]:
            x0 = (t * speed) % (width - size)
            out[i, row : row + size // 2, x0 : x0 + size] = 1
        x0 = (t * 13) % (width - 220)
        out[i, 410:440, x0 : x0 + 220] = 2  # the second box's shadow
        cy, cx = 200 + (t * 3) % (height - 300), 100 + (t * 9) % (width - 200)
        out[i, cy - 40 : cy + 41, cx - 40 : cx + 41][disk] = 1
    return out


def _chunks(frames: int, *rest: int) -> tuple:
    along = (CHUNK,) * (frames // CHUNK) + ((frames % CHUNK,) if frames % CHUNK else ())
    return (along, *((n,) for n in rest))


def make_mask(frames: int, height: int, width: int, source: str):
    """The lazy mask: a ``(frames, height, width)`` uint8 dask array."""
    import dask.array as da

    if source == "synthetic":
        return da.map_blocks(
            _synthetic_block,
            chunks=_chunks(frames, height, width),
            dtype=np.uint8,
            height=height,
            width=width,
        )
    from napari_gmm_bg import fit_background

    clip = da.map_blocks(
        synthetic_rgb_block,
        chunks=_chunks(frames, height, width, 3),
        dtype=np.uint8,
        height=height,
        width=width,
    )
    return fit_background(clip).foreground(clip)


def child(args: argparse.Namespace) -> dict:
    """One save, in this (fresh) process."""
    fmt = args.child
    metadata = {"napari-gmm-bg": {"source": "benchmark", "threshold": -13.0}}
    if fmt.startswith("memory-"):
        rng = np.random.default_rng(0)
        base = rng.integers(0, 255, (args.height, args.width, 3), dtype=np.uint8)
        data = np.empty((150, args.height, args.width, 3), np.uint8)
        for t in range(len(data)):
            data[t] = np.roll(base, 8 * t, axis=1)
        fmt, layer_type = fmt.removeprefix("memory-"), "image"
    else:
        data = make_mask(args.frames, args.height, args.width, args.source)
        layer_type = "labels"
    suffix = {"tif": ".tif", "zarr": ".zarr", "mp4": ".mp4", "napari-builtin": ".tif"}[fmt]
    meta = {"name": "mask", "metadata": metadata, "rgb": data.ndim == 4}
    if fmt == "napari-builtin":
        from napari_builtins.io._write import napari_write_image, napari_write_labels

        builtin = napari_write_labels if layer_type == "labels" else napari_write_image
        save = lambda path: builtin(str(path), data, meta)  # noqa: E731
    elif args.napari:
        from napari_gmm_bg._napari import writer

        npe2_writer = getattr(writer, f"write_{layer_type}_{'tiff' if fmt == 'tif' else fmt}")
        save = lambda path: npe2_writer(str(path), data, meta)  # noqa: E731
    else:
        from napari_gmm_bg.io.writers import save_mp4, save_tiff, save_zarr

        def save(path):
            if fmt == "tif":
                return save_tiff(path, data, metadata)
            if fmt == "zarr":
                return save_zarr(path, data, metadata)
            return save_mp4(path, data, labels=layer_type == "labels")

    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        path = Path(tmp) / f"mask{suffix}"
        base = current_rss_mb()
        exact = reset_peak()
        start = time.perf_counter()
        save(path)
        seconds = time.perf_counter() - start
        size = (
            sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            if path.is_dir()
            else path.stat().st_size
        )
    return {
        "seconds": seconds,
        "frames": int(data.shape[0]),
        "mb": data.nbytes / 1e6,
        "file_mb": size / 1e6,
        "base_mb": base,
        "peak_mb": peak_rss_mb(),
        "peak_of_save_only": exact,
    }


def run_child(args: argparse.Namespace, fmt: str) -> dict:
    command = [sys.executable, __file__, "--child", fmt, "--frames", str(args.frames)]
    command += ["--height", str(args.height), "--width", str(args.width)]
    command += ["--source", args.source] + (["--napari"] if args.napari else [])
    command += ["--tmp", args.tmp] if args.tmp else []
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{fmt} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--formats", default="tif,zarr,mp4")
    parser.add_argument("--source", choices=["synthetic", "model"], default="synthetic")
    parser.add_argument("--napari", action="store_true", help="through the npe2 writers")
    parser.add_argument("--no-reference", action="store_true", help="skip the in-memory save")
    parser.add_argument("--tmp", default=None, help="folder for the files (default: $TMPDIR)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return 0
    print(
        f"lazy {args.source} mask: {args.frames} frames {args.width}x{args.height} uint8 "
        f"labels, {args.frames * args.width * args.height / 1e9:.2f} GB if held in memory; "
        f"{'npe2 writers' if args.napari else 'io.writers'}; load: {os.getloadavg()[0]:.2f}"
    )
    header = f"{'save':<22}{'s':>8}{'MB/s':>9}{'frames/s':>10}{'file MB':>9}"
    print(header + f"{'base MB':>9}{'peak MB':>9}")
    rows = [(fmt, fmt) for fmt in args.formats.split(",")]
    if not args.no_reference:
        rows += [(f"memory-{fmt}", f"in memory {fmt}") for fmt in ("tif", "zarr", "mp4")]
    for fmt, label in rows:
        r = run_child(args, fmt)
        print(
            f"{label:<22}{r['seconds']:>8.1f}{r['mb'] / r['seconds']:>9.0f}"
            f"{r['frames'] / r['seconds']:>10.0f}{r['file_mb']:>9.2f}"
            f"{r['base_mb']:>9.0f}{r['peak_mb']:>9.0f}",
            flush=True,
        )
    print(f"load after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
