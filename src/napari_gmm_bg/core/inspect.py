"""What the model sees at one pixel: its samples over time, scores and components.

Pure functions behind the napari pixel inspector, usable from a notebook too.
"""

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .frames import as_frames
from .gmm import BackgroundModel
from .intensity import frame_transform


@dataclass(frozen=True)
class PixelComponents:
    """One pixel's mixture, in the video's own intensity units.

    Attributes
    ----------
    weights : numpy.ndarray
        ``(K,)``, heaviest first.
    means : numpy.ndarray
        ``(K, C)``.
    stds : numpy.ndarray
        ``(K, C)`` standard deviations.
    background : numpy.ndarray
        ``(K,)`` bool: the components the pixel is scored against.
    """

    weights: np.ndarray
    means: np.ndarray
    stds: np.ndarray
    background: np.ndarray


def pixel_components(model: BackgroundModel, y: int, x: int) -> PixelComponents:
    """Return a pixel's components in the video's intensity units.

    Parameters
    ----------
    model : BackgroundModel
        The fitted model.
    y, x : int
        The pixel.

    Returns
    -------
    PixelComponents
        Weights, means, standard deviations and which are background.
    """
    scale, offset = model.intensity.scale, model.intensity.offset
    return PixelComponents(
        weights=model.weights[y, x].astype(np.float64),
        means=model.means[y, x] / scale + offset,
        stds=np.sqrt(model.variances[y, x]) / scale,
        background=model.background_flags()[y, x] != 0,
    )


def pixel_history_steps(
    video: Any, y: int, x: int, chunk: int = 64
) -> Generator[tuple[int, int, np.ndarray], None, np.ndarray]:
    """Read one pixel's values over time, chunk by chunk.

    Parameters
    ----------
    video : array-like
        ``(T, Y, X[, C])``, numpy or dask.
    y, x : int
        The pixel.
    chunk : int
        Frames read per step.

    Yields
    ------
    tuple
        Frames read so far, frames in all, and the samples read so far ``(n, C)``.

    Returns
    -------
    numpy.ndarray
        ``(T, C)`` samples.
    """
    frames = as_frames(video)
    height, width = frames.frame_shape
    if not (0 <= y < height and 0 <= x < width):
        raise ValueError(f"pixel ({y}, {x}) is outside the {width}x{height} frame")
    n = frames.n_frames
    samples = np.empty((n, frames.n_channels), dtype=frames.dtype)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        block = frames.data[start:stop, y, x]
        samples[start:stop] = np.asarray(block.compute() if hasattr(block, "compute") else block)
        yield stop, n, samples[:stop]
    return samples


def pixel_log_likelihood(
    model: BackgroundModel,
    y: int,
    x: int,
    samples: np.ndarray,
    correction: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Score a pixel's samples under its background components.

    Parameters
    ----------
    model : BackgroundModel
        The fitted model.
    y, x : int
        The pixel.
    samples : numpy.ndarray
        ``(n, C)`` values in the video's dtype.
    correction : tuple of numpy.ndarray, optional
        The frames' brightness gains and lifts (:meth:`BackgroundModel.brightness`);
        none when None.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` float32 log-likelihood, as :meth:`BackgroundModel.log_likelihood` gives.
    """
    s = model._scoring_arrays()  # laid out (component, channel, pixel)
    p = y * model.frame_shape[1] + x
    bg = s["is_background"][:, p]
    values = _model_scale(model, samples, correction)
    diff = values[:, None, :] - s["means"][bg, :, p].astype(np.float64)[None]
    inv_var = s["inv_var"][bg, :, p][None]
    terms = s["log_const"][bg, p][None] - 0.5 * (diff**2 * inv_var).sum(-1)
    top = terms.max(axis=1, keepdims=True)
    return (top[:, 0] + np.log(np.exp(terms - top).sum(axis=1))).astype(np.float32)


def _model_scale(
    model: BackgroundModel, samples: np.ndarray, correction: tuple | None
) -> np.ndarray:
    offsets, scales = frame_transform(model.intensity, correction, len(samples))
    return (samples.astype(np.float64) - offsets[:, None]) * scales[:, None]


def _nearest(values: np.ndarray, s: dict, pixels: list[int]) -> np.ndarray:
    # The smallest squared distance (summed over channels) of each sample to a background
    # component of any of the pixels.
    best = np.full(len(values), np.inf)
    for q in pixels:
        bg = s["is_background"][:, q]
        diff = values[:, None, :] - s["means"][bg, :, q].astype(np.float64)[None]
        d2 = (diff**2 * s["inv_var"][bg, :, q].astype(np.float64)[None]).sum(-1)
        best = np.minimum(best, d2.min(axis=1))
    return best


def pixel_distance(
    model: BackgroundModel,
    y: int,
    x: int,
    samples: np.ndarray,
    correction: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Score a pixel's samples as :meth:`BackgroundModel.distance` does.

    The distance to the nearest of the pixel's background components (standard
    deviations) or, where the model consults neighbours at this pixel, to a
    neighbour's background times the consensus penalty, if that is smaller.

    Parameters
    ----------
    model : BackgroundModel
        The fitted model.
    y, x : int
        The pixel.
    samples : numpy.ndarray
        ``(n, C)`` values in the video's dtype.
    correction : tuple of numpy.ndarray, optional
        The frames' brightness gains and lifts (:meth:`BackgroundModel.brightness`);
        none when None.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` float32 distances (computed in float64: equal to the distance layer's
        values to float32 rounding).
    """
    from .gmm import NEIGHBOUR_PENALTY

    s = model._scoring_arrays()
    height, width = model.frame_shape
    values = _model_scale(model, samples, correction)
    c = values.shape[1]
    own = np.sqrt(_nearest(values, s, [y * width + x]) / c)
    radius = 0 if model.consensus is None else int(model.consensus[y, x])
    if model.params.consensus_radius > 0 and radius > 0:
        around = [
            yy * width + xx
            for yy in range(max(0, y - radius), min(height, y + radius + 1))
            for xx in range(max(0, x - radius), min(width, x + radius + 1))
            if (yy, xx) != (y, x)
        ]
        nearby = np.sqrt(_nearest(values, s, around) / c) * float(NEIGHBOUR_PENALTY)
        own = np.where(own > 0, np.minimum(own, nearby), own)
    return own.astype(np.float32)


def precision_recall_curve(
    scores: Any,
    truth: Any,
    roi: np.ndarray | None = None,
    frames: range | None = None,
    n_thresholds: int = 60,
) -> dict[str, np.ndarray]:
    """Precision and recall of ``scores > threshold`` over a range of thresholds.

    The raw decision, before any clean-up.  Ground truth as in
    :func:`napari_gmm_bg.core.metrics.confusion`.

    Parameters
    ----------
    scores : array-like
        ``(T, Y, X)`` distances (numpy or dask): the higher, the more foreground.
    truth : array-like
        ``(T, Y, X)`` ground truth.
    roi : numpy.ndarray, optional
        ``(Y, X)`` region scored.
    frames : range, optional
        Frames scored; all when None.
    n_thresholds : int
        Points on the curve.

    Returns
    -------
    dict
        ``threshold``, ``precision``, ``recall`` arrays.
    """
    from .metrics import check_frame_range, scored_pixels

    frames = range(scores.shape[0]) if frames is None else frames
    check_frame_range(frames, scores.shape[0])
    positives, negatives = [], []
    for t in frames:
        ll = np.asarray(scores[t])
        gt = np.asarray(truth[t])
        pos, neg = scored_pixels(gt, roi)
        positives.append(ll[pos])
        negatives.append(ll[neg])
    pos_ll = np.concatenate(positives)
    neg_ll = np.concatenate(negatives)
    both = np.concatenate([pos_ll, neg_ll])
    thresholds = np.unique(np.quantile(both, np.linspace(0.4, 0.995, n_thresholds)))
    pos_sorted, neg_sorted = np.sort(pos_ll), np.sort(neg_ll)
    tp = len(pos_sorted) - np.searchsorted(pos_sorted, thresholds, side="right")
    fp = len(neg_sorted) - np.searchsorted(neg_sorted, thresholds, side="right")
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        recall = tp / max(len(pos_ll), 1)
    return {"threshold": thresholds, "precision": precision, "recall": recall}
