"""Reading a pixel's history in a child process, so the GUI's interpreter keeps its GIL.

Decoding a lazily opened video (and finding each frame's brightness) takes the GIL in
many short and some long pieces; in a thread of napari's process that stalls the GUI
thread for hundreds of milliseconds at a time.  A child process (started once, kept,
and started before the first click) decodes instead and sends back, over a pipe, only
the pixel's values and scores.  The lazy video travels as its dask graph (the plugin's
readers pickle to a file path and an index, as for dask.distributed); a clip already in
memory is read in the calling thread, as before.

No napari or Qt here: the child imports only this module and the core.
"""

import atexit
import contextlib
import itertools
import pickle
import struct
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.frames import as_frames
from ..core.inspect import pixel_distance

#: A video whose pickle carries more array bytes than this (a clip in memory in a dask
#: array) is read in the calling thread: copying it to the child costs more than it saves.
MAX_SHIPPED_BYTES = 8 * 2**20

#: ``read(start, stop) -> (samples, scores)``: one chunk of a pixel's history.
ChunkReader = Callable[[int, int], tuple[np.ndarray, np.ndarray | None]]


def read_chunk(
    video: Any, y: int, x: int, start: int, stop: int, model: Any = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read frames ``start:stop`` of pixel ``(y, x)`` and score them as the score layer does.

    The frames are read whole when the model compensates brightness (each frame's
    brightness is part of its score), else only the pixel's column.

    Parameters
    ----------
    video : array-like
        ``(T, Y, X[, C])``, numpy or dask.
    y, x : int
        The pixel.
    start, stop : int
        The frames.
    model : BackgroundModel, optional
        The fitted model; None reads values only.

    Returns
    -------
    tuple
        The samples ``(n, C)`` and their distances ``(n,)`` (None without a model).
    """
    frames = as_frames(video)
    correction = None
    if model is not None and model.params.compensate_brightness:
        block = np.asarray(frames.data[start:stop])
        samples = block[:, y, x]
        correction = model.brightness(block)
    else:
        samples = np.asarray(frames.data[start:stop, y, x])
    samples = samples.reshape(stop - start, frames.n_channels)
    if model is None:
        return samples, None
    return samples, pixel_distance(model, y, x, samples, correction)


# --- the child's side ----------------------------------------------------------------
def serve(kind: str = "read") -> None:
    """The child's loop: requests in on stdin, replies out on (the original) stdout.

    It first imports what its ``kind`` of work needs ("read" or "draw") and says so
    with the reply ``(0, "ready", None)``; then it loads its scoring kernels, or draws a
    plot, ahead of the first request.

    Requests are tuples (written by :func:`send_request`): ``("open", video, model)``
    keeps a video and model for the reads that follow (and decodes the first frame, so
    the container is open by the first read); ``("read", id, y, x, start,
    stop)`` replies ``(id, (samples, scores), None)``; ``("draw", id, plots)`` (a
    ``PixelPlots``) replies ``(id, rgba, None)``; a failure replies ``(id, None,
    exception)``.  Replies are pickled.  End of input ends the child.
    """
    import os
    import sys

    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever a library prints goes to stderr, not into the replies
    sys.stdout = sys.stderr
    requests = sys.stdin.buffer
    import importlib

    needs = ("napari_gmm_bg._napari._pixel_figure", "mpl_toolkits.mplot3d")
    for module in needs if kind == "draw" else ("dask.array", "napari_gmm_bg.io.lazy_video"):
        importlib.import_module(module)
    replies.write(pickle.dumps((0, "ready", None)))
    replies.flush()
    # Only a head start: a failure here is met again, and reported, by a request.
    with contextlib.suppress(Exception):
        if kind == "read":
            _load_scoring_kernels()
        else:
            from ._pixel_figure import draw_once

            draw_once()
    video = model = None
    while True:
        try:
            request = receive_request(requests)
        except EOFError:
            return
        if request[0] == "open":
            video, model = request[1], request[2]
            # Open the container and decode the first frame now, before the click that
            # reads it (a failure here is met again, and reported, by that read).
            with contextlib.suppress(Exception):
                read_chunk(video, 0, 0, 0, 1, model)
            continue
        ident = request[1]
        try:
            if request[0] == "draw":
                payload: Any = _render(request[2])
            else:
                y, x, start, stop = request[2:]
                payload = read_chunk(video, y, x, start, stop, model)
            reply: tuple = (ident, payload, None)
        except Exception as exc:  # sent back: the parent raises it
            reply = (ident, None, exc)
        try:
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an exception that does not pickle: its text then
            data = pickle.dumps((ident, None, RuntimeError(f"{reply[2]!r} ({exc})")))
        replies.write(data)
        replies.flush()


def _load_scoring_kernels() -> None:
    """Load the kernels a read scores with from numba's cache now, while nobody waits
    (some 0.4 s of the first click otherwise).  On an empty cache nothing: the warm-up's
    children compile them, and this would compile them twice."""
    from ..core import warmup

    if not warmup.is_warm(("score",)):
        return
    clip = np.zeros((4, 8, 8, 3), np.uint8)
    clip[:, ::2] = 200
    read_chunk(clip, 1, 2, 0, 4, warmup._untrained_model(clip))


def _render(plots: Any) -> np.ndarray:
    """Lay out and draw the inspector's plots (a ``PixelPlots``); their RGBA pixels."""
    from ._pixel_figure import render

    return render(plots)


# --- requests: pickled, their arrays sent beside the pickle ------------------------------
_LENGTH = struct.Struct("<Q")


def send_request(stream: Any, request: tuple) -> None:
    """Write a request: its pickle (protocol 5), then each array's bytes as they are.

    A model's arrays (tens of megabytes) pickled in-band would be copied into the
    pickle while the GIL is held, stalling the GUI thread; written from their own
    memory, the copy is the pipe's, and a write waits without the GIL.
    """
    buffers: list[pickle.PickleBuffer] = []
    # Pickled whole before anything is written: a request that cannot pickle sends nothing.
    head = pickle.dumps(request, protocol=5, buffer_callback=buffers.append)
    stream.write(_LENGTH.pack(len(head)) + head + _LENGTH.pack(len(buffers)))
    for buffer in buffers:
        raw = buffer.raw()
        stream.write(_LENGTH.pack(raw.nbytes))
        stream.write(raw)
    stream.flush()


def receive_request(stream: Any) -> tuple:
    """Read a request written by :func:`send_request` (EOFError at the end of input)."""

    def exactly(n: int) -> bytearray:
        data = bytearray(n)
        view, got = memoryview(data), 0
        while got < n:
            read = stream.readinto(view[got:])
            if not read:
                raise EOFError("end of requests")
            got += read
        return data

    head = exactly(_LENGTH.unpack(exactly(_LENGTH.size))[0])
    count = _LENGTH.unpack(exactly(_LENGTH.size))[0]
    buffers = [exactly(_LENGTH.unpack(exactly(_LENGTH.size))[0]) for _ in range(count)]
    return pickle.loads(head, buffers=buffers)


# --- the parent's side ---------------------------------------------------------------
class NotReady(Exception):
    """The child is still starting (importing): do this piece of work here."""


#: Seconds a reply may take before the child is given up (killed, work done here).
REPLY_SECONDS = 120.0


class _Child:
    """A helper process: a plain ``python -c`` child, so no ``__main__`` is re-run
    (multiprocessing's spawn imports the parent's main script again).  A thread takes
    its replies off the pipe; ``ready`` is set once it has imported what it needs."""

    def __init__(self, kind: str) -> None:
        import queue
        import subprocess
        import sys

        code = f"from napari_gmm_bg._napari._pixel_reader import serve; serve({kind!r})"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.lock = threading.Lock()
        self.sent: tuple[Any, Any] | None = None  # the video and model it holds
        self.ids = itertools.count(1)
        self.ready = threading.Event()
        self._replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._take_replies, name=f"{kind}-replies", daemon=True).start()

    def _take_replies(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None  # made with a pipe
        try:
            while True:
                reply = pickle.load(stdout)
                if reply[0] == 0:
                    self.ready.set()
                else:
                    self._replies.put(reply)
        except Exception:  # end of output: the child ended
            self._replies.put(None)

    def send(self, request: tuple) -> None:
        stdin = self.process.stdin
        assert stdin is not None  # made with a pipe
        send_request(stdin, request)

    def hold(self, video: Any, model: Any) -> None:
        """Have the child keep this video and model for the reads that follow: sent
        unless it holds them already.  Call with ``lock`` held."""
        if self.sent is None or self.sent[0] is not video or self.sent[1] is not model:
            self.send(("open", video, model))
            self.sent = (video, model)  # kept: their ids stay theirs

    def receive(self, ident: int) -> tuple:
        """The reply to request ``ident`` (replies to abandoned requests are skipped)."""
        import queue

        while True:
            try:
                reply = self._replies.get(timeout=REPLY_SECONDS)
            except queue.Empty:
                raise EOFError("the child did not answer") from None
            if reply is None:
                self._replies.put(None)  # and for every later call
                raise EOFError("the child ended")
            if reply[0] == ident:
                return reply
            if reply[0] > ident:
                raise EOFError("reply out of order")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()  # the child ends at end of input
        with contextlib.suppress(Exception):
            self.process.wait(timeout=2)
        if self.process.poll() is None:
            self.process.kill()


_lock = threading.Lock()
#: One child reads, another draws: a drawing need not wait for the next chunk.
_children: dict[str, _Child] = {}


def _get_child(kind: str) -> _Child:
    with _lock:
        child = _children.get(kind)
        if child is None or child.process.poll() is not None:
            child = _children[kind] = _Child(kind)
        return child


def _forget_child(kind: str, child: _Child) -> None:
    with _lock:
        if _children.get(kind) is child:
            del _children[kind]
    child.close()


@atexit.register
def _stop_children() -> None:
    for child in list(_children.values()):
        child.close()


def warm_up(*kinds: str) -> None:
    """Start child processes now (each imports for a second or two), not on the first
    click.

    Parameters
    ----------
    *kinds : str
        ``"read"`` and / or ``"draw"``.
    """
    with contextlib.suppress(OSError):  # reads and drawings then happen in this process
        for kind in kinds:
            _get_child(kind)


def prepare(video: Any, model: Any) -> None:
    """Send a lazy video and its model to the reading child now, in a thread, so that
    the first click finds the container open and the model there.

    Parameters
    ----------
    video : dask.array.Array
        The lazy video (see :func:`worth_a_process`).
    model : BackgroundModel or None
        The fitted model, if any yet.
    """
    try:
        child = _get_child("read")
    except OSError:  # reads then happen in this process
        return

    def send() -> None:
        if not child.ready.wait(REPLY_SECONDS):
            return
        with child.lock:
            try:
                child.hold(video, model)
            except (OSError, pickle.PickleError):
                _forget_child("read", child)

    threading.Thread(target=send, name="read-prepare", daemon=True).start()


def draw_plots(plots: Any) -> np.ndarray:
    """Lay out and draw the inspector's plots in the drawing child; their RGBA pixels.

    Parameters
    ----------
    plots : PixelPlots
        What to plot (small arrays and numbers: cheap to pickle, unlike a laid-out
        figure).

    Returns
    -------
    numpy.ndarray
        ``(height, width, 4)`` uint8.

    Raises
    ------
    NotReady
        While the child is still starting: draw here this time.
    OSError, EOFError
        When the child cannot draw (it died, or cannot start): draw here instead.
    """
    child = _get_child("draw")
    if not child.ready.is_set():
        raise NotReady
    with child.lock:
        try:
            ident = next(child.ids)
            child.send(("draw", ident, plots))
            reply = child.receive(ident)
        except (OSError, EOFError, pickle.PickleError):
            _forget_child("draw", child)
            raise
    if reply[2] is not None:
        raise OSError(f"drawing failed in the child: {reply[2]!r}")
    return reply[1]


def worth_a_process(video: Any) -> bool:
    """Whether a video is decoded lazily and small to send: a dask array whose graph
    holds no clip in memory (the plugin's readers hold a path and an index)."""
    if not hasattr(video, "__dask_graph__"):
        return False
    buffers: list[Any] = []
    try:
        pickle.dumps(video, protocol=5, buffer_callback=buffers.append)
    except Exception:  # a graph that cannot travel is read here
        return False
    return sum(memoryview(b).nbytes for b in buffers) <= MAX_SHIPPED_BYTES


class ProcessReader:
    """Read chunks of one pixel's history in the child process, one chunk ahead.

    Parameters
    ----------
    video : dask.array.Array
        The lazy video (see :func:`worth_a_process`).
    y, x : int
        The pixel.
    model : BackgroundModel or None
        The fitted model, sent once for as long as the child keeps this video and model.
    n_frames : int
        Frames in the clip.
    """

    def __init__(self, video: Any, y: int, x: int, model: Any, n_frames: int) -> None:
        self._video, self._model = video, model
        self._y, self._x, self._n = y, x, n_frames
        self._ahead: dict[tuple[int, int], int] = {}
        self._local = False

    def _ask(self, child: _Child, start: int, stop: int) -> int:
        child.hold(self._video, self._model)
        ident = next(child.ids)
        child.send(("read", ident, self._y, self._x, start, stop))
        return ident

    def _read_in_child(self, start: int, stop: int) -> tuple:
        child = _get_child("read")
        with child.lock:
            try:
                ident = self._ahead.pop((start, stop), None) or self._ask(child, start, stop)
                if stop < self._n:
                    after = (stop, min(stop + (stop - start), self._n))
                    self._ahead[after] = self._ask(child, *after)
                reply = child.receive(ident)
            except (OSError, EOFError, pickle.PickleError):
                self._ahead.clear()
                _forget_child("read", child)
                raise
        if reply[2] is not None:
            raise reply[2]
        return reply[1]

    def __call__(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Read frames ``start:stop`` (and ask for the next as many meanwhile).

        Read here while the child is still starting (the first click after choosing the
        video), or for good once it has failed.
        """
        if not self._local and (self._ahead or _get_child("read").ready.is_set()):
            try:
                return self._read_in_child(start, stop)
            except (OSError, EOFError, pickle.PickleError):
                self._local = True  # the child died or the data cannot travel: read here
        return read_chunk(self._video, self._y, self._x, start, stop, self._model)

    def close(self) -> None:
        """Forget the chunks asked for ahead (their replies are skipped)."""
        self._ahead.clear()
