"""Compile the kernels a first fit needs ahead of time, in child processes.

numba compiles a kernel on its first call and caches it on disk (see ``_numba_cache``):
the first fit after installing waits for that, half a minute of CPU.  A warm-up runs a
default fit, its scoring and an on-line run on a small synthetic clip in child
processes, started as soon as the plugin's widget opens (or while the command line reads
its video), so the kernels are in numba's on-disk cache by the time the fit asks for
them.  Child processes, not threads: numba's compiler holds the GIL for seconds at a
time, and a thread compiling would freeze napari.

Each part calls the functions a fit calls (``fit_background``, the model's scoring,
``run_online``), never a kernel by name, so the warm-up compiles whatever those compile
today.  A part that finishes leaves a marker beside numba's cache, keyed on the
package's sources, numba's version and the CPU, so a warm cache starts nothing.  A child
that fails is ignored (the fit then compiles what it needs itself); children write
nothing on the terminal, are reaped as they end, are stopped when this process exits
and stop by themselves if it dies.  ``NAPARI_GMM_BG_WARMUP=0`` turns the warm-up off.
"""

import atexit
import hashlib
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

#: The parts of a warm-up, in the order a first fit needs them: the offline fit (its EM),
#: the fit's background choice and the scoring of its result (log-likelihood, mask and its
#: clean-up, background), the on-line mode.
PARTS = ("fit", "score", "online")
#: The same for video of any other dtype (uint16, float...), which the kernels take as
#: float32: not warmed up by default (half a minute more of compilation).
FLOAT_PARTS = ("fit-float32", "score-float32", "online-float32")
#: Pieces of a part, for a caller that compiles the rest itself: "online-rest" is all the
#: on-line mode compiles but its update (which the command line's on-line run compiles
#: meanwhile).  Cached already when the whole part is.
PIECES = {"online-rest": "online"}
#: Relative compile cost of each part (CPU seconds measured on an x86-64 core, the fit and
#: score parts compiling side by side: the background choice, which the fit calls, is
#: compiled by the score part), to share the parts between child processes.
COST = {"fit": 17.0, "score": 18.0, "online": 9.5}
COST.update({"fit-float32": 19.5, "score-float32": 19.5, "online-float32": 7.5})
COST["online-rest"] = 3.5
#: Set to "0" to never start a warm-up.
SWITCH = "NAPARI_GMM_BG_WARMUP"
_MARKER = "napari-gmm-bg-warm"

# The warm-up clip: uint8 RGB, the dtype of decoded video (grey frames use the same
# kernels), large enough to be cut into tiles like a real clip's.
_CLIP_FRAMES = 24
_CLIP_SHAPE = (96, 128)

_LOCK = threading.Lock()
_CHILDREN: list[subprocess.Popen] = []
_CURRENT: "WarmUp | None" = None


def _kernels_module() -> ModuleType:
    from . import _kernels

    return _kernels


def cache_folder() -> Path | None:
    """Find the folder numba caches this package's kernels in (None: it caches none).

    Returns
    -------
    pathlib.Path or None
        numba's cache folder for ``core/_kernels.py`` (``__pycache__`` beside it, or
        under ``NUMBA_CACHE_DIR``, or the fallback ``_numba_cache`` chose).
    """
    for value in vars(_kernels_module()).values():
        path = getattr(getattr(value, "_cache", None), "_cache_path", None)
        if path:
            return Path(path)
    return None  # compiled without cache=True: a warm-up would keep nothing


def _key() -> str:
    # What makes numba's cached kernels stale or foreign: the sources (numba keys its
    # index on the kernel file's time and size; any core file may change what a fit
    # compiles), numba and Python, and the CPU the code was compiled for.
    import numba

    from .. import __version__

    parts = [__version__, numba.__version__, sys.version, platform.machine()]
    try:
        import llvmlite.binding as llvm  # type: ignore[import-untyped]

        parts += [llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()]
    except Exception:  # pragma: no cover - an llvmlite without these
        pass
    for source in sorted(Path(__file__).parent.glob("*.py")):
        info = source.stat()
        parts.append(f"{source.name}:{info.st_mtime_ns}:{info.st_size}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def marker(part: str, folder: Path | None = None) -> Path | None:
    """Name the file that says ``part`` is compiled and cached (None: nothing is cached).

    Parameters
    ----------
    part : str
        One of :data:`PARTS` or :data:`FLOAT_PARTS`.
    folder : pathlib.Path, optional
        numba's cache folder (:func:`cache_folder` when None).

    Returns
    -------
    pathlib.Path or None
        The marker's path (it exists once the part has run to its end).
    """
    folder = cache_folder() if folder is None else folder
    return None if folder is None else _marker_in(folder, part)


def _marker_in(folder: Path, part: str) -> Path:
    return folder / f"{_MARKER}-{part}-{_key()}"


def is_warm(parts: Iterable[str] = PARTS) -> bool:
    """Say whether the kernels of these parts are already in numba's cache.

    A few file-system checks; nothing is imported or compiled.

    Parameters
    ----------
    parts : iterable of str
        From :data:`PARTS` and :data:`FLOAT_PARTS`.

    Returns
    -------
    bool
        True when every part's marker exists (or when nothing can be cached, so that
        there is nothing to warm).
    """
    folder = cache_folder()
    if folder is None:
        return True
    return all(_marker_in(folder, p).exists() for p in parts)


# --- numba's cache, shared by processes ------------------------------------------------
_LOCK_NAME = "napari-gmm-bg-cache.lock"


def serialise_cache_writes() -> None:
    """Make this process's numba cache reads and writes of the kernels take a file lock.

    numba saves a compiled overload by reading the function's index, picking the next
    free data file number and writing both: two processes saving different overloads
    of one function at the same moment can pick the same number, and the index may then
    point at the other overload's code.  The warm-up's children and the process that
    started them compile at the same time, so each of them takes a lock on the cache
    folder around each save (exclusive) and load (shared).  Only this package's cache
    folder is locked; where ``fcntl`` is missing nothing changes.
    """
    try:
        import fcntl

        from numba.core.caching import IndexDataCacheFile
    except ImportError:  # pragma: no cover - not POSIX, or numba moved it
        return
    save, load = IndexDataCacheFile.save, IndexDataCacheFile.load
    if getattr(save, "_napari_gmm_bg", False):
        return
    ours = cache_folder()
    if ours is None:
        return

    def locked(method: Callable[..., Any], mode: int) -> Callable[..., Any]:
        def call(self: Any, *args: Any) -> Any:
            if Path(self._cache_path) != ours:
                return method(self, *args)
            try:
                handle = open(ours / _LOCK_NAME, "a")  # noqa: SIM115 (closed below)
            except OSError:
                return method(self, *args)
            with handle:
                fcntl.flock(handle, mode)
                return method(self, *args)

        call._napari_gmm_bg = True  # type: ignore[attr-defined]
        return call

    IndexDataCacheFile.save = locked(save, fcntl.LOCK_EX)  # type: ignore[method-assign]
    IndexDataCacheFile.load = locked(load, fcntl.LOCK_SH)  # type: ignore[method-assign]


# --- the parts, run in the child --------------------------------------------------------
def _clip() -> np.ndarray:
    from .synthetic import make_sample

    return make_sample("moving-shapes", n_frames=_CLIP_FRAMES, shape=_CLIP_SHAPE).video


def _part_fit(clip: np.ndarray) -> None:
    from .gmm import fit_background

    fit_background(clip)


def _untrained_model(clip: np.ndarray) -> Any:
    # A model with the fitted model's types and default settings, made without fitting
    # (the fit's kernels are compiled by another child meanwhile).
    from .gmm import BackgroundModel, FitParameters, learning_indices
    from .intensity import IntensityScale

    params = FitParameters()
    n_frames, height, width, channels = clip.shape
    k = params.n_components
    weights = np.empty((height, width, k), np.float32)
    weights[:] = np.linspace(2.0, 1.0, k) / np.linspace(2.0, 1.0, k).sum()
    means = np.empty((height, width, k, channels), np.float32)
    means[:] = np.median(clip, axis=0)[:, :, None, :]
    means += np.arange(k, dtype=np.float32)[:, None] * 40.0
    variances = np.full((height, width, k, channels), 100.0, np.float32)
    # Every pixel consults its neighbours: the consensus kernel compiles here too.
    consensus = np.ones((height, width), np.uint8)
    return BackgroundModel(
        weights=weights,
        means=means,
        variances=variances,
        dtype=np.dtype(clip.dtype),
        grey=False,
        intensity=IntensityScale.for_data(np.dtype(clip.dtype), clip),
        params=params,
        learning_indices=learning_indices(n_frames, params.learning_frames, None),
        consensus=consensus,
    )


def _part_score(clip: np.ndarray) -> None:
    import dask.array as da

    from .cluster import without_cluster
    from .gmm import choose_pixel_background

    model = _untrained_model(clip)
    # The fit's background choice first (the fit needs it before any scoring): here, so
    # the fit's own child (or the command line) compiles only the EM and its start.
    _, height, width, channels = clip.shape
    learning = clip[model.learning_indices].reshape(-1, height * width, channels)
    choose_pixel_background(
        learning,
        model.intensity,
        model.params,
        model.weights.reshape(height * width, -1),
        model.means.reshape(height * width, *model.means.shape[2:]),
        model.variances.reshape(height * width, *model.variances.shape[2:]),
    )
    # As the command line scores (numpy) and as napari does (a dask clip, frame by frame).
    model.distance(clip)
    model.foreground(clip)
    lazy = da.from_array(clip, chunks=(1, *clip.shape[1:]))
    # dask as it is without a client, said outright: left to choose, it would import
    # distributed (0.3 s of this child's time, which a first fit may wait for).
    with without_cluster():
        np.asarray(model.distance(lazy)[:2])
        np.asarray(model.foreground(lazy)[:2])
    model.background_image()


def _part_online(clip: np.ndarray) -> None:
    from .online import run_online

    run_online(clip).foreground()


def _part_online_rest(clip: np.ndarray) -> None:
    # What an on-line run compiles besides its update (which the command line compiles
    # meanwhile), called as OnlineModel calls it: the brightness reference, the spatial
    # consensus on a window's frames, the labels and their clean-up.
    from .intensity import IntensityScale, frame_transform
    from .online import NeighbourConsensus, OnlineSettings, background_reference, label_scores

    settings = OnlineSettings()
    n, height, width, channels = clip.shape
    pixels, k = height * width, settings.n_components
    median = np.median(clip, axis=0).reshape(pixels, channels).T
    state = (
        np.full((k, pixels), 1.0 / k, np.float32),
        np.repeat(median[None].astype(np.float32), k, axis=0),
        np.full((k, pixels), settings.var_init, np.float32),
        np.full(pixels, float(k), np.float32),
    )
    intensity = IntensityScale.for_data(np.dtype(clip.dtype), clip)
    reference = background_reference(state, (height, width))
    offsets, scales = frame_transform(
        intensity, reference.correction_of_frames(clip, intensity), n
    )
    flat = np.ascontiguousarray(clip).reshape(n, pixels * channels)
    scores = np.full((n, pixels), 2.0 * settings.match_distance, np.float32)
    consensus = NeighbourConsensus((height, width), settings.consensus_radius, settings.history)
    consensus.start_window(state, settings.background_ratio)
    consensus.apply(flat, offsets, scales, scores, 1.0)
    shadow = np.zeros((n, height, width), bool)
    label_scores(scores.reshape(n, height, width), shadow, 1.0, settings.shadows)


def _as_uint16(clip: np.ndarray) -> np.ndarray:
    return clip.astype(np.uint16) * 257


_RUN = {
    "fit": _part_fit,
    "score": _part_score,
    "online": _part_online,
    "online-rest": _part_online_rest,
}
_RUN.update(
    {
        "fit-float32": lambda clip: _part_fit(_as_uint16(clip)),
        "score-float32": lambda clip: _part_score(_as_uint16(clip)),
        "online-float32": lambda clip: _part_online(_as_uint16(clip)),
    }
)


def run_parts(parts: Sequence[str]) -> None:
    """Run the parts here, in this process, and mark each one done.

    What a warm-up child does; call it directly to fill the cache in the foreground (a
    build step, an installer).

    Parameters
    ----------
    parts : sequence of str
        From :data:`PARTS`, :data:`FLOAT_PARTS` and :data:`PIECES`.

    Raises
    ------
    ValueError
        If a part is not one of :data:`PARTS`, :data:`FLOAT_PARTS` or :data:`PIECES`.
    """
    unknown = [p for p in parts if p not in _RUN]
    if unknown:
        choices = [*PARTS, *FLOAT_PARTS, *PIECES]
        raise ValueError(f"unknown warm-up part(s) {unknown}; choose from {choices}")
    clip = _clip()
    for part in parts:
        _RUN[part](clip)
        path = marker(part)
        if path is not None:
            # Markers of this part for other sources ("fit-" + a key, not "fit-float32-").
            for stale in path.parent.glob(f"{_MARKER}-{part}-{'?' * len(_key())}"):
                stale.unlink(missing_ok=True)
            path.touch()


# --- the children, seen from the parent -------------------------------------------------
def usable_cores() -> int:
    """Count the cores this process may run on.

    Returns
    -------
    int
        Its CPU affinity's size where known, else the machine's cores.
    """
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def share(parts: Sequence[str], workers: int) -> list[list[str]]:
    """Share parts between at most ``workers`` children: each part to the least loaded.

    Parameters
    ----------
    parts : sequence of str
        From :data:`PARTS` and :data:`FLOAT_PARTS`, in the order they are needed.
    workers : int
        Children at most.

    Returns
    -------
    list of list of str
        The parts of each child, each list in the order given, the lists in the order of
        their first parts.
    """
    groups: list[list[str]] = [[] for _ in range(max(1, min(workers, len(parts))))]
    loads = [0.0] * len(groups)
    for part in sorted(parts, key=lambda p: -COST.get(p, 1.0)):
        i = loads.index(min(loads))
        groups[i].append(part)
        loads[i] += COST.get(part, 1.0)
    order = {p: i for i, p in enumerate(parts)}
    shared = [sorted(g, key=order.__getitem__) for g in groups if g]
    return sorted(shared, key=lambda g: order[g[0]])  # the child with the first part first


class WarmUp:
    """Child processes compiling the kernels of some parts.

    Parameters
    ----------
    children : list of (subprocess.Popen, tuple of str)
        Each child and the parts it runs.
    markers : dict
        Each part's marker file.
    """

    def __init__(
        self, children: list[tuple[subprocess.Popen, tuple[str, ...]]], markers: dict
    ) -> None:
        self.children = children
        self.markers = markers

    @property
    def parts(self) -> tuple[str, ...]:
        """Every part a child runs."""
        return tuple(p for _, parts in self.children for p in parts)

    @property
    def running(self) -> bool:
        """True while a child runs."""
        return any(process.poll() is None for process, _ in self.children)

    def pending(self, parts: Iterable[str] | None = None) -> bool:
        """Say whether a child still works on one of these parts.

        Parameters
        ----------
        parts : iterable of str
            From :data:`PARTS` and :data:`FLOAT_PARTS`; all of this warm-up's when None.

        Returns
        -------
        bool
            False once each of the parts is marked done, or its child has ended
            (a child that failed leaves its part to whoever needs it).
        """
        wanted = set(self.parts if parts is None else parts)
        for process, own in self.children:
            for part in wanted.intersection(own):
                if not self.markers[part].exists() and process.poll() is None:
                    return True
        return False

    def wait(self, parts: Iterable[str] | None = None, timeout: float | None = None) -> bool:
        """Wait until no child works on these parts any more.

        Parameters
        ----------
        parts : iterable of str
            From :data:`PARTS` and :data:`FLOAT_PARTS`; all of this warm-up's when None.
        timeout : float, optional
            Seconds at most; no limit when None.

        Returns
        -------
        bool
            True when no child works on them any more, False on timeout.
        """
        parts = self.parts if parts is None else tuple(parts)
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.pending(parts):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def terminate(self) -> None:
        """Stop every child (what it cached so far stays cached)."""
        for process, _ in self.children:
            _stop(process)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        process.terminate()
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    except OSError:  # pragma: no cover - already gone
        pass


def _stop_all() -> None:
    with _LOCK:
        children = list(_CHILDREN)
    for process in children:
        _stop(process)


atexit.register(_stop_all)


def _environment(folder: Path) -> dict[str, str]:
    from numba.core import config

    env = dict(os.environ)
    env[SWITCH] = "0"  # a child starts no warm-up of its own
    requested = getattr(config, "CACHE_DIR", None)
    if requested:  # the fallback folder _numba_cache chose, or the user's
        env["NUMBA_CACHE_DIR"] = str(requested)
    # This very copy of the package, wherever the child starts.
    source = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
    return env


def start_warm_up(parts: Sequence[str] = PARTS, workers: int | None = None) -> WarmUp | None:
    """Compile the kernels of these parts in the background, if they are not cached yet.

    Parameters
    ----------
    parts : sequence of str
        From :data:`PARTS`, :data:`FLOAT_PARTS` and :data:`PIECES`, in the order they
        will be needed.
    workers : int, optional
        Child processes at most (this machine's cores when None).

    Returns
    -------
    WarmUp or None
        The running warm-up (the one already running when there is one), or None when
        there is nothing to do: every part is cached, nothing can be cached, or
        ``NAPARI_GMM_BG_WARMUP=0``.
    """
    global _CURRENT
    if os.environ.get(SWITCH, "1").strip() == "0":
        return None
    with _LOCK:
        if _CURRENT is not None and _CURRENT.running:
            return _CURRENT
        folder = cache_folder()
        if folder is None:
            return None
        markers = {p: _marker_in(folder, p) for p in (*PARTS, *FLOAT_PARTS, *PIECES)}
        cold = [
            p
            for p in dict.fromkeys(parts)
            if not markers[p].exists() and not markers[PIECES.get(p, p)].exists()
        ]
        if not cold:
            return None
        env = _environment(folder)
        serialise_cache_writes()  # this process may compile beside its children
        children = []
        for group in share(cold, usable_cores() if workers is None else workers):
            command = [sys.executable, "-m", __name__, str(os.getpid()), str(folder), *group]
            try:
                process = subprocess.Popen(
                    command,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    close_fds=True,
                )
            except OSError:
                continue  # no child: the fit compiles what it needs itself
            # Reaped as soon as it ends, whether or not anybody asks.
            threading.Thread(target=process.wait, daemon=True).start()
            _CHILDREN[:] = [c for c in _CHILDREN if c.poll() is None] + [process]
            children.append((process, tuple(group)))
        _CURRENT = WarmUp(children, markers) if children else None
        return _CURRENT


def current() -> WarmUp | None:
    """Give the warm-up this process started last, or None.

    Returns
    -------
    WarmUp or None
        The last warm-up started here (it may have ended).
    """
    return _CURRENT


def _exit_with(parent: int) -> None:
    # Reparented: the process that started us is gone; stop compiling for nobody.
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def _child(argv: Sequence[str]) -> int:
    parent, folder, *parts = argv
    _exit_with(int(parent))
    if str(cache_folder()) != folder:
        return 3  # this process would cache elsewhere: nobody would find the kernels
    serialise_cache_writes()
    run_parts(parts)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
