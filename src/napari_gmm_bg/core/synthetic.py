"""Deterministic synthetic clips with known moving objects, generated on demand.

They are the built-in samples (nothing is shipped as a file) and the test and benchmark
inputs: a static textured background, objects moving in straight lines and bouncing off
the borders, and Gaussian sensor noise, with the exact foreground mask of every frame.
"""

from dataclasses import dataclass

import cv2
import numpy as np

SAMPLE_NAMES = ("moving-shapes", "moving-shapes-grey")


@dataclass(frozen=True)
class Sample:
    """A synthetic clip and its ground truth.

    Attributes
    ----------
    name : str
        The sample's name.
    video : numpy.ndarray
        ``(T, Y, X, 3)`` or ``(T, Y, X)`` uint8.
    ground_truth : numpy.ndarray
        ``(T, Y, X)`` uint8: 1 where a moving object is, 0 elsewhere.
    """

    name: str
    video: np.ndarray
    ground_truth: np.ndarray


def _texture(rng: np.random.Generator, shape: tuple[int, int], channels: int) -> np.ndarray:
    height, width = shape
    coarse = rng.uniform(50, 190, size=(max(2, height // 24), max(2, width // 24), channels))
    smooth = cv2.resize(coarse.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    fine = rng.normal(0, 12, size=(height, width, channels)).astype(np.float32)
    fine = cv2.GaussianBlur(fine, (0, 0), 1.0).reshape(height, width, channels)
    return smooth.reshape(height, width, channels) + fine


def make_sample(
    name: str = "moving-shapes",
    *,
    n_frames: int = 80,
    shape: tuple[int, int] = (120, 160),
    n_objects: int = 4,
    noise: float = 3.0,
    seed: int = 0,
) -> Sample:
    """Generate a synthetic clip with moving objects and its ground-truth mask.

    Parameters
    ----------
    name : str
        ``"moving-shapes"`` (RGB) or ``"moving-shapes-grey"``.
    n_frames : int
        Length of the clip.
    shape : tuple of int
        ``(Y, X)`` frame size.
    n_objects : int
        Moving rectangles.
    noise : float
        Standard deviation of the per-frame sensor noise, in grey levels.
    seed : int
        Seed of the random generator: the same arguments give the same clip.

    Returns
    -------
    Sample
        The clip and its mask.

    Raises
    ------
    ValueError
        For an unknown name or a size too small to hold objects.

    Examples
    --------
    >>> sample = make_sample(n_frames=10, shape=(32, 48))
    >>> sample.video.shape, sample.ground_truth.shape
    ((10, 32, 48, 3), (10, 32, 48))
    """
    if name not in SAMPLE_NAMES:
        raise ValueError(f"unknown sample {name!r}; choose one of {', '.join(SAMPLE_NAMES)}")
    height, width = (int(s) for s in shape)
    if n_frames < 2 or height < 16 or width < 16:
        raise ValueError("a sample needs at least 2 frames of at least 16x16 pixels")
    channels = 1 if name.endswith("-grey") else 3
    rng = np.random.default_rng(seed)
    background = _texture(rng, (height, width), channels)

    sizes = rng.uniform(0.12, 0.22, size=(n_objects, 2)) * (height, width)
    sizes = np.maximum(sizes, 3).astype(int)
    start = rng.uniform(0, 1, size=(n_objects, 2)) * ((height, width) - sizes)
    # Fast enough that no pixel is covered for long: the background stays the majority.
    speed = rng.uniform(0.5, 1.0, size=(n_objects, 2)) * rng.choice([-1, 1], size=(n_objects, 2))
    speed *= max(height, width) / 40.0
    palette = np.array(
        [
            [230, 40, 40],
            [30, 200, 60],
            [40, 60, 230],
            [240, 220, 30],
            [250, 250, 250],
            [10, 10, 10],
        ],
        dtype=np.float32,
    )
    colours = palette[np.arange(n_objects) % len(palette)]
    if channels == 1:
        colours = colours.mean(axis=1, keepdims=True)
        colours = np.where(colours > 120, 245.0, 15.0)

    video = np.empty((n_frames, height, width, channels), dtype=np.uint8)
    truth = np.zeros((n_frames, height, width), dtype=np.uint8)
    span = np.array([height, width]) - sizes
    for t in range(n_frames):
        frame = background.copy()
        # Bounce off the borders: fold the straight-line position into [0, span].
        pos = start + speed * t
        period = 2 * np.maximum(span, 1)
        pos = np.abs(((pos % period) + period) % period)
        pos = np.where(pos > span, period - pos, pos).astype(int)
        for i in range(n_objects):
            y0, x0 = pos[i]
            y1, x1 = y0 + sizes[i, 0], x0 + sizes[i, 1]
            frame[y0:y1, x0:x1] = colours[i]
            truth[t, y0:y1, x0:x1] = 1
        frame += rng.normal(0, noise, size=frame.shape).astype(np.float32)
        video[t] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    if channels == 1:
        video = video[..., 0]
    return Sample(name=name, video=video, ground_truth=truth)
