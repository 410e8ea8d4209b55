"""CDnet 2014 sequence folders: ``input/``, ``groundtruth/``, ``ROI.bmp``, ``temporalROI.txt``."""

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import dask.array as da
import numpy as np

from .video import files_token, image_size, open_frame_folder, read_frame_folder

NOT_SCORED = 85  # CDnet's "outside the region of interest"


@dataclass
class CDnetSequence:
    """A CDnet sequence, in memory (`read_cdnet`) or lazy (`open_cdnet`).

    Attributes
    ----------
    name : str
        The folder's name.
    video : numpy.ndarray or dask.array.Array
        ``(T, Y, X, 3)`` uint8 RGB.
    ground_truth : numpy.ndarray or dask.array.Array
        ``(T, Y, X)`` uint8 CDnet labels; frames without a file are 85 (not scored).
    roi : numpy.ndarray or None
        ``(Y, X)`` boolean spatial region of interest (``ROI.bmp``).
    temporal_roi : range
        0-based frames to score (``temporalROI.txt`` is 1-based and inclusive).
    """

    name: str
    video: np.ndarray | da.Array
    ground_truth: np.ndarray | da.Array
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


def _check_folder(folder: Path) -> None:
    if not is_cdnet_folder(folder):
        raise ValueError(f"{folder} is not a CDnet folder (it needs input/ and groundtruth/)")


def _truth_files(folder: Path, n: int) -> dict[int, Path]:
    """Ground-truth files by 0-based frame (``gt000001.png`` is frame 0)."""
    files = {}
    for path in (folder / "groundtruth").glob("gt*.png"):
        digits = path.stem[2:]
        if digits.isdigit() and 1 <= int(digits) <= n:
            files[int(digits) - 1] = path
    return files


def _read_label(path: Path, shape: tuple[int, int]) -> np.ndarray:
    label = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if label is None or label.shape != shape:
        raise ValueError(
            f"ground truth {path.name} does not match the {shape[1]}x{shape[0]} input"
        )
    return label


def _regions(folder: Path, n: int, shape: tuple[int, int]) -> tuple[np.ndarray | None, range]:
    roi = None
    path = folder / "ROI.bmp"
    if path.exists():
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path.is_file() else None
        if image is None:
            raise ValueError(f"{path}: cannot read the region of interest (damaged or not BMP)")
        if image.shape != shape:
            raise ValueError(
                f"{path}: the region of interest is {image.shape[1]}x{image.shape[0]}, "
                f"the frames {shape[1]}x{shape[0]}"
            )
        roi = image > 0
    temporal = range(n)
    if (folder / "temporalROI.txt").is_file():
        try:
            first, last = (int(v) for v in (folder / "temporalROI.txt").read_text().split()[:2])
        except ValueError:  # not two integers (too few values also lands here)
            raise ValueError(
                f"{folder.name}/temporalROI.txt: expected two frame numbers"
            ) from None
        temporal = range(max(first - 1, 0), min(last, n))
    return roi, temporal


def read_cdnet(folder: str | os.PathLike) -> CDnetSequence:
    """Read a CDnet sequence folder into memory.

    Parameters
    ----------
    folder : str or os.PathLike
        Holds ``input/inNNNNNN.jpg``, ``groundtruth/gtNNNNNN.png`` and optionally
        ``ROI.bmp`` and ``temporalROI.txt``.

    Returns
    -------
    CDnetSequence
        Video, ground truth and regions of interest, as numpy arrays.

    Raises
    ------
    ValueError
        If the folder is not a CDnet sequence or its files disagree in size.
    """
    folder = Path(folder)
    _check_folder(folder)
    video = read_frame_folder(folder / "input")
    n, height, width = video.shape[:3]
    truth = np.full((n, height, width), NOT_SCORED, np.uint8)
    for i, path in _truth_files(folder, n).items():
        truth[i] = _read_label(path, (height, width))
    roi, temporal = _regions(folder, n, (height, width))
    return CDnetSequence(folder.name, video, truth, roi, temporal)


def open_cdnet(folder: str | os.PathLike) -> CDnetSequence:
    """Open a CDnet sequence folder lazily: frames and labels are read on demand.

    Parameters
    ----------
    folder : str or os.PathLike
        As for `read_cdnet`.

    Returns
    -------
    CDnetSequence
        Video and ground truth as dask arrays; the regions of interest in memory.

    Raises
    ------
    ValueError
        If the folder is not a CDnet sequence, or its frames or labels differ in size
        (label sizes are read from their headers at once; their contents when read).
    """
    folder = Path(folder)
    _check_folder(folder)
    video, _ = open_frame_folder(folder / "input")
    n, height, width = video.shape[:3]
    files = _truth_files(folder, n)
    for path in files.values():
        if image_size(path) != (width, height):
            raise ValueError(f"ground truth {path.name} does not match the {width}x{height} input")
    chunk = video.chunks[0][0]

    def read_block(block_id: tuple[int, ...] | None = None) -> np.ndarray:
        assert block_id is not None  # dask's map_blocks always passes it
        start = block_id[0] * chunk
        block = np.full((min(chunk, n - start), height, width), NOT_SCORED, np.uint8)
        for k in range(len(block)):
            if start + k in files:
                block[k] = _read_label(files[start + k], (height, width))
        return block

    truth = da.map_blocks(
        read_block,
        chunks=(video.chunks[0], (height,), (width,)),
        dtype=np.uint8,
        name=f"truth-{video.name}-{files_token(files.values())}",
        meta=np.empty((0, 0, 0), np.uint8),
    )
    roi, temporal = _regions(folder, n, (height, width))
    return CDnetSequence(folder.name, video, truth, roi, temporal)
