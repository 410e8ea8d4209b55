"""The on-line per-pixel GMM: updated frame by frame, with a history that forgets.

For endless streams or clips larger than any learning buffer.  Each pixel keeps up to K
components (isotropic variance, in unordered slots), updated as in Zivkovic's MOG2: a
sample matching a component (squared distance under ``match_distance`` variances) pulls
it closer with rate ``alpha / weight``; otherwise a new component replaces the weakest.
``alpha = 1 / min(2 n, history)`` after ``n`` frames.  Each frame is scored *before* it
updates the model, with the offline model's rule: the log-likelihood under the
background components (the heaviest up to ``background_ratio``), thresholded, cleaned,
brightness-compensated, shadows optional.

How fast something that stops becomes background: a new component's weight grows while
the old background's shrinks as ``(1 - alpha) ** m``.  The stopped object joins the
background once the old background alone no longer reaches ``background_ratio``:
after ``m = ln(background_ratio) / ln(1 - 1 / history)`` frames, about
``0.105 x history`` at the default ratio of 0.9 (once ``2 n > history``).  What left is
forgotten the same way.
"""

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _kernels
from ._steps import finish
from .cleanup import MaskCleanup, clean_mask
from .frames import as_frames
from .gmm import (
    GAIN_STRIDE,
    SHADOW_DISTORTION,
    BrightnessReference,
    IntensityScale,
    check_shadows,
    default_threshold,
    frame_transform,
)

#: Frames between renewals of the brightness reference (the background's luminance).
REFERENCE_FRAMES = 64


@dataclass(frozen=True)
class OnlineSettings:
    """Settings of the on-line GMM.

    Attributes
    ----------
    history : int
        Frames of memory: the learning rate is ``1 / min(2 n, history)``.
    n_components : int
        Components per pixel at most.
    background_ratio : float
        Cumulative weight of the background components.
    match_distance : float
        Squared distance, in variances summed over channels, for a sample to update a
        component (MOG2's VarThresholdGen).
    var_init, var_min, var_max : float
        Variance of a new component and its bounds (0-255 scale, per channel).
    threshold : float or None
        Log-likelihood below which a pixel is foreground; the offline default if None.
    compensate_brightness : bool
        Score each frame after removing its global brightness change.
    shadows : str
        "off", "show" (label 2) or "background".
    shadow_tau : float
        The strongest darkening a shadow may cause.
    """

    history: int = 500
    n_components: int = 3
    background_ratio: float = 0.9
    match_distance: float = 9.0
    var_init: float = 150.0
    var_min: float = 100.0
    var_max: float = 900.0
    threshold: float | None = None
    compensate_brightness: bool = True
    shadows: str = "off"
    shadow_tau: float = 0.5

    def validate(self) -> None:
        """Raise ValueError on settings that cannot work."""
        if self.history < 1:
            raise ValueError(f"history must be at least 1 frame, got {self.history}")
        if self.n_components < 1:
            raise ValueError(f"n_components must be at least 1, got {self.n_components}")
        if not 0 < self.background_ratio <= 1:
            raise ValueError(f"background_ratio must be in (0, 1], got {self.background_ratio}")
        if not 0 < self.var_min <= self.var_init <= self.var_max:
            raise ValueError("need 0 < var_min <= var_init <= var_max")
        check_shadows(self.shadows)

    def absorption_frames(self) -> float:
        """Frames after which something that stopped is background (``2 n > history``)."""
        return math.log(self.background_ratio) / math.log(1.0 - 1.0 / self.history)


@dataclass
class OnlineResult:
    """What the on-line GMM gives for a clip.

    Attributes
    ----------
    log_likelihood : numpy.ndarray
        ``(T, Y, X)`` float32, each frame scored before it updated the model.
    shadow : numpy.ndarray
        ``(T, Y, X)`` bool, where the shadow test passed.
    background : numpy.ndarray
        The background image after the last frame (heaviest components), input dtype.
    settings : OnlineSettings
        The settings used.
    threshold : float
        The foreground threshold.
    """

    log_likelihood: np.ndarray
    shadow: np.ndarray
    background: np.ndarray
    settings: OnlineSettings
    threshold: float

    @property
    def frame_shape(self) -> tuple[int, int]:
        """``(Y, X)`` of the frames."""
        return self.log_likelihood.shape[1], self.log_likelihood.shape[2]

    def foreground(
        self,
        threshold: float | None = None,
        cleanup: MaskCleanup | None = None,
        shadows: str | None = None,
    ) -> np.ndarray:
        """Label every frame: 0 background, 1 foreground, 2 shadow.

        Parameters
        ----------
        threshold : float, optional
            Log-likelihood threshold; the result's own when None.  Re-thresholding is
            exact: the updates never depend on it.
        cleanup : MaskCleanup, optional
            Spatial clean-up (a 7x7 median filter when None).
        shadows : str, optional
            "off", "show" or "background"; the settings' when None.

        Returns
        -------
        numpy.ndarray
            ``(T, Y, X)`` uint8.
        """
        threshold = self.threshold if threshold is None else float(threshold)
        shadows = self.settings.shadows if shadows is None else shadows
        check_shadows(shadows)
        labels = np.less(self.log_likelihood, threshold).view(np.uint8)  # no second copy
        if shadows == "show":
            labels[(labels == 1) & self.shadow] = 2
        elif shadows == "background":
            labels[self.shadow] = 0
        return clean_mask(labels, MaskCleanup() if cleanup is None else cleanup, in_place=True)


def heaviest_means(state: tuple, pixels: np.ndarray | None = None) -> np.ndarray:
    """Each pixel's heaviest component's mean, ``(C, P)``, from the on-line state.

    Parameters
    ----------
    state : tuple of numpy.ndarray
        Weights ``(K, P)``, means ``(K, C, P)``, ... as kept by :func:`run_online_steps`.
    pixels : numpy.ndarray, optional
        Flat indices of the pixels wanted; all of them when None.

    Returns
    -------
    numpy.ndarray
        ``(C, P)`` float32 (ties: the lowest slot, as the kernel decides).
    """
    weights, means = state[0], state[1]
    if pixels is not None:
        weights, means = weights[:, pixels], means[:, :, pixels]
    heaviest = np.argmax(weights, axis=0)
    return np.take_along_axis(means, heaviest[None, None, :], axis=0)[0]


def run_online_steps(
    video: Any, settings: OnlineSettings | None = None, chunk: int = 16
) -> Generator[tuple[int, int], None, OnlineResult]:
    """Run the on-line GMM over a clip, yielding ``(done, total)`` frames per chunk.

    Parameters
    ----------
    video : array-like
        ``(T, Y, X)`` or ``(T, Y, X, 3)``, numpy or dask; read ``chunk`` frames at a time.
    settings : OnlineSettings, optional
        Defaults when None.
    chunk : int
        Frames read per step.

    Yields
    ------
    tuple of int
        Frames done, frames in all.

    Returns
    -------
    OnlineResult
        Scores, shadow flags and the final background.
    """
    settings = OnlineSettings() if settings is None else settings
    settings.validate()
    frames = as_frames(video)
    n, (height, width), c = frames.n_frames, frames.frame_shape, frames.n_channels
    first = frames.read(slice(0, min(chunk, n)))
    intensity = IntensityScale.for_data(frames.dtype, first)
    k = settings.n_components
    pixels = height * width
    # Per component and pixel, float32 (see _kernels.online_update): weights, means,
    # isotropic variances, Gaussian log-normalisers, and each pixel's component count.
    state = (
        np.zeros((k, pixels), np.float32),
        np.zeros((k, c, pixels), np.float32),
        np.full((k, pixels), settings.var_init, np.float32),
        np.zeros((k, pixels), np.float32),
        np.zeros(pixels, np.float32),
    )
    loglik = np.empty((n, height, width), np.float32)
    shadow = np.zeros((n, height, width), bool)
    threshold = default_threshold(c) if settings.threshold is None else float(settings.threshold)
    packed = (
        settings.background_ratio,
        settings.match_distance,
        settings.var_init,
        settings.var_min,
        settings.var_max,
        settings.shadow_tau if settings.shadows != "off" else 0.0,
        SHADOW_DISTORTION**2,
    )
    # The brightness reference: the background on the grid of luminance().
    rows, cols = np.arange(0, height, GAIN_STRIDE), np.arange(0, width, GAIN_STRIDE)
    grid_shape = (len(rows), len(cols))
    grid_pixels = (rows[:, None] * width + cols[None, :]).ravel()
    reference, reference_until = None, 0
    yield 0, n
    for start in range(0, n, chunk):
        block = first if start == 0 else frames.read(slice(start, min(start + chunk, n)))
        stop = start + len(block)
        correction = None
        if settings.compensate_brightness and start > 0:
            if start >= reference_until:  # the background drifts slowly: renew it now and then
                grid = heaviest_means(state, grid_pixels).reshape(c, *grid_shape)
                reference = BrightnessReference(grid.mean(axis=0))
                reference_until = start + REFERENCE_FRAMES
            correction = reference.correction_of_frames(block, intensity)
        offsets, scales = frame_transform(intensity, correction, len(block))
        alphas = 1.0 / np.minimum(2 * np.arange(start + 1, stop + 1), settings.history)
        _kernels.online_update(
            np.ascontiguousarray(block).reshape(len(block), pixels * c),
            offsets,
            scales,
            alphas,
            state,
            packed,
            loglik[start:stop].reshape(len(block), pixels),  # written in place
            shadow[start:stop].reshape(len(block), pixels),
        )
        yield stop, n
    background = np.moveaxis(heaviest_means(state).reshape(c, height, width), 0, -1)
    background = background.astype(np.float64)
    background = background / intensity.scale + intensity.offset
    if frames.dtype.kind in "ui":
        info = np.iinfo(frames.dtype)
        background = np.clip(np.rint(background), info.min, info.max)
    background = background.astype(frames.dtype)
    return OnlineResult(
        log_likelihood=loglik,
        shadow=shadow,
        background=background[..., 0] if frames.grey else background,
        settings=settings,
        threshold=threshold,
    )


def run_online(video: Any, settings: OnlineSettings | None = None) -> OnlineResult:
    """Run the on-line GMM over a clip, frame by frame.

    Parameters
    ----------
    video : array-like
        ``(T, Y, X)`` or ``(T, Y, X, 3)``, numpy or dask.
    settings : OnlineSettings, optional
        Defaults when None.

    Returns
    -------
    OnlineResult
        Per-frame log-likelihood and shadow flags (use :meth:`OnlineResult.foreground`
        for labels) and the final background image.
    """
    return finish(run_online_steps(video, settings))
