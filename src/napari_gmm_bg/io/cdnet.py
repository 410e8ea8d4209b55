"""CDnet 2014 sequence folders: ``input/``, ``groundtruth/``, ``ROI.bmp``, ``temporalROI.txt``."""

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .video import read_frame_folder

NOT_SCORED = 85  # CDnet's "outside the region of interest"


@dataclass
class CDnetSequence:
    """A CDnet sequence in memory.

    Attributes
    ----------
    name : str
        The folder's name.
    video : numpy.ndarray
        ``(T, Y, X, 3)`` uint8 RGB.
    ground_truth : numpy.ndarray
        ``(T, Y, X)`` uint8 CDnet labels; frames without a file are 85 (not scored).
    roi : numpy.ndarray or None
        ``(Y, X)`` boolean spatial region of interest (``ROI.bmp``).
    temporal_roi : range
        0-based frames to score (``temporalROI.txt`` is 1-based and inclusive).
    """

    name: str
    video: np.ndarray
    ground_truth: np.ndarray
    roi: np.ndarray | None
    temporal_roi: range


def is_cdnet_folder(path: str | os.PathLike) -> bool:
    """Tell whether a path is a CDnet sequence folder (``input/`` and ``groundtruth/``).

    Parameters
    ----------
    path : str or os.PathLike
        Any path.

    Returns
    -------
    bool
        True for a CDnet folder.
    """
    path = Path(path)
    return (path / "input").is_dir() and (path / "groundtruth").is_dir()


def read_cdnet(folder: str | os.PathLike) -> CDnetSequence:
    """Read a CDnet sequence folder.

    Parameters
    ----------
    folder : str or os.PathLike
        Holds ``input/inNNNNNN.jpg``, ``groundtruth/gtNNNNNN.png`` and optionally
        ``ROI.bmp`` and ``temporalROI.txt``.

    Returns
    -------
    CDnetSequence
        Video, ground truth and regions of interest.

    Raises
    ------
    ValueError
        If the folder is not a CDnet sequence or its files disagree in size.
    """
    folder = Path(folder)
    if not is_cdnet_folder(folder):
        raise ValueError(f"{folder} is not a CDnet folder (it needs input/ and groundtruth/)")
    video = read_frame_folder(folder / "input")
    n, height, width = video.shape[:3]
    truth = np.full((n, height, width), NOT_SCORED, np.uint8)
    for path in (folder / "groundtruth").glob("gt*.png"):
        digits = path.stem[2:]
        if not digits.isdigit() or not 1 <= int(digits) <= n:
            continue
        label = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if label is None or label.shape != (height, width):
            raise ValueError(f"ground truth {path.name} does not match the {width}x{height} input")
        truth[int(digits) - 1] = label
    roi = None
    if (folder / "ROI.bmp").is_file():
        image = cv2.imread(str(folder / "ROI.bmp"), cv2.IMREAD_GRAYSCALE)
        if image is not None and image.shape == (height, width):
            roi = image > 0
    temporal = range(n)
    if (folder / "temporalROI.txt").is_file():
        first, last = (int(v) for v in (folder / "temporalROI.txt").read_text().split()[:2])
        temporal = range(max(first - 1, 0), min(last, n))
    return CDnetSequence(folder.name, video, truth, roi, temporal)
