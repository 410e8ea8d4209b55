"""Change-detection metrics with CDnet's definitions, and per-frame mask statistics.

Ground truth comes in two kinds.  CDnet's: 0 static and 50 hard shadow are negatives,
255 moving is positive, 85 (outside the region of interest) and 170 (unknown motion at
object borders) are not scored.  Plain binary: 0 negative, 1 positive.  Predicted masks
use this package's labels: 1 is foreground; 0 and 2 (shadow) are background, as CDnet
scores its own shadow label.
"""

from collections.abc import Generator
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from ._steps import finish

CDNET_VALUES = frozenset({0, 50, 85, 170, 255})
METRIC_NAMES = (
    "recall",
    "specificity",
    "fpr",
    "fnr",
    "pwc",
    "precision",
    "f_measure",
)


@dataclass(frozen=True)
class Confusion:
    """Counts of true/false positives/negatives over the scored pixels."""

    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    def __add__(self, other: "Confusion") -> "Confusion":
        return Confusion(
            self.tp + other.tp, self.fp + other.fp, self.tn + other.tn, self.fn + other.fn
        )

    def metrics(self) -> dict[str, float]:
        """Recall, specificity, FPR, FNR, PWC, precision and F-measure (CDnet's formulas).

        Returns
        -------
        dict
            Keyed by :data:`METRIC_NAMES`; a ratio whose denominator is 0 is NaN.
        """
        tp, fp, tn, fn = self.tp, self.fp, self.tn, self.fn

        def ratio(a: float, b: float) -> float:
            return float(a / b) if b else float("nan")

        recall = ratio(tp, tp + fn)
        precision = ratio(tp, tp + fp)
        return {
            "recall": recall,
            "specificity": ratio(tn, tn + fp),
            "fpr": ratio(fp, fp + tn),
            "fnr": ratio(fn, tp + fn),
            "pwc": ratio(100.0 * (fn + fp), tp + fn + fp + tn),
            "precision": precision,
            "f_measure": ratio(2 * precision * recall, precision + recall)
            if not (np.isnan(precision) or np.isnan(recall))
            else float("nan"),
        }

    def as_dict(self) -> dict[str, int]:
        """Return the four counts as a dict."""
        return asdict(self)


def truth_kind(truth: np.ndarray) -> str:
    """Tell CDnet ground truth from plain binary ground truth.

    Parameters
    ----------
    truth : numpy.ndarray
        Ground-truth labels.

    Returns
    -------
    str
        ``"binary"`` (values within {0, 1}) or ``"cdnet"`` (within {0, 50, 85, 170, 255}).

    Raises
    ------
    ValueError
        For any other values.
    """
    values = set(np.unique(truth).tolist())
    if values <= {0, 1}:
        return "binary"
    if values <= CDNET_VALUES:
        return "cdnet"
    unknown = sorted(values - CDNET_VALUES - {1})
    raise ValueError(
        f"ground truth holds values {unknown[:5]} that are neither binary (0/1) nor CDnet "
        "labels (0, 50, 85, 170, 255)"
    )


def scored_pixels(
    truth: np.ndarray, roi: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split ground truth into the pixels scored as positive and as negative.

    Parameters
    ----------
    truth : numpy.ndarray
        CDnet labels (255 positive; 0 and 50 negative; others not scored) or binary 0/1.
    roi : numpy.ndarray, optional
        Boolean, broadcastable to ``truth``: only pixels inside it are scored.

    Returns
    -------
    tuple of numpy.ndarray
        Boolean ``positive`` and ``negative`` masks of ``truth``'s shape.
    """
    if truth_kind(truth) == "binary":
        positive, negative = truth == 1, truth == 0
    else:
        positive, negative = truth == 255, (truth == 0) | (truth == 50)
    if roi is not None:
        roi = np.asarray(roi, dtype=bool)
        positive, negative = positive & roi, negative & roi
    return positive, negative


def confusion(
    predicted: np.ndarray, truth: np.ndarray, roi: np.ndarray | None = None
) -> Confusion:
    """Count TP/FP/TN/FN of a predicted mask against ground truth.

    Parameters
    ----------
    predicted : numpy.ndarray
        Labels: 1 foreground; 0 and 2 (shadow) background.
    truth : numpy.ndarray
        Same shape: CDnet labels or binary 0/1 (see :func:`truth_kind`).
    roi : numpy.ndarray, optional
        Boolean, broadcastable to the frames' shape: only pixels inside it are scored.

    Returns
    -------
    Confusion
        The counts.

    Raises
    ------
    ValueError
        If the shapes differ or the ground truth holds unknown values.

    Examples
    --------
    >>> import numpy as np
    >>> confusion(np.array([1, 1, 0, 0]), np.array([255, 0, 255, 170])).as_dict()
    {'tp': 1, 'fp': 1, 'tn': 0, 'fn': 1}
    """
    predicted = np.asarray(predicted)
    truth = np.asarray(truth)
    if predicted.shape != truth.shape:
        raise ValueError(
            f"mask of shape {predicted.shape} and ground truth of shape {truth.shape} differ"
        )
    positive, negative = scored_pixels(truth, roi)
    called = predicted == 1
    tp = int(np.count_nonzero(called & positive))
    fp = int(np.count_nonzero(called & negative))
    return Confusion(
        tp=tp,
        fp=fp,
        tn=int(np.count_nonzero(negative)) - fp,
        fn=int(np.count_nonzero(positive)) - tp,
    )


def evaluate_mask_steps(
    predicted: Any, truth: Any, roi: np.ndarray | None = None, frames: range | None = None
) -> Generator[tuple[int, int], None, dict[str, float]]:
    """Score like :func:`evaluate_mask`, yielding ``(done, total)`` frames as it goes.

    Parameters
    ----------
    predicted, truth, roi, frames
        See :func:`evaluate_mask`.

    Yields
    ------
    tuple of int
        Frames scored, frames to score.

    Returns
    -------
    dict
        See :func:`evaluate_mask`.
    """
    if tuple(predicted.shape) != tuple(truth.shape):
        raise ValueError(
            f"mask of shape {tuple(predicted.shape)} and ground truth of shape "
            f"{tuple(truth.shape)} differ"
        )
    frames = range(predicted.shape[0]) if frames is None else frames
    check_frame_range(frames, predicted.shape[0])
    if roi is not None and tuple(roi.shape) != tuple(predicted.shape[1:]):
        raise ValueError(
            f"region of shape {tuple(roi.shape)} does not match the frames "
            f"{tuple(predicted.shape[1:])}"
        )
    if roi is not None and not np.asarray(roi).any():
        raise ValueError("nothing to score: the region of interest holds no pixel")
    total = Confusion()
    yield 0, len(frames)
    for done, t in enumerate(frames, start=1):
        total = total + confusion(np.asarray(predicted[t]), np.asarray(truth[t]), roi)
        if done % 16 == 0 or done == len(frames):
            yield done, len(frames)
    if total.tp + total.fp + total.tn + total.fn == 0:
        where = " inside the region of interest" if roi is not None else ""
        raise ValueError(
            f"nothing to score: no pixel of frames {frames.start}:{frames.stop}{where} "
            "has a ground-truth label (0 background, 50 shadow, 255 motion)"
        )
    return {**total.metrics(), **total.as_dict()}


def evaluate_mask(
    predicted: Any, truth: Any, roi: np.ndarray | None = None, frames: range | None = None
) -> dict[str, float]:
    """Score a mask stack against ground truth, frame by frame (lazy stacks welcome).

    Parameters
    ----------
    predicted, truth : array-like
        ``(T, Y, X)`` stacks (numpy or dask) of the same shape.
    roi : numpy.ndarray, optional
        ``(Y, X)`` region of interest: only pixels inside it are scored.
    frames : range, optional
        Which frames to score; all when None.

    Returns
    -------
    dict
        The metrics of :meth:`Confusion.metrics` and the counts ``tp``, ``fp``, ``tn``,
        ``fn``.

    Raises
    ------
    ValueError
        If shapes differ, the frame range is outside the clip, the ground truth holds
        unknown values, or nothing is left to score (an empty region of interest, or no
        frame with ground truth in the range): a table of NaN would say nothing.
    """
    return finish(evaluate_mask_steps(predicted, truth, roi, frames))


def difference_labels(a: Any, b: Any) -> Any:
    """Compare two masks: 1 where both call foreground, 2 only A, 3 only B, else 0.

    Parameters
    ----------
    a, b : array-like
        Masks of the same shape (numpy or dask); label 1 is foreground.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        uint8 labels, lazy when either input is.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"masks of shapes {tuple(a.shape)} and {tuple(b.shape)} differ")
    fa, fb = a == 1, b == 1
    return (fa & fb) * np.uint8(1) + (fa & ~fb) * np.uint8(2) + (~fa & fb) * np.uint8(3)


def check_frame_range(frames: range, n_frames: int) -> None:
    """Raise ValueError unless ``frames`` is a non-empty range inside ``0..n_frames``.

    Parameters
    ----------
    frames : range
        The frames asked for.
    n_frames : int
        Frames in the clip.
    """
    if len(frames) == 0 or frames.start < 0 or frames.stop > n_frames:
        raise ValueError(
            f"frame range {frames.start}:{frames.stop} is not inside the clip's {n_frames} frames"
        )


def frame_statistics(mask: Any) -> dict[str, np.ndarray]:
    """Foreground area and number of blobs of each frame of a mask stack.

    Parameters
    ----------
    mask : array-like
        ``(T, Y, X)`` labels (numpy or dask); label 1 is foreground.

    Returns
    -------
    dict
        ``frame``, ``foreground_pixels``, ``foreground_fraction`` and ``blobs``
        (8-connected), each an array of length T.
    """
    n = mask.shape[0]
    area = np.zeros(n, np.int64)
    blobs = np.zeros(n, np.int64)
    for t in range(n):
        fg = (np.asarray(mask[t]) == 1).astype(np.uint8)
        area[t] = int(fg.sum())
        blobs[t] = cv2.connectedComponents(fg, connectivity=8)[0] - 1
    size = int(np.prod(mask.shape[1:]))
    return {
        "frame": np.arange(n),
        "foreground_pixels": area,
        "foreground_fraction": area / size,
        "blobs": blobs,
    }


def statistics_table(stats: dict[str, np.ndarray]) -> tuple[list[str], list[list]]:
    """Lay out :func:`frame_statistics` as a header and rows (one row per frame).

    Parameters
    ----------
    stats : dict
        What :func:`frame_statistics` returned.

    Returns
    -------
    tuple
        Column names, and rows of plain Python numbers.
    """
    header = list(stats)
    rows = [list(row) for row in zip(*(stats[k].tolist() for k in header), strict=True)]
    return header, rows
