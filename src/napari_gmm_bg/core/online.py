"""The on-line per-pixel GMM: updated frame by frame, with a history that forgets.

For endless streams or clips larger than any learning buffer.  Each pixel keeps up to K
components (isotropic variance, in unordered slots), updated as in Zivkovic's MOG2: a
sample matching a component (squared distance under ``match_distance`` variances) pulls
it closer with rate ``alpha / weight``; otherwise a new component replaces the weakest.
``alpha = 1 / min(2 n, history)`` after ``n`` frames.  Each frame is scored *before* it
updates the model, with the offline model's score: the distance (standard deviations) to
the nearest background component (the heaviest up to ``background_ratio``), thresholded,
cleaned, brightness-compensated, shadows optional.  Spatial consensus (radius 1 by
default, 0 turns it off) lets a pixel beyond the threshold take a neighbour's background
where the stream has shown that it explains the pixel's misses
(:class:`NeighbourConsensus`).

How fast something that stops becomes background: a new component's weight grows while
the old background's shrinks as ``(1 - alpha) ** m``.  The stopped object joins the
background once the old background alone no longer reaches ``background_ratio``:
after ``m = ln(background_ratio) / ln(1 - 1 / history)`` frames, about
``0.105 x history`` at the default ratio of 0.9 (once ``2 n > history``).  What left is
forgotten the same way.
"""

import itertools
import math
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _kernels
from ._steps import finish
from .cleanup import MaskCleanup, clean_mask
from .frames import Frames, as_frames
from .gmm import (
    CONSENSUS_MIN_SAVES,
    MAX_CONSENSUS_RADIUS,
    NEIGHBOUR_PENALTY,
    WIDER_SHARE,
)
from .intensity import BrightnessReference, IntensityScale, frame_transform, gain_stride
from .interface import Method, MethodResult, Steps
from .labels import (
    SHADOW_DISTORTION,
    check_shadow_tau,
    check_shadows,
    check_threshold,
)

#: Frames between renewals of the brightness reference (the background's luminance).
REFERENCE_FRAMES = 64
#: Frames of a consensus window (see :class:`NeighbourConsensus`).
CONSENSUS_WINDOW = 16
#: The share of a pixel's misses its neighbours must explain before it consults them,
#: chosen on the mean F of the seven development scenes with the threshold (share,
#: threshold: 0.4, 1.0: 0.729; 0.5, 0.9: 0.740; 0.6, 1.0: 0.741; 0.7, 1.0: 0.739; 0.8,
#: 1.0: 0.733; without consensus 0.715).  Higher than the offline fit's 0.35: a stream's
#: evidence includes the frames in which its young model still learns.
ONLINE_CONSENSUS_SHARE = 0.6
#: Default distance threshold of the on-line GMM (standard deviations): chosen, as the
#: offline one, on the mean F of the seven development scenes.
ONLINE_DISTANCE = 1.0  # mean F 0.715 (0.9: 0.711, 1.1: 0.713); consensus 1: 0.741


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
        Distance (standard deviations, as the offline model's
        :meth:`~napari_gmm_bg.core.gmm.BackgroundModel.distance`) above which a pixel is
        foreground; :data:`ONLINE_DISTANCE` if None.
    compensate_brightness : bool
        Score each frame after removing its global brightness change.
    shadows : str
        "off", "show" (label 2) or "background".
    shadow_tau : float
        The strongest darkening a shadow may cause.
    cleanup : MaskCleanup
        Default spatial clean-up of the masks (its median sized to the frame when None).
    consensus_radius : int
        Spatial consensus, as the offline fit's: a pixel beyond the threshold may take a
        neighbour's background within this radius, where the stream has shown that it
        explains the pixel's misses (see :class:`NeighbourConsensus`).  1, the default:
        mean F over the seven development scenes 0.741 against 0.715 alone (0, which
        costs some 40-60% less time), a swaying tree's 0.657 against 0.447; 2 for a
        shaking camera.
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
    cleanup: MaskCleanup = MaskCleanup()
    consensus_radius: int = 1

    def validate(self) -> None:
        """Raise ValueError on settings that cannot work."""
        if int(self.history) < 1:
            raise ValueError(f"history must be at least 1 frame, got {self.history}")
        if int(self.n_components) < 1:
            raise ValueError(f"n_components must be at least 1, got {self.n_components}")
        if not 0 < self.background_ratio <= 1:
            raise ValueError(f"background_ratio must be in (0, 1], got {self.background_ratio}")
        if not (self.match_distance > 0 and math.isfinite(self.match_distance)):
            raise ValueError(
                f"match_distance must be a positive number, got {self.match_distance}"
            )
        if not (0 < self.var_min <= self.var_init <= self.var_max and math.isfinite(self.var_max)):
            raise ValueError("need 0 < var_min <= var_init <= var_max, all finite")
        check_threshold(self.threshold)
        if self.threshold is not None and self.threshold <= 0:
            raise ValueError(f"threshold is a distance and must be above 0, got {self.threshold}")
        self.cleanup.validate()
        if int(self.consensus_radius) != self.consensus_radius or not (
            0 <= self.consensus_radius <= MAX_CONSENSUS_RADIUS
        ):
            raise ValueError(
                f"consensus_radius must be a whole number in 0..{MAX_CONSENSUS_RADIUS}, "
                f"got {self.consensus_radius}"
            )
        check_shadows(self.shadows)
        check_shadow_tau(self.shadow_tau)

    def absorption_frames(self) -> float:
        """Frames after which something that stopped is background (``2 n > history``)."""
        return math.log(self.background_ratio) / math.log(1.0 - 1.0 / self.history)


@dataclass
class OnlineResult:
    """What the on-line GMM gives for a clip.

    Attributes
    ----------
    distance : numpy.ndarray
        ``(T, Y, X)`` float32 scores (standard deviations), each frame scored before it
        updated the model.
    shadow : numpy.ndarray
        ``(T, Y, X)`` bool, where the shadow test passed.
    background : numpy.ndarray
        The background image after the last frame (heaviest components), input dtype.
    settings : OnlineSettings
        The settings used.
    threshold : float
        The foreground threshold.
    """

    distance: np.ndarray
    shadow: np.ndarray
    background: np.ndarray
    settings: OnlineSettings
    threshold: float

    @property
    def frame_shape(self) -> tuple[int, int]:
        """``(Y, X)`` of the frames."""
        return self.distance.shape[1], self.distance.shape[2]

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
            Distance threshold; the result's own when None.  Re-thresholding is exact:
            the updates never depend on it.
        cleanup : MaskCleanup, optional
            Spatial clean-up (the settings', or a median filter sized to the frame, when
            None).
        shadows : str, optional
            "off", "show" or "background"; the settings' when None.  Shadows can be
            shown only when the run computed them (its ``shadows`` not "off").

        Returns
        -------
        numpy.ndarray
            ``(T, Y, X)`` uint8.

        Raises
        ------
        ValueError
            If ``shadows`` asks for flags the run did not compute.
        """
        return label_scores(
            self.distance,
            self.shadow,
            self.threshold if threshold is None else float(threshold),
            _shadows_to_label(self.settings, shadows),
            self.settings.cleanup if cleanup is None else cleanup,
        )


def label_scores(
    distance: np.ndarray,
    shadow: np.ndarray,
    threshold: float,
    shadows: str,
    cleanup: MaskCleanup | None = None,
) -> np.ndarray:
    """Labels from on-line scores: 0 background, 1 foreground, 2 shadow, cleaned.

    Parameters
    ----------
    distance : numpy.ndarray
        ``(T, Y, X)`` float32 scores.
    shadow : numpy.ndarray
        ``(T, Y, X)`` bool, where the shadow test passed.
    threshold : float
        Scores above it are foreground.
    shadows : str
        "off", "show" or "background".
    cleanup : MaskCleanup, optional
        Spatial clean-up (a median filter sized to the frame when None).

    Returns
    -------
    numpy.ndarray
        ``(T, Y, X)`` uint8.
    """
    check_shadows(shadows)
    labels = np.greater(distance, threshold).view(np.uint8)  # no second copy
    if shadows == "show":
        labels[(labels == 1) & shadow] = 2
    elif shadows == "background":
        labels[shadow] = 0
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


def background_reference(state: tuple, frame_shape: tuple[int, int]) -> BrightnessReference:
    """Give the brightness reference of the on-line state's background.

    Parameters
    ----------
    state : tuple of numpy.ndarray
        As :func:`heaviest_means` takes it.
    frame_shape : tuple of int
        ``(Y, X)``.

    Returns
    -------
    BrightnessReference
        The luminance of each pixel's heaviest mean, on the grid of
        :func:`~napari_gmm_bg.core.intensity.luminance`.
    """
    height, width = frame_shape
    stride = gain_stride(frame_shape)
    rows, cols = np.arange(0, height, stride), np.arange(0, width, stride)
    grid = heaviest_means(state, (rows[:, None] * width + cols[None, :]).ravel())
    return BrightnessReference(grid.reshape(-1, len(rows), len(cols)).mean(axis=0))


class NeighbourConsensus:
    """Spatial consensus for the on-line GMM, with the evidence kept as the stream goes by.

    The offline fit draws its consensus map once, on the learning frames; a stream has
    none.  So each pixel counts, with the model's forgetting (``history`` frames), the
    frames in which its own background missed (scored above the threshold) and, for
    each radius r, those of them that a neighbour's background within r explained.  The
    rule is the offline one with its own share: a pixel consults the smallest r whose
    share reaches :data:`ONLINE_CONSENSUS_SHARE` (``WIDER_SHARE`` beyond 1), with at
    least ``CONSENSUS_MIN_SAVES`` frames explained.  Only the pixels beyond the threshold
    consult their neighbours (their score becomes ``min(own, NEIGHBOUR_PENALTY x
    neighbours')``): one pass both counts the evidence and rescues them, which costs far
    less than lowering every score as the offline model does.  Labels at the run's
    threshold are the same either way; a relabel at a lower threshold sees the pixel's
    own distance between the two.

    The stream is cut into windows of :data:`CONSENSUS_WINDOW` frames.  Within a window
    the neighbours' backgrounds are those of its start and the map is the one the
    windows before it drew, so the result does not depend on how the frames are fed
    (one at a time or in blocks), and the evidence is counted in whole numbers and
    folded into the forgetting sums at each window's end.

    Parameters
    ----------
    frame_shape : tuple of int
        ``(Y, X)``.
    radius : int
        The widest neighbourhood (the settings' ``consensus_radius``).
    history : int
        Frames of memory.
    """

    def __init__(self, frame_shape: tuple[int, int], radius: int, history: int) -> None:
        n_pixels = frame_shape[0] * frame_shape[1]
        self.width = frame_shape[1]
        self.misses = np.zeros(n_pixels, np.float32)
        self.saves = np.zeros((radius, n_pixels), np.float32)
        self._window = (np.zeros(n_pixels, np.int32), np.zeros((radius, n_pixels), np.int32))
        self._keep = np.float32((1.0 - 1.0 / history) ** CONSENSUS_WINDOW)
        self._radii = np.zeros(n_pixels, np.uint8)
        # The neighbours' backgrounds (means, inverse variances, how many), kept from
        # window to window: fresh memory costs page faults.
        self._neighbours: tuple | None = None
        self._any_background = False

    def radii(self) -> np.ndarray:
        """Each pixel's neighbourhood by the evidence so far, ``(P,)`` uint8 (0: alone)."""
        radii = np.zeros(len(self.misses), np.uint8)
        undecided = np.ones(len(self.misses), bool)
        floor = np.maximum(self.misses, 1.0)
        for r, saves in enumerate(self.saves, start=1):
            share = ONLINE_CONSENSUS_SHARE if r == 1 else WIDER_SHARE
            helps = undecided & (saves >= share * floor) & (saves >= CONSENSUS_MIN_SAVES)
            radii[helps] = r
            undecided &= ~helps
        return radii

    def start_window(self, state: tuple, ratio: float) -> None:
        """Take the backgrounds of the window's start and the map drawn so far."""
        if not state[3].any():
            # No pixel has a component yet (the stream's start): nothing to consult.  Not
            # asked of the kernels either, so a first run compiles them later, by when
            # the command line's warm-up child has.
            self._any_background = False
            return
        if self._neighbours is None:
            means = state[1]
            self._neighbours = (
                np.empty_like(means),
                np.empty((len(means), means.shape[2]), np.float32),
                np.zeros(means.shape[2], np.uint8),
            )
        _kernels.background_first(state, ratio, self._neighbours)
        self._any_background = bool(self._neighbours[2].any())
        self._radii = self.radii()

    def end_window(self) -> None:
        """Fold the window's counts into the forgetting sums."""
        misses, saves = self._window
        self.misses *= self._keep
        self.misses += misses
        self.saves *= self._keep
        self.saves += saves
        misses[:] = 0
        saves[:] = 0

    def apply(
        self,
        flat: np.ndarray,
        offsets: np.ndarray,
        scales: np.ndarray,
        scores: np.ndarray,
        threshold: float,
    ) -> None:
        """Consult the neighbours on frames of the window: ``(F, P)`` scores, in place."""
        if not self._any_background:
            return  # no background yet
        misses, saves = self._window
        # Only the pixels beyond the threshold are visited: one pass both counts the
        # evidence and rescues those whose map allows it.
        _kernels.online_consensus(
            flat, offsets, scales, self._neighbours, self.width, NEIGHBOUR_PENALTY,
            threshold, self._radii, scores, misses, saves,
        )  # fmt: skip


@dataclass(frozen=True)
class _StreamKind:
    """What the first block fixed: every later block must match it."""

    frame_shape: tuple[int, int]
    n_channels: int
    grey: bool
    dtype: np.dtype

    @classmethod
    def of(cls, frames: Frames) -> "_StreamKind":
        return cls(frames.frame_shape, frames.n_channels, frames.grey, np.dtype(frames.dtype))

    def __str__(self) -> str:
        (y, x), c = self.frame_shape, self.n_channels
        return f"{x}x{y} {'grey' if c == 1 else 'RGB'} {self.dtype}"


class OnlineModel:
    """The on-line GMM as a stream filter: frames in, scores and labels out.

    Like MOG2's ``apply``: it keeps only each pixel's mixture (a few numbers a pixel),
    so it runs on an endless stream; feed it frames as they arrive, one at a time or a
    block at a time (blocks of some 16 frames use the threads best).  The first frames
    fix the frame size, the channels, the dtype and, for float input without a
    ``value_range``, the intensity scale (from their range).

    Parameters
    ----------
    settings : OnlineSettings, optional
        Defaults when None.
    value_range : tuple of float, optional
        For float frames: the values that map to the model's 0-255 scale, e.g.
        ``(0.0, 1.0)``.  Without it the first frames' range is used, so a dark first
        frame would make every later change look huge; give it for float streams.

    Attributes
    ----------
    threshold : float
        The foreground threshold (a distance): the settings', or
        :data:`ONLINE_DISTANCE` (set when the first frames arrive).
    frames_seen : int
        Frames that have updated the model.
    """

    def __init__(
        self,
        settings: OnlineSettings | None = None,
        value_range: tuple[float, float] | None = None,
    ) -> None:
        settings = OnlineSettings() if settings is None else settings
        settings.validate()
        if value_range is not None and not float(value_range[1]) > float(value_range[0]):
            raise ValueError(f"value_range must be (low, high) with low < high: {value_range}")
        self._settings = settings
        self._value_range = value_range
        self.threshold = float("nan") if settings.threshold is None else float(settings.threshold)
        self.frames_seen = 0
        self._kind: _StreamKind | None = None
        self._intensity: IntensityScale | None = None
        self._state: tuple | None = None
        self._reference: BrightnessReference | None = None
        self._reference_until = 0
        self._scratch: tuple[np.ndarray, np.ndarray] | None = None
        self._consensus: NeighbourConsensus | None = None
        self._packed = (
            settings.background_ratio,
            settings.match_distance,
            settings.var_init,
            settings.var_min,
            settings.var_max,
            settings.shadow_tau if settings.shadows != "off" else 0.0,
            SHADOW_DISTORTION**2,
        )

    @property
    def settings(self) -> OnlineSettings:
        """The settings (fixed: a model learns under one set)."""
        return self._settings

    def update(self, frames: Any) -> tuple[np.ndarray, np.ndarray]:
        """Score frames, each before it updates the model.

        Parameters
        ----------
        frames : array-like
            A block ``(F, Y, X)`` grey or ``(F, Y, X, 3)`` RGB, numpy or dask; or one
            frame, ``(Y, X)`` or ``(Y, X, 3)`` (a 3-D array whose last axis is 3 or 4 is
            one colour frame).

        Returns
        -------
        tuple of numpy.ndarray
            Float32 distances and bool shadow flags, ``(F, Y, X)`` (``(Y, X)`` for one
            frame).

        Raises
        ------
        ValueError
            If the frames are not a video, hold NaN, or differ from the first ones in
            size, channels or dtype; the model is then left as it was.
        """
        block, one = self._read(frames)
        n, (height, width) = len(block), block.shape[1:3]
        scores = np.empty((n, height, width), np.float32)
        shadow = np.zeros((n, height, width), bool)
        self._update(block, scores, shadow)
        return (scores[0], shadow[0]) if one else (scores, shadow)

    def apply(
        self,
        frames: Any,
        threshold: float | None = None,
        cleanup: MaskCleanup | None = None,
        shadows: str | None = None,
    ) -> np.ndarray:
        """Update with frames and label them: 0 background, 1 foreground, 2 shadow.

        Parameters
        ----------
        frames : array-like
            A block ``(F, Y, X)`` or ``(F, Y, X, 3)``, or one frame (see :meth:`update`).
        threshold : float, optional
            Distance threshold; the model's when None.
        cleanup : MaskCleanup, optional
            Spatial clean-up (the settings', or a median filter sized to the frame, when
            None).
        shadows : str, optional
            "off", "show" or "background"; the settings' when None.  Shadows can be
            shown only when the settings compute them (``shadows`` not "off").

        Returns
        -------
        numpy.ndarray
            uint8 labels, ``(F, Y, X)`` (``(Y, X)`` for one frame).

        Raises
        ------
        ValueError
            For bad frames (see :meth:`update`) or bad options, checked before the model
            learns anything.
        """
        threshold = None if threshold is None else float(threshold)  # checked before learning
        shadows = _shadows_to_label(self.settings, shadows)
        cleanup = self._settings.cleanup if cleanup is None else cleanup
        cleanup.validate()
        block, one = self._read(frames)
        # Scores to scratch arrays kept from block to block: fresh memory costs page faults.
        shape = block.shape[:3]
        if self._scratch is None or self._scratch[0].shape != shape:
            self._scratch = (np.empty(shape, np.float32), np.zeros(shape, bool))
        scores, shadow = self._scratch
        self._update(block, scores, shadow)
        # The model's threshold is known once the first frames fixed the channels.
        labels = label_scores(
            scores, shadow, self.threshold if threshold is None else threshold, shadows, cleanup
        )
        return labels[0] if one else labels

    def background_image(self) -> np.ndarray:
        """Give the background now: each pixel's heaviest component's mean, input dtype.

        Returns
        -------
        numpy.ndarray
            ``(Y, X)`` or ``(Y, X, 3)``.

        Raises
        ------
        ValueError
            Before the first frame.
        """
        if self._state is None or self._kind is None or self._intensity is None:
            raise ValueError("the on-line model has seen no frame yet")
        kind, intensity = self._kind, self._intensity
        (height, width), c = kind.frame_shape, kind.n_channels
        means = np.moveaxis(heaviest_means(self._state).reshape(c, height, width), 0, -1)
        background = intensity.to_raw(means, kind.dtype)
        return background[..., 0] if kind.grey else background

    def _read(self, frames: Any) -> tuple[np.ndarray, bool]:
        """Validate frames and read them as ``(F, Y, X, C)``; True for a single frame."""
        ndim = getattr(frames, "ndim", None)
        if ndim is None:
            frames = np.asarray(frames)
            ndim = frames.ndim
        one = ndim == 2 or (ndim == 3 and frames.shape[-1] in (3, 4))
        f = as_frames(frames[None] if one else frames, name="frames")
        block = f.read(slice(None))
        self._accept(f, block)
        return block, one

    def _accept(self, frames: Frames, block: np.ndarray) -> None:
        """Start the model on the first frames; refuse later frames of another kind."""
        kind = _StreamKind.of(frames)
        if self._kind is None:
            self._start(kind, block)
        elif kind != self._kind:
            raise ValueError(
                f"frames are {kind}, but the on-line model started on {self._kind} frames"
            )

    def _start(self, kind: _StreamKind, block: np.ndarray) -> None:
        settings = self.settings
        (height, width), c, k = kind.frame_shape, kind.n_channels, settings.n_components
        pixels = height * width
        if self._value_range is not None and kind.dtype.kind == "f":
            self._intensity = IntensityScale.for_data(kind.dtype, np.array(self._value_range))
        else:
            self._intensity = IntensityScale.for_data(kind.dtype, block)
        # Per component and pixel, float32 (see _kernels.online_update): weights, means,
        # isotropic variances, and each pixel's component count.
        self._state = (
            np.zeros((k, pixels), np.float32),
            np.zeros((k, c, pixels), np.float32),
            np.full((k, pixels), settings.var_init, np.float32),
            np.zeros(pixels, np.float32),
        )
        if np.isnan(self.threshold):
            self.threshold = ONLINE_DISTANCE
        if settings.consensus_radius > 0:
            self._consensus = NeighbourConsensus(
                kind.frame_shape, settings.consensus_radius, settings.history
            )
        self._kind = kind

    def _update(self, block: np.ndarray, scores: np.ndarray, shadow: np.ndarray) -> None:
        """Score and learn a read block, writing ``scores`` and ``shadow`` in place."""
        n, c = len(block), block.shape[-1]
        start, intensity, state = self.frames_seen, self._intensity, self._state
        assert intensity is not None and state is not None  # set by _start on the first block
        correction = None
        if self.settings.compensate_brightness and start > 0:
            if start >= self._reference_until:  # the background drifts slowly: now and then
                self._reference = background_reference(state, block.shape[1:3])
                self._reference_until = start + REFERENCE_FRAMES
            reference = self._reference
            assert reference is not None  # made above on the first pass
            correction = reference.correction_of_frames(block, intensity)
        offsets, scales = frame_transform(intensity, correction, n)
        alphas = 1.0 / np.minimum(2 * np.arange(start + 1, start + n + 1), self.settings.history)
        pixels = block.shape[1] * block.shape[2]
        flat = np.ascontiguousarray(block).reshape(n, pixels * c)
        scores, shadow = scores.reshape(n, pixels), shadow.reshape(n, pixels)
        consensus = self._consensus
        # Without consensus, the whole block in one call; with it, cut at its windows.
        cuts = [0, n] if consensus is None else _window_cuts(start, n)
        for a, b in itertools.pairwise(cuts):
            if consensus is not None and self.frames_seen % CONSENSUS_WINDOW == 0:
                consensus.start_window(state, self.settings.background_ratio)
            _kernels.online_update(
                flat[a:b],
                offsets[a:b],
                scales[a:b],
                alphas[a:b],
                state,
                self._packed,
                scores[a:b],  # written in place
                shadow[a:b],
            )
            self.frames_seen += b - a
            if consensus is not None:
                consensus.apply(flat[a:b], offsets[a:b], scales[a:b], scores[a:b], self.threshold)
                if self.frames_seen % CONSENSUS_WINDOW == 0:
                    consensus.end_window()


def _window_cuts(start: int, n: int) -> list[int]:
    """Where frames ``start .. start + n`` of a stream cross consensus windows, from 0."""
    first = -start % CONSENSUS_WINDOW
    inner = range(first if first else CONSENSUS_WINDOW, n, CONSENSUS_WINDOW)
    return [0, *inner, n]


def _shadows_to_label(settings: OnlineSettings, shadows: str | None) -> str:
    """Choose the shadow mode to label with; refuse one the run computed no flags for."""
    shadows = settings.shadows if shadows is None else shadows
    check_shadows(shadows)
    if shadows != "off" and settings.shadows == "off":
        raise ValueError(
            f"shadows={shadows!r} needs shadow flags, which this on-line run did not "
            "compute: run it with shadows='show' or 'background'"
        )
    return shadows


def online_blocks(
    model: OnlineModel, video: Any, chunk: int = 16
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Run a clip through an on-line model a block of frames at a time, as a stream.

    Only one block of frames and its scores are held at a time, so a clip of any length
    can be scored and written out block by block (the CLI's ``--mode online``).

    Parameters
    ----------
    model : OnlineModel
        The model; it learns from every frame (ask it for its background, threshold...
        once the iteration is over).
    video : array-like
        ``(T, Y, X)`` or ``(T, Y, X, 3)``, numpy or dask; read ``chunk`` frames at a time.
    chunk : int
        Frames per block.

    Yields
    ------
    tuple
        ``(start, distance, shadow)``: the block's first frame, its float32 scores
        and bool shadow flags, ``(n, Y, X)``.  The arrays are reused for the next block:
        copy them to keep them.
    """
    frames = video if isinstance(video, Frames) else as_frames(video)
    n, (height, width) = frames.n_frames, frames.frame_shape
    size = min(chunk, n)
    scores = np.empty((size, height, width), np.float32)
    shadow = np.zeros((size, height, width), bool)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        block = frames.read(slice(start, stop))
        model._accept(frames, block)
        m = stop - start
        model._update(block, scores[:m], shadow[:m])
        yield start, scores[:m], shadow[:m]


def run_online_steps(
    video: Any,
    settings: OnlineSettings | None = None,
    chunk: int = 16,
    value_range: tuple[float, float] | None = None,
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
    value_range : tuple of float, optional
        For float video, the values mapped to the model's scale (see
        :class:`OnlineModel`); the first chunk's range when None.

    Yields
    ------
    tuple of int
        Frames done, frames in all.

    Returns
    -------
    OnlineResult
        Scores, shadow flags and the final background.
    """
    model = OnlineModel(settings, value_range)
    frames = as_frames(video)
    n, (height, width) = frames.n_frames, frames.frame_shape
    scores = np.empty((n, height, width), np.float32)
    shadow = np.zeros((n, height, width), bool)
    yield 0, n
    for start, block_scores, block_shadow in online_blocks(model, frames, chunk):
        stop = start + len(block_scores)
        scores[start:stop], shadow[start:stop] = block_scores, block_shadow
        yield stop, n
    return OnlineResult(
        distance=scores,
        shadow=shadow,
        background=model.background_image(),
        settings=model.settings,
        threshold=model.threshold,
    )


def run_online(
    video: Any,
    settings: OnlineSettings | None = None,
    value_range: tuple[float, float] | None = None,
) -> OnlineResult:
    """Run the on-line GMM over a clip, frame by frame.

    Parameters
    ----------
    video : array-like
        ``(T, Y, X)`` or ``(T, Y, X, 3)``, numpy or dask.
    settings : OnlineSettings, optional
        Defaults when None.
    value_range : tuple of float, optional
        For float video, the values mapped to the model's scale (see
        :class:`OnlineModel`); the first 16 frames' range when None.

    Returns
    -------
    OnlineResult
        Per-frame distances and shadow flags (use :meth:`OnlineResult.foreground`
        for labels) and the final background image.
    """
    return finish(run_online_steps(video, settings, value_range=value_range))


def online_result(result: OnlineResult) -> MethodResult:
    """Wrap an on-line run's result as every method gives it.

    Parameters
    ----------
    result : OnlineResult
        What :func:`run_online` returned.

    Returns
    -------
    MethodResult
        Labels, distances, background; relabelled from the kept scores.
    """

    def relabel(
        threshold: float | None = None,
        cleanup: MaskCleanup | None = None,
        shadows: str | None = None,
        region: np.ndarray | None = None,
    ) -> np.ndarray:
        if region is not None:
            region = np.asarray(region, bool)
            if region.shape != result.frame_shape:
                raise ValueError(
                    f"region of shape {region.shape} does not match the frames "
                    f"{result.frame_shape}"
                )
        labels = result.foreground(threshold=threshold, cleanup=cleanup, shadows=shadows)
        if region is not None:  # last, as the offline model does: no clean-up grows out
            labels[:, ~region] = 0
        return labels

    return MethodResult(
        "online",
        result.settings,
        result.foreground,
        lambda: result.distance,
        background=result.background,
        threshold=result.threshold,
        model=result,
        relabel=relabel,
    )


def _method_steps(video: Any, settings: OnlineSettings) -> Steps:
    result = yield from run_online_steps(video, settings)
    return online_result(result)


METHOD = Method(
    name="online",
    title="GMM on-line",
    settings_type=OnlineSettings,
    run_steps=_method_steps,
    score_name="distance",
    score_unit="standard deviations",
    foreground_above=True,
    comparison=False,
)
