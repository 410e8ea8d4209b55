"""The per-pixel Gaussian mixture background model (offline, batched EM).

Each pixel gets its own K-component mixture with a diagonal covariance, fitted by EM on
a set of learning frames.  Components are kept sorted by weight.  Which of them are the
pixel's *background* is chosen from the learning frames in time order: the heaviest ones
whose weights add up to ``background_ratio`` (as in OpenCV's MOG2) and the colour of the
earliest still moment, less an object that arrives and rests, less a component too broad
to be anything but a catch-all of passing objects.

A pixel's *score* is its distance to the nearest background component, in standard
deviations of that component (a root-mean-square z-score over the channels): scale-free,
so a swaying tree's broad background and a wall's narrow one are judged alike.  Where the
learning frames show it helps (leaves, water, camera shake), a pixel that a neighbour's
background explains is background too (spatial consensus).
"""

import dataclasses
import json
import math
import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np

from . import _kernels
from ._files import atomic_write
from ._steps import finish
from .cleanup import MaskCleanup, clean_mask
from .cluster import as_client, cluster_results
from .frames import Frames, as_frames, check_finite, check_opaque
from .intensity import (
    BrightnessReference,
    IntensityScale,
    frame_transform,
    gain_stride,
)
from .interface import Method, MethodResult, Steps
from .labels import (
    DEFAULT_DISTANCE,
    SHADOW_DISTORTION,
    check_shadow_tau,
    check_shadows,
    check_threshold,
)
from .model_file import MAX_META_CHARS, ModelFileError, NpzMembers

MODEL_FORMAT = "napari-gmm-bg/background-model"
LOCAL_TILE_PIXELS = 65536  # pixels fitted per step (progress, Cancel)
CLUSTER_TILE_PIXELS = 16384  # pixels per task on a dask cluster
MODEL_VERSION = 2  # 2: background flags, consensus map, distance threshold
#: The scoring kernel's inputs: frames, offsets, scales, means, inverse variances and
#: log-constants (see ``_kernels.score_pixels``).
_ScoringInputs = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
#: log-constant of a component that is not background: no pixel gets near it.
NOT_BACKGROUND = -1e30

#: Learning frames of the default fit.  The fit's cost is proportional to them; 40 scores
#: as well as 50 on CDnet highway (F 0.9688 vs 0.9685, frames 470-1000) and on the
#: synthetic sample (IoU 0.9950 vs 0.9949), and above an EM on every frame (F 0.9681);
#: 24 falls below it (0.9678).
LEARNING_FRAMES = 40

#: The background choice (see ``_kernels.choose_background``), chosen on the mean F of
#: the seven development scenes of ``benchmarks/quality_scenes.py``: the earliest still
#: colour must weigh this much and last this many consecutive learning samples; a rest
#: is this many consecutive samples away from it; a component with this share of its
#: mass in rests is an object at rest (``benchmarks/scenes_loo.py --rules``).  Rests of
#: 2 samples (mean F 0.857) or a share of 0.3 take a background that flickers between
#: two colours at random for an object at rest (``tests/core/test_scenes.py``).
STILL_WEIGHT = 0.15
STILL_SAMPLES = 4
#: ... and last this many frames (a short clip's learning samples are a frame or two
#: apart: an object that lingers for six frames is no still scene).
STILL_FRAMES = 12
#: An earlier still moment half as long is the scene when its colour weighs at least this
#: share of the long one's (``_kernels.choose_background``): plants that sway rarely hold
#: one colour for 4 samples, and a person who stands among them later does.  At 1.0 every
#: development scene gains or holds (people among plants F 0.694 -> 0.733, the mean of
#: the seven 0.854 -> 0.865).  Lower shares scored a higher mean (0.67: 0.871, 0.5:
#: 0.872), but a textured background that sways a pixel at random then keeps 0.5-0.7% of
#: its pixels as foreground, over the 0.5% ``tests/core/test_scenes.py`` allows (0.02% at
#: 1.0); with no weight asked, 0.851 (a car that waits in the first frames, lighter than
#: the road, became the road's background).
SHORT_STILL_RATIO = 1.0
REST_SAMPLES = 3
REST_SHARE = 0.35
#: Spatial consensus: a neighbour's background explains a colour within this fraction of
#: the threshold's squared distance; it is consulted at a pixel where, on the learning
#: frames, it explained at least CONSENSUS_SHARE of the pixel's own misses (and twice).
#: 0.35 and 0.4 score alike on the mean of the seven (0.8651, 0.8649); at 0.35 the
#: swaying tree gains (F 0.879 against 0.860) and keeps its floor when left out.
CONSENSUS_FACTOR = 0.5
CONSENSUS_SHARE = 0.35
CONSENSUS_MIN_SAVES = 2
#: A wider neighbourhood (consensus_radius >= 2) must explain more of the misses: at the
#: first rule's 0.4, radius 2 fell to mean F 0.803 (it explains objects away); at 0.8,
#: 0.833, against 0.841 for radius 1, the default.
WIDER_SHARE = 0.8
#: The same in distance units: a neighbour's background counts at sqrt(1 / factor) times
#: its distance, so the score is ``min(own distance, NEIGHBOUR_PENALTY x neighbour's)``.
NEIGHBOUR_PENALTY = np.float32(math.sqrt(1.0 / CONSENSUS_FACTOR))
#: The widest neighbourhood a pixel may consult (the model file stores radii as uint8).
MAX_CONSENSUS_RADIUS = 5


@dataclass(frozen=True)
class FitParameters:
    """Settings of an offline fit, kept with the model.

    Attributes
    ----------
    n_components : int
        Gaussians per pixel.
    learning_frames : int
        How many frames, evenly spaced over ``frame_range``, the fit learns from.
    frame_range : tuple of int or None
        ``(start, stop)`` frames to learn from; None for the whole clip.
    max_iter : int
        EM iterations at most.
    tol : float
        A pixel stops iterating when its mean log-likelihood improves by less than this.
    reg_covar : float
        Added to every variance (intensity units on a 0-255 scale), as scikit-learn's
        ``reg_covar``: a floor that keeps static pixels from collapsing.
    background_ratio : float
        Cumulative weight of the heaviest components that count as background.
    threshold : float
        Distance (standard deviations, see :meth:`BackgroundModel.distance`) above
        which a pixel is foreground; :data:`DEFAULT_DISTANCE` when None.
    cleanup : MaskCleanup
        Default spatial clean-up of the foreground mask (its median filter sized to the
        frame when None: the fit records the size it chose).
    compensate_brightness : bool
        Score each frame as if its exposure matched the background's: its gain against
        the background's luminance (a robust ratio, see
        :class:`~napari_gmm_bg.core.intensity.BrightnessReference`) is divided out, so
        exposure changes do not flood the mask.
    shadows : {"off", "show", "background"}
        Default shadow handling of the masks (see :meth:`BackgroundModel.foreground`).
    shadow_tau : float
        A shadow darkens the background by a factor in [shadow_tau, 1).
    max_variance : float
        A component whose mean variance (0-255 scale) exceeds this is not background:
        a catch-all of passing objects would explain them all.
    absorb_after : int
        0 (default): an object that arrives and stays (a bag left, a person who sits
        down) is foreground for as long as it stays.  N > 0: a change that lasts more
        than N frames is background.
    consensus_radius : int
        How far (pixels) a neighbour whose background explains a pixel's colour may be
        for the pixel to count as background; 0 turns spatial consensus off.
    """

    n_components: int = 3
    learning_frames: int = LEARNING_FRAMES
    frame_range: tuple[int, int] | None = None
    max_iter: int = 10
    tol: float = 1e-3
    reg_covar: float = 100.0
    background_ratio: float = 0.9
    threshold: float | None = None
    cleanup: MaskCleanup = MaskCleanup()
    compensate_brightness: bool = True
    shadows: str = "off"
    shadow_tau: float = 0.5
    max_variance: float = 300.0
    absorb_after: int = 0
    consensus_radius: int = 1

    def validate(self) -> None:
        """Raise ValueError on settings that cannot work."""
        if int(self.n_components) < 1:
            raise ValueError(f"n_components must be at least 1, got {self.n_components}")
        if int(self.learning_frames) < 2:
            raise ValueError(f"learning_frames must be at least 2, got {self.learning_frames}")
        if int(self.max_iter) < 0:
            raise ValueError(f"max_iter must be >= 0, got {self.max_iter}")
        if not (self.reg_covar > 0 and math.isfinite(self.reg_covar)):
            raise ValueError(f"reg_covar must be a positive number, got {self.reg_covar}")
        if not 0 < self.background_ratio <= 1:
            raise ValueError(f"background_ratio must be in (0, 1], got {self.background_ratio}")
        check_threshold(self.threshold)
        if self.threshold is not None and self.threshold <= 0:
            raise ValueError(f"threshold is a distance and must be above 0, got {self.threshold}")
        self.cleanup.validate()
        check_shadows(self.shadows)
        check_shadow_tau(self.shadow_tau)
        if not (self.max_variance > 0 and math.isfinite(self.max_variance)):
            raise ValueError(f"max_variance must be a positive number, got {self.max_variance}")
        if int(self.absorb_after) != self.absorb_after or self.absorb_after < 0:
            raise ValueError(f"absorb_after must be a whole number >= 0, got {self.absorb_after}")
        if int(self.consensus_radius) != self.consensus_radius or not (
            0 <= self.consensus_radius <= MAX_CONSENSUS_RADIUS
        ):
            raise ValueError(
                f"consensus_radius must be a whole number in 0..{MAX_CONSENSUS_RADIUS}, "
                f"got {self.consensus_radius}"
            )


@dataclass(eq=False)
class BackgroundModel:
    """A fitted per-pixel Gaussian mixture.

    Components are sorted by weight, heaviest first.  Build one with
    :func:`fit_background` or :func:`load_model`.

    Attributes
    ----------
    weights : numpy.ndarray
        ``(Y, X, K)`` float32, each pixel's mixture weights (sum to 1).
    means : numpy.ndarray
        ``(Y, X, K, C)`` float32, on the model's 0-255 intensity scale.
    variances : numpy.ndarray
        ``(Y, X, K, C)`` float32, diagonal covariances, same scale.
    dtype : numpy.dtype
        The dtype of the video the model was fitted on.
    grey : bool
        True when the video had no channel axis.
    intensity : IntensityScale
        How raw values map to the model's scale.
    params : FitParameters
        The settings of the fit.
    learning_indices : numpy.ndarray
        The frames the fit learned from.
    flags : numpy.ndarray or None
        ``(Y, X, K)`` uint8: nonzero for each pixel's background components (2: the
        fallback of a pixel whose background components are all too broad, the heaviest
        of them, its variances capped at ``params.max_variance``).  None: the heaviest
        ``background_ratio``.
    consensus : numpy.ndarray or None
        ``(Y, X)`` uint8: how far (pixels) each pixel looks for a neighbour whose
        background explains it; 0: it does not (None: no pixel does).
    """

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    dtype: np.dtype
    grey: bool
    intensity: IntensityScale
    params: FitParameters
    learning_indices: np.ndarray
    flags: np.ndarray | None = None
    consensus: np.ndarray | None = None
    _scoring: dict = field(default_factory=dict, repr=False)

    # --- shape -----------------------------------------------------------------
    @property
    def frame_shape(self) -> tuple[int, int]:
        """``(Y, X)`` of the frames the model scores."""
        return self.weights.shape[0], self.weights.shape[1]

    @property
    def n_components(self) -> int:
        """Components per pixel."""
        return self.weights.shape[2]

    @property
    def n_channels(self) -> int:
        """1 (grey) or 3 (RGB)."""
        return self.means.shape[3]

    @property
    def threshold(self) -> float:
        """The default foreground threshold of this model (distance, standard deviations)."""
        if self.params.threshold is not None:
            return float(self.params.threshold)
        return DEFAULT_DISTANCE

    @property
    def background_ratio(self) -> float:
        """Cumulative weight of the background components."""
        return self.params.background_ratio

    # --- background components -------------------------------------------------
    def n_background(self) -> np.ndarray:
        """Count each pixel's background components.

        Returns
        -------
        numpy.ndarray
            ``(Y, X)`` uint8: the fewest heaviest components whose weights add up to more
            than ``background_ratio`` (all of them if they never do).
        """
        return weight_rule_count(self.weights, self.background_ratio)

    def background_flags(self) -> np.ndarray:
        """Flag each pixel's background components.

        Returns
        -------
        numpy.ndarray
            ``(Y, X, K)`` uint8, nonzero for a background component (see :attr:`flags`).
        """
        if self.flags is not None:
            return self.flags
        nb = self.n_background()
        return (np.arange(self.n_components) < nb[..., None]).astype(np.uint8)

    def _scoring_arrays(self) -> dict:
        # Precomputed once, laid out for the kernels (component, channel, pixel): the
        # renormalised background weights folded into the log-likelihood constants, and
        # components that are not background given a constant no pixel can reach.
        if not self._scoring:
            flags = self.background_flags()
            n_pix = self.frame_shape[0] * self.frame_shape[1]
            k, c = self.n_components, self.n_channels
            flat = np.ascontiguousarray(flags.reshape(n_pix, k))
            arrays = _kernels.scoring_arrays(
                self.weights.reshape(n_pix, k),
                self.means.reshape(n_pix, k, c),
                self.variances.reshape(n_pix, k, c),
                flat,
                NOT_BACKGROUND,
                self.params.max_variance,
            )
            ready = dict(
                zip(("means", "inv_var", "log_const", "distance_const"), arrays, strict=True)
            )
            ready["is_background"] = np.ascontiguousarray(flat.T != 0)
            # In one step: another thread (the inspector, a dask task) never sees a part.
            self._scoring.update(ready)
        return self._scoring

    # --- scoring ----------------------------------------------------------------
    def _frames(self, frames: Any) -> Frames:
        f = as_frames(frames, name="frames")
        if f.frame_shape != self.frame_shape or f.n_channels != self.n_channels:
            want = self.frame_shape + ((self.n_channels,) if self.n_channels == 3 else ())
            got = f.frame_shape + ((f.n_channels,) if not f.grey else ())
            raise ValueError(f"frames of shape {got} do not match the model's frames {want}")
        if np.dtype(f.dtype) != np.dtype(self.dtype):
            # The intensity scale maps this dtype's values to the model's: another dtype's
            # values would all look like foreground.
            raise ValueError(
                f"frames are {np.dtype(f.dtype)}, but the model was fitted on "
                f"{np.dtype(self.dtype)} frames: convert them, or fit a model on them"
            )
        return f

    def brightness(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Estimate each frame's global brightness against the background.

        Parameters
        ----------
        frames : numpy.ndarray
            ``(T, Y, X, C)`` in-memory frames.

        Returns
        -------
        tuple of numpy.ndarray
            ``(T,)`` gains and lifts (see :func:`brightness_correction`); 1 and 0 when
            brightness compensation is off.  A frame is scored as if its values were
            ``(value - lift) / gain``, so a camera's exposure change or a passing cloud
            does not turn the whole frame into foreground.
        """
        if not self.params.compensate_brightness:
            return np.ones(len(frames)), np.zeros(len(frames))
        s = self._scoring_arrays()
        stride = gain_stride(self.frame_shape)
        if "brightness_reference" not in s:
            background = self.means[::stride, ::stride, 0]
            s["brightness_reference"] = BrightnessReference(background.mean(axis=-1))
        return s["brightness_reference"].correction_of_frames(frames, self.intensity, stride)

    def _kernel_inputs(
        self, block: np.ndarray, constants: str = "distance_const"
    ) -> _ScoringInputs:
        """Gather the scoring kernel's inputs for in-memory frames ``(T, Y, X, C)``."""
        s = self._scoring_arrays()
        t, y, x, c = block.shape
        # With compensation off, brightness() gives gains 1 and lifts 0: no correction.
        offsets, scales = frame_transform(self.intensity, self.brightness(block), t)
        return (
            np.ascontiguousarray(block).reshape(t, y * x * c),
            offsets,
            scales,
            s["means"],
            s["inv_var"],
            s[constants],
        )

    def _radii(self) -> np.ndarray | None:
        """``(P,)`` uint8 consensus radii; None where no pixel consults its neighbours."""
        if self.params.consensus_radius <= 0 or self.consensus is None:
            return None
        radii = np.ascontiguousarray(self.consensus, dtype=np.uint8).reshape(-1)
        return radii if radii.any() else None

    def _consensus(
        self, inputs: _ScoringInputs, radii: np.ndarray, out: np.ndarray, threshold: float = 0.0
    ) -> None:
        """Spatial consensus on ``(T, P)`` labels or distances, in place."""
        _kernels.spatial_consensus(
            *inputs[:5],
            self._scoring_arrays()["is_background"],
            radii,
            self.frame_shape[1],
            NEIGHBOUR_PENALTY,
            out,
            threshold,
        )

    def _score_block(self, block: np.ndarray) -> np.ndarray:
        """Distances of in-memory frames ``(T, Y, X, C)`` -> ``(T, Y, X)`` float32."""
        t, y, x, _ = block.shape
        out = np.empty((t, y * x), dtype=np.float32)
        inputs = self._kernel_inputs(block)
        _kernels.score_pixels(*inputs, out)
        radii = self._radii()
        if radii is not None:
            self._consensus(inputs, radii, out)
        return out.reshape(t, y, x)

    def _log_likelihood_block(self, block: np.ndarray) -> np.ndarray:
        """Log-likelihoods of in-memory frames ``(T, Y, X, C)`` -> ``(T, Y, X)`` float32."""
        t, y, x, _ = block.shape
        out = np.empty((t, y * x), dtype=np.float32)
        _kernels.score_pixels(*self._kernel_inputs(block, "log_const"), out, log_likelihood=True)
        return out.reshape(t, y, x)

    def _raw_labels(
        self, block: np.ndarray, threshold: float, shadows: str = "off", alone: bool = False
    ) -> np.ndarray:
        """Labels of ``(T, Y, X, C)`` frames before any clean-up, ``(T, Y * X)`` uint8.

        Exactly the distances (:meth:`distance`) above ``threshold``: a pixel farther
        than it from its own background is foreground unless, where the consensus map
        allows it (never when ``alone``), a neighbour's background explains its colour.
        """
        t, y, x, _ = block.shape
        out = np.empty((t, y * x), dtype=np.uint8)
        inputs = self._kernel_inputs(block)
        _kernels.score_pixels(
            *inputs,
            out,
            threshold,
            self.params.shadow_tau if shadows != "off" else 0.0,
            SHADOW_DISTORTION,
        )
        radii = None if alone else self._radii()
        if radii is not None:
            self._consensus(inputs, radii, out, threshold)
        return out

    def _labels_block(
        self,
        block: np.ndarray,
        threshold: float,
        region: np.ndarray | None,
        cleanup: MaskCleanup,
        shadows: str,
    ) -> np.ndarray:
        """Label in-memory frames ``(T, Y, X, C)`` -> ``(T, Y, X)`` uint8."""
        t, y, x, _ = block.shape
        out = self._raw_labels(block, threshold, shadows)
        if shadows == "background":
            out[out == 2] = 0
        labels = clean_mask(out.reshape(t, y, x), cleanup, in_place=True)
        if region is not None:  # last, so no clean-up can grow a blob out of the region
            labels[:, ~region] = 0
        return labels

    def distance(self, frames: Any) -> Any:
        """Score each pixel of each frame: its distance to the nearest background colour.

        The distance to a background component is the root-mean-square over the channels
        of ``(value - mean) / standard deviation`` (the standard deviation includes
        ``reg_covar``, so a static pixel's is at least 10 on the 0-255 scale); the score
        is the smallest over the pixel's background components.  Where the model's
        consensus map lets a pixel consult its neighbours, it is the smaller of that and
        ``NEIGHBOUR_PENALTY`` times the distance to a neighbour's background component.
        It is what the threshold compares: a pixel farther than it is foreground.

        Parameters
        ----------
        frames : array-like
            ``(T, Y, X)`` or ``(T, Y, X, 3)`` with the model's frame shape and channels.
            A dask array gives a lazy result computed frame by frame on demand.

        Returns
        -------
        numpy.ndarray or dask.array.Array
            ``(T, Y, X)`` float32 distances (standard deviations, >= 0).

        Raises
        ------
        ValueError
            If the frames do not match the model, or hold NaN or infinity.
        """
        return self._per_frame(frames, _score_checked)

    def log_likelihood(self, frames: Any) -> Any:
        """Log-likelihood of each pixel of each frame under its background components.

        Not what the threshold compares (see :meth:`distance`); kept for analysis.

        Parameters
        ----------
        frames : array-like
            As for :meth:`distance`.

        Returns
        -------
        numpy.ndarray or dask.array.Array
            ``(T, Y, X)`` float32 log-likelihood (nats); low means unlike the background.

        Raises
        ------
        ValueError
            If the frames do not match the model, or hold NaN or infinity.
        """
        return self._per_frame(frames, _log_likelihood_checked)

    def _per_frame(self, frames: Any, score: Any) -> Any:
        f = self._frames(frames)
        if f.is_lazy:
            data = f.data.rechunk({0: 1, 1: -1, 2: -1, 3: -1})
            self._scoring_arrays()  # compute once here, not in every task
            return data.map_blocks(
                score,
                self,
                drop_axis=3,
                dtype=np.float32,
                meta=np.empty((0, 0, 0), np.float32),
            )
        return score(f.read(slice(None)), self, checked=True)

    def foreground(
        self,
        frames: Any,
        threshold: float | None = None,
        region: np.ndarray | None = None,
        cleanup: MaskCleanup | None = None,
        shadows: str | None = None,
    ) -> Any:
        """Label each pixel of each frame: background (0), foreground (1) or shadow (2).

        Parameters
        ----------
        frames : array-like
            As for :meth:`distance`.
        threshold : float, optional
            Distance (:meth:`distance`) above which a pixel is foreground; the model's
            :attr:`threshold` when None.
        region : numpy.ndarray, optional
            ``(Y, X)`` boolean: nothing outside it is called foreground.
        cleanup : MaskCleanup, optional
            Spatial clean-up of each frame's mask; the model's default
            (``params.cleanup``) when None, ``MaskCleanup.none()`` for the raw mask.
        shadows : {"off", "show", "background"}, optional
            Shadow detection: "show" labels shadows 2, "background" counts them as
            background (0), "off" leaves them foreground; the model's ``params.shadows``
            when None.

        Returns
        -------
        numpy.ndarray or dask.array.Array
            ``(T, Y, X)`` uint8 labels: 0 background, 1 foreground, 2 shadow.  Lazy for
            a dask input.
        """
        threshold = self.threshold if threshold is None else float(threshold)
        if not (math.isfinite(threshold) and threshold > 0):
            raise ValueError(f"threshold must be a distance above 0, got {threshold}")
        if region is not None:
            region = np.asarray(region, dtype=bool)
            if region.shape != self.frame_shape:
                raise ValueError(
                    f"region of shape {region.shape} does not match the frames {self.frame_shape}"
                )
        cleanup = (self.params.cleanup if cleanup is None else cleanup).for_frame(self.frame_shape)
        cleanup.validate()
        shadows = self.params.shadows if shadows is None else shadows
        check_shadows(shadows)
        f = self._frames(frames)
        if f.is_lazy:
            data = f.data.rechunk({0: 1, 1: -1, 2: -1, 3: -1})
            self._scoring_arrays()  # compute once here, not in every task
            return data.map_blocks(
                _labels_checked,
                self,
                threshold,
                region,
                cleanup,
                shadows,
                drop_axis=3,
                dtype=np.uint8,
                meta=np.empty((0, 0, 0), np.uint8),
            )
        return self._labels_block(f.read(slice(None)), threshold, region, cleanup, shadows)

    def background_image(self) -> np.ndarray:
        """Return the mean background: the mean of each pixel's heaviest component.

        The heaviest component is the colour a pixel shows most of the time.  Averaging
        all background components instead would blend in objects that passed often
        enough to count as background.

        Returns
        -------
        numpy.ndarray
            ``(Y, X)`` or ``(Y, X, 3)`` in the dtype of the fitted video.
        """
        image = self.intensity.to_raw(self.means[:, :, 0], self.dtype)
        return image[..., 0] if self.grey else image

    # --- persistence ------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Save the model to a ``.npz`` file, atomically.

        Parameters
        ----------
        path : str or os.PathLike
            Destination; written to a temporary file in the same folder and renamed, so an
            existing file is never left half-written.

        Returns
        -------
        pathlib.Path
            The path written.
        """
        path = Path(path)
        meta = {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "dtype": np.dtype(self.dtype).str,
            "grey": self.grey,
            "intensity": [self.intensity.offset, self.intensity.scale],
            "params": dataclasses.asdict(self.params),
        }
        arrays: dict[str, Any] = {
            "weights": self.weights,
            "means": self.means,
            "variances": self.variances,
            "learning_indices": self.learning_indices,
            "flags": self.background_flags(),
            "consensus": (
                np.zeros(self.frame_shape, np.uint8) if self.consensus is None else self.consensus
            ),
            "meta": np.array(json.dumps(meta)),
        }
        return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def _labels_checked(
    block: np.ndarray,
    model: BackgroundModel,
    threshold: float,
    region: np.ndarray | None,
    cleanup: MaskCleanup,
    shadows: str,
) -> np.ndarray:
    check_finite(block)
    return model._labels_block(block, threshold, region, cleanup, shadows)


def _score_checked(block: np.ndarray, model: BackgroundModel, checked: bool = False) -> np.ndarray:
    if not checked:
        check_finite(block)
    return model._score_block(block)


def _log_likelihood_checked(
    block: np.ndarray, model: BackgroundModel, checked: bool = False
) -> np.ndarray:
    if not checked:
        check_finite(block)
    return model._log_likelihood_block(block)


def load_model(path: str | os.PathLike) -> BackgroundModel:
    """Load a model written by :meth:`BackgroundModel.save`.

    Nothing in the file is executed (no pickles), and the file is checked before it is
    used: the arrays' headers against the metadata before any data is read (so a
    crafted file cannot make this allocate more than the model it declares), then the
    values: finite, variances above zero, weights in [0, 1] adding up to 1 and sorted,
    a positive intensity scale and valid fit settings.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npz`` file.

    Returns
    -------
    BackgroundModel
        The model, equal to the one saved.

    Raises
    ------
    ValueError
        If the file is missing, unreadable or not a valid saved model (the only
        exception it raises for a bad file).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no model file at {path}")
    try:
        return _read_model(path)
    except ModelFileError as exc:
        raise ValueError(f"{path} is not a saved napari-gmm-bg model: {exc}") from None


_MODEL_ARRAYS = ("weights", "means", "variances", "learning_indices", "flags", "consensus")
#: Bounds of what a saved model can be: pixels per frame (8K is 33 Mpx) and components.
_MAX_MODEL_PIXELS = 2**27
_MAX_COMPONENTS = 255
_VIDEO_DTYPES = ("uint8", "uint16", "float32", "float64")


def _read_model(path: Path) -> BackgroundModel:
    with NpzMembers(path, ("meta", *_MODEL_ARRAYS)) as members:
        shape, dtype, _ = members.headers["meta"]
        if shape != () or dtype.kind != "U" or dtype.itemsize > 4 * MAX_META_CHARS:
            raise ModelFileError(f"its metadata is a {dtype} array of shape {shape}")
        try:
            meta = json.loads(str(members.read("meta")[()]))
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            raise ModelFileError(f"its metadata is not JSON ({exc})") from None
        meta = _checked_meta(meta)
        k, c = meta["params"]["n_components"], 1 if meta["grey"] else 3
        w_shape, _, _ = members.headers["weights"]
        if len(w_shape) != 3 or w_shape[2] != k:
            raise ModelFileError(f"weights of shape {w_shape} for {k} components")
        height, width = w_shape[:2]
        if not (0 < height * width <= _MAX_MODEL_PIXELS and height > 0 and width > 0):
            raise ModelFileError(f"a frame of {height}x{width} pixels")
        want = {
            "weights": (height, width, k),
            "means": (height, width, k, c),
            "variances": (height, width, k, c),
        }
        for name, expected in want.items():
            shape, dtype, _ = members.headers[name]
            if shape != expected or dtype.kind != "f" or dtype.itemsize not in (4, 8):
                raise ModelFileError(f"{name} is {dtype} {shape}, expected float32 {expected}")
        for name, expected, kind in (
            ("flags", (height, width, k), "u"),
            ("consensus", (height, width), "u"),
        ):
            shape, dtype, _ = members.headers[name]
            if shape != expected or dtype.kind != kind or dtype.itemsize != 1:
                raise ModelFileError(f"{name} is {dtype} {shape}, expected {expected}")
        shape, dtype, _ = members.headers["learning_indices"]
        if (
            len(shape) != 1
            or dtype.kind not in "iu"
            or shape[0] > meta["params"]["learning_frames"]
        ):
            raise ModelFileError(f"learning_indices is {dtype} {shape}")
        arrays = {name: members.read(name) for name in _MODEL_ARRAYS}
    weights, means, variances = (
        np.ascontiguousarray(arrays[n], dtype=np.float32)
        for n in ("weights", "means", "variances")
    )
    with np.errstate(invalid="ignore", over="ignore"):
        for name, values in (("weights", weights), ("means", means), ("variances", variances)):
            if not np.isfinite(values).all():
                raise ModelFileError(f"{name} holds NaN or infinite values")
        if not (variances > 0).all():
            raise ModelFileError("variances must be above zero")
        if not ((weights >= 0) & (weights <= 1)).all():
            raise ModelFileError("weights must be in [0, 1]")
        if not np.allclose(weights.sum(axis=-1, dtype=np.float64), 1.0, atol=1e-3):
            raise ModelFileError("a pixel's weights must add up to 1")
        if k > 1 and (np.diff(weights, axis=-1) > 1e-6).any():
            raise ModelFileError("components must be sorted by weight, heaviest first")
    indices = arrays["learning_indices"].astype(np.int64)
    if (indices < 0).any():
        raise ModelFileError("learning_indices must be frame numbers >= 0")
    if (arrays["consensus"] > MAX_CONSENSUS_RADIUS).any():
        raise ModelFileError(f"consensus radii must be in 0..{MAX_CONSENSUS_RADIUS}")
    flags = np.ascontiguousarray(arrays["flags"])
    if (flags > _kernels.BACKGROUND_CAPPED).any() or not (flags != 0).any(axis=-1).all():
        raise ModelFileError("flags must be 0, 1 or 2, with a background component per pixel")
    return BackgroundModel(
        weights=weights,
        means=means,
        variances=variances,
        dtype=np.dtype(meta["dtype"]),
        grey=meta["grey"],
        intensity=IntensityScale(*meta["intensity"]),
        params=meta["params_object"],
        learning_indices=indices,
        flags=flags,
        consensus=np.ascontiguousarray(arrays["consensus"]),
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checked_meta(meta: Any) -> dict:
    """Check the metadata's keys and types; return them with the FitParameters built."""
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise ModelFileError("its metadata does not name the model format")
    if meta.get("version") != MODEL_VERSION:
        raise ModelFileError(
            f"it has model format version {meta.get('version')!r}; "
            f"this napari-gmm-bg reads version {MODEL_VERSION}"
        )
    missing = {"dtype", "grey", "intensity", "params"} - set(meta)
    if missing:
        raise ModelFileError(f"its metadata lacks {', '.join(sorted(missing))}")
    if meta["dtype"] not in [np.dtype(d).str for d in _VIDEO_DTYPES]:
        raise ModelFileError(f"video dtype {meta['dtype']!r} is not one this package fits")
    if not isinstance(meta["grey"], bool):
        raise ModelFileError(f"'grey' is {meta['grey']!r}, not true or false")
    intensity = meta["intensity"]
    if not (
        isinstance(intensity, list)
        and len(intensity) == 2
        and all(_is_number(v) and math.isfinite(v) for v in intensity)
        and intensity[1] > 0
    ):
        raise ModelFileError(f"intensity scale {intensity!r} is not [offset, scale > 0]")
    meta["params_object"] = _checked_params(meta["params"])
    meta["params"] = dataclasses.asdict(meta["params_object"])
    return meta


def _checked_params(p: Any) -> FitParameters:
    fields = {f.name: f for f in dataclasses.fields(FitParameters)}
    if not isinstance(p, dict) or set(p) != set(fields):
        raise ModelFileError("its fit settings are not those of this napari-gmm-bg")
    p = dict(p)
    ints = ("n_components", "learning_frames", "max_iter", "absorb_after", "consensus_radius")
    floats = ("tol", "reg_covar", "background_ratio", "shadow_tau", "max_variance")
    bad = [n for n in ints if not _is_int(p[n])] + [n for n in floats if not _is_number(p[n])]
    if p["threshold"] is not None and not _is_number(p["threshold"]):
        bad.append("threshold")
    if not isinstance(p["compensate_brightness"], bool):
        bad.append("compensate_brightness")
    if not isinstance(p["shadows"], str):
        bad.append("shadows")
    frame_range = p["frame_range"]
    if frame_range is not None and not (
        isinstance(frame_range, list)
        and len(frame_range) == 2
        and all(_is_int(v) and v >= 0 for v in frame_range)
        and frame_range[0] < frame_range[1]
    ):
        bad.append("frame_range")
    cleanup = p["cleanup"]
    cleanup_fields = [f.name for f in dataclasses.fields(MaskCleanup)]
    if not (
        isinstance(cleanup, dict)
        and set(cleanup) == set(cleanup_fields)
        and all(_is_int(v) or (k == "median" and v is None) for k, v in cleanup.items())
    ):
        bad.append("cleanup")
    if bad:
        raise ModelFileError(f"fit settings of the wrong type: {', '.join(bad)}")
    if not 0 < p["n_components"] <= _MAX_COMPONENTS:
        raise ModelFileError(f"n_components {p['n_components']} is not in 1..{_MAX_COMPONENTS}")
    p["frame_range"] = tuple(frame_range) if frame_range else None
    p["cleanup"] = MaskCleanup(**cleanup)
    params = FitParameters(**p)
    try:
        params.validate()
    except ValueError as exc:
        raise ModelFileError(f"invalid fit settings ({exc})") from None
    return params


def learning_indices(
    n_frames: int, learning_frames: int, frame_range: Sequence[int] | None
) -> np.ndarray:
    """Pick the frames a fit learns from: evenly spaced over the frame range.

    Parameters
    ----------
    n_frames : int
        Frames in the clip.
    learning_frames : int
        How many to pick at most.
    frame_range : sequence of two int, optional
        ``(start, stop)``, stop exclusive; the whole clip when None.

    Returns
    -------
    numpy.ndarray
        Sorted, unique frame indices.

    Raises
    ------
    ValueError
        If the range lies outside the clip or is empty.
    """
    start, stop = (
        (0, n_frames) if frame_range is None else (int(frame_range[0]), int(frame_range[1]))
    )
    if not (0 <= start < stop <= n_frames):
        raise ValueError(f"frame range {start}:{stop} is not inside the clip's {n_frames} frames")
    n = min(int(learning_frames), stop - start)
    return np.unique(np.linspace(start, stop - 1, n).round().astype(np.int64))


def _pixel_blocks(height: int, width: int, target_pixels: int) -> list[tuple[int, int]]:
    rows = max(1, target_pixels // max(width, 1))
    return [(y0, min(y0 + rows, height)) for y0 in range(0, height, rows)]


def weight_rule_count(weights: np.ndarray, background_ratio: float) -> np.ndarray:
    """Count each pixel's components in MOG2's weight rule.

    Parameters
    ----------
    weights : numpy.ndarray
        ``(..., K)`` weights, heaviest first.
    background_ratio : float
        The cumulative weight the rule reaches.

    Returns
    -------
    numpy.ndarray
        ``(...)`` uint8: the fewest heaviest components whose weights add up to more than
        ``background_ratio`` (all of them if they never do).
    """
    cumulative = np.cumsum(weights, axis=-1)
    # Count the components needed to pass the ratio, including the one that passes it.
    below = (cumulative < background_ratio - 1e-6).sum(axis=-1) + 1
    return np.minimum(below, weights.shape[-1]).astype(np.uint8)


def _sample_spacing(indices: np.ndarray) -> float:
    # Frames between learning samples, on average (at least 1); two samples at least.
    return max((indices[-1] - indices[0]) / (len(indices) - 1), 1.0)


def _absorb_samples(params: FitParameters, indices: np.ndarray) -> int:
    # absorb_after frames, in learning samples (0: never absorb).
    if params.absorb_after <= 0 or len(indices) < 2:
        return 0
    return max(1, int(params.absorb_after // _sample_spacing(indices)))


def _still_samples(indices: np.ndarray) -> int:
    # The earliest still moment's length, in learning samples: STILL_SAMPLES of them,
    # spanning STILL_FRAMES frames at least.
    if len(indices) < 2:
        return STILL_SAMPLES
    return max(STILL_SAMPLES, math.ceil(STILL_FRAMES / _sample_spacing(indices)))


def _short_still(still: int) -> int:
    # The shorter, earlier still moment: half the long one, two samples at least.
    return max(2, math.ceil(still / 2))


def choose_pixel_background(
    samples: np.ndarray,
    intensity: IntensityScale,
    params: FitParameters,
    weights: np.ndarray,
    means: np.ndarray,
    variances: np.ndarray,
    absorb: int = 0,
    still: int = STILL_SAMPLES,
) -> np.ndarray:
    """Flag each pixel's background components from its learning samples (see fit_tile).

    Parameters
    ----------
    samples : numpy.ndarray
        ``(N, P, C)`` learning samples in time order, in the video's dtype.
    intensity : IntensityScale
        How raw values map to the model's scale.
    params : FitParameters
        The weight rule's ratio and the largest background variance.
    weights, means, variances : numpy.ndarray
        The fit: ``(P, K)`` and ``(P, K, C)`` float32, heaviest component first.
    absorb : int
        Rests longer than this many learning samples are background (0: none are).
    still : int
        The earliest still moment lasts this many learning samples.

    Returns
    -------
    numpy.ndarray
        ``(P, K)`` uint8 flags (see :attr:`BackgroundModel.flags`).
    """
    offsets, scales = frame_transform(intensity, None, len(samples))
    return _kernels.choose_background(
        samples,
        offsets,
        scales,
        weights,
        means,
        variances,
        weight_rule_count(weights, params.background_ratio),
        STILL_WEIGHT,
        still,
        _short_still(still),
        SHORT_STILL_RATIO,
        REST_SAMPLES,
        REST_SHARE,
        params.max_variance,
        absorb,
    )


def fit_tile(
    tile: np.ndarray,
    intensity: IntensityScale,
    params: FitParameters,
    absorb: int = 0,
    still: int = STILL_SAMPLES,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit the pixels of one tile of the learning buffer and choose their background.

    Each pixel's fit depends on its own samples only (deterministic start, independent
    EM), so a frame fitted tile by tile, anywhere, equals the frame fitted whole.  The
    learning frames are fitted as they are (no brightness correction: a robust gain
    needs a background first, and the still moments the background choice looks for
    are the frames' own colours).

    Parameters
    ----------
    tile : numpy.ndarray
        ``(N, rows, X, C)`` learning samples in time order, in the video's dtype.
    intensity : IntensityScale
        How raw values map to the model's scale.
    params : FitParameters
        Components, iterations, tolerance, variance floor and background choice.
    absorb : int
        Rests longer than this many learning samples are background (0: none are).
    still : int
        The earliest still moment lasts this many learning samples.

    Returns
    -------
    tuple of numpy.ndarray
        Weights ``(rows, X, K)``, means and variances ``(rows, X, K, C)``, float32, the
        components sorted by weight, heaviest first, and their background flags
        ``(rows, X, K)`` uint8 (see :attr:`BackgroundModel.flags`).
    """
    n, rows, width, c = tile.shape
    k = params.n_components
    offsets, scales = frame_transform(intensity, None, n)
    samples = tile.reshape(n, rows * width, c)
    w, mu, var = _kernels.fit_pixels(
        samples, offsets, scales, k, params.max_iter, params.tol, params.reg_covar
    )
    flags = choose_pixel_background(samples, intensity, params, w, mu, var, absorb, still)
    return (
        w.reshape(rows, width, k),
        mu.reshape(rows, width, k, c),
        var.reshape(rows, width, k, c),
        flags.reshape(rows, width, k),
    )


def consensus_map(model: BackgroundModel, learning: np.ndarray) -> np.ndarray:
    """How far each pixel looks for a neighbour's background, judged on the learning frames.

    A pixel consults its neighbours within radius r when, on the learning frames, a
    background within r explained at least :data:`CONSENSUS_SHARE` of the frames in
    which its own background did not (and at least :data:`CONSENSUS_MIN_SAVES` of them):
    leaves, water, an edge that shakes.  It gets the smallest such r up to
    ``params.consensus_radius``, the neighbourhood sized by evidence; elsewhere (0) it
    decides alone, so a small object on a plain background is not explained away.

    Parameters
    ----------
    model : BackgroundModel
        The fitted model (its ``consensus`` is not used).
    learning : numpy.ndarray
        ``(N, Y, X, C)`` its learning frames.

    Returns
    -------
    numpy.ndarray
        ``(Y, X)`` uint8 radii.
    """
    height, width = model.frame_shape
    radii = np.zeros(height * width, np.uint8)
    if model.params.consensus_radius <= 0:
        return radii.reshape(height, width)
    # As the fit saw them: no brightness correction.
    plain = dataclasses.replace(
        model, params=dataclasses.replace(model.params, compensate_brightness=False)
    )
    plain._scoring = model._scoring_arrays()
    alone = plain._raw_labels(learning, model.threshold, alone=True)
    inputs = plain._kernel_inputs(learning)
    fails = (alone != 0).sum(axis=0)
    undecided = np.ones(height * width, bool)
    for r in range(1, model.params.consensus_radius + 1):
        if not undecided.any():
            break
        helped = alone.copy()
        plain._consensus(
            inputs, np.where(undecided, r, 0).astype(np.uint8), helped, model.threshold
        )
        saves = ((alone != 0) & (helped == 0)).sum(axis=0)
        share = CONSENSUS_SHARE if r == 1 else WIDER_SHARE
        helps = undecided & (saves >= share * np.maximum(fails, 1))
        helps &= saves >= CONSENSUS_MIN_SAVES
        radii[helps] = r
        undecided &= ~helps
    return radii.reshape(height, width)


def _fit_locally(
    frames: Frames, indices: np.ndarray, params: FitParameters
) -> Generator[tuple[int, int], None, tuple]:
    """Gather the learning frames here, then fit tile by tile.

    Yields progress while reading; returns the tiles (a lazy iterator of
    ``((y0, y1), fit)``), the progress done so far, the total, the intensity scale and
    the learning frames.
    """
    height, width = frames.frame_shape
    blocks = _pixel_blocks(height, width, LOCAL_TILE_PIXELS)
    # Progress: one unit per chunk of frames read, one per tile fitted.
    read_chunks = [indices[i : i + 8] for i in range(0, len(indices), 8)]
    total = len(read_chunks) + len(blocks)
    yield 0, total
    buffer = np.empty((len(indices), height, width, frames.n_channels), dtype=frames.dtype)
    pos = 0
    for done, chunk in enumerate(read_chunks, start=1):
        buffer[pos : pos + len(chunk)] = frames.read(chunk.tolist())
        pos += len(chunk)
        yield done, total
    intensity = IntensityScale.for_data(frames.dtype, buffer)
    absorb, still = _absorb_samples(params, indices), _still_samples(indices)
    tiles = (
        (rows, fit_tile(buffer[:, rows[0] : rows[1]], intensity, params, absorb, still))
        for rows in blocks
    )
    return tiles, len(read_chunks), total, intensity, buffer


def _fit_on_cluster(
    frames: Frames, indices: np.ndarray, params: FitParameters, client: Any
) -> tuple[Any, int, int, IntensityScale]:
    """Fit tiles of rows as tasks on a dask.distributed cluster.

    The learning frames are read where the tasks run (from a dask video, the workers
    read their own chunks; a numpy video travels in the graph), so a worker lost
    mid-fit only costs its tasks, which the scheduler recomputes elsewhere.
    """
    height, width = frames.frame_shape
    blocks = _pixel_blocks(height, width, CLUSTER_TILE_PIXELS)
    rows = blocks[0][1] - blocks[0][0]
    data = frames.data
    if not isinstance(data, da.Array):
        data = da.from_array(data, chunks=(1, rows, -1, -1))
    by_tile = {0: -1, 1: rows, 2: -1}
    learn = data[indices].rechunk({**by_tile, 3: -1})
    if frames.had_alpha:
        alpha = frames.alpha
        if not isinstance(alpha, da.Array):
            alpha = da.from_array(alpha, chunks=(1, rows, -1))
        alpha_tiles = alpha[indices].rechunk(by_tile).to_delayed().ravel()
    else:
        alpha_tiles = [None] * len(blocks)
    if frames.dtype.kind == "f":
        low, high = client.compute([learn.min(), learn.max()], sync=True)
        intensity = IntensityScale.for_data(frames.dtype, np.array([low, high]))
    else:
        intensity = IntensityScale.for_data(frames.dtype, np.empty(0))
    absorb, still = _absorb_samples(params, indices), _still_samples(indices)
    fit = dask.delayed(_fit_tile_checked)
    tasks = [
        fit(tile, alpha, intensity, params, absorb, still)
        for tile, alpha in zip(learn.to_delayed().ravel(), alpha_tiles, strict=True)
    ]
    futures = client.compute(tasks)
    return cluster_results(futures, blocks, client), 0, len(blocks), intensity


def _fit_tile_checked(
    tile: np.ndarray,
    alpha: np.ndarray | None,
    intensity: IntensityScale,
    params: FitParameters,
    absorb: int,
    still: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    # The checks Frames.read makes locally, made where the pixels are read.
    check_finite(tile)
    if alpha is not None:
        check_opaque(alpha)
    return fit_tile(tile, intensity, params, absorb, still)


def fit_background_steps(
    video: Any,
    n_components: int = FitParameters.n_components,
    *,
    learning_frames: int = FitParameters.learning_frames,
    frame_range: tuple[int, int] | None = None,
    max_iter: int = FitParameters.max_iter,
    tol: float = FitParameters.tol,
    reg_covar: float = FitParameters.reg_covar,
    background_ratio: float = FitParameters.background_ratio,
    threshold: float | None = None,
    cleanup: MaskCleanup | None = None,
    compensate_brightness: bool = FitParameters.compensate_brightness,
    shadows: str = FitParameters.shadows,
    shadow_tau: float = FitParameters.shadow_tau,
    max_variance: float = FitParameters.max_variance,
    absorb_after: int = FitParameters.absorb_after,
    consensus_radius: int = FitParameters.consensus_radius,
    client: Any = None,
) -> Generator[tuple[int, int], None, BackgroundModel]:
    """Fit like :func:`fit_background`, yielding ``(done, total)`` progress steps.

    A generator for GUIs and cancellable workers: stop iterating to cancel.  The model
    is the generator's return value (``model = yield from fit_background_steps(...)``).

    Parameters
    ----------
    video, n_components, learning_frames, frame_range, max_iter, tol, reg_covar
        See :func:`fit_background`.
    background_ratio, threshold, cleanup, compensate_brightness, shadows, shadow_tau
        See :func:`fit_background`.
    max_variance, absorb_after, consensus_radius
        See :func:`fit_background`.
    client
        See :func:`fit_background`.

    Yields
    ------
    tuple of int
        ``(done, total)`` work units.

    Returns
    -------
    BackgroundModel
        The fitted model.
    """
    params = FitParameters(
        n_components=int(n_components),
        learning_frames=int(learning_frames),
        frame_range=None if frame_range is None else (int(frame_range[0]), int(frame_range[1])),
        max_iter=int(max_iter),
        tol=float(tol),
        reg_covar=float(reg_covar),
        background_ratio=float(background_ratio),
        threshold=None if threshold is None else float(threshold),
        cleanup=MaskCleanup() if cleanup is None else cleanup,
        compensate_brightness=bool(compensate_brightness),
        shadows=shadows,
        shadow_tau=float(shadow_tau),
        max_variance=float(max_variance),
        absorb_after=int(absorb_after),
        consensus_radius=int(consensus_radius),
    )
    params.validate()
    frames = as_frames(video)
    params = dataclasses.replace(params, cleanup=params.cleanup.for_frame(frames.frame_shape))
    if frames.n_frames < 2:
        raise ValueError(
            f"video has {frames.n_frames} frame; a background fit needs at least 2 frames"
        )
    indices = learning_indices(frames.n_frames, params.learning_frames, params.frame_range)
    if len(indices) < params.n_components:
        raise ValueError(
            f"only {len(indices)} learning frames for {params.n_components} components; "
            "use more frames or fewer components"
        )
    height, width = frames.frame_shape
    k, c = params.n_components, frames.n_channels
    weights = np.empty((height, width, k), np.float32)
    means = np.empty((height, width, k, c), np.float32)
    variances = np.empty((height, width, k, c), np.float32)
    flags = np.empty((height, width, k), np.uint8)
    own_client = None  # a client made here, for an address: closed when the fit ends
    tiles: Any = None
    learning: np.ndarray | None = None
    try:
        if client is None:
            tiles, done, total, intensity, learning = yield from _fit_locally(
                frames, indices, params
            )
        else:
            connected = as_client(client)
            own_client = connected if connected is not client else None
            tiles, done, total, intensity = _fit_on_cluster(frames, indices, params, connected)
            yield done, total
        for (y0, y1), (w, mu, var, fl) in tiles:
            weights[y0:y1], means[y0:y1], variances[y0:y1], flags[y0:y1] = w, mu, var, fl
            done += 1
            yield done, total
    finally:
        # The tiles first: a cluster's generator cancels its futures on its client,
        # which must still be open.
        if tiles is not None and hasattr(tiles, "close"):
            tiles.close()
        if own_client is not None:
            own_client.close()

    model = BackgroundModel(
        weights=weights,
        means=means,
        variances=variances,
        dtype=np.dtype(frames.dtype),
        grey=frames.grey,
        intensity=intensity,
        params=params,
        learning_indices=indices,
        flags=flags,
    )
    if params.consensus_radius > 0:
        # The map needs whole frames (neighbours across tiles): on a cluster, the
        # learning frames are read here once more.
        if learning is None:
            learning = frames.read(indices.tolist())
        model.consensus = consensus_map(model, learning)
    return model


def fit_background(
    video: Any,
    n_components: int = FitParameters.n_components,
    *,
    learning_frames: int = FitParameters.learning_frames,
    frame_range: tuple[int, int] | None = None,
    max_iter: int = FitParameters.max_iter,
    tol: float = FitParameters.tol,
    reg_covar: float = FitParameters.reg_covar,
    background_ratio: float = FitParameters.background_ratio,
    threshold: float | None = None,
    cleanup: MaskCleanup | None = None,
    compensate_brightness: bool = FitParameters.compensate_brightness,
    shadows: str = FitParameters.shadows,
    shadow_tau: float = FitParameters.shadow_tau,
    max_variance: float = FitParameters.max_variance,
    absorb_after: int = FitParameters.absorb_after,
    consensus_radius: int = FitParameters.consensus_radius,
    client: Any = None,
) -> BackgroundModel:
    """Fit a Gaussian mixture to every pixel's colour over time.

    Parameters
    ----------
    video : array-like
        ``(T, Y, X)`` grey or ``(T, Y, X, 3)`` RGB (RGBA with fully opaque alpha is
        accepted, the alpha dropped); uint8, uint16 or float; numpy or dask.  Only the
        learning frames are read.
    n_components : int
        Gaussians per pixel.
    learning_frames : int
        How many frames, evenly spaced over ``frame_range``, the fit learns from.
    frame_range : tuple of int, optional
        ``(start, stop)`` frames to learn from (stop exclusive); the whole clip if None.
    max_iter : int
        EM iterations at most.
    tol : float
        Per-pixel convergence tolerance on the mean log-likelihood; 0 runs every
        iteration.
    reg_covar : float
        Added to each variance, on a 0-255 intensity scale (scikit-learn's ``reg_covar``).
    background_ratio : float
        The heaviest components whose weights add up to this are background (with the
        colour of the earliest still moment, less objects at rest and catch-alls).
    threshold : float, optional
        Default foreground threshold of the model: a distance in standard deviations
        (see :meth:`BackgroundModel.distance`); 1.0 when None.
    cleanup : MaskCleanup, optional
        Default spatial clean-up of the model's masks; when None, a median filter sized
        to the frame (5% of its size: 13x13 at 320x240).
    compensate_brightness : bool
        Divide each scored frame by its gain against the background's luminance (a
        robust ratio), so a camera's exposure change or a passing cloud floods no
        frame.
    shadows : {"off", "show", "background"}
        Default shadow handling of the model's masks: "show" labels pixels that are the
        background darkened by a factor in [shadow_tau, 1) with little colour change 2,
        "background" counts them as background, "off" leaves them foreground.
    shadow_tau : float
        The strongest darkening a shadow may cause (MOG2's ShadowThreshold).
    max_variance : float
        A component whose mean variance (0-255 scale) exceeds this is not background.
    absorb_after : int
        0: an object that arrives and stays is foreground all the while it stays (as
        CDnet's ground truth has it).  N > 0: a change that lasts more than N frames is
        background.
    consensus_radius : int
        A pixel that the background of a neighbour at most this far away explains is
        background, where the learning frames show that this helps (leaves, water,
        camera shake); 0 turns it off.
    client : distributed.Client or str, optional
        Fit on a dask.distributed cluster (a client, or a scheduler address): the frame
        is cut into tiles of rows fitted on the workers; the result equals a local fit.

    Returns
    -------
    BackgroundModel
        The fitted model.

    Raises
    ------
    ValueError
        On a video that is not a video (2-D, a single frame, an unsupported dtype or
        channel count, transparent RGBA, NaN or infinity), fewer learning frames than
        components, or settings out of range.

    Examples
    --------
    >>> from napari_gmm_bg import fit_background, make_sample
    >>> sample = make_sample("moving-shapes", n_frames=30, shape=(48, 64))
    >>> model = fit_background(sample.video)
    >>> model.foreground(sample.video).shape
    (30, 48, 64)
    """
    steps = fit_background_steps(
        video,
        n_components,
        learning_frames=learning_frames,
        frame_range=frame_range,
        max_iter=max_iter,
        tol=tol,
        reg_covar=reg_covar,
        background_ratio=background_ratio,
        threshold=threshold,
        cleanup=cleanup,
        compensate_brightness=compensate_brightness,
        shadows=shadows,
        shadow_tau=shadow_tau,
        max_variance=max_variance,
        absorb_after=absorb_after,
        consensus_radius=consensus_radius,
        client=client,
    )
    return finish(steps)


def model_result(model: BackgroundModel, video: Any) -> MethodResult:
    """Wrap a fitted model's result for a clip, as every method gives it.

    Parameters
    ----------
    model : BackgroundModel
        The fitted model.
    video : array-like
        The clip it scores (numpy gives numpy results, dask gives lazy ones).

    Returns
    -------
    MethodResult
        Labels and distances (computed when first asked for), background, model.
    """
    return MethodResult(
        "gmm",
        model.params,
        lambda: model.foreground(video),
        lambda: model.distance(video),
        background=model.background_image(),
        threshold=model.threshold,
        model=model,
        relabel=lambda threshold=None, cleanup=None, shadows=None, region=None: model.foreground(
            video, threshold, region, cleanup, shadows
        ),
    )


def _method_steps(video: Any, params: FitParameters) -> Steps:
    values = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
    model = yield from fit_background_steps(video, **values)
    return model_result(model, video)


METHOD = Method(
    name="gmm",
    title="GMM",
    settings_type=FitParameters,
    run_steps=_method_steps,
    score_name="distance",
    score_unit="standard deviations",
    foreground_above=True,
    comparison=False,
)
