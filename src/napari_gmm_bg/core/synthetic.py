"""Deterministic synthetic clips with known moving objects, generated on demand.

They are the built-in samples (nothing is shipped as a file) and the test and benchmark
inputs: a static textured background, vehicles of random colours crossing the frame in
lanes, and Gaussian sensor noise, with the exact foreground mask of every frame.
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
    noise = rng.normal(0, 12, size=(height, width, channels)).astype(np.float32)
    fine = cv2.GaussianBlur(noise, (0, 0), 1.0).reshape(height, width, channels)
    return smooth.reshape(height, width, channels) + fine


def _vehicle(rng: np.random.Generator, size: np.ndarray, channels: int) -> np.ndarray:
    """Draw a vehicle: a random body colour, shaded top to bottom, dark windows."""
    height, width = int(size[0]), int(size[1])
    colour = rng.uniform(0, 255, channels).astype(np.float32)
    shade = np.linspace(1.15, 0.8, height, dtype=np.float32)[:, None, None]
    body = np.broadcast_to(colour * shade, (height, width, channels)).copy()
    top, bottom = height // 4, max(height // 4 + 1, height // 2)
    body[top:bottom, width // 6 : width - width // 6] *= 0.35
    return np.clip(body, 0, 255)


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
        Vehicles, each in a lane of its own (lanes may overlap).
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

    # Vehicles in lanes: each crosses the frame, leaves, and comes back after a gap as a
    # new vehicle of another colour, so moving objects are as varied as real traffic.
    sizes = (rng.uniform(0.12, 0.22, size=(n_objects, 2)) * (height, width)).astype(int)
    sizes = np.maximum(sizes, 3)
    lanes = (rng.uniform(0, 1, n_objects) * (height - sizes[:, 0])).astype(int)
    speeds = rng.uniform(0.8, 2.0, n_objects) * max(width / 60.0, 0.5)
    directions = rng.choice([-1, 1], n_objects)
    periods = width + sizes[:, 1] + rng.uniform(0.2, 0.6, n_objects) * width
    phases = rng.uniform(0, 1, n_objects) * periods
    colour_seed = rng.integers(0, 2**31)

    video = np.empty((n_frames, height, width, channels), dtype=np.uint8)
    truth = np.zeros((n_frames, height, width), dtype=np.uint8)
    for t in range(n_frames):
        frame = background.copy()
        for i in range(n_objects):
            travelled = phases[i] + speeds[i] * t
            along = int(travelled % periods[i]) - sizes[i, 1]
            x0 = along if directions[i] > 0 else width - along - sizes[i, 1]
            xa, xb = max(x0, 0), min(x0 + sizes[i, 1], width)
            if xb <= xa:
                continue  # between passes
            y0, y1 = lanes[i], lanes[i] + sizes[i, 0]
            passage = int(travelled // periods[i])
            body = _vehicle(
                np.random.default_rng([int(colour_seed), int(i), int(passage)]), sizes[i], channels
            )
            frame[y0:y1, xa:xb] = body[:, xa - x0 : xb - x0]
            truth[t, y0:y1, xa:xb] = 1
        frame += rng.normal(0, noise, size=frame.shape).astype(np.float32)
        video[t] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    if channels == 1:
        video = video[..., 0]
    return Sample(name=name, video=video, ground_truth=truth)
