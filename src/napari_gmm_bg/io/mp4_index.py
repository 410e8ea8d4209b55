"""Every frame's timestamp of an MP4/MOV file from its sample tables, reading no media data.

An ISO base media file (``.mp4``, ``.mov``, ``.m4v``) lists, in its ``moov`` box, the
duration of every sample (``stts``), its composition offset (``ctts``: B-frames), the
sync samples (``stss``), where each sample lies (``stsc``, ``stsz``, ``stco``/``co64``),
and an edit list (``elst``) that shifts the timeline.  These give every frame's
presentation timestamp as FFmpeg's demuxer reports it, in milliseconds for a 30-minute
clip, where demuxing reads the whole file.  Only the layouts whose FFmpeg timestamps
are known exactly are handled (at most one empty edit followed by one edit at normal
rate, non-negative timestamps, no fragments); anything else returns None and the
caller demuxes.
"""

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

MP4_SUFFIXES = (".mp4", ".mov", ".m4v")
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}


@dataclass(frozen=True)
class SampleTable:
    """What the sample tables of a file's first video track say.

    Attributes
    ----------
    track_id : int
        The track's ID (FFmpeg's ``stream.id``).
    pts : numpy.ndarray
        ``(N,)`` int64 presentation timestamps, in decode order, in the track's time base.
    dts : numpy.ndarray
        ``(N,)`` int64 decode timestamps from 0: what FFmpeg's demuxer seeks by.
    keyframe : numpy.ndarray
        ``(N,)`` bool: the sample is a sync sample (decoding can start there).
    end : numpy.ndarray
        ``(N,)`` int64: the byte just after each sample in the file.
    timescale : int
        Time-base denominator (``mdhd``).
    codec : str
        The sample entry's four-character code (``avc1``, ``hvc1``, ``mp4v``, ...).
    """

    track_id: int
    pts: np.ndarray
    dts: np.ndarray
    keyframe: np.ndarray
    end: np.ndarray
    timescale: int
    codec: str


class _Unsupported(Exception):
    """A layout this parser does not handle: demux instead."""


def _boxes(
    data: bytes, start: int = 0, stop: int | None = None
) -> Iterator[tuple[bytes, int, int]]:
    """Yield ``(type, payload start, payload end)`` of the boxes in ``data[start:stop]``."""
    stop = len(data) if stop is None else stop
    pos = start
    while pos + 8 <= stop:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > stop:
                raise _Unsupported("truncated box header")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = stop - pos
        if size < header or pos + size > stop:
            raise _Unsupported(f"box {kind!r} overruns its parent")
        yield kind, pos + header, pos + size
        pos += size


def _find_moov(f: BinaryIO, file_size: int) -> bytes:
    """Read the ``moov`` box, skipping over the others (``mdat`` may come first)."""
    pos = 0
    while pos + 8 <= file_size:
        f.seek(pos)
        head = f.read(16)
        size, kind = struct.unpack_from(">I4s", head)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", head, 8)
            header = 16
        elif size == 0:
            size = file_size - pos
        if size < header:
            raise _Unsupported(f"bad box size at byte {pos}")
        if kind == b"moov":
            if pos + size > file_size:
                raise _Unsupported("the moov box is cut off")
            f.seek(pos + header)
            return f.read(size - header)
        pos += size
    raise _Unsupported("no moov box")


def _full_box(data: bytes, start: int) -> tuple[int, int]:
    """Version and the offset after the version/flags word."""
    return data[start], start + 4


def _u32_table(data: bytes, start: int, end: int, columns: int) -> np.ndarray:
    version, pos = _full_box(data, start)
    (count,) = struct.unpack_from(">I", data, pos)
    pos += 4
    if pos + 4 * columns * count > end:
        raise _Unsupported("table overruns its box")
    table = np.frombuffer(data, ">u4", count * columns, pos)
    return table.reshape(count, columns).astype(np.int64)


def _track(data: bytes, start: int, end: int, movie_scale: int) -> dict | None:
    """Parse one ``trak``; None unless it is a video track."""
    boxes: dict[bytes, tuple[int, int]] = {}

    def walk(a: int, b: int) -> None:
        for kind, s, e in _boxes(data, a, b):
            if kind in _CONTAINERS:
                walk(s, e)
            elif kind not in boxes:
                boxes[kind] = (s, e)

    walk(start, end)
    if b"hdlr" not in boxes or data[boxes[b"hdlr"][0] + 8 : boxes[b"hdlr"][0] + 12] != b"vide":
        return None
    for needed in (b"tkhd", b"mdhd", b"stts", b"stsz", b"stsc", b"stsd"):
        if needed not in boxes:
            raise _Unsupported(f"video track without {needed.decode()}")
    if b"stco" not in boxes and b"co64" not in boxes:
        raise _Unsupported("video track without chunk offsets")
    s, _ = boxes[b"tkhd"]
    version, pos = _full_box(data, s)
    (track_id,) = struct.unpack_from(">I", data, pos + (16 if version == 1 else 8))
    s, _ = boxes[b"mdhd"]
    version, pos = _full_box(data, s)
    (timescale,) = struct.unpack_from(">I", data, pos + (16 if version == 1 else 8))
    if timescale == 0:
        raise _Unsupported("zero timescale")
    s, _ = boxes[b"stsd"]
    (entries,) = struct.unpack_from(">I", data, s + 4)
    if entries != 1:
        raise _Unsupported("several sample descriptions")
    codec = data[s + 12 : s + 16].decode("latin-1")

    # Sample sizes and where each sample ends in the file.
    s, e = boxes[b"stsz"]
    _, pos = _full_box(data, s)
    uniform, count = struct.unpack_from(">II", data, pos)
    if uniform:
        sizes = np.full(count, uniform, np.int64)
    else:
        if pos + 8 + 4 * count > e:
            raise _Unsupported("stsz overruns its box")
        sizes = np.frombuffer(data, ">u4", count, pos + 8).astype(np.int64)
    if b"co64" in boxes:
        s, e = boxes[b"co64"]
        _, pos = _full_box(data, s)
        (n_chunks,) = struct.unpack_from(">I", data, pos)
        offsets = np.frombuffer(data, ">u8", n_chunks, pos + 4).astype(np.int64)
    else:
        offsets = _u32_table(data, *boxes[b"stco"], 1)[:, 0]
    stsc = _u32_table(data, *boxes[b"stsc"], 3)
    end_of_samples = np.zeros(count, np.int64)
    if count:
        if not len(stsc) or not len(offsets) or stsc[0, 0] != 1:
            raise _Unsupported("bad stsc")
        firsts = np.append(stsc[:, 0] - 1, len(offsets))
        per_chunk = np.repeat(stsc[:, 1], np.diff(firsts).clip(0))
        if per_chunk.sum() < count:
            raise _Unsupported("stsc lists fewer samples than stsz")
        chunk_of = np.repeat(np.arange(len(per_chunk)), per_chunk)[:count]
        first_in_chunk = np.concatenate([[0], np.cumsum(per_chunk)[:-1]])
        cumulative = np.cumsum(sizes)
        before_chunk = np.concatenate([[0], cumulative])[first_in_chunk[chunk_of]]
        end_of_samples = offsets[chunk_of] + cumulative - before_chunk

    # Decode timestamps, composition offsets, edits.
    stts = _u32_table(data, *boxes[b"stts"], 2)
    deltas = np.repeat(stts[:, 1], stts[:, 0])
    if len(deltas) < count:
        raise _Unsupported("stts lists fewer samples than stsz")
    dts = np.concatenate([[0], np.cumsum(deltas[: count - 1])]) if count else deltas[:0]
    pts = dts.copy()
    if b"ctts" in boxes:
        ctts = _u32_table(data, *boxes[b"ctts"], 2)
        offsets_ct = np.repeat(ctts[:, 1].astype(np.uint32).view(np.int32), ctts[:, 0])
        if len(offsets_ct) < count:
            raise _Unsupported("ctts lists fewer samples than stsz")
        if (offsets_ct[:count] < 0).any():
            raise _Unsupported("negative composition offsets")
        pts = pts + offsets_ct[:count]
    shift = 0
    if b"elst" in boxes:
        s, e = boxes[b"elst"]
        version, pos = _full_box(data, s)
        (n_edits,) = struct.unpack_from(">I", data, pos)
        pos += 4
        edits = []
        for _ in range(n_edits):
            if version == 1:
                duration, media_time, rate = struct.unpack_from(">QqI", data, pos)
                pos += 20
            else:
                duration, media_time, rate = struct.unpack_from(">IiI", data, pos)
                pos += 12
            edits.append((duration, media_time, rate))
        if edits and edits[0][1] == -1:  # an empty edit: the media starts later
            shift += edits[0][0] * timescale // movie_scale
            if edits[0][0] * timescale % movie_scale:
                raise _Unsupported("empty edit not a whole number of media ticks")
            edits = edits[1:]
        if len(edits) > 1 or (edits and edits[0][2] != 0x10000):
            raise _Unsupported("an edit list FFmpeg would cut")
        if edits:
            duration, media_time, _ = edits[0]
            shift -= media_time
            if count and duration and movie_scale:
                # FFmpeg drops what the edit does not cover: only whole-clip edits here.
                span = duration * timescale / movie_scale
                if pts.max() - media_time >= span:
                    raise _Unsupported("the edit list ends before the media")
    pts = pts + shift
    if count and pts.min() < 0:
        raise _Unsupported("timestamps before the edit")
    keyframe = np.ones(count, bool)
    if b"stss" in boxes:
        sync = _u32_table(data, *boxes[b"stss"], 1)[:, 0]
        keyframe[:] = False
        sync = sync[(sync >= 1) & (sync <= count)] - 1
        keyframe[sync] = True
    return {
        "track_id": int(track_id),
        "pts": pts.astype(np.int64),
        "dts": dts.astype(np.int64),
        "keyframe": keyframe,
        "end": end_of_samples,
        "timescale": int(timescale),
        "codec": codec,
    }


def read_sample_table(path: str | os.PathLike) -> SampleTable | None:
    """Read the first video track's sample tables of an MP4/MOV file.

    Parameters
    ----------
    path : str or os.PathLike
        An ``.mp4``, ``.mov`` or ``.m4v`` file.

    Returns
    -------
    SampleTable or None
        The timestamps, sync samples and sample ends; None when the file is not one this
        parser handles exactly (fragmented, unusual edit lists, no video track, damaged
        boxes, ...): demux it instead.
    """
    path = Path(path)
    try:
        file_size = path.stat().st_size
        with open(path, "rb") as f:
            moov = _find_moov(f, file_size)
        movie_scale = 0
        for kind, s, _ in _boxes(moov):
            if kind == b"mvex":
                raise _Unsupported("fragmented file")
            if kind == b"mvhd":
                version, pos = _full_box(moov, s)
                (movie_scale,) = struct.unpack_from(">I", moov, pos + (16 if version == 1 else 8))
        for kind, s, e in _boxes(moov):
            if kind == b"trak":
                track = _track(moov, s, e, movie_scale or 1)
                if track is not None:
                    return SampleTable(**track)
    except (_Unsupported, struct.error, ValueError, OSError):
        return None
    return None
