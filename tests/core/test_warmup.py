"""The background warm-up: which children start, when none does, and how they end.

Nothing here compiles a kernel: the children are started and stopped before they get
that far, or replaced.  tests/napari/test_warmup.py runs a whole warm-up, from a real
panel, on an empty cache.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import napari_gmm_bg
from napari_gmm_bg.core import warmup


def test_parts_are_shared_by_cost_in_the_order_needed():
    assert warmup.share(warmup.PARTS, 1) == [["fit", "score", "online"]]
    # The costliest (score: the background choice and the scoring) alone; the fit's EM,
    # then the on-line mode, in the other child.
    assert warmup.share(warmup.PARTS, 2) == [["fit", "online"], ["score"]]
    assert warmup.share(warmup.PARTS, 8) == [["fit"], ["score"], ["online"]]
    assert warmup.share(["score"], 2) == [["score"]]


class _Recorder:
    """Stands in for subprocess.Popen: records the command, runs nothing."""

    started: list = []

    def __init__(self, command, **kwargs):
        self.command, self.kwargs = command, kwargs
        _Recorder.started.append(self)

    def poll(self):
        return None

    def wait(self, timeout=None):
        return 0


@pytest.fixture
def cold(monkeypatch, tmp_path):
    """The warm-up switched on, with an empty cache folder of its own, starting nothing."""
    monkeypatch.setenv(warmup.SWITCH, "1")
    monkeypatch.setattr(warmup, "cache_folder", lambda: tmp_path)
    monkeypatch.setattr(warmup, "_CURRENT", None)
    monkeypatch.setattr(warmup, "_CHILDREN", [])
    monkeypatch.setattr(warmup, "serialise_cache_writes", lambda: None)
    monkeypatch.setattr(warmup.subprocess, "Popen", _Recorder)
    _Recorder.started = []
    return tmp_path


def test_a_cold_cache_starts_quiet_children_for_every_part(cold, monkeypatch):
    monkeypatch.setattr(warmup, "usable_cores", lambda: 2)
    started = warmup.start_warm_up()
    assert started is not None and started.running
    assert [parts for _, parts in started.children] == [("fit", "online"), ("score",)]
    for child in _Recorder.started:
        assert child.command[:3] == [sys.executable, "-m", "napari_gmm_bg.core.warmup"]
        assert child.command[3:5] == [str(os.getpid()), str(cold)]
        assert all(child.kwargs[k] is subprocess.DEVNULL for k in ("stdin", "stdout", "stderr"))
        env = child.kwargs["env"]
        assert env[warmup.SWITCH] == "0"  # a child starts no warm-up of its own
        source = str(Path(napari_gmm_bg.__file__).resolve().parents[1])
        assert env["PYTHONPATH"].split(os.pathsep)[0] == source
    # A second widget finds the warm-up running and starts nothing more.
    assert warmup.start_warm_up() is started and len(_Recorder.started) == 2


def test_a_warm_cache_starts_nothing(cold):
    for part in warmup.PARTS:
        warmup.marker(part, cold).touch()
    assert warmup.is_warm()
    assert warmup.start_warm_up() is None and _Recorder.started == []


def test_only_the_cold_parts_start(cold):
    warmup.marker("fit", cold).touch()
    started = warmup.start_warm_up(workers=4)
    assert started is not None and sorted(started.parts) == ["online", "score"]


def test_a_piece_starts_until_it_or_its_whole_part_is_cached(cold, monkeypatch):
    started = warmup.start_warm_up(["online-rest"], workers=1)
    assert started is not None and started.parts == ("online-rest",)
    monkeypatch.setattr(warmup, "_CURRENT", None)  # as if it had ended
    warmup.marker("online", cold).touch()  # the whole on-line mode compiled
    assert warmup.start_warm_up(["online-rest"], workers=1) is None
    warmup.marker("online", cold).unlink()
    warmup.marker("online-rest", cold).touch()
    assert warmup.start_warm_up(["online-rest"], workers=1) is None


COMPILED = """
import json
from numba.core.event import Listener, register
from napari_gmm_bg.core import warmup
from napari_gmm_bg.core.online import run_online
from napari_gmm_bg.core.synthetic import make_sample

compiled = []


class Names(Listener):
    def on_start(self, event):
        kernel = event.data["dispatcher"].py_func
        if kernel.__module__.startswith("napari_gmm_bg"):  # not numba's own helpers
            compiled.append(kernel.__name__)

    def on_end(self, event):
        pass


register("numba:compile", Names())
warmup.run_parts(["online-rest"])
piece = set(compiled)
compiled.clear()
run_online(make_sample("moving-shapes", n_frames=40, shape=(48, 64)).video).foreground()
print(json.dumps([sorted(piece), sorted(set(compiled))]))
"""


@pytest.mark.slow
def test_the_online_piece_compiles_what_an_online_run_needs_but_its_update(tmp_path):
    # What the command line's on-line run leaves to its child: the same specialisations
    # as the run's own calls (a different type would compile again in the run).
    env = {**os.environ, warmup.SWITCH: "0", "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    env["PYTHONPATH"] = str(Path(napari_gmm_bg.__file__).parents[1])
    result = subprocess.run(
        [sys.executable, "-c", COMPILED], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    piece, run = map(set, json.loads(result.stdout.splitlines()[-1]))
    assert {"_online_consensus_rows", "_majority_frames", "_luminance_grid"} <= piece
    assert not piece & run and "_online_tiles_k3_rgb" in run, (piece, run)


def test_the_switch_turns_it_off(cold, monkeypatch):
    monkeypatch.setenv(warmup.SWITCH, "0")
    assert warmup.start_warm_up() is None and _Recorder.started == []


def test_markers_change_with_the_sources(cold, monkeypatch):
    before = warmup.marker("fit", cold)
    real_stat = Path.stat

    def touched(path, *args, **kwargs):
        info = real_stat(path, *args, **kwargs)
        if path.name == "_kernels.py":
            return os.stat_result((*info[:8], info.st_mtime + 1, info.st_ctime))
        return info

    monkeypatch.setattr(Path, "stat", touched)
    assert warmup.marker("fit", cold) != before


def test_a_child_that_fails_is_not_waited_for(tmp_path):
    failing = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    markers = {p: tmp_path / p for p in warmup.PARTS}
    warm = warmup.WarmUp([(failing, ("fit",)), (running, ("score",))], markers)
    try:
        assert warm.wait(("fit",))  # ended without its marker: nothing to wait for
        assert warm.pending(("score",)) and not warm.wait(("score",), timeout=0.2)
        markers["score"].touch()  # marked done: no need to wait for the child to end
        assert not warm.pending(("score",)) and warm.running
    finally:
        warm.terminate()
    assert not warm.running
    assert failing.returncode == 1 and running.returncode == -signal.SIGTERM


# Starts a real warm-up on an empty cache, prints its children's ids, then ends: by its
# own exit (the children are stopped at exit) or by a signal it cannot catch.
PARENT = """
import os, sys, time
from napari_gmm_bg.core import warmup
warm = warmup.start_warm_up(workers=2)
print(" ".join(str(p.pid) for p, _ in warm.children), flush=True)
if sys.argv[1] == "sleep":
    time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status  # ended, waiting for init to reap it


def _parent(tmp_path, how):
    env = {
        **os.environ,
        warmup.SWITCH: "1",
        "NUMBA_CACHE_DIR": str(tmp_path / "cache"),
        "PYTHONPATH": str(Path(napari_gmm_bg.__file__).parents[1]),
    }
    return subprocess.Popen(
        [sys.executable, "-c", PARENT, how], env=env, stdout=subprocess.PIPE, text=True
    )


def test_children_stop_when_the_parent_exits(tmp_path):
    parent = _parent(tmp_path, "exit")
    pids = [int(p) for p in parent.stdout.readline().split()]
    assert len(pids) == 2
    assert parent.wait(timeout=120) == 0
    assert all(_gone(pid) for pid in pids)  # stopped and reaped before the parent ended


def test_children_stop_when_the_parent_is_killed(tmp_path):
    parent = _parent(tmp_path, "sleep")
    pids = [int(p) for p in parent.stdout.readline().split()]
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 120
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(pid) for pid in pids)


def test_a_part_done_replaces_its_old_markers_only(monkeypatch, tmp_path):
    monkeypatch.setattr(warmup, "cache_folder", lambda: tmp_path)
    monkeypatch.setitem(warmup._RUN, "fit", lambda clip: None)
    monkeypatch.setattr(warmup, "_clip", lambda: None)
    old = tmp_path / f"napari-gmm-bg-warm-fit-{'0' * 16}"
    other = warmup.marker("fit-float32")
    old.touch()
    other.touch()
    warmup.run_parts(["fit"])
    assert warmup.marker("fit").exists() and other.exists() and not old.exists()
