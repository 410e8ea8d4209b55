"""A newcomer's first commands: the demo without a display, a closed pipe, the metadata."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

import napari_gmm_bg
from napari_gmm_bg import default_threshold
from napari_gmm_bg.cli import EXIT_BROKEN_PIPE, demo_folder, main
from napari_gmm_bg.core.online import ONLINE_DISTANCE


def _free_display() -> str:
    # A display number with no X server behind it (nor a lock of one starting).
    for number in range(99, 300):
        if not (
            Path(f"/tmp/.X11-unix/X{number}").exists() or Path(f"/tmp/.X{number}-lock").exists()
        ):
            return f":{number}"
    raise RuntimeError("no free display number")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "napari_gmm_bg.cli", *args]


def _env(**extra: str) -> dict[str, str]:
    # The package under test, whatever the working folder of the child process.
    source = str(Path(napari_gmm_bg.__file__).parents[1])
    path = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def test_demo_with_an_unreachable_display_runs_headless(tmp_path):
    out = tmp_path / "demo"
    env = _env(DISPLAY=_free_display())
    env.pop("WAYLAND_DISPLAY", None)
    result = subprocess.run(
        _cli("demo", "--out", str(out)),
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr  # not Qt's abort (134)
    assert "cannot open a window" in result.stdout
    written = [Path(line.strip()) for line in result.stdout.splitlines() if line.startswith(" ")]
    assert len(written) == 4 and all(p.is_absolute() and p.is_file() for p in written)
    assert all(p.parent == out for p in written)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # nothing in the cwd
    # The metadata holds the threshold the masks were cut at, not the unset parameter.
    with tifffile.TiffFile(out / "moving-shapes_gmm_mask.tif") as tif:
        assert json.loads(tif.pages[0].description)["threshold"] == default_threshold(3)


def test_the_headless_demo_says_its_first_run_message_once(tmp_path, monkeypatch, capsys):
    # A cold cache: the warm-up child starts (announced) and the fit compiles a kernel
    # itself (announced by the compile listener); the command says it once.
    from napari_gmm_bg import cli
    from napari_gmm_bg.core._numba_cache import FIRST_RUN_MESSAGE

    from ._numba import fresh_kernel

    class WarmUp:
        def wait(self, parts, timeout=None):
            return True

    fresh = fresh_kernel()
    real_fit = cli.fit_background

    def fit_compiling(*args, **kwargs):
        assert fresh(1) == 2
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(cli, "display_problem", lambda: "no display for this test")
    monkeypatch.setattr(cli, "usable_cores", lambda: 2)
    monkeypatch.setattr(cli, "start_warm_up", lambda parts, workers=None: WarmUp())
    monkeypatch.setattr(cli, "fit_background", fit_compiling)
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    assert capsys.readouterr().err.count(FIRST_RUN_MESSAGE) == 1


def test_an_online_run_on_a_cold_cache_hands_all_but_its_update_to_a_child(
    tmp_path, monkeypatch, capsys
):
    from napari_gmm_bg import cli
    from napari_gmm_bg.core._numba_cache import FIRST_RUN_MESSAGE

    asked, waited = [], []

    class WarmUp:
        def wait(self, parts, timeout=None):
            waited.append(parts)
            return True

    monkeypatch.setattr(cli, "usable_cores", lambda: 2)
    monkeypatch.setattr(
        cli,
        "start_warm_up",
        lambda parts, workers=None: asked.append((parts, workers)) or WarmUp(),
    )
    args = ["fit", "--sample", "moving-shapes", "--out", str(tmp_path), "--mode", "online"]
    assert main(args) == 0
    assert asked == [(("online-rest",), 1)]
    # It waits for the child at its end, so the child's marker lands: the next run
    # neither starts one nor says "first run".
    assert waited == [("online-rest",)]
    assert capsys.readouterr().err.count(FIRST_RUN_MESSAGE) == 1


def test_demo_folder_is_in_the_user_cache_else_temporary(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert demo_folder() == tmp_path / "cache" / "napari-gmm-bg" / "demo"
    (tmp_path / "file").touch()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # cannot hold a folder
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    folder = demo_folder()
    assert folder.parent == tmp_path / "tmp" and folder.name.startswith("napari-gmm-bg-demo-")


def test_output_into_a_closed_pipe_exits_quietly(tmp_path):
    mask = np.zeros((20_000, 2, 2), np.uint8)  # about 300 kB of CSV: more than a pipe holds
    mask[::2, 0, 0] = 1
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    proc = subprocess.Popen(
        _cli("stats", str(tmp_path / "mask.tif")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert proc.stdout.readline().startswith("frame,")
    proc.stdout.close()  # as `| head -1` does
    stderr = proc.stderr.read()
    assert proc.wait(timeout=60) == EXIT_BROKEN_PIPE
    assert stderr == ""


def test_online_metadata_records_the_threshold_used(tmp_path):
    out = tmp_path / "online"
    args = ["fit", "--sample", "moving-shapes", "--out", str(out), "--mode", "online"]
    assert main(args) == 0
    with tifffile.TiffFile(out / "moving-shapes_gmm_mask.tif") as tif:
        meta = json.loads(tif.pages[0].description)
    assert meta["threshold"] == ONLINE_DISTANCE and meta["mode"] == "online"


@pytest.mark.parametrize(
    "options, error",
    [
        ([], "no such file or folder: {missing}"),
        (["--sample", "moving-shapes", "--consensus-radius", "9"], "consensus_radius must be "),
        (["--sample", "moving-shapes", "--mode", "online", "--history", "0"], "history must "),
    ],
    ids=["missing video", "bad offline setting", "bad online setting"],
)
def test_bad_input_on_a_cold_cache_is_one_line_and_starts_no_warm_up(tmp_path, options, error):
    # The first command a newcomer types may name a file that is not there, or a setting
    # out of range: one line and exit 2, not the first-run message first (nor a child
    # compiling for nothing).
    cache = tmp_path / "cache"
    cache.mkdir()
    missing = tmp_path / "nope.mp4"
    source = options or [str(missing)]
    result = subprocess.run(
        _cli("fit", *source, "--out", str(tmp_path / "out")),
        capture_output=True,
        text=True,
        env=_env(NUMBA_CACHE_DIR=str(cache), NAPARI_GMM_BG_WARMUP="1"),
        timeout=120,
    )
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("napari-gmm-bg: error: " + error.format(missing=missing)), line
    assert not (tmp_path / "out").exists()
    # Nothing compiled, no warm-up marker (numba makes its empty folder at import).
    assert [p for p in cache.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize(
    ("args", "code"), [(("fit", "--sample", "moving-shapes"), 0), (("fit", "missing.mp4"), 2)]
)
def test_the_command_ends_with_its_code_its_output_and_its_exit_handlers(tmp_path, args, code):
    # The installed command ends the process itself once main() returns (no interpreter
    # teardown): the exit code must still be main()'s, everything printed must arrive,
    # and exit handlers (other libraries', the warm-up's) must still run.
    script = (
        "import atexit, sys\n"
        "from napari_gmm_bg.cli import run\n"
        "atexit.register(lambda: print('exit handler ran', file=sys.stderr))\n"
        f"sys.argv = ['napari-gmm-bg', *{list(args)!r}, '--out', {str(tmp_path)!r}]\n"
        "run()\n"
        "print('after run', file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == code, result.stderr
    assert result.stderr.rstrip().endswith("exit handler ran")
    assert "after run" not in result.stderr
    if code == 0:
        written = [line.strip() for line in result.stdout.splitlines() if line.startswith(" ")]
        assert len(written) == 4 and all(Path(p).is_file() for p in written)
    else:
        assert "napari-gmm-bg: error:" in result.stderr
