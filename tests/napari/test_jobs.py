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
