"""Reading videos and folders of frames into arrays (RGB, time first)."""

import os
import re
from pathlib import Path

import av
import cv2
import numpy as np
import tifffile

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".mpg", ".mpeg", ".m4v", ".webm", ".gif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


GREY_PIXEL_FORMATS = ("gray", "ya8", "ya16", "yuvj400p", "y400a")


def frame_format(pix_fmt: str | None) -> str:
    """Choose the format to read a video's frames in: ``"gray"`` for grey ones, else RGB.

    Parameters
    ----------
    pix_fmt : str or None
        The decoder's pixel format (``"yuv420p"``, ``"gray"``, ...).

    Returns
    -------
    str
        ``"gray"`` or ``"rgb24"`` (a PyAV format name).
    """
    grey = pix_fmt is not None and pix_fmt.startswith(GREY_PIXEL_FORMATS)
    return "gray" if grey else "rgb24"


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def frame_files(folder: str | os.PathLike) -> list[Path]:
    """List a folder's image files in natural order (``in2.jpg`` before ``in10.jpg``).

    Parameters
    ----------
    folder : str or os.PathLike
        The folder.

    Returns
    -------
    list of pathlib.Path
        Image files; hidden files are skipped.
    """
    folder = Path(folder)
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    ]
    return sorted(files, key=_natural_key)


def _read_image(path: Path) -> np.ndarray:
    if path.suffix.lower() in (".tif", ".tiff"):
        image = tifffile.imread(path)
    else:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError(f"cannot read image {path}")
        if image.ndim == 3:
            code = cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
            image = cv2.cvtColor(image, code)
    return image


def read_frame_folder(folder: str | os.PathLike) -> np.ndarray:
    """Read a folder of frames (e.g. ``in000001.jpg, ...``) into one array.

    Parameters
    ----------
    folder : str or os.PathLike
        A folder of images of one size; a CDnet folder's ``input/`` is used when present.

    Returns
    -------
    numpy.ndarray
        ``(T, Y, X)`` or ``(T, Y, X, 3)``, RGB.

    Raises
    ------
    ValueError
        If the folder holds no images, or images of different sizes or kinds.
    """
    folder = Path(folder)
    if (folder / "input").is_dir():
        folder = folder / "input"
    files = frame_files(folder)
    if not files:
        raise ValueError(f"folder {folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    first = _read_image(files[0])
    frames = np.empty((len(files),) + first.shape, dtype=first.dtype)
    frames[0] = first
    for i, path in enumerate(files[1:], start=1):
        image = _read_image(path)
        if image.shape != first.shape or image.dtype != first.dtype:
            raise ValueError(
                f"frames differ in size: {files[0].name} is {first.shape} {first.dtype}, "
                f"{path.name} is {image.shape} {image.dtype}"
            )
        frames[i] = image
    return frames


def read_video_file(path: str | os.PathLike) -> np.ndarray:
    """Decode every frame of a video file, in presentation order, as RGB.

    Parameters
    ----------
    path : str or os.PathLike
        An ``.mp4``, ``.avi``, ``.mov``, ``.mkv``, ``.gif``, ... file.

    Returns
    -------
    numpy.ndarray
        ``(T, Y, X, 3)`` uint8, or ``(T, Y, X)`` for a grey video.

    Raises
    ------
    ValueError
        If the file cannot be opened or decoded, or holds no frames.
    """
    path = Path(path)
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path} holds no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            fmt = frame_format(stream.codec_context.pix_fmt)
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format=fmt))
    except av.FFmpegError as exc:
        if not frames:
            raise ValueError(f"cannot read video {path}: {exc}") from None
        # A truncated file: keep the frames decoded before the damage.
    if not frames:
        raise ValueError(f"video {path} holds no frames")
    return np.stack(frames)


def read_video(path: str | os.PathLike) -> np.ndarray:
    """Read a video file or a folder of frames into memory.

    Parameters
    ----------
    path : str or os.PathLike
        A video file or a folder of images.

    Returns
    -------
    numpy.ndarray
        ``(T, Y, X)`` grey or ``(T, Y, X, 3)`` RGB.

    Raises
    ------
    ValueError
        If the path is missing, of an unknown kind, or unreadable.
    """
    path = Path(path)
    if path.is_dir():
        return read_frame_folder(path)
    if not path.exists():
        raise ValueError(f"no such file or folder: {path}")
    if path.suffix.lower() in (".tif", ".tiff"):
        return tifffile.imread(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(
            f"{path.name}: unknown video type {path.suffix!r}; "
            f"expected one of {', '.join(VIDEO_SUFFIXES)}, a .tif stack or a folder of frames"
        )
    return read_video_file(path)
