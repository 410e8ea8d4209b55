"""Destinations that really refuse writes, for the writers' bad-input tests.

Tests here usually run as root, whom ``chmod`` does not stop (nor ``os.access``).  What
stops root: a read-only mount, and a full file system.  As root with the right to mount
(a container with CAP_SYS_ADMIN, say) these helpers mount them for real; as a normal user
``chmod`` is enough for a read-only folder.  When neither works the test is skipped:
each helper checks that the refusal is real before handing the folder over.
"""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# A folder root cannot create files in, on any Linux: sysfs refuses new files.
UNWRITABLE_FOLDER = Path("/sys")


def _mount(*args: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", *args], capture_output=True)
    return done.returncode == 0


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _refuses_writes(folder: Path) -> bool:
    try:
        fd, probe = tempfile.mkstemp(dir=folder)
    except OSError:
        return True
    os.close(fd)
    os.unlink(probe)
    return False


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """Make ``folder`` (and what it holds) unwritable for the duration.

    Root: a read-only bind mount of the folder on itself; others: ``chmod 0o555``.
    """
    mounted = False
    if os.geteuid() == 0:
        mounted = _mount("--bind", str(folder), str(folder))
        if mounted and not _mount("-o", "remount,bind,ro", str(folder)):
            _umount(folder)
            mounted = False
    else:
        folder.chmod(0o555)
    try:
        if not _refuses_writes(folder):
            pytest.skip("cannot make a folder read-only here (root without mount rights)")
        yield folder
    finally:
        if mounted:
            _umount(folder)
        else:
            folder.chmod(0o755)


@contextmanager
def small_disk(folder: Path, size_kb: int) -> Iterator[Path]:
    """Mount a ``size_kb`` tmpfs on ``folder``, a file system that really fills up."""
    folder.mkdir(parents=True, exist_ok=True)
    if not _mount("-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)):
        pytest.skip("cannot mount a small file system here (needs root and mount rights)")
    try:
        yield folder
    finally:
        _umount(folder)
