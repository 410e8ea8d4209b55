"""Lazy, frame-accurate video reading: a dask array decoded on demand.

Frames are found by their presentation timestamps, never by ``index / fps``.  The index
of every frame's timestamp comes from the sample tables of an MP4/MOV file (read in
milliseconds, no media data touched), or else from demuxing the file once (reading
packets, decoding nothing), kept beside the video as a hidden ``.<name>.<hash>.frames.npz``
for the next open.  An AVI with B-frames stores no presentation timestamps at all: its
index is built once by decoding, and frames are told apart by their labels.

Decoding is done by a small pool of decoders, each used by one thread at a time.  A
request for frames continues a decoder already positioned before them in the same group
of pictures, or seeks one to the keyframe before the first wanted frame and decodes
forward, skipping the non-reference frames before it (they change no other frame).
After a request, the decoder goes on a few frames ahead in the background (cancelled by
the next request elsewhere), so stepping to the next frame finds it decoded.  Decoded
frames are kept in an LRU cache with a size limit.  A frame read at random therefore
equals the same frame of a sequential decode, with B-frames and variable frame rates
alike.
"""

import hashlib
import io
import os
import struct
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import av
import dask.array as da
import numpy as np
from av.container import InputContainer
from av.video.stream import VideoStream

from ..core._files import atomic_write
from .mp4_index import MP4_SUFFIXES, SampleTable, read_sample_table
from .video import (
    bit_depth,
    damaged_data,
    damaged_frame,
    format_dtype,
    frame_format,
    open_stream,
)

INDEX_VERSION = 4  # bump when the kept index changes meaning
CHUNK_BYTES = 4 << 20  # a dask chunk holds about this much (1 frame of 720p and larger)
MAX_CHUNK_FRAMES = 16
CACHE_BYTES = 128 << 20  # decoded frames kept per opened video (napari caches too)
MAX_DECODERS = 3
PREFETCH_FRAMES = 8
THREAD_TYPE = "AUTO"  # each decoder's own threads (frame and slice)
COUNTED_FORMATS = {"mpeg", "mpegts"}  # timestamps guessed anew after a seek


@dataclass(frozen=True)
class VideoIndex:
    """Every frame's presentation timestamp, in presentation order.

    Attributes
    ----------
    pts : numpy.ndarray
        ``(T,)`` int64 timestamps, in the stream's time base; increasing when
        ``ordered``, else labels that tell frames apart.
    time_base : float
        Seconds per timestamp unit.
    shape : tuple of int
        ``(Y, X)`` frame size.
    keyframes : numpy.ndarray
        Increasing frame numbers where decoding can start (0 among them).
    seek_ts : numpy.ndarray
        For each keyframe, the timestamp to seek to so that the demuxer lands on it
        (MP4 seeks by decode timestamps, other containers by presentation timestamps).
    ordered : bool
        True when ``pts`` are real, increasing presentation timestamps.
    counted : bool
        True for MPEG program and transport streams, whose demuxer guesses the missing
        timestamps differently after a seek: ``seek_ts`` are then byte offsets (where a
        packet before the keyframe starts), a seek reads the file from there, and frames
        are counted from the first keyframe decoded, frame ``sync[k]``.
    sync : numpy.ndarray or None
        Counted indexes: for each keyframe's seek, the frame counting starts at.
    """

    pts: np.ndarray
    time_base: float
    shape: tuple[int, int]
    keyframes: np.ndarray
    seek_ts: np.ndarray
    ordered: bool = True
    counted: bool = False
    sync: np.ndarray | None = None

    @property
    def seconds(self) -> np.ndarray:
        """Each frame's time, in seconds."""
        return (self.pts if self.ordered or self.counted else np.sort(self.pts)) * self.time_base

    def keyframe_before(self, frame: int) -> int:
        """Return the last frame at or before ``frame`` where decoding can start."""
        return int(self.keyframes[np.searchsorted(self.keyframes, frame, "right") - 1])


def _index_path(path: Path) -> Path:
    stat = path.stat()
    key = hashlib.sha1(
        f"{INDEX_VERSION}:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()
    )
    return path.with_name(f".{path.name}.{key.hexdigest()[:12]}.frames.npz")


def video_bit_depth(path: str | os.PathLike) -> int:
    """Return the bits per sample a video's codec carries (8 for most; 10, 12, 16...).

    Parameters
    ----------
    path : str or os.PathLike
        A video file.

    Returns
    -------
    int
        The bit depth of the decoder's pixel format; frames of more than 8 bits are
        read as uint16 (:func:`open_video`).
    """
    container, stream = open_stream(Path(path))
    try:
        return bit_depth(stream.codec_context.pix_fmt)
    finally:
        container.close()


def video_index_file(path: str | os.PathLike) -> Path | None:
    """Return where opening a video keeps its frame index (a hidden file beside it).

    Parameters
    ----------
    path : str or os.PathLike
        A video file.

    Returns
    -------
    pathlib.Path or None
        The index file (which may not exist yet), or None when ``path`` is not a file.
    """
    path = Path(path)
    try:
        return _index_path(path) if path.is_file() else None
    except OSError:
        return None


def _make_index(
    pts: list | np.ndarray,
    keyframe: list | np.ndarray,
    time_base: float,
    shape: tuple[int, int],
    ordered: bool = True,
    seek_ts: list | np.ndarray | None = None,
    counted: bool = False,
) -> VideoIndex:
    """Make an index from per-frame timestamps, keyframe flags and seek timestamps."""
    pts = np.asarray(pts, np.int64)
    keyframe = np.asarray(keyframe, bool)
    seek_ts = pts if seek_ts is None else np.asarray(seek_ts, np.int64)
    if ordered:
        order = np.argsort(pts, kind="stable")
        pts, keyframe, seek_ts = pts[order], keyframe[order], seek_ts[order]
    if len(np.unique(pts)) != len(pts):
        raise ValueError("two frames share a timestamp")
    keyframe[0] = True  # the start: reached by reopening the file
    keyframes = np.flatnonzero(keyframe).astype(np.int64)
    return VideoIndex(
        pts, float(time_base), shape, keyframes, seek_ts[keyframes], ordered, counted
    )


class _FromOffset(io.RawIOBase):
    """A file seen from a byte offset on, as if it started there."""

    def __init__(self, path: Path, offset: int) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed with this object
        self._offset = offset
        self._file.seek(offset)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._file.readinto(buffer)

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 0:
            pos += self._offset
        return self._file.seek(pos, whence) - self._offset

    def tell(self) -> int:
        return self._file.tell() - self._offset

    def close(self) -> None:
        self._file.close()
        super().close()


def _open_at(path: Path, offset: int) -> tuple[InputContainer, VideoStream, _FromOffset]:
    """Open an MPEG stream from a byte offset (a keyframe's packet).

    Returns the file too: PyAV leaves a file object it was given open.
    """
    with av.open(str(path)) as probe:
        fmt = probe.format.name.split(",")[0]
    source = _FromOffset(path, offset)
    try:
        container = cast(InputContainer, av.open(source, format=fmt))
    except BaseException:
        source.close()
        raise
    if not container.streams.video or container.streams.video[0].codec_context is None:
        container.close()
        source.close()
        raise ValueError(f"cannot read {path.name} from byte {offset}")
    return container, container.streams.video[0], source


def _check_not_cut(path: Path, size: int) -> None:
    """Raise if a RIFF (AVI) or Matroska file says it is longer than it is."""
    with open(path, "rb") as f:
        head = f.read(64)
    if head[:4] == b"RIFF" and len(head) >= 8:
        (riff,) = struct.unpack_from("<I", head, 4)
        if 8 + riff > size:
            raise ValueError(f"video {path.name} is truncated: {size} of {8 + riff} bytes")
    elif head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: find the Segment's declared size
        pos = 4
        length, value = _ebml_vint(head, pos)
        pos += length + value
        with open(path, "rb") as f:
            f.seek(pos)
            seg = f.read(12)
        if seg[:4] == b"\x18\x53\x80\x67":
            length, value = _ebml_vint(seg, 4)
            unknown = value == (1 << (7 * length)) - 1
            if not unknown and pos + 4 + length + value > size:
                raise ValueError(
                    f"video {path.name} is truncated: {size} of {pos + 4 + length + value} bytes"
                )
    elif path.suffix.lower() == ".gif" and size:
        with open(path, "rb") as f:
            f.seek(size - 1)
            if f.read(1) != b";":
                raise ValueError(f"video {path.name} is truncated: no GIF trailer")


def _ebml_vint(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos] if pos < len(data) else 0
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 8 or pos + length > len(data):
        return 1, 0
    value = first & ((0x80 >> (length - 1)) - 1)
    for byte in data[pos + 1 : pos + length]:
        value = (value << 8) | byte
    return length, value


def _index_from_sample_table(
    path: Path, table: SampleTable, stream: VideoStream, container: InputContainer
) -> VideoIndex | None:
    """Index an MP4/MOV from its sample tables, checked against a few demuxed packets."""
    if table.track_id != stream.id:
        return None
    size = path.stat().st_size
    if table.end.max() > size:
        whole = int(np.argmax(table.end > size))
        raise ValueError(
            f"video {path.name} is truncated: its data ends in frame {whole + 1} "
            f"of {len(table.pts)}"
        )
    # FFmpeg must see the same timestamps: compare the first packets and the last GOP's.
    last_key = int(np.flatnonzero(table.keyframe)[-1]) if table.keyframe.any() else 0
    first = [p.pts for _, p in zip(range(8), _sized_packets(container, stream), strict=False)]
    if first != table.pts[: len(first)].tolist():
        return None
    container.seek(int(table.pts[last_key]), stream=stream, backward=True, any_frame=False)
    tail = [p.pts for p in _sized_packets(container, stream)]
    expected = table.pts[-len(tail) :].tolist() if tail else []
    if not tail or tail != expected:
        return None
    shape = (stream.codec_context.height, stream.codec_context.width)
    return _make_index(table.pts, table.keyframe, 1 / table.timescale, shape, seek_ts=table.dts)


def _sized_packets(container: InputContainer, stream: VideoStream) -> Iterator[av.Packet]:
    for packet in container.demux(stream):
        if packet.size:
            yield packet


def build_index(path: str | os.PathLike) -> VideoIndex:
    """List a video's frames' timestamps by demuxing it once (decodes nothing).

    An AVI whose codec reorders frames (B-frames) stores no presentation timestamps; its
    frames are decoded once instead and told apart by their labels.

    Parameters
    ----------
    path : str or os.PathLike
        A video file.

    Returns
    -------
    VideoIndex
        The timestamps and keyframes.

    Raises
    ------
    ValueError
        If the file cannot be opened, is truncated, or holds no video frames.
    """
    path = Path(path)
    container, stream = open_stream(path)
    try:
        shape = (stream.codec_context.height, stream.codec_context.width)
        if stream.time_base is None:
            raise ValueError(f"video {path.name} has no time base")
        time_base = float(stream.time_base)
        pts, dts, keys, where = [], [], [], []
        try:
            for packet in _sized_packets(container, stream):
                if packet.is_corrupt:
                    raise ValueError(f"video {path.name} is truncated or damaged")
                pts.append(packet.pts)
                dts.append(packet.dts)
                keys.append(packet.is_keyframe)
                where.append(packet.pos if packet.pos is not None else -1)
        except av.FFmpegError as exc:
            raise ValueError(f"video {path.name} is damaged: {exc}") from None
        if not pts:
            raise ValueError(f"video {path.name} holds no frames")
        # AVI stores no presentation timestamps: with B-frames, the demuxer's guesses
        # are not the order the decoder gives frames in.
        if set(container.format.name.split(",")) & COUNTED_FORMATS:
            return _counted(path, keys, where, time_base, shape)
        reorders = bool(stream.codec_context.has_b_frames)
        no_pts = pts == dts or "avi" in container.format.name.split(",")
        if None in pts or (reorders and no_pts):
            return _index_by_decoding(path, shape, time_base)
        try:
            return _make_index(pts, keys, time_base, shape)
        except ValueError:
            return _index_by_decoding(path, shape, time_base)
    finally:
        container.close()


def _counted(path: Path, keys: list, where: list, time_base: float, shape: tuple) -> VideoIndex:
    """Index an MPEG stream by decoding it once: frames in output order, counted.

    Its demuxer guesses the timestamps of packets that carry none (small frames share a
    PES packet), so they can repeat or change after a seek.  The parser gives a byte
    offset only to packets that start a PES packet: a keyframe is read from the last
    offset before it, and counting starts at the first keyframe after that offset.
    """
    offsets: list[int] = []  # per keyframe packet, in decode order
    firsts: list[int] = []
    offset, first = -1, -1
    for pos, key in zip(where, keys, strict=True):
        if pos >= 0:
            offset, first = pos, -1
        if key:
            if first < 0:
                first = len(offsets)
            offsets.append(offset)
            firsts.append(first)
    labels, key_out = [], []
    container, stream = open_stream(path)
    stream.thread_type = THREAD_TYPE
    try:
        with container:
            for i, frame in enumerate(container.decode(stream)):
                if frame.is_corrupt:
                    raise damaged_frame(path, i)
                labels.append(frame.pts if frame.pts is not None else -1)
                if frame.key_frame:
                    key_out.append(i)
    except av.FFmpegError as exc:
        raise damaged_data(path, len(labels), exc) from None
    if not labels:
        raise ValueError(f"video {path.name} holds no frames")
    if len(key_out) != len(offsets) or min(offsets, default=0) < 0:
        raise ValueError(f"cannot index the frames of {path.name}: keyframes do not match")
    key_frames = np.array(key_out, np.int64)
    keyframes = np.concatenate([[0], key_frames]) if key_frames[0] != 0 else key_frames
    seek_ts = [offsets[k] for k in range(len(key_frames))]
    sync = [int(key_frames[firsts[k]]) for k in range(len(key_frames))]
    if key_frames[0] != 0:  # frame 0 is reached by reopening the file
        seek_ts, sync = [0, *seek_ts], [0, *sync]
    return VideoIndex(
        np.array(labels, np.int64),
        float(time_base),
        shape,
        keyframes,
        np.array(seek_ts, np.int64),
        ordered=False,
        counted=True,
        sync=np.array(sync, np.int64),
    )


def _index_by_decoding(path: Path, shape: tuple[int, int], time_base: float) -> VideoIndex:
    """Decode every frame once and list their labels in output order."""
    labels: list[int | None] = []
    keys: list[bool] = []
    container, stream = open_stream(path)
    stream.thread_type = THREAD_TYPE
    try:
        with container:
            for frame in container.decode(stream):
                if frame.is_corrupt:
                    raise damaged_frame(path, len(labels))
                labels.append(frame.pts)
                keys.append(bool(frame.key_frame))
    except av.FFmpegError as exc:
        raise damaged_data(path, len(labels), exc) from None
    if not labels:
        raise ValueError(f"video {path.name} holds no frames")
    if None in labels:
        raise ValueError(f"cannot index the frames of {path.name}: frames without timestamps")
    try:
        return _make_index(labels, keys, time_base, shape, ordered=False)
    except ValueError:
        raise ValueError(f"cannot index the frames of {path.name}: repeated labels") from None


def load_index(path: str | os.PathLike) -> VideoIndex:
    """Return a video's index: from MP4/MOV sample tables, the kept file, or a demux.

    Parameters
    ----------
    path : str or os.PathLike
        A video file.

    Returns
    -------
    VideoIndex
        The timestamps and keyframes.

    Raises
    ------
    ValueError
        If the file cannot be read (not a video, truncated, no frames, unknown codec).
    """
    return _load_index(Path(path))[0]


def _load_index(path: Path) -> tuple[VideoIndex, str | None]:
    """Return the index and the decoder's pixel format, opening one container."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"video {path.name} is empty (0 bytes)")
    table = read_sample_table(path) if path.suffix.lower() in MP4_SUFFIXES else None
    if table is not None and not len(table.pts):
        raise ValueError(f"video {path.name} holds no frames")
    container, stream = open_stream(path, table.codec if table is not None else None)
    pix_fmt = stream.codec_context.pix_fmt
    try:
        if table is not None:
            try:
                index = _index_from_sample_table(path, table, stream, container)
            except av.FFmpegError:
                index = None
            if index is not None:
                return index, pix_fmt
    finally:
        container.close()
    _check_not_cut(path, size)
    cached = _index_path(path)
    if cached.is_file():
        try:
            with np.load(cached) as z:
                index = VideoIndex(
                    z["pts"],
                    float(z["time_base"]),
                    (int(z["shape"][0]), int(z["shape"][1])),
                    z["keyframes"],
                    z["seek_ts"],
                    bool(z["ordered"]),
                    bool(z["counted"]),
                    z["sync"] if bool(z["counted"]) else None,
                )
            return index, pix_fmt
        except Exception:  # noqa: BLE001 - a damaged index file (any error): build it again
            pass
    index = build_index(path)
    try:  # a read-only folder or a full disk only costs the next open another demux
        atomic_write(
            cached,
            lambda f: np.savez(
                f,
                pts=index.pts,
                time_base=index.time_base,
                shape=np.array(index.shape),
                keyframes=index.keyframes,
                seek_ts=index.seek_ts,
                ordered=index.ordered,
                counted=index.counted,
                sync=index.sync if index.sync is not None else np.zeros(0, np.int64),
            ),
        )
    except OSError:
        pass
    return index, pix_fmt


class _Decoder:
    """One open container and codec, used by one thread at a time."""

    def __init__(self) -> None:
        # PyAV's container and stream (their classes vary with the format): None if closed
        self.container: Any = None
        self.stream: Any = None
        self.source: _FromOffset | None = None  # the file under an MPEG container
        # the frame iterator; None until seeked, and after the end
        self.frames: Iterator[av.VideoFrame] | None = None
        self.pos = -1  # the last frame produced
        self.busy = False
        self.first = 0  # the first frame this job wants: non-reference frames before it skip
        self.goal = -1  # the last frame a request wants
        self.ahead = -1  # the last frame to decode ahead of the requests (prefetch)
        self.seek_to: int | None = None
        self.wanted: set[int] = set()
        self.attempt = 0
        self.used = 0.0
        self.count: int | None = 0  # counted indexes: the next frame's number
        self.count_from = 0
        # The frame the decoder flagged damaged since the last keyframe: the frames
        # after it are predicted from it, damaged too.
        self.damaged: int | None = None

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
        if self.source is not None:
            self.source.close()
        self.container = self.stream = self.frames = self.source = None


class _FrameReader:
    """Decodes frames on request with a pool of decoders, a prefetch and an LRU cache.

    Called by dask with ``block_id``: returns that chunk's frames.
    """

    def __init__(
        self,
        path: Path,
        index: VideoIndex,
        fmt: str,
        chunk: int,
        cache_bytes: int,
        max_decoders: int,
        prefetch: int,
    ) -> None:
        self.path = path
        self.index = index
        self.fmt = fmt
        self.chunk = chunk
        self.cache_bytes = cache_bytes
        self.max_decoders = max_decoders
        self.prefetch = prefetch
        self._setup()

    def _setup(self) -> None:
        height, width = self.index.shape
        grey = self.fmt.startswith("gray")
        self.frame_shape = (height, width) if grey else (height, width, 3)
        self.frame_bytes = height * width * (1 if grey else 3) * format_dtype(self.fmt).itemsize
        self.n = len(self.index.pts)
        by_label = not (self.index.ordered or self.index.counted)
        self._labels = {int(p): i for i, p in enumerate(self.index.pts)} if by_label else None
        self._cond = threading.Condition()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._futures: dict[int, Future] = {}
        self._decoders: list[_Decoder] = []
        self._damaged: dict[int, ValueError] = {}  # frames found damaged, never cached
        self.stats = {"seeks": 0, "decoded": 0, "converted": 0}

    def cached_bytes(self) -> int:
        """Memory held by decoded frames in the cache."""
        with self._cond:
            return sum(frame.nbytes for frame in self._cache.values())

    def __getstate__(self) -> dict:  # for dask.distributed: no locks, no open files
        keep = ("path", "index", "fmt", "chunk", "cache_bytes", "max_decoders", "prefetch")
        return {key: self.__dict__[key] for key in keep}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._setup()

    def __call__(self, block_id: tuple[int, ...] | None = None) -> np.ndarray:
        assert block_id is not None  # dask's map_blocks always passes it
        start = block_id[0] * self.chunk
        return self.read(start, min(start + self.chunk, self.n))

    # --- requests -----------------------------------------------------------------
    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start:stop``, decoded (or found in the cache) now."""
        results: list[np.ndarray | Future] = []
        with self._cond:
            for i in range(start, stop):
                if i in self._damaged:
                    raise self._damaged[i]
                cached = self._cache.get(i)
                if cached is not None:
                    self._cache.move_to_end(i)
                    results.append(cached)
                    continue
                future = self._futures.get(i)
                if future is None:
                    future = self._futures[i] = Future()
                    self._assign(i)
                results.append(future)
            self._prefetch_after(stop)
        frames = [item.result() if isinstance(item, Future) else item for item in results]
        if len(frames) == 1:  # a read-only view of the cached frame: no copy
            return frames[0][None]
        return np.stack(frames)

    def _assign(self, i: int) -> None:
        """Give frame ``i`` to a decoder (the lock is held)."""
        key = self.index.keyframe_before(i)
        while True:
            # A busy decoder heading for i, or that gets there before a seek would.
            for d in self._decoders:
                if d.busy and d.first <= i and d.pos < i and key <= max(d.goal, d.ahead) + 1:
                    if i > d.ahead + 1:  # a jump ahead: skip to it, forget the prefetch
                        d.first = min(d.wanted | {i})
                        d.ahead = d.goal
                    d.wanted.add(i)
                    d.goal = max(d.goal, i)
                    d.ahead = max(d.ahead, min(d.goal + self.prefetch, self.n - 1))
                    return
            self._cancel_prefetch()
            # An idle decoder positioned before i in the same group of pictures.
            idle = [d for d in self._decoders if not d.busy]
            near = [d for d in idle if d.frames is not None and key <= d.pos + 1 <= i]
            if near:
                self._start(max(near, key=lambda d: d.pos), i, seek=None)
                return
            if len(self._decoders) < self.max_decoders:
                d = _Decoder()
                self._decoders.append(d)
                self._start(d, i, seek=key)
                return
            if idle:
                self._start(min(idle, key=lambda d: d.used), i, seek=key)
                return
            self._cond.wait()  # every decoder is busy: wait for one

    def _prefetch_after(self, i: int) -> None:
        """Keep decoding ahead of frame ``i`` where a decoder can continue there (lock held)."""
        if i >= self.n or i in self._cache or i in self._futures or not self.prefetch:
            return
        ahead = min(i + self.prefetch - 1, self.n - 1)
        for d in self._decoders:
            if d.busy and d.first <= i and d.pos < i <= max(d.goal, d.ahead) + 1:
                d.ahead = max(d.ahead, ahead)
                return
        key = self.index.keyframe_before(i)
        near = [
            d
            for d in self._decoders
            if not d.busy and d.frames is not None and key <= d.pos + 1 <= i
        ]
        if near:  # never seek for a prefetch: only continue a decoder already there
            d = max(near, key=lambda d: d.pos)
            self._start(d, i, seek=None)
            d.wanted = set()
            d.goal = i - 1
            d.ahead = ahead

    def _cancel_prefetch(self) -> None:
        for d in self._decoders:
            if d.busy:
                d.ahead = d.goal

    def _start(self, d: _Decoder, i: int, seek: int | None) -> None:
        d.busy = True
        d.first = i
        d.goal = i
        d.ahead = min(i + self.prefetch, self.n - 1)
        d.wanted = {i}
        d.seek_to = seek
        d.attempt = 0
        threading.Thread(target=self._run, args=(d,), daemon=True).start()

    # --- the decoding thread --------------------------------------------------------
    def _run(self, d: _Decoder) -> None:
        try:
            if d.container is None:
                d.container, d.stream = open_stream(self.path)
                d.stream.thread_type = THREAD_TYPE
            self._decode(d)
        except Exception as exc:  # noqa: BLE001 - every failure goes to the waiting readers
            if isinstance(exc, av.FFmpegError):  # the decoder refused damaged data
                exc = damaged_data(self.path, d.pos + 1, exc)
            with self._cond:
                for i in d.wanted:
                    future = self._futures.pop(i, None)
                    if future is not None:
                        future.set_exception(exc)
                d.wanted = set()
                d.busy = False
                d.close()
                self._decoders.remove(d)
                self._cond.notify_all()

    def _decode(self, d: _Decoder) -> None:
        while True:
            with self._cond:
                seek = d.seek_to
                d.seek_to = None
                if seek is None and d.pos >= max(d.goal, d.ahead) and not d.wanted:
                    d.busy = False
                    d.used = time.monotonic()
                    self._cond.notify_all()
                    return
            if seek is not None or d.frames is None:
                if seek is None:
                    seek = self.index.keyframe_before(min(d.wanted, default=d.first))
                d.count = 0 if seek == 0 else None  # counted: from the keyframe's output
                if seek == 0:  # the start: reopen, as some demuxers seek by dts
                    if d.frames is not None or d.pos >= 0:
                        d.close()
                        d.container, d.stream = open_stream(self.path)
                        d.stream.thread_type = THREAD_TYPE
                elif self.index.counted:  # read the file from the keyframe's first byte
                    at = int(np.searchsorted(self.index.keyframes, seek))
                    d.close()
                    d.container, d.stream, d.source = _open_at(
                        self.path, int(self.index.seek_ts[at])
                    )
                    d.stream.thread_type = THREAD_TYPE
                    assert self.index.sync is not None  # counted indexes carry it
                    d.count_from = int(self.index.sync[at])
                    seek = min(seek, d.count_from)
                else:
                    at = int(np.searchsorted(self.index.keyframes, seek))
                    d.container.seek(
                        int(self.index.seek_ts[at]),
                        stream=d.stream,
                        backward=True,
                        any_frame=False,
                    )
                self.stats["seeks"] += 1
                d.frames = self._frames(d)
                d.pos = seek - 1
                d.damaged = None
            frame = next(d.frames, None)
            if frame is None:  # the end of the stream
                d.frames = None
                with self._cond:
                    self._missed(d, set(d.wanted))
                    # Nothing lies past the end: no goal beyond it (or the loop seeks forever).
                    d.goal, d.ahead = min(d.goal, d.pos), min(d.ahead, d.pos)
                continue
            self.stats["decoded"] += 1
            k: int | None
            if self.index.counted:
                if d.count is None and frame.key_frame:
                    d.count = d.count_from  # the keyframe read first: frames before it are
                if d.count is None:  # leading frames of an open GOP, not decodable here
                    continue
                k, d.count = d.count, d.count + 1
            else:
                k = self._ordinal(frame.pts)
            if k is None:
                continue
            if frame.is_corrupt:
                d.damaged = k if d.damaged is None else d.damaged
            elif frame.key_frame:
                d.damaged = None
            if d.damaged is not None:
                self._refuse(d, k, damaged_frame(self.path, k, d.damaged))
                continue
            with self._cond:
                keep = (
                    k in d.wanted or (d.goal < k <= d.ahead and k not in self._cache)
                ) and k >= d.first
            image = frame.to_ndarray(format=self.fmt) if keep else None
            self.stats["converted"] += keep
            with self._cond:
                d.pos = max(d.pos, k)
                if image is not None:
                    image.flags.writeable = False
                    self._put(k, image)
                    d.wanted.discard(k)
                    future = self._futures.pop(k, None)
                    if future is not None:
                        future.set_result(image)
                missed = {i for i in d.wanted if i < k}
                if missed:
                    self._missed(d, missed)
                self._cond.notify_all()

    def _refuse(self, d: _Decoder, k: int, error: ValueError) -> None:
        """Frame ``k`` is damaged: its readers get the error, now and later."""
        with self._cond:
            d.pos = max(d.pos, k)
            self._damaged[k] = error
            d.wanted.discard(k)
            future = self._futures.pop(k, None)
            if future is not None:
                future.set_exception(error)
            self._missed(d, {i for i in d.wanted if i < k})
            self._cond.notify_all()

    def _missed(self, d: _Decoder, missed: set[int]) -> None:
        """Wanted frames went by undecoded: seek further back, or give up (lock held)."""
        if not missed:
            return
        first = min(missed)
        keys = self.index.keyframes
        at = int(np.searchsorted(keys, first, "right")) - 1
        d.attempt += 1
        # The keyframe before, then the start (when near).
        retry = {1: at - 1, 2: 0 if at <= 3 else -1}.get(d.attempt, -1)
        if retry >= 0:
            d.seek_to = int(keys[retry])
            d.first = min(d.first, first)
            return
        error = ValueError(f"{self.path.name}: frame {first} cannot be decoded")
        for i in missed:
            d.wanted.discard(i)
            future = self._futures.pop(i, None)
            if future is not None:
                future.set_exception(error)

    def _ordinal(self, label: int | None) -> int | None:
        if label is None:
            return None
        if self._labels is not None:
            return self._labels.get(int(label))
        k = int(np.searchsorted(self.index.pts, label))
        return k if k < self.n and self.index.pts[k] == label else None

    def _frames(self, d: _Decoder) -> Iterator[av.VideoFrame]:
        """Decode forward, skipping non-reference frames before the first wanted one."""
        context = d.stream.codec_context
        skipping = False
        ordered = self.index.ordered
        pts = self.index.pts
        for packet in d.container.demux(d.stream):
            if not packet.size:
                if packet.pts is None and packet.dts is None:  # the end: drain the decoder
                    if skipping:
                        context.skip_frame = "DEFAULT"
                        skipping = False
                    yield from d.stream.decode(None)
                continue
            if ordered and not self.index.counted:
                skip = packet.pts is not None and packet.pts < pts[d.first]
                if skip != skipping:
                    context.skip_frame = "NONREF" if skip else "DEFAULT"
                    skipping = skip
            yield from d.stream.decode(packet)

    def _put(self, k: int, image: np.ndarray) -> None:
        self._cache[k] = image
        self._cache.move_to_end(k)
        while len(self._cache) * self.frame_bytes > self.cache_bytes and len(self._cache) > 1:
            self._cache.popitem(last=False)


_READERS: "weakref.WeakValueDictionary[str, _FrameReader]" = weakref.WeakValueDictionary()


def reader_of(video: da.Array) -> "_FrameReader | None":
    """Return the decoder pool behind an array from `open_video` (for its ``stats``).

    Parameters
    ----------
    video : dask.array.Array
        The array `open_video` returned (not a slice of it).

    Returns
    -------
    _FrameReader or None
        The reader, with ``stats`` (seeks, frames decoded, frames converted to RGB) and
        ``cached_bytes()``; None for another array.
    """
    return _READERS.get(video.name)


def chunk_frames(frame_bytes: int) -> int:
    """Frames per dask chunk: one for large frames (fast random access), more for small.

    Parameters
    ----------
    frame_bytes : int
        Bytes in one decoded frame.

    Returns
    -------
    int
        Between 1 and 16.
    """
    return int(np.clip(CHUNK_BYTES // max(frame_bytes, 1), 1, MAX_CHUNK_FRAMES))


def open_video(
    path: str | os.PathLike,
    chunk: int | None = None,
    cache_bytes: int = CACHE_BYTES,
    max_decoders: int = MAX_DECODERS,
    prefetch: int = PREFETCH_FRAMES,
) -> tuple[da.Array, VideoIndex]:
    """Open a video lazily: nothing is decoded until frames are asked for.

    Parameters
    ----------
    path : str or os.PathLike
        A video file (.mp4, .avi, .mov, .mkv, .gif, ...).
    chunk : int, optional
        Frames per dask chunk; by default 1 for frames of 4 MB or more, up to 16 for
        small frames.
    cache_bytes : int
        Memory for decoded frames kept per opened video.
    max_decoders : int
        Decoders kept open per video (each holds its own reference frames).
    prefetch : int
        Frames decoded ahead in the background after a request.

    Returns
    -------
    tuple
        ``(T, Y, X, 3)`` RGB dask array (``(T, Y, X)`` for a grey video), uint8, or
        uint16 when the codec carries more than 8 bits (:func:`video_bit_depth`), and the
        timestamp index.  A single computed frame is a read-only view of the cache: copy
        it before writing into it.

    Raises
    ------
    ValueError
        If the file is missing or cannot be read: not a video, truncated, no frames, a
        codec that cannot be decoded (and, for a video indexed by decoding it whole, an
        AVI with B-frames or an MPEG stream, damaged data anywhere).  Computing frames
        raises ValueError too, naming the frame, where the decoder finds their data
        damaged, even where FFmpeg would conceal it (``io.video.DECODER_OPTIONS``), and
        for the frames predicted from a damaged one up to the next keyframe.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    index, pix_fmt = _load_index(path)
    fmt = frame_format(pix_fmt)
    height, width = index.shape
    if height <= 0 or width <= 0:
        raise ValueError(f"video {path.name} has no frame size")
    grey, dtype = fmt.startswith("gray"), format_dtype(fmt)
    frame_bytes = height * width * (1 if grey else 3) * dtype.itemsize
    chunk = chunk_frames(frame_bytes) if chunk is None else int(chunk)
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1 frame, got {chunk}")
    prefetch = max(0, min(prefetch, cache_bytes // (4 * frame_bytes)))
    reader = _FrameReader(path, index, fmt, chunk, cache_bytes, max_decoders, prefetch)
    name = f"video-{_index_path(path).stem}-{chunk}"
    _READERS[name] = reader
    n = len(index.pts)
    frame_chunks = ((height,), (width,)) if grey else ((height,), (width,), (3,))
    whole, rest = divmod(n, chunk)
    chunks = ((chunk,) * whole + ((rest,) if rest else ()),) + frame_chunks
    video = da.map_blocks(
        reader,
        chunks=chunks,
        dtype=dtype,
        name=name,
        meta=np.empty((0,) * len(chunks), dtype),
    )
    return video, index
