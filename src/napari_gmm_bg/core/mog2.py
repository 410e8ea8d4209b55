"""OpenCV's MOG2 background subtractor, run frame by frame for comparison.

Every setting of ``cv2.createBackgroundSubtractorMOG2`` and its setters is exposed.
Frames go to OpenCV in BGR order (it assumes BGR for its shadow test and background
image); its mask values 255 / 127 / 0 become this package's labels 1 / 2 / 0.
"""

from collections.abc import Generator
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from ._steps import finish
from .frames import as_frames
from .interface import Method, MethodResult, Steps, setting
from .label_store import LabelWriter

#: ``in_memory_bytes`` that keeps labels of any size in memory (``run_mog2``'s array).
ALWAYS = 2**62


# The settings OpenCV's subtractors share (MOG2, KNN): one definition each.
def history_setting() -> Any:
    """Return the ``history`` field of an OpenCV subtractor's settings."""
    return setting(
        500,
        label="history (frames)",
        help="OpenCV history: frames of memory; the learning rate is 1 / min(2n, history)",
        minimum=1,
        maximum=100_000,
    )


def detect_shadows_setting() -> Any:
    """Return the ``detect_shadows`` field of an OpenCV subtractor's settings."""
    return setting(True, label="detect shadows", help="OpenCV detectShadows: label shadows 2")


def learning_rate_setting() -> Any:
    """Return the ``learning_rate`` field of an OpenCV subtractor's settings."""
    return setting(
        -1.0,
        label="learning rate (-1 automatic)",
        help="OpenCV learningRate of apply(): -1 automatic (1 / min(2n, history)), "
        "0 never updates the background, 1 relearns it from every frame",
        minimum=-1.0,
        maximum=1.0,
        step=0.0001,
    )


def shadow_threshold_setting() -> Any:
    """Return the ``shadow_threshold`` field of an OpenCV subtractor's settings."""
    return setting(
        0.5,
        label="shadow darkening (tau)",
        help="OpenCV ShadowThreshold: a shadow is between tau and 1 times the background",
        minimum=0.01,
        maximum=1.0,
        step=0.01,
    )


def check_opencv_settings(settings: Any) -> None:
    """Raise ValueError on the shared settings OpenCV would reject or misuse.

    Parameters
    ----------
    settings : object
        Settings with ``history``, ``learning_rate`` and ``shadow_threshold``.
    """
    if settings.history < 1:
        raise ValueError(f"history must be at least 1, got {settings.history}")
    rate = settings.learning_rate
    if not -1 <= rate <= 1 or -1 < rate < 0:
        raise ValueError(f"learning_rate must be -1 or in [0, 1], got {rate}")
    if not 0 < settings.shadow_threshold <= 1:
        raise ValueError(f"shadow_threshold must be in (0, 1], got {settings.shadow_threshold}")


@dataclass(frozen=True)
class Mog2Settings:
    """All of MOG2's settings, with OpenCV's defaults.

    Attributes
    ----------
    history : int
        Frames of history (learning rate 1 / min(2n, history) when automatic).
    var_threshold : float
        Squared Mahalanobis distance for a pixel to match the background.
    detect_shadows : bool
        Mark shadows (label 2).
    learning_rate : float
        Passed to ``apply``: -1 automatic, 0 frozen, 1 relearn every frame.
    n_mixtures : int
        Gaussians per pixel.
    background_ratio : float
        Cumulative weight of the background components.
    var_threshold_gen : float
        Squared distance for a sample to update an existing component.
    var_init, var_min, var_max : float
        Variance of a new component, and its bounds.
    complexity_reduction_threshold : float
        Prior that prunes weak components.
    shadow_threshold : float
        Darkening factor tau: a shadow is between tau and 1 times the background.
    """

    history: int = history_setting()
    var_threshold: float = setting(
        16.0,
        label="match threshold",
        help="OpenCV varThreshold: squared Mahalanobis distance under which a pixel "
        "matches the background",
        minimum=0.0,
        maximum=10_000.0,
        step=0.5,
    )
    detect_shadows: bool = detect_shadows_setting()
    learning_rate: float = learning_rate_setting()
    n_mixtures: int = setting(
        5, label="components", help="OpenCV NMixtures: Gaussians per pixel", minimum=1, maximum=20
    )
    background_ratio: float = setting(
        0.9,
        label="background ratio",
        help="OpenCV BackgroundRatio: cumulative weight of the components that are background",
        minimum=0.0,
        maximum=1.0,
        step=0.01,
    )
    var_threshold_gen: float = setting(
        9.0,
        label="update threshold",
        help="OpenCV VarThresholdGen: squared distance for a sample to update a component",
        minimum=0.0,
        maximum=10_000.0,
        step=0.5,
    )
    var_init: float = setting(
        15.0,
        label="initial variance",
        help="OpenCV VarInit: variance of a new component",
        minimum=0.0,
        maximum=10_000.0,
        step=0.5,
    )
    var_min: float = setting(
        4.0,
        label="smallest variance",
        help="OpenCV VarMin: a component's variance never falls below it",
        minimum=0.0,
        maximum=10_000.0,
        step=0.5,
    )
    var_max: float = setting(
        75.0,
        label="largest variance",
        help="OpenCV VarMax: a component's variance never exceeds it",
        minimum=0.0,
        maximum=10_000.0,
        step=0.5,
    )
    complexity_reduction_threshold: float = setting(
        0.05,
        label="pruning prior",
        help="OpenCV ComplexityReductionThreshold: prior weight that prunes weak components",
        minimum=0.0,
        maximum=1.0,
        step=0.001,
    )
    shadow_threshold: float = shadow_threshold_setting()

    def validate(self) -> None:
        """Raise ValueError on settings OpenCV would reject or misuse."""
        check_opencv_settings(self)
        if self.n_mixtures < 1:
            raise ValueError(f"n_mixtures must be at least 1, got {self.n_mixtures}")
        if not 0 < self.background_ratio <= 1:
            raise ValueError(f"background_ratio must be in (0, 1], got {self.background_ratio}")
        if not self.var_min <= self.var_max:
            raise ValueError("var_min must not exceed var_max")

    def as_dict(self) -> dict:
        """Return the settings as a plain dict."""
        return asdict(self)

    def create(self) -> Any:
        """Build the OpenCV subtractor with these settings."""
        mog2 = cv2.createBackgroundSubtractorMOG2(
            history=int(self.history),
            varThreshold=float(self.var_threshold),
            detectShadows=bool(self.detect_shadows),
        )
        mog2.setNMixtures(int(self.n_mixtures))
        mog2.setBackgroundRatio(float(self.background_ratio))
        mog2.setVarThresholdGen(float(self.var_threshold_gen))
        mog2.setVarInit(float(self.var_init))
        mog2.setVarMin(float(self.var_min))
        mog2.setVarMax(float(self.var_max))
        mog2.setComplexityReductionThreshold(float(self.complexity_reduction_threshold))
        mog2.setShadowThreshold(float(self.shadow_threshold))
        return mog2


@dataclass
class Mog2Result:
    """What MOG2 gives for a clip.

    Attributes
    ----------
    mask : numpy.ndarray
        ``(T, Y, X)`` uint8: 0 background, 1 foreground, 2 shadow.
    background : numpy.ndarray
        ``getBackgroundImage()`` after the last frame, RGB (or grey), uint8.
    settings : Mog2Settings
        The settings used.
    """

    mask: np.ndarray
    background: np.ndarray
    settings: Mog2Settings


def _to_opencv(frame: np.ndarray) -> np.ndarray:
    if frame.dtype != np.uint8:
        raise ValueError(f"OpenCV's subtractors run on 8-bit video; got {frame.dtype}")
    if frame.shape[-1] == 1:
        return np.ascontiguousarray(frame[..., 0])
    return cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)


def run_subtractor_steps(
    video: Any,
    subtractor: Any,
    learning_rate: float,
    chunk: int = 16,
    seed: int | None = None,
    in_memory_bytes: int | None = None,
) -> Generator[tuple[int, int], None, tuple[Any, np.ndarray]]:
    """Run an OpenCV ``BackgroundSubtractor`` on every frame, yielding progress.

    Frames go to OpenCV in BGR order; its mask values 255 / 127 / 0 become labels
    1 / 2 / 0.  The input is checked before the first yield.

    Parameters
    ----------
    video : array-like
        ``(T, Y, X)`` grey or ``(T, Y, X, 3)`` RGB uint8, numpy or dask.
    subtractor : cv2.BackgroundSubtractor
        A fresh subtractor (MOG2, KNN, ...).
    learning_rate : float
        Passed to ``apply`` (-1 automatic).
    chunk : int
        Frames read at a time (and between progress steps).
    seed : int, optional
        Seed OpenCV's random generator first (in the thread that runs the frames: it is
        per thread), for a subtractor that draws random numbers (KNN replaces random
        samples): the same clip then gives the same mask.
    in_memory_bytes : int, optional
        Labels up to this size are returned in memory, larger ones are written to a
        temporary folder as they are made and returned as a dask array
        (:class:`~.label_store.LabelWriter`); its default limit when None.

    Yields
    ------
    tuple of int
        Frames done, frames in all.

    Returns
    -------
    tuple
        ``(T, Y, X)`` uint8 labels (numpy, or dask read from disk) and the background
        image (RGB or grey, numpy).
    """
    frames = as_frames(video)
    if frames.dtype != np.uint8:
        raise ValueError(f"OpenCV's subtractors run on 8-bit video; got {frames.dtype}")
    n = frames.n_frames
    mask = LabelWriter((n,) + frames.frame_shape, chunk, in_memory_bytes)
    lut = np.zeros(256, np.uint8)
    lut[255], lut[127] = 1, 2
    yield 0, n
    if seed is not None:
        cv2.setRNGSeed(int(seed))
    for start in range(0, n, chunk):
        block = frames.read(slice(start, min(start + chunk, n)))
        labels = np.empty((len(block),) + frames.frame_shape, np.uint8)
        for i, frame in enumerate(block):
            raw = subtractor.apply(_to_opencv(frame), learningRate=float(learning_rate))
            labels[i] = lut[raw]
        mask.write(start, labels)
        yield min(start + chunk, n), n
    background = subtractor.getBackgroundImage()
    if background.ndim == 3:
        background = cv2.cvtColor(background, cv2.COLOR_BGR2RGB)
    return mask.result(), background


def run_mog2_steps(
    video: Any, settings: Mog2Settings | None = None, chunk: int = 16
) -> Generator[tuple[int, int], None, Mog2Result]:
    """Run MOG2 on every frame, yielding ``(done, total)`` frames after each chunk.

    Parameters
    ----------
    video : array-like
        ``(T, Y, X)`` grey or ``(T, Y, X, 3)`` RGB uint8, numpy or dask.
    settings : Mog2Settings, optional
        OpenCV's defaults when None.
    chunk : int
        Frames read at a time (and between progress steps).

    Yields
    ------
    tuple of int
        Frames done, frames in all.

    Returns
    -------
    Mog2Result
        Mask and background image.
    """
    settings = Mog2Settings() if settings is None else settings
    settings.validate()
    steps = run_subtractor_steps(
        video, settings.create(), settings.learning_rate, chunk, in_memory_bytes=ALWAYS
    )
    mask, background = yield from steps
    return Mog2Result(mask=mask, background=background, settings=settings)


def _mog2_method_steps(video: Any, settings: Mog2Settings) -> Steps:
    # As a method (the widgets, ``evaluate``), a long clip's labels go to disk.
    settings.validate()
    steps = run_subtractor_steps(video, settings.create(), settings.learning_rate)
    mask, background = yield from steps
    return MethodResult("mog2", settings, lambda: mask, background=background)


METHOD = Method(
    name="mog2",
    title="MOG2",
    settings_type=Mog2Settings,
    run_steps=_mog2_method_steps,
)


def run_mog2(video: Any, settings: Mog2Settings | None = None) -> Mog2Result:
    """Run OpenCV's MOG2 on every frame of a clip.

    Parameters
    ----------
    video : array-like
        ``(T, Y, X)`` grey or ``(T, Y, X, 3)`` RGB uint8, numpy or dask.
    settings : Mog2Settings, optional
        OpenCV's defaults when None.

    Returns
    -------
    Mog2Result
        Labels (0 background, 1 foreground, 2 shadow) and the background image.

    Examples
    --------
    >>> from napari_gmm_bg import make_sample
    >>> result = run_mog2(make_sample(n_frames=10, shape=(32, 48)).video)
    >>> result.mask.shape
    (10, 32, 48)
    """
    steps = run_mog2_steps(video, settings)
    return finish(steps)
