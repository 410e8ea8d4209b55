"""The ten-line baseline every model here must beat (see the design guide, section 5).

Per-pixel temporal median of every 4th frame, Euclidean colour distance above 40, then
a 5x5 median filter on the mask.
"""

from typing import Any

import numpy as np

from .cleanup import MaskCleanup, clean_mask
from .frames import as_frames


def median_baseline(
    video: Any, *, step: int = 4, distance: float = 40.0, median: int = 5
) -> np.ndarray:
    """Foreground by distance from the temporal median.

    Parameters
    ----------
    video : array-like
        ``(T, Y, X)`` or ``(T, Y, X, 3)``.
    step : int
        Every how many frames the median is taken from.
    distance : float
        Euclidean colour distance above which a pixel is foreground.
    median : int
        Side of the median filter applied to each frame's mask (0 for none).

    Returns
    -------
    numpy.ndarray
        ``(T, Y, X)`` uint8 labels, 0 or 1.
    """
    frames = as_frames(video)
    background = np.median(frames.read(slice(None, None, step)), axis=0).astype(np.float32)
    mask = np.empty((frames.n_frames,) + frames.frame_shape, np.uint8)
    for start in range(0, frames.n_frames, 64):
        block = frames.read(slice(start, start + 64)).astype(np.float32)
        d2 = ((block - background) ** 2).sum(axis=-1)
        mask[start : start + len(block)] = d2 > distance**2
    return clean_mask(mask, MaskCleanup(median=median))
