"""Spatial clean-up of foreground masks, frame by frame.

A per-pixel model decides each pixel alone, so its mask has speckles and pinholes.  A
median filter removes both at once; morphological opening and closing and a minimum blob
area are there for finer control.  Only label 1 (foreground) is cleaned: label 2
(shadow) is kept where the cleaned foreground does not cover it.
"""

from dataclasses import dataclass, replace

import cv2
import numpy as np

from ._kernels import majority_filter

#: The default median filter's side, as a fraction of the frame's size (the square root of
#: its area): 13 pixels at 320x240, 29 at 720x480, 7 at 160x120.  Chosen on the mean F of
#: the seven development scenes (``benchmarks/quality_scenes.py``): a fixed side suits one
#: resolution only (15 cost 0.07 F on the 720x480 scene against 29, and objects of a
#: 160x120 clip vanish under it).
MEDIAN_FRACTION = 0.05


@dataclass(frozen=True)
class MaskCleanup:
    """How to clean a foreground mask.

    Attributes
    ----------
    median : int or None
        Side of the median filter (odd; 0 or 1 for none); None: sized to the frame, 5% of
        its size (see :meth:`for_frame`).
    opening : int
        Side of the square opening element (removes specks smaller than it; 0 for none).
    closing : int
        Side of the square closing element (fills gaps narrower than it; 0 for none).
    min_area : int
        Blobs (8-connected) of fewer pixels are removed (0 for none).
    """

    median: int | None = None
    opening: int = 0
    closing: int = 0
    min_area: int = 0

    def validate(self) -> None:
        """Raise ValueError on settings that cannot work."""
        for name in ("median", "opening", "closing", "min_area"):
            value = getattr(self, name)
            if name == "median" and value is None:
                continue
            if int(value) != value or value < 0:
                raise ValueError(f"clean-up {name} must be a whole number >= 0, got {value}")
        if self.median is not None and self.median > 1 and self.median % 2 == 0:
            raise ValueError(f"clean-up median must be odd, got {self.median}")

    def for_frame(self, frame_shape: tuple[int, int]) -> "MaskCleanup":
        """Return this clean-up with a median sized to the frame where it is None.

        Parameters
        ----------
        frame_shape : tuple of int
            ``(Y, X)``.

        Returns
        -------
        MaskCleanup
            The same settings, ``median`` an odd ``MEDIAN_FRACTION * sqrt(Y * X)`` (at
            least 3) if it was None.
        """
        if self.median is not None:
            return self
        side = MEDIAN_FRACTION * float(np.sqrt(frame_shape[0] * frame_shape[1]))
        return replace(self, median=max(3, 2 * int(round((side - 1) / 2)) + 1))

    @property
    def is_noop(self) -> bool:
        """True when nothing would change (a median sized to the frame always changes)."""
        median = 3 if self.median is None else self.median
        return median <= 1 and self.opening <= 1 and self.closing <= 1 and self.min_area <= 1

    @classmethod
    def none(cls) -> "MaskCleanup":
        """No clean-up at all."""
        return cls(median=0, opening=0, closing=0, min_area=0)


def _morphology(labels: np.ndarray, shadow: np.ndarray, cleanup: MaskCleanup) -> np.ndarray:
    # Opening, closing and the minimum blob area, on one frame's foreground (label 1);
    # shadow: the frame's shadow pixels before any clean-up, shown where no foreground is.
    foreground = (labels == 1).astype(np.uint8)
    if cleanup.opening > 1:
        kernel = np.ones((cleanup.opening, cleanup.opening), np.uint8)
        foreground = cv2.morphologyEx(foreground, cv2.MORPH_OPEN, kernel)
    if cleanup.closing > 1:
        kernel = np.ones((cleanup.closing, cleanup.closing), np.uint8)
        foreground = cv2.morphologyEx(foreground, cv2.MORPH_CLOSE, kernel)
    if cleanup.min_area > 1:
        n, blobs, stats, _ = cv2.connectedComponentsWithStats(foreground, connectivity=8)
        small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < cleanup.min_area)
        small = small[small > 0]
        if len(small):
            foreground[np.isin(blobs, small)] = 0
    out = np.where(shadow, np.uint8(2), np.uint8(0))
    out[foreground.astype(bool)] = 1
    return out


def clean_mask(labels: np.ndarray, cleanup: MaskCleanup, *, in_place: bool = False) -> np.ndarray:
    """Clean every frame of a ``(T, Y, X)`` label stack.

    The median filter runs on all frames at once in a numba kernel (the median of a
    binary neighbourhood is its majority: a box count, equal to ``cv2.medianBlur`` with
    its replicated border); opening, closing and the minimum blob area use OpenCV.

    Parameters
    ----------
    labels : numpy.ndarray
        uint8 labels.
    cleanup : MaskCleanup
        What to do.
    in_place : bool
        Overwrite ``labels`` (a C-contiguous uint8 array) instead of copying it.

    Returns
    -------
    numpy.ndarray
        Cleaned labels, same shape (the input itself when there is nothing to do).
    """
    cleanup = cleanup.for_frame(labels.shape[-2:])
    if cleanup.is_noop:
        return labels
    if in_place and labels.dtype == np.uint8 and labels.flags.c_contiguous:
        out = labels
    else:
        out = np.array(labels, dtype=np.uint8, order="C")
    morphology = cleanup.opening > 1 or cleanup.closing > 1 or cleanup.min_area > 1
    # Shadow pixels as labelled: the median may cover one that the morphology then clears.
    shadow = (out == 2) if morphology else None
    if cleanup.median is not None and cleanup.median > 1:
        majority_filter(out, int(cleanup.median))
    if shadow is not None:  # morphology asked for
        for frame, frame_shadow in zip(out, shadow, strict=True):
            frame[:] = _morphology(frame, frame_shadow, cleanup)
    return out
