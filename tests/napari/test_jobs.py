import threading
import time

from napari_gmm_bg._napari.methods_widget import MethodsWidget


def _gated_job(started, gate):
    """A job that runs until ``gate`` is set, yielding often (so a quit stops it)."""

    def job():
        started.set()
        while not gate.is_set():
            yield 0, 1
            time.sleep(0.005)
        return None

    return job


def test_shutdown_stops_and_awaits_only_its_own_job(qtbot, viewer):
    """Closing one widget must not cancel (or wait for) another widget's job."""
    mine, other = MethodsWidget(viewer), MethodsWidget(viewer)
    viewer.window.add_dock_widget(mine, name="mine")
    viewer.window.add_dock_widget(other, name="other")
    mine_started, other_started = threading.Event(), threading.Event()
    never, other_gate = threading.Event(), threading.Event()
    mine_worker = mine.job.start(
        _gated_job(mine_started, never), total=1, on_returned=lambda _: None
    )
    other_worker = other.job.start(
        _gated_job(other_started, other_gate), total=1, on_returned=lambda _: None
    )
    qtbot.waitUntil(lambda: mine_started.is_set() and other_started.is_set(), timeout=10_000)
    try:
        stopped = mine.job.shutdown()
        assert mine_worker.abort_requested
        assert not other_worker.abort_requested  # superqt's await_workers quit every worker
        assert other.job.running
        assert stopped  # its own job stopped within the time
    finally:
        other_gate.set()
    qtbot.waitUntil(lambda: not other.job.running, timeout=10_000)
    assert not other_worker.abort_requested


def test_shutdown_without_a_job_returns_at_once(viewer):
    widget = MethodsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.job.shutdown(timeout=0.0)


def test_each_progress_update_repaints_one_bar(qtbot, monkeypatch):
    """The panel's bar and napari's activity bar each repaint the window: one step that
    updates both stalls the GUI thread for both.  A few updates a second, each to one
    bar (napari's one in NAPARI_EVERY), and the last step to both."""
    import types

    from magicgui.widgets import Label, PushButton
    from napari.utils import progress

    from napari_gmm_bg._napari import _jobs

    clock = [0.0]
    monkeypatch.setattr(_jobs, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    job = _jobs.BackgroundJob(PushButton(), PushButton(), Label(), "Testing")
    job._progress = bar = progress(total=100)
    updated: list[tuple[int, str]] = []
    show_step = job._show_step
    monkeypatch.setattr(
        job, "_show_step", lambda d, t: updated.append((d, "panel")) or show_step(d, t)
    )
    napari_update = bar.update
    monkeypatch.setattr(
        bar, "update", lambda n: updated.append((bar.n + n, "napari")) or napari_update(n)
    )
    try:
        for done in range(1, 101):
            clock[0] += 0.1  # ten steps a second
            job._on_progress((done, 100))
    finally:
        bar.close()
    steps = [done for done, _ in updated]
    assert all(steps.count(done) == 1 for done in steps[:-2])  # one bar a step
    assert updated[-2:] in ([(100, "panel"), (100, "napari")], [(100, "napari"), (100, "panel")])
    panel = [done for done, which in updated if which == "panel"]
    napari = [done for done, which in updated if which == "napari"]
    assert 25 <= len(panel) + len(napari) <= 45  # 100 steps of 0.1 s: about 4 a second
    assert len(napari) <= len(panel) // 2
    assert bar.n == 100 and job.bar.value == 100
