"""Atomic file writing: a hidden temporary name beside the destination, then a rename.

Files are flushed to disk (``fsync``) before the rename and the folder after it, so a
crash right after a save finds either the old file or the complete new one.  The few
renames that make a save final run with the catchable stop signals held back
(:func:`held_signals`), so a Ctrl+C or a ``kill`` lands before or after them, never
between two of them.
"""

import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: The signals a user or a system sends to stop a process and that it can catch.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temporary_path(final: Path) -> Path:
    """Reserve a hidden temporary file beside ``final``, with the usual permissions."""
    with held_signals():  # the file exists only once the caller knows its name
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    # mkstemp makes 0600 files; the renamed result should look like any other file.
    os.chmod(tmp, 0o666 & ~_umask())
    return Path(tmp)


def fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to disk."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if Path(path).is_dir() else 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # a folder cannot be opened on some systems (Windows)
        if Path(path).is_dir():
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not Path(path).is_dir():  # some file systems do not sync folders
            raise
    finally:
        os.close(fd)


def final_name_error(exc: BaseException, tmp: Path, final: Path) -> BaseException:
    """Return ``exc`` naming ``final`` where it named the hidden temporary ``tmp``.

    An OSError gets ``final`` as its file name; the message of another error is left as
    it is unless it quotes the temporary path, which is then replaced.
    """
    if isinstance(exc, OSError):
        if exc.filename is not None and Path(str(exc.filename)) == Path(tmp):
            renamed = OSError(exc.errno, exc.strerror, str(final))
            renamed.__cause__ = exc
            return renamed
        return exc
    if str(tmp) in str(exc) and type(exc) in (ValueError, RuntimeError, TypeError):
        replaced = type(exc)(str(exc).replace(str(tmp), str(final)))
        replaced.__cause__ = exc
        return replaced
    return exc


@contextmanager
def held_signals() -> Iterator[list[int]]:
    """Hold back SIGINT, SIGTERM and SIGHUP for the duration of a short critical step.

    In the main thread, a stop signal that arrives inside the block is recorded (into
    the yielded list) and delivered again, to the handler that was in place, when the
    block ends.  In other threads (which never run signal handlers) it does nothing.

    Yields
    ------
    list of int
        The signals received so far inside the block: a caller may look at it to undo
        its work before they are delivered.
    """
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    received: list[int] = []
    previous = {}
    try:
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) in (signal.SIG_IGN, None):
                continue  # ignored (nohup, say), or set outside Python: leave it
            previous[sig] = signal.signal(sig, lambda signum, frame: received.append(signum))
    except (ValueError, OSError):  # pragma: no cover - an embedded interpreter
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        yield received
        return
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(received):
            signal.raise_signal(sig)


def atomic_write(path: Path, write: Callable[[Any], None]) -> Path:
    """Write a file through a temporary name in its folder, renamed when complete.

    ``write`` is called with an open binary file object.  The data reach the disk before
    the rename.  On any error the temporary file is removed and an existing ``path`` is
    left as it was; an error names ``path``, not the temporary file.
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        with held_signals():
            os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        renamed = final_name_error(exc, tmp, path)
        if renamed is exc:
            raise
        raise renamed from exc
    fsync_path(path.parent)
    return path
