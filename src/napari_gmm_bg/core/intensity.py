"""Intensity: raw pixel values on the models' 0-255 scale, and global brightness.

:class:`IntensityScale` maps any dtype to the 0-255 scale the kernels work on.  Brightness
compensation removes each frame's exposure change before it is scored: a frame's
luminance is fitted against the background's as a line, ``luma = gain * reference +
lift`` (:class:`BrightnessReference`), and the frame is scored as if its values were
``(value - lift) / gain``.  The kernels take that as one offset and one scale per frame
(:func:`frame_transform`).
"""

from dataclasses import dataclass

import numpy as np

from . import _kernels

GAIN_STRIDE = 4  # brightness is estimated on every 4th pixel of every 4th row


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
    frames: np.ndarray, intensity: IntensityScale, stride: int = GAIN_STRIDE
) -> np.ndarray:
    """Mean of the channels of a strided subset of pixels, on the model's 0-255 scale.

    Parameters
    ----------
    frames : numpy.ndarray
        ``(T, Y, X, C)``.
    intensity : IntensityScale
        How raw values map to the model's scale.
    stride : int
        Keep every ``stride``-th row and column.

    Returns
    -------
    numpy.ndarray
        ``(T, Y / stride, X / stride)`` float32.
    """
    return _kernels.luminance_grid(frames, int(stride), intensity.offset, intensity.scale)


class BrightnessReference:
    """A background's luminance, split into brightness bands, to compare frames to.

    Cameras change exposure through a tone curve: dark areas darken more than bright
    ones, so each frame's luminance is fitted against the reference as a straight line
    (not a bare factor), robustly: medians over up to eight bands (its octiles; fewer
    when many pixels share a value), and a Theil-Sen line through them (the median of
    the pairwise slopes), so objects that bias a band or two do not tilt it.  The bands
    are found once; a frame then costs a median a band.

    Parameters
    ----------
    reference : numpy.ndarray
        ``(y, x)`` the background's luminance (see :func:`luminance`).
    """

    N_BANDS = 8

    def __init__(self, reference: np.ndarray) -> None:
        flat = reference.ravel()
        usable = np.flatnonzero(flat > 8.0)
        self.flat_scene = True
        if usable.size < 16:
            self.pixels = usable
            return
        edges = np.quantile(flat[usable], np.linspace(0, 1, self.N_BANDS + 1))
        band = np.clip(np.searchsorted(edges, flat[usable], side="right") - 1, 0, 7)
        order = np.argsort(band, kind="stable")
        self.pixels = usable[order]  # pixels grouped by band
        bounds = np.searchsorted(band[order], np.arange(self.N_BANDS + 1))
        # A value many pixels share (a white sky) spans several quantiles and leaves the
        # bands between them empty: keep the others (still back to back).
        self.bands = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
        self.values = flat[self.pixels]
        self.band_medians = np.array([np.median(self.values[band]) for band in self.bands])
        self.flat_scene = bool(
            len(self.bands) < 2 or self.band_medians[-1] - self.band_medians[0] < 10.0
        )

    def correction(self, luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fit ``luma = gain * reference + lift`` for each frame.

        Parameters
        ----------
        luma : numpy.ndarray
            ``(T, y, x)`` from :func:`luminance`, on the reference's grid.

        Returns
        -------
        tuple of numpy.ndarray
            ``(T,)`` gains (clipped to [0.1, 10]) and lifts (on the 0-255 scale); a frame
            is scored as ``(value - lift) / gain``.
        """
        n = len(luma)
        if self.pixels.size < 16:
            return np.ones(n), np.zeros(n)
        frames = luma.reshape(n, -1)[:, self.pixels]
        if self.flat_scene:  # too little contrast for a line: a bare factor
            return np.clip(np.median(frames / self.values, axis=1), 0.1, 10.0), np.zeros(n)
        return self._lines(
            np.stack([np.median(frames[:, band], axis=1) for band in self.bands], axis=1)
        )

    def correction_of_frames(
        self, frames: np.ndarray, intensity: IntensityScale, stride: int = GAIN_STRIDE
    ) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`correction`, reading the reference's pixels straight off the frames.

        Parameters
        ----------
        frames : numpy.ndarray
            ``(T, Y, X, C)`` frames whose every ``stride``-th pixel of every
            ``stride``-th row is the reference's grid.
        intensity : IntensityScale
            How raw values map to the model's scale.
        stride : int
            The grid's spacing.

        Returns
        -------
        tuple of numpy.ndarray
            ``(T,)`` gains and lifts.
        """
        if self.pixels.size < 16 or self.flat_scene:
            return self.correction(luminance(frames, intensity, stride))
        n, height, width, channels = frames.shape
        grid_y, grid_x = np.divmod(self.pixels, (width + stride - 1) // stride)
        pixels = (grid_y * stride * width + grid_x * stride).astype(np.int64)
        bounds = np.array([band.start for band in self.bands] + [self.bands[-1].stop])
        medians = _kernels.band_medians(
            np.ascontiguousarray(frames).reshape(n, height * width, channels),
            pixels,
            bounds,
            intensity.offset,
            intensity.scale,
        )
        return self._lines(medians)

    def _lines(self, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Theil-Sen through (reference band medians, frame band medians): (T, bands) -> lines.
        r = self.band_medians
        i, j = np.triu_indices(len(self.bands), k=1)
        spread = r[j] - r[i]
        keep = spread > 1e-3
        slopes = (m[:, j[keep]] - m[:, i[keep]]) / spread[keep]
        gains = np.clip(np.median(slopes, axis=1), 0.1, 10.0)
        lifts = np.clip(np.median(m - gains[:, None] * r, axis=1), -128.0, 128.0)
        return gains, lifts


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
