"""The package imports and caches its kernels when its own folder and $HOME are read-only."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import napari_gmm_bg
from napari_gmm_bg.core._numba_cache import FIRST_RUN_MESSAGE, announce_compilation

from .._numba import fresh_kernel

# Runs one small kernel (compiled in a second or two), then prints where numba caches.
CODE = """
import numba, numpy as np
import napari_gmm_bg
from napari_gmm_bg.core import _kernels
values = np.arange(24, dtype=np.float32).reshape(3, 2, 4)
assert (_kernels.median_over_frames(values) == values[1]).all()
print(numba.config.CACHE_DIR)
print(napari_gmm_bg.__file__)
print(_kernels._median_over_frames.stats.cache_hits.most_common(1))
"""


def _read_only_copy(root: Path) -> tuple[Path, Path]:
    """The package in a read-only folder and a read-only home.

    Both are also closed to root, who may write anywhere: every ``__pycache__`` and
    ``~/.cache`` is a file, so nothing can be created there.
    """
    site, home = root / "site", root / "home"
    shutil.copytree(
        Path(napari_gmm_bg.__file__).parent,
        site / "napari_gmm_bg",
        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"),
    )
    home.mkdir()
    (home / ".cache").touch()
    for folder in [home, *(p for p in site.rglob("*") if p.is_dir()), site]:
        (folder / "__pycache__").touch()
    for path in [*site.rglob("*"), site, *home.rglob("*"), home]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return site, home


def _run(site: Path, home: Path, tmp: Path, **extra: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "TMPDIR": str(tmp),
        "PYTHONDONTWRITEBYTECODE": "1",
        **extra,
    }
    if "NUMBA_CACHE_DIR" not in extra:
        env.pop("NUMBA_CACHE_DIR", None)
    return subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, env=env, cwd=tmp
    )


@pytest.mark.slow
def test_read_only_install_and_home_fall_back_to_a_temporary_cache(tmp_path):
    site, home = _read_only_copy(tmp_path)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    first = _run(site, home, tmp)
    assert first.returncode == 0, first.stderr
    cache = Path(first.stdout.splitlines()[0])
    assert cache.parent == tmp and cache.name.startswith("napari-gmm-bg-numba-cache")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert list(cache.rglob("*.nbi")), "nothing was cached"
    assert Path(first.stdout.splitlines()[1]).is_relative_to(site)  # the copy, not src
    # A second process finds the kernel in the fallback cache instead of compiling it.
    second = _run(site, home, tmp)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[0] == str(cache)
    assert second.stdout.splitlines()[2] != "[]"


def test_a_writable_numba_cache_dir_is_respected(tmp_path):
    site, home = _read_only_copy(tmp_path)
    tmp, chosen = tmp_path / "tmp", tmp_path / "chosen"
    tmp.mkdir()
    result = _run(site, home, tmp, NUMBA_CACHE_DIR=str(chosen))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == str(chosen)
    assert list(chosen.rglob("*.nbi"))
    assert not list(tmp.iterdir())


def test_a_compile_is_announced_once_and_a_compiled_kernel_not_at_all():
    said = []
    kernel, other = fresh_kernel(), fresh_kernel()
    with announce_compilation(said.append):
        assert kernel(1) == 2 and kernel(1.5) == 2.5 and other(2) == 3
    assert said == [FIRST_RUN_MESSAGE]
    with announce_compilation(said.append):
        assert kernel(3) == 4  # compiled already: nothing to say
    assert said == [FIRST_RUN_MESSAGE]


def test_the_cli_says_it_is_compiling_on_stderr(monkeypatch, tmp_path, capsys):
    from napari_gmm_bg import cli

    kernel = fresh_kernel()
    monkeypatch.setattr(cli, "_run_stats", lambda args: kernel(0) - 1)
    assert cli.main(["stats", str(tmp_path / "m.tif")]) == 0
    captured = capsys.readouterr()
    assert captured.err == f"napari-gmm-bg: {FIRST_RUN_MESSAGE}\n" and captured.out == ""
