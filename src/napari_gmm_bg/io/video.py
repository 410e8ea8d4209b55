"""Reading videos and folders of frames into arrays (RGB, time first)."""

import hashlib
import os
import re
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import cast

import av
import cv2
import dask.array as da
import numpy as np
import PIL.Image
import tifffile
from av.container import InputContainer
from av.video.stream import VideoStream

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".mpg", ".mpeg", ".m4v", ".webm", ".gif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


GREY_PIXEL_FORMATS = ("gray", "ya8", "ya16", "yuvj400p", "y400a")

# FFmpeg's decoders conceal damaged data by default (they repair the picture from its
# neighbours and only log an error).  With "explode" a decoder that finds an error in a
# frame's data returns it as an error instead (MJPEG, H.264, MPEG-4...), "bitstream",
# "buffer" and "crccheck" add checks of the bitstream's syntax, length and checksums;
# the frames a decoder still conceals carry its error flags (``VideoFrame.is_corrupt``).
# Both are seen per frame, in the decoding thread: no process-wide log capture (which
# deadlocked with threaded decoding).  No clean file tried trips them; "aggressive"
# does (MPEG-4 AVIs from common encoders), "compliant" finds no more.  See the
# README's "Damaged input".
DECODER_OPTIONS = {"err_detect": "crccheck+bitstream+buffer+explode"}


def damaged_frame(path: Path, frame: int, source: int | None = None) -> ValueError:
    """Make the error for a frame the decoder concealed damage in (or one predicted from it).

    Parameters
    ----------
    path : pathlib.Path
        The video, named in the message.
    frame : int
        The damaged frame, counted from 0 in presentation order.
    source : int, optional
        The frame the decoder flagged, when ``frame`` is only predicted from it.

    Returns
    -------
    ValueError
        One line naming the file and the frame.
    """
    if source is None or source == frame:
        return ValueError(
            f"video {path.name} is damaged: frame {frame} (the decoder found errors in "
            "its data and concealed them)"
        )
    return ValueError(
        f"video {path.name} is damaged: frame {frame} is predicted from damaged frame "
        f"{source} (the decoder found errors in its data and concealed them)"
    )


def damaged_data(path: Path, frame: int, exc: Exception) -> ValueError:
    """Make the error for data the decoder refused (``err_detect=explode``) near a frame.

    Parameters
    ----------
    path : pathlib.Path
        The video, named in the message.
    frame : int
        The first frame not decoded, counted from 0.
    exc : Exception
        The decoder's error.

    Returns
    -------
    ValueError
        One line naming the file and the frame.
    """
    reason = getattr(exc, "strerror", None) or str(exc)
    return ValueError(
        f"video {path.name} is damaged: near frame {frame} the decoder failed ({reason})"
    )


def bit_depth(pix_fmt: str | None) -> int:
    """Return the bits per sample a decoder's pixel format carries (8 when unknown).

    Parameters
    ----------
    pix_fmt : str or None
        The decoder's pixel format (``"yuv420p"``, ``"yuv420p10le"``, ``"gray16le"``...).

    Returns
    -------
    int
        The largest bit depth of its components: 8 for ``yuv420p``, 10 for
        ``yuv420p10le``, 16 for ``gray16le``.
    """
    if not pix_fmt:
        return 8
    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt).components)
    except (ValueError, TypeError, av.FFmpegError):
        return 8


def frame_format(pix_fmt: str | None) -> str:
    """Choose the format to read a video's frames in: grey for grey ones, else RGB.

    Parameters
    ----------
    pix_fmt : str or None
        The decoder's pixel format (``"yuv420p"``, ``"gray"``, ``"yuv420p10le"``...).

    Returns
    -------
    str
        A PyAV format name: ``"gray"`` or ``"rgb24"`` (uint8) for 8-bit video;
        ``"gray16le"`` or ``"rgb48le"`` (uint16, the samples scaled to 0-65535) when the
        codec carries more than 8 bits (10-, 12-, 16-bit scientific and HDR video),
        which 8 bits would round away.
    """
    grey = pix_fmt is not None and (
        pix_fmt.startswith(GREY_PIXEL_FORMATS) or pix_fmt.startswith("gray")
    )
    deep = bit_depth(pix_fmt) > 8
    if grey:
        return "gray16le" if deep else "gray"
    return "rgb48le" if deep else "rgb24"


def format_dtype(fmt: str) -> np.dtype:
    """Return the dtype of frames read in a format of :func:`frame_format`.

    Parameters
    ----------
    fmt : str
        ``"gray"``, ``"rgb24"``, ``"gray16le"`` or ``"rgb48le"``.

    Returns
    -------
    numpy.dtype
        uint8 or uint16.
    """
    return np.dtype(np.uint16 if fmt in ("gray16le", "rgb48le") else np.uint8)


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


# The bytes a complete file of these types ends with (within a little trailing padding):
# OpenCV decodes a truncated JPEG or PNG without a word, the missing part grey or black.
_END_MARKERS = {".jpg": b"\xff\xd9", ".jpeg": b"\xff\xd9", ".png": b"IEND"}
_END_TAIL = 64


def _check_complete(path: Path) -> None:
    marker = _END_MARKERS.get(path.suffix.lower())
    if marker is None:
        return
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - _END_TAIL))
        tail = f.read()
    if marker not in tail:
        raise ValueError(f"image {path} is truncated or damaged (it has no end marker)")


def _check_jpeg(path: Path) -> None:
    """Raise if FFmpeg's JPEG decoder finds errors in a JPEG's data.

    libjpeg (OpenCV) decodes a JPEG whose data is damaged mid-file with a warning on
    stderr only, the rest of the picture garbled; PNG's checksums make libpng refuse.
    FFmpeg's decoder with the checks of ``DECODER_OPTIONS`` fails on such data (it
    costs about two thirds of OpenCV's decoding).  An error other than invalid data
    (a JPEG feature FFmpeg lacks) is left to OpenCV.
    """
    context = av.CodecContext.create("mjpeg", "r")
    context.options = dict(DECODER_OPTIONS)
    try:
        frames = [*context.decode(av.Packet(path.read_bytes())), *context.decode(None)]
    except av.InvalidDataError:
        frames = []
    except av.FFmpegError:
        return
    if not frames or any(frame.is_corrupt for frame in frames):
        raise ValueError(f"image {path} is damaged (the JPEG decoder found errors in its data)")


def _read_image(path: Path) -> np.ndarray:
    if path.suffix.lower() in (".tif", ".tiff"):
        try:
            image = tifffile.imread(path)
        except Exception as exc:  # tifffile raises several kinds for a damaged file
            raise ValueError(f"cannot read image {path}: {exc}") from None
    else:
        _check_complete(path)
        if path.suffix.lower() in (".jpg", ".jpeg"):
            _check_jpeg(path)
        decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if decoded is None:
            raise ValueError(f"cannot read image {path}")
        image = decoded
        if image.ndim == 3:
            code = cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
            image = cv2.cvtColor(image, code)
    return image


def files_token(paths: Iterable[Path], salt: str = "") -> str:
    """Hash files' paths and modification times, briefly: a dask name that an edit renews.

    Parameters
    ----------
    paths : iterable of pathlib.Path
        The files.
    salt : str
        More text to hash with them.

    Returns
    -------
    str
        12 hex digits.
    """
    text = "\0".join(f"{p}:{Path(p).stat().st_mtime_ns}" for p in paths) + salt
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _folder_frames(folder: str | os.PathLike) -> tuple[Path, list[Path], np.ndarray]:
    """Find a frame folder (a CDnet folder's ``input/``), its image files, its first image."""
    folder = Path(folder)
    if (folder / "input").is_dir():
        folder = folder / "input"
    files = frame_files(folder)
    if not files:
        raise ValueError(f"folder {folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return folder, files, _read_image(files[0])


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
    folder, files, first = _folder_frames(folder)
    frames = np.empty((len(files),) + first.shape, dtype=first.dtype)
    frames[0] = first
    for i, path in enumerate(files[1:], start=1):
        frames[i] = _read_like(path, first, files[0])
    return frames


def _read_like(path: Path, first: np.ndarray, first_path: Path) -> np.ndarray:
    # A frame, checked against the folder's first one.
    image = _read_image(path)
    if image.shape != first.shape or image.dtype != first.dtype:
        raise ValueError(
            f"frames differ in size: {first_path.name} is {first.shape} {first.dtype}, "
            f"{path.name} is {image.shape} {image.dtype}"
        )
    return image


def _png_jpeg_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG or JPEG header, or None (another kind, or unsure)."""
    with open(path, "rb") as f:
        head = f.read(4096)
        size = _header_size(head)
        if size is None and head[:2] == b"\xff\xd8":  # a JPEG with a long EXIF block
            size = _header_size(head + f.read(1 << 20))
    return size


def _header_size(head: bytes) -> tuple[int, int] | None:
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    if head[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 9 < len(head):
        if head[pos] != 0xFF:
            return None
        marker = head[pos + 1]
        if marker == 0xFF:  # padding
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            pos += 2
            continue
        (length,) = struct.unpack(">H", head[pos + 2 : pos + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            height, width = struct.unpack(">HH", head[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    return None


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """Read an image's ``(width, height)`` from its header, without decoding it.

    Parameters
    ----------
    path : str or os.PathLike
        A PNG, JPEG, BMP or TIFF file.

    Returns
    -------
    tuple of int
        ``(width, height)``.

    Raises
    ------
    ValueError
        If the file is not an image.
    """
    path = Path(path)
    try:
        size = _png_jpeg_size(path)
        if size is None and path.suffix.lower() in (".tif", ".tiff"):
            # tifffile: PIL cannot identify float TIFFs, which the frame reader reads
            with tifffile.TiffFile(path) as tif:
                page = cast(tifffile.TiffPage, tif.pages[0])  # the first is never a frame
                size = (page.imagewidth, page.imagelength)
        elif size is None:
            with PIL.Image.open(path) as image:  # reads the header only
                size = image.size
    except (OSError, struct.error, PIL.UnidentifiedImageError, tifffile.TiffFileError) as exc:
        raise ValueError(f"cannot read image {path.name}: {exc}") from None
    return int(size[0]), int(size[1])


def open_frame_folder(
    folder: str | os.PathLike, chunk: int | None = None
) -> tuple[da.Array, list[Path]]:
    """Open a folder of frames lazily: images are read when their chunk is asked for.

    Every image's size is read from its header at open (a PNG or JPEG header in a few
    microseconds), so a folder of mixed sizes is refused at once; channels and dtype are
    checked as frames are read.

    Parameters
    ----------
    folder : str or os.PathLike
        A folder of images of one size (``in000001.jpg``, ...), in natural order; a
        CDnet folder's ``input/`` is used when present.
    chunk : int, optional
        Frames per dask chunk; by default about 4 MB of frames (1 to 16).

    Returns
    -------
    tuple
        ``(T, Y, X)`` or ``(T, Y, X, C)`` dask array (RGB order), and the files.

    Raises
    ------
    ValueError
        If the folder holds no images, or images of different sizes.
    """
    folder, files, first = _folder_frames(folder)
    height, width = first.shape[:2]
    for path in files[1:]:
        w, h = image_size(path)
        if (w, h) != (width, height):
            raise ValueError(
                f"frames in {folder.name}/ differ in size: {files[0].name} is {width}x{height}, "
                f"{path.name} is {w}x{h}"
            )
    if chunk is None:
        chunk = int(np.clip((4 << 20) // max(first.nbytes, 1), 1, 16))
    n = len(files)

    def read_block(block_id: tuple[int, ...] | None = None) -> np.ndarray:
        assert block_id is not None  # dask's map_blocks always passes it
        start = block_id[0] * chunk
        block = np.empty((min(chunk, n - start),) + first.shape, first.dtype)
        for k, path in enumerate(files[start : start + len(block)]):
            block[k] = _read_like(path, first, files[0])
        return block

    token = files_token(files, f"{folder.resolve()}:{n}")
    chunks = (tuple(min(chunk, n - s) for s in range(0, n, chunk)),) + tuple(
        (d,) for d in first.shape
    )
    video = da.map_blocks(
        read_block,
        chunks=chunks,
        dtype=first.dtype,
        name=f"frames-{folder.name}-{token}",
        meta=np.empty((0,) * len(chunks), first.dtype),
    )
    return video, files


def open_stream(path: Path, codec: str | None = None) -> tuple[InputContainer, VideoStream]:
    """Open a file's first video stream, with a clear error for what cannot be decoded.

    Parameters
    ----------
    path : pathlib.Path
        A video file.
    codec : str, optional
        The codec's name to report when no decoder knows it.

    Returns
    -------
    tuple
        The open PyAV container (close it) and its first video stream.

    Raises
    ------
    ValueError
        If the file is not a video, holds no video stream, or its codec cannot be decoded.
    """
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ValueError(
            f"cannot read video {path.name}: not a video, or damaged/truncated ({reason})"
        ) from None
    if not container.streams.video:
        container.close()
        raise ValueError(f"{path.name} holds no video frames (no video stream)")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        tag = codec or getattr(stream, "codec_tag", "") or "unknown"
        container.close()
        raise ValueError(f"{path.name}: its video codec ({tag!r}) cannot be decoded here")
    stream.codec_context.options = dict(DECODER_OPTIONS)  # damage is an error, not hidden
    return container, stream


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
        If the file cannot be opened or decoded, holds no frames, or is damaged: the
        decoder fails on a frame, or conceals errors in one (the message names the
        first damaged frame).
    """
    path = Path(path)
    frames: list[np.ndarray] = []
    container, stream = open_stream(path)
    try:
        with container:
            stream.thread_type = "AUTO"
            fmt = frame_format(stream.codec_context.pix_fmt)
            for frame in container.decode(stream):
                if frame.is_corrupt:
                    raise damaged_frame(path, len(frames))
                frames.append(frame.to_ndarray(format=fmt))
    except av.FFmpegError as exc:
        if not frames:
            raise ValueError(f"cannot read video {path.name}: {exc}") from None
        raise damaged_data(path, len(frames), exc) from None
    if not frames:
        raise ValueError(f"video {path.name} holds no frames")
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
