"""Where numba keeps the compiled kernels: a writable folder, found before they compile.

numba's ``cache=True`` looks, in order, at ``NUMBA_CACHE_DIR``, the ``__pycache__`` folder
beside the source and the user's cache folder (``~/.cache/numba``), and fails at import
("cannot cache function ...: no locator available") when none of them is writable: a
shared read-only install with a read-only ``$HOME``, a container.  ``ensure_cache_dir``
checks the same places and, when none is writable, points numba at a private folder in the
temporary directory; it is called before the first ``@njit(cache=True)`` runs.
"""

import os
import stat
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from numba.core import config, event

_FALLBACK_NAME = "napari-gmm-bg-numba-cache"


def _writable(folder: str | os.PathLike) -> bool:
    # numba's own test (_CacheLocator.ensure_cache_path): create it, write a file in it.
    try:
        os.makedirs(folder, exist_ok=True)
        tempfile.TemporaryFile(dir=os.fspath(folder)).close()
    except OSError:
        return False
    return True


def _user_cache_dir() -> str | None:
    try:
        from numba.misc.appdirs import AppDirs
    except ImportError:  # pragma: no cover - moved in some numba release
        return None
    return AppDirs(appname="numba", appauthor=False).user_cache_dir


def _private_folder(folder: Path) -> bool:
    # A shared temporary directory: use the folder only if it is ours and nobody else's
    # to write in (numba's cache files are pickles, loaded as code).
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        return False
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return False
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return False
    return _writable(folder)


def fallback_cache_dir() -> str | None:
    """A private writable folder in the temporary directory, or None if there is none.

    Returns
    -------
    str or None
        ``<tmp>/napari-gmm-bg-numba-cache-<uid>`` when it is (or can be made) ours alone,
        else a fresh ``mkdtemp`` folder; None when the temporary directory is not writable.
    """
    suffix = f"-{os.getuid()}" if hasattr(os, "getuid") else ""
    try:
        base = Path(tempfile.gettempdir())
    except (OSError, FileNotFoundError):
        return None
    folder = base / f"{_FALLBACK_NAME}{suffix}"
    if _private_folder(folder):
        return str(folder)
    try:
        return tempfile.mkdtemp(prefix=f"{_FALLBACK_NAME}-")
    except OSError:
        return None


def ensure_cache_dir(module_file: str) -> bool:
    """Make sure numba can cache the kernels of ``module_file``; say whether it can.

    Parameters
    ----------
    module_file : str
        The source file whose functions are compiled with ``cache=True``.

    Returns
    -------
    bool
        True when a writable cache folder is set or found (pass ``cache=True``), False when
        nothing is writable at all (compile without caching).
    """
    requested = getattr(config, "CACHE_DIR", None) or None
    if requested is not None and _writable(requested):
        return True
    # numba passes over an unwritable NUMBA_CACHE_DIR to the next places, as here.
    if _writable(Path(module_file).parent / "__pycache__"):
        return True
    user = _user_cache_dir()
    if user is not None and _writable(user):
        return True
    fallback = fallback_cache_dir()
    if requested is not None:
        warnings.warn(
            f"NUMBA_CACHE_DIR={requested} is not writable; napari-gmm-bg caches its "
            f"compiled kernels in {fallback or 'no folder (compiling on every run)'}",
            RuntimeWarning,
            stacklevel=2,
        )
    if fallback is None:
        return False
    config.CACHE_DIR = fallback  # type: ignore[attr-defined]
    return True


FIRST_RUN_MESSAGE = (
    "preparing the fast kernels, first run only (numba compiles them once, in some "
    "seconds to a minute, and caches them on disk)..."
)


class _FirstCompile(event.Listener):
    # Calls `say` once, when numba starts compiling one of this package's functions (a
    # kernel found in the on-disk cache is loaded without a compile event).
    def __init__(self, say: Callable[[str], None], message: str):
        self._say, self._message = say, message
        self._lock = threading.Lock()
        self.said = False

    def on_start(self, ev: event.Event) -> None:
        func = getattr(ev.data.get("dispatcher"), "py_func", None)
        if not getattr(func, "__module__", "").startswith("napari_gmm_bg"):
            return
        with self._lock:
            if self.said:
                return
            self.said = True
        self._say(self._message)

    def on_end(self, ev: event.Event) -> None:
        pass


@contextmanager
def announce_compilation(
    say: Callable[[str], None], message: str = FIRST_RUN_MESSAGE
) -> Iterator[None]:
    """Call ``say(message)`` once if a kernel has to be compiled inside the block.

    Parameters
    ----------
    say : callable
        Shows the message (prints it, notifies the user); called at most once, from the
        thread that compiles.
    message : str
        What to say.

    Yields
    ------
    None
        Nothing; the listener is removed when the block ends.
    """
    listener = _FirstCompile(say, message)
    with event.install_listener("numba:compile", listener):
        yield
