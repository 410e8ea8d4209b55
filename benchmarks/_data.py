"""Shared by the benchmarks: where the reference clips live and come from (never needed by
the tests), the process's memory, and a synthetic 720p clip made on demand."""

import os
import resource
import sys
from pathlib import Path

import numpy as np

#: Where the reference clips are looked for: $NAPARI_GMM_BG_DATA, else ../shared/data
#: beside the repository.  Each is public and downloaded separately (SOURCES says where).
SHARED_DATA = Path(
    os.environ.get("NAPARI_GMM_BG_DATA")
    or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)

#: What each folder under SHARED_DATA holds and where to get it.
SOURCES = {
    "cdnet_highway_dev": (
        "CDnet 2014, category baseline, video highway (http://changedetection.net): frames "
        "1-1000 of input/ and groundtruth/, with temporalROI.txt and ROI.bmp, in CDnet's "
        "own layout"
    ),
    "opencv_samples": (
        "vtest.avi and tree.avi from OpenCV's sample data "
        "(https://github.com/opencv/opencv/tree/master/samples/data)"
    ),
    "bgslibrary": (
        "video.avi and video02.avi from BGSLibrary's dataset folder "
        "(https://github.com/andrewssobral/bgslibrary/tree/master/dataset)"
    ),
    "lrslibrary": (
        "escalator.avi and shop.avi from LRSLibrary's dataset folder "
        "(https://github.com/andrewssobral/lrslibrary/tree/master/dataset)"
    ),
    "scenes_dev": (
        "scenes of SBI2015 (https://sbmi2015.na.icar.cnr.it/SBIdataset.html) and CDnet 2014 "
        "(http://changedetection.net), each in CDnet's layout"
    ),
    "seed_traffic": (
        "traffic.mp4, a short traffic clip (80 frames of 160x120 at 10 fps) whose exposure "
        "drops as a white truck passes; it carries no licence and is not distributed: use "
        "any clip with such an exposure change"
    ),
}


def shared(*parts: str) -> Path | None:
    """Path under SHARED_DATA, or None when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    return path if path.exists() else None


def missing(*parts: str) -> str:
    """One line for an absent clip: where it was looked for and where to get it."""
    where = SHARED_DATA.joinpath(*parts)
    source = SOURCES.get(parts[0], "see the README's section on benchmark data")
    return (
        f"{where} not found: nothing to measure.  It is {source}; put it there, or set "
        "NAPARI_GMM_BG_DATA to the folder that holds "
        f"{parts[0]}/."
    )


# --- memory ------------------------------------------------------------------------------
def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _maxrss_mb() -> float:
    scale = 2**20 if sys.platform == "darwin" else 2**10  # bytes on macOS, KB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def reset_peak() -> bool:
    """Start counting the peak RSS from now (Linux: clear VmHWM); False if impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def current_rss_mb() -> float:
    """Resident memory of this process now, MB."""
    return _status_mb("VmRSS") or _maxrss_mb()


def peak_rss_mb() -> float:
    """Peak resident memory since :func:`reset_peak` (else since the start), MB."""
    return _status_mb("VmHWM") or _maxrss_mb()


# --- a synthetic clip --------------------------------------------------------------------
def synthetic_rgb_block(block_info=None, height=720, width=1280):
    """A dask ``map_blocks`` function: frames of a textured scene with noise and a red box
    moving 13 pixels a frame, seeded by the frame number (any chunk, any order)."""
    t0, t1 = block_info[None]["array-location"][0]
    yy, xx = np.mgrid[0:height, 0:width]
    scene = 110 + 50 * np.sin(xx / 41.0)[..., None] * np.cos(yy / 29.0)[..., None] * [1, 0.9, 0.7]
    out = np.empty((t1 - t0, height, width, 3), np.uint8)
    for i, t in enumerate(range(t0, t1)):
        frame = scene + np.random.default_rng(t).normal(0, 3, scene.shape)
        x0 = (t * 13) % width
        frame[300:400, x0 : x0 + 160] = [220, 30, 30]
        out[i] = np.clip(frame, 0, 255)
    return out
