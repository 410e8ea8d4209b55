"""The ten-line baseline every model here must beat (see the design guide, section 5).

Per-pixel temporal median of every 4th frame, Euclidean colour distance above 40, then
a 5x5 median filter on the mask.  Its score is that colour distance.
"""

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._steps import finish
from .cleanup import MaskCleanup, clean_mask
from .frames import as_frames
from .interface import Method, MethodResult, Steps, setting

BLOCK = 64  # frames scored at a time


@dataclass(frozen=True)
class BaselineSettings:
    """Settings of the median baseline."""

    step: int = setting(
        4,
        label="median of every n-th frame",
        help="the background is the per-pixel median of every n-th frame",
        minimum=1,
        maximum=1000,
    )
    distance: float = setting(
        40.0,
        label="colour distance",
        help="Euclidean colour distance from the background (grey levels) above which "
        "a pixel is foreground",
        minimum=0.0,
        maximum=1000.0,
        step=0.5,
    )
    median: int = setting(
        5,
        label="median filter",
        help="side of the median filter applied to each frame's mask (0 for none)",
        minimum=0,
        maximum=31,
    )

    def validate(self) -> None:
        """Raise ValueError on settings that cannot work."""
        if int(self.step) < 1:
            raise ValueError(f"step must be at least 1, got {self.step}")
        if not (self.distance >= 0 and np.isfinite(self.distance)):
            raise ValueError(f"distance must be a number >= 0, got {self.distance}")
        MaskCleanup(median=int(self.median)).validate()


def _baseline_steps(
    video: Any, settings: BaselineSettings, with_score: bool
) -> Generator[tuple[int, int], None, tuple[np.ndarray, np.ndarray | None, np.ndarray]]:
    settings.validate()
    frames = as_frames(video)
    n = frames.n_frames
    yield 0, n + 1
    background = np.median(frames.read(slice(None, None, settings.step)), axis=0).astype(
        np.float32
    )
    yield 1, n + 1
    mask = np.empty((n,) + frames.frame_shape, np.uint8)
    score = np.empty((n,) + frames.frame_shape, np.float32) if with_score else None
    for start in range(0, n, BLOCK):
        block = frames.read(slice(start, start + BLOCK)).astype(np.float32)
        d2 = ((block - background) ** 2).sum(axis=-1)
        mask[start : start + len(block)] = d2 > settings.distance**2
        if score is not None:
            score[start : start + len(block)] = np.sqrt(d2)
        yield 1 + min(start + BLOCK, n), n + 1
    clean_mask(mask, MaskCleanup(median=int(settings.median)), in_place=True)
    return mask, score, background


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
    settings = BaselineSettings(step=step, distance=distance, median=median)
    mask, _, _ = finish(_baseline_steps(video, settings, with_score=False))
    return mask


def _method_steps(video: Any, settings: BaselineSettings) -> Steps:
    mask, score, background = yield from _baseline_steps(video, settings, with_score=True)
    dtype = as_frames(video).dtype
    image = background if dtype.kind == "f" else np.rint(background).astype(dtype)
    if image.shape[-1] == 1:
        image = image[..., 0]
    return MethodResult(
        "baseline",
        settings,
        lambda: mask,
        lambda: score,
        background=image,
        threshold=float(settings.distance),
    )


METHOD = Method(
    name="baseline",
    title="median baseline",
    settings_type=BaselineSettings,
    run_steps=_method_steps,
    score_name="colour distance",
    score_unit="grey levels",
    foreground_above=True,
)
