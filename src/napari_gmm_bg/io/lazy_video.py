"""Lazy, frame-accurate video reading: a dask array decoded chunk by chunk on demand.

Frames are found by their presentation timestamps, never by ``index / fps``: an index of
every frame's timestamp is built once by demuxing (reading packets, decoding nothing) and
kept beside the video for the next open.  A chunk of consecutive frames opens its own
decoder, seeks to the keyframe before its first frame and decodes forward, so chunks are
independent (thread-safe) and a frame read at random equals the same frame of a
sequential decode, with B-frames and variable frame rates alike.  Decoded chunks are
kept in a small LRU cache, so scrubbing back and forth decodes each chunk once.
"""

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import av
import dask.array as da
import numpy as np

CHUNK_FRAMES = 16
CACHE_CHUNKS = 8


@dataclass(frozen=True)
class VideoIndex:
    """Every frame's presentation timestamp, in presentation order.

    Attributes
    ----------
    pts : numpy.ndarray
        ``(T,)`` int64 timestamps, in the stream's time base.
    time_base : float
        Seconds per timestamp unit.
    shape : tuple of int
        ``(Y, X)`` frame size.
    """

    pts: np.ndarray
    time_base: float
    shape: tuple[int, int]

    @property
    def seconds(self) -> np.ndarray:
        """Each frame's time, in seconds."""
        return self.pts * self.time_base


def _index_path(path: Path) -> Path:
    stat = path.stat()
    key = hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return path.with_name(f".{path.name}.{key.hexdigest()[:12]}.frames.npz")


def build_index(path: str | os.PathLike) -> VideoIndex:
    """Demux a video once and list its frames' timestamps (decodes nothing).

    Parameters
    ----------
    path : str or os.PathLike
        A video file.

    Returns
    -------
    VideoIndex
        The timestamps.

    Raises
    ------
    ValueError
        If the file cannot be opened or holds no video frames.
    """
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path} holds no video stream")
            stream = container.streams.video[0]
            shape = (stream.codec_context.height, stream.codec_context.width)
            time_base = float(stream.time_base)
            pts = [p.pts for p in container.demux(stream) if p.pts is not None and p.size]
    except av.FFmpegError as exc:
        raise ValueError(f"cannot read video {path}: {exc}") from None
    if not pts:
        raise ValueError(f"video {path} holds no frames")
    return VideoIndex(np.unique(np.asarray(pts, np.int64)), time_base, shape)


def load_index(path: str | os.PathLike) -> VideoIndex:
    """Return a video's index, from the file kept beside it or built (and kept) now.

    Parameters
    ----------
    path : str or os.PathLike
        A video file.

    Returns
    -------
    VideoIndex
        The timestamps.
    """
    path = Path(path)
    cached = _index_path(path)
    if cached.is_file():
        with np.load(cached) as z:
            return VideoIndex(z["pts"], float(z["time_base"]), tuple(int(v) for v in z["shape"]))
    index = build_index(path)
    try:  # a read-only folder only costs the next open another demux
        tmp = cached.with_name(cached.name + ".part")
        with open(tmp, "wb") as f:
            np.savez(f, pts=index.pts, time_base=index.time_base, shape=np.array(index.shape))
        os.replace(tmp, cached)
    except OSError:
        pass
    return index


class _ChunkReader:
    """Decodes chunks of frames by timestamp, with a small LRU cache."""

    def __init__(self, path: Path, index: VideoIndex, chunk: int, cache_chunks: int) -> None:
        self.path = path
        self.index = index
        self.chunk = chunk
        self.cache_chunks = cache_chunks
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, block_id: int) -> np.ndarray:
        with self._lock:
            if block_id in self._cache:
                self._cache.move_to_end(block_id)
                return self._cache[block_id]
        frames = self._decode(block_id)
        with self._lock:
            self._cache[block_id] = frames
            while len(self._cache) > self.cache_chunks:
                self._cache.popitem(last=False)
        return frames

    def _decode(self, block_id: int) -> np.ndarray:
        start = block_id * self.chunk
        wanted = self.index.pts[start : start + self.chunk]
        position = {int(p): i for i, p in enumerate(wanted)}
        height, width = self.index.shape
        out = np.zeros((len(wanted), height, width, 3), np.uint8)
        found = np.zeros(len(wanted), bool)
        last = int(wanted[-1])
        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            container.seek(int(wanted[0]), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                i = position.get(int(frame.pts))
                if i is not None:
                    out[i] = frame.to_ndarray(format="rgb24")
                    found[i] = True
                if frame.pts >= last and found.all():
                    break
        if not found.all():
            missing = int((~found).sum())
            raise ValueError(f"{self.path.name}: {missing} frames of chunk {block_id} not decoded")
        return out


def open_video(
    path: str | os.PathLike, chunk: int = CHUNK_FRAMES, cache_chunks: int = CACHE_CHUNKS
) -> tuple[da.Array, VideoIndex]:
    """Open a video lazily: nothing is decoded until frames are asked for.

    Parameters
    ----------
    path : str or os.PathLike
        A video file (.mp4, .avi, .mov, .mkv, ...).
    chunk : int
        Consecutive frames decoded together.
    cache_chunks : int
        Decoded chunks kept in memory (per opened video).

    Returns
    -------
    tuple
        ``(T, Y, X, 3)`` uint8 RGB dask array, and the timestamp index.

    Raises
    ------
    ValueError
        If the file cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    index = load_index(path)
    reader = _ChunkReader(path, index, chunk, cache_chunks)
    n = len(index.pts)
    height, width = index.shape
    chunks = (
        tuple(min(chunk, n - s) for s in range(0, n, chunk)),
        (height,),
        (width,),
        (3,),
    )
    name = f"video-{_index_path(path).stem}"
    video = da.map_blocks(
        lambda block_id=None: reader(block_id[0]),
        chunks=chunks,
        dtype=np.uint8,
        name=name,
        meta=np.empty((0, 0, 0, 0), np.uint8),
    )
    return video, index
