"""Atomic file writing: a hidden temporary name beside the destination, then a rename."""

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temporary_path(final: Path) -> Path:
    """Reserve a hidden temporary file beside ``final``, with the usual permissions."""
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    # mkstemp makes 0600 files; the renamed result should look like any other file.
    os.chmod(tmp, 0o666 & ~_umask())
    return Path(tmp)


def atomic_write(path: Path, write: Callable[[Any], None]) -> Path:
    """Write a file through a temporary name in its folder, renamed when complete.

    ``write`` is called with an open binary file object.  On any error the temporary
    file is removed and an existing ``path`` is left as it was.
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
