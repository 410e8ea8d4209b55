"""Intensity: raw pixel values on the models' 0-255 scale, and global brightness.

:class:`IntensityScale` maps any dtype to the 0-255 scale the kernels work on.  Brightness
compensation removes each frame's exposure change before it is scored: a frame's
luminance is compared with the background's as a robust ratio, its *gain*
(:class:`BrightnessReference`), and the frame is scored as if its values were
``(value - lift) / gain`` (the lift is 0 today).  The kernels take that as one offset
and one scale per frame (:func:`frame_transform`).
"""

import math
from dataclasses import dataclass

import numpy as np

from . import _kernels

#: Brightness is estimated on every n-th pixel of every n-th row: every 4th at least,
#: sparser in larger frames, about GAIN_PIXELS of them (frames up to 320x240 keep every
#: 4th).  A median of 3,600 ratios is as steady as one of 14,400: with every 8th pixel
#: at 640x360 (9th at 720x480, 5th at 352x288) the seven development scenes scored the
#: same F to three decimals offline, and on-line all but the 720x480 tree (0.657 ->
#: 0.656); the gains of a 640x360 clip took 0.02 s instead of 0.08 s, half the offline
#: mask's time.
GAIN_STRIDE = 4
GAIN_PIXELS = 3600


def gain_stride(frame_shape: tuple[int, int]) -> int:
    """Space the brightness grid for frames of ``(Y, X)`` pixels.

    Parameters
    ----------
    frame_shape : tuple of int
        ``(Y, X)``.

    Returns
    -------
    int
        Every this many rows and columns (:data:`GAIN_STRIDE` at least).
    """
    height, width = frame_shape
    return max(GAIN_STRIDE, int(math.sqrt(height * width / GAIN_PIXELS)))


@dataclass(frozen=True)
class IntensityScale:
    """Maps raw pixel values to the model's 0-255 scale: ``(value - offset) * scale``."""

    offset: float
    scale: float

    @classmethod
    def for_data(cls, dtype: np.dtype, sample: np.ndarray) -> "IntensityScale":
        """Choose the scale of a dtype, from the data's range for float input."""
        if dtype == np.uint8:
            return cls(0.0, 1.0)
        if dtype == np.uint16:
            return cls(0.0, 255.0 / 65535.0)
        lo, hi = float(sample.min()), float(sample.max())
        if hi - lo <= 0:
            return cls(lo, 1.0)
        return cls(lo, 255.0 / (hi - lo))

    def to_raw(self, values: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """Map model-scale values back to raw values in ``dtype`` (integers rounded, clipped).

        Parameters
        ----------
        values : numpy.ndarray
            Values on the model's 0-255 scale.
        dtype : numpy.dtype
            The video's dtype.

        Returns
        -------
        numpy.ndarray
            Same shape, in ``dtype``.
        """
        raw = values.astype(np.float64) / self.scale + self.offset
        if np.dtype(dtype).kind in "ui":
            info = np.iinfo(dtype)
            raw = np.clip(np.rint(raw), info.min, info.max)
        return raw.astype(dtype)


def luminance(
    frames: np.ndarray, intensity: IntensityScale, stride: int | None = None
) -> np.ndarray:
    """Mean of the channels of a strided subset of pixels, on the model's 0-255 scale.

    Parameters
    ----------
    frames : numpy.ndarray
        ``(T, Y, X, C)``.
    intensity : IntensityScale
        How raw values map to the model's scale.
    stride : int, optional
        Keep every ``stride``-th row and column (default: :func:`gain_stride`).

    Returns
    -------
    numpy.ndarray
        ``(T, Y / stride, X / stride)`` float32.
    """
    if stride is None:
        stride = gain_stride(frames.shape[1:3])
    return _kernels.luminance_grid(frames, int(stride), intensity.offset, intensity.scale)


class BrightnessReference:
    """A background's luminance, to compare frames' global brightness to.

    A frame's gain is the median of its pixels' luminance ratios to the reference, taken
    again over the pixels within ``TOLERANCE`` of that first estimate: the second median
    follows the scene's static majority, so neither a large moving object nor a dark
    or saturated corner tilts it.  (A line through band medians, fitted by Theil-Sen,
    failed on busy scenes where objects bias several bands at once.)  The lift is 0.

    Parameters
    ----------
    reference : numpy.ndarray
        ``(y, x)`` the background's luminance (see :func:`luminance`).
    """

    #: Pixels darker than this (0-255 scale) carry no usable ratio.
    DARK = 8.0
    #: The second median keeps the ratios within this fraction of the first.
    TOLERANCE = 0.15
    #: Frames whose gains are estimated together.
    FRAMES_PER_PASS = 8

    def __init__(self, reference: np.ndarray) -> None:
        flat = np.asarray(reference, np.float32).ravel()
        self.pixels = np.flatnonzero(flat > self.DARK)
        self.values = flat[self.pixels]

    def correction(self, luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Estimate each frame's gain against the reference.

        Parameters
        ----------
        luma : numpy.ndarray
            ``(T, y, x)`` from :func:`luminance`, on the reference's grid.

        Returns
        -------
        tuple of numpy.ndarray
            ``(T,)`` gains (clipped to [0.1, 10]) and lifts (0); a frame is scored as
            ``(value - lift) / gain``.
        """
        n = len(luma)
        gains, lifts = np.ones(n), np.zeros(n)
        if self.pixels.size < 16:
            return gains, lifts
        # A few frames at a time, on the kernels' threads (numpy's partition lets go of
        # the GIL): one frame at a time in Python took a quarter of a long clip's scoring.
        flat = luma.reshape(n, -1)
        passes = (n + self.FRAMES_PER_PASS - 1) // self.FRAMES_PER_PASS
        _kernels._in_threads(self._gains_of_passes, passes, flat, gains)
        return np.clip(gains, 0.1, 10.0), lifts

    def _gains_of_passes(self, flat: np.ndarray, gains: np.ndarray, items: np.ndarray) -> None:
        for item in items:
            frames = slice(item * self.FRAMES_PER_PASS, (item + 1) * self.FRAMES_PER_PASS)
            gains[frames] = _two_medians(flat[frames, self.pixels] / self.values, self.TOLERANCE)

    def correction_of_frames(
        self, frames: np.ndarray, intensity: IntensityScale, stride: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`correction`, from the frames themselves.

        Parameters
        ----------
        frames : numpy.ndarray
            ``(T, Y, X, C)`` frames whose every ``stride``-th pixel of every
            ``stride``-th row is the reference's grid.
        intensity : IntensityScale
            How raw values map to the model's scale.
        stride : int, optional
            The grid's spacing (default: :func:`gain_stride` of the frames).

        Returns
        -------
        tuple of numpy.ndarray
            ``(T,)`` gains and lifts.
        """
        return self.correction(luminance(frames, intensity, stride))


def _two_medians(ratios: np.ndarray, tolerance: float) -> np.ndarray:
    """Each row's median, then the median of its values within ``tolerance`` of it.

    As ``np.median`` of each row and of its near values would compute them, in float32 (a
    row with 16 near values or fewer keeps its first median), for all rows at once: only
    how many values lie beyond the near ones on either side matters, so they become
    -inf and +inf in the numbers that put the near values' median in every row's middle,
    and one partition finds it.
    """
    n_values = ratios.shape[1]
    real = ratios.dtype.type  # float32 from luminance(); the arithmetic stays in it
    first = np.median(ratios, axis=1)
    limit = (tolerance * np.abs(first.astype(np.float64))).astype(ratios.dtype)
    near = np.abs(ratios - first[:, None]) < limit[:, None]
    count = near.sum(axis=1)
    middle = (n_values - 1) // 2
    below = middle - (count - 1) // 2  # far values made -inf; the others +inf
    rank = np.cumsum(~near, axis=1)
    inf = real(np.inf)
    values = np.where(near, ratios, np.where(rank <= below[:, None], -inf, inf))
    part = np.partition(values, (middle, middle + 1), axis=1)
    low, high = part[:, middle], part[:, middle + 1]
    second = np.where(count % 2 == 1, low, (low + high) / real(2))
    return np.where(count > 16, second, first).astype(np.float64)


def brightness_correction(
    luma: np.ndarray, reference: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's global brightness against a reference (see :class:`BrightnessReference`).

    Parameters
    ----------
    luma : numpy.ndarray
        ``(T, y, x)`` from :func:`luminance`.
    reference : numpy.ndarray
        ``(y, x)`` the background's luminance, same grid.

    Returns
    -------
    tuple of numpy.ndarray
        ``(T,)`` gains and lifts.
    """
    return BrightnessReference(reference).correction(luma)


def frame_transform(
    intensity: IntensityScale, correction: tuple[np.ndarray, np.ndarray] | None, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame offsets and scales for the kernels: ``(raw - offset) * scale``.

    Parameters
    ----------
    intensity : IntensityScale
        The model's raw-to-0-255 mapping.
    correction : tuple of numpy.ndarray or None
        Gains and lifts from :func:`brightness_correction`; none when None.
    n : int
        Frames.

    Returns
    -------
    tuple of numpy.ndarray
        ``(n,)`` offsets and scales, float64.
    """
    if correction is None:
        return np.full(n, intensity.offset), np.full(n, intensity.scale)
    gains, lifts = correction
    # ((raw - offset) * scale - lift) / gain == (raw - offset - lift / scale) * scale / gain
    return intensity.offset + lifts / intensity.scale, intensity.scale / gains
