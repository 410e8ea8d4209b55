"""One background job at a time for a widget: worker thread, progress bar, Cancel.

The job is a generator that yields ``(done, total)`` and returns its result.  Results
reach the widget on the main thread through ``on_returned``; errors become a
notification; a cancelled job returns nothing, so no layer is half made.
"""

import threading
import time
from collections.abc import Callable, Generator
from typing import Any

from magicgui.widgets import Label, ProgressBar, PushButton
from napari.qt.threading import create_worker
from napari.utils import progress
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt

#: Seconds ``shutdown`` waits for its job's thread before leaving it to finish alone.
SHUTDOWN_SECONDS = 10.0
#: Seconds between progress updates (each repaints the window).
UPDATE_SECONDS = 0.25
#: Every this many updates goes to napari's activity-dock bar instead of the panel's.
NAPARI_EVERY = 4


class BackgroundJob:
    """Run a widget's generator jobs in a worker thread, one at a time.

    Parameters
    ----------
    run_button, cancel_button : magicgui.widgets.PushButton
        Disabled / enabled while a job runs.
    status : magicgui.widgets.Label
        Shows what happened last.
    description : str
        The progress bar's text.
    """

    def __init__(
        self, run_button: PushButton, cancel_button: PushButton, status: Label, description: str
    ) -> None:
        self._run_button = run_button
        self._cancel_button = cancel_button
        self._status = status
        self._description = description
        self._progress: Any = None
        self.worker: Any = None
        self._done = threading.Event()
        self._done.set()
        self.closed = False
        cancel_button.enabled = False
        #: The progress bar shown in the widget itself (the widget places it): the step
        #: and the time left, not only in napari's activity dock.
        self.bar = ProgressBar(value=0, min=0, max=1, visible=False, label="")
        self.bar.tooltip = "progress of the running job; Cancel stops it"
        self._started = 0.0
        self._in_napari_update = False
        self._last_update = 0.0
        self._updates = 0

    @property
    def running(self) -> bool:
        """True while a job runs."""
        return self.worker is not None

    def start(
        self,
        job: Callable[..., Generator],
        *args: Any,
        total: int,
        on_returned: Callable[[Any], None],
        status: str = "working…",
        on_yielded: Callable[[Any], None] | None = None,
    ) -> Any:
        """Start ``job(*args)`` in a worker thread.

        Parameters
        ----------
        job : callable
            A generator function yielding ``(done, total)``.
        *args
            Its arguments.
        total : int
            Work units, for the progress bar.
        on_returned : callable
            Called on the main thread with the job's return value.
        status : str
            Status text while running.
        on_yielded : callable, optional
            Called on the main thread with each value the job yields.  Connected here,
            before the thread starts: a slot connected after ``start`` misses what a
            fast job yields first.

        Returns
        -------
        superqt.utils.GeneratorWorker
            The started worker.
        """
        worker = create_worker(job, *args, _ignore_errors=True)
        self._progress = progress(total=total, desc=self._description)
        worker.yielded.connect(self._on_progress)
        if on_yielded is not None:
            worker.yielded.connect(on_yielded)
        worker.returned.connect(lambda value: None if self.closed else on_returned(value))
        worker.errored.connect(self._on_error)
        worker.aborted.connect(lambda: self.set_status("cancelled; no layer changed"))
        worker.finished.connect(self._on_finished)
        # Set in the worker's own thread once its run is over (a direct connection runs
        # the slot there, not later on the GUI thread): what ``shutdown`` waits for.
        done = self._done = threading.Event()
        worker.finished.connect(done.set, Qt.ConnectionType.DirectConnection)
        self.worker = worker
        self._started = time.perf_counter()
        self._updates = 0
        self.bar.max = max(int(total), 1)
        self.bar.value = 0
        self.bar.native.setFormat(f"{self._description}: starting…")
        self.bar.visible = True
        self._run_button.enabled = False
        self._cancel_button.enabled = True
        self.set_status(status)
        worker.start()
        return worker

    def cancel(self) -> None:
        """Ask the running job to stop at its next step."""
        if self.worker is not None:
            self.worker.quit()

    def shutdown(self, timeout: float = SHUTDOWN_SECONDS) -> bool:
        """Stop this job and wait for its thread (not other jobs'): the widget is going away.

        Parameters
        ----------
        timeout : float
            Seconds to wait at most; a job still running then is left to finish alone
            (it adds no layer: the widget is closed).

        Returns
        -------
        bool
            True when no job of this widget is running any more.
        """
        self.closed = True
        worker = self.worker
        if worker is not None:
            worker.quit()
        return self._done.wait(timeout)

    def set_status(self, text: str) -> None:
        """Show a line of status (ignored once the widget is gone)."""
        if not self.closed:
            self._status.value = text

    def _on_progress(self, step: Any) -> None:
        if self._progress is None or not isinstance(step, tuple):
            return
        done = int(step[0])  # (done, total, ...)
        total = int(step[1]) if len(step) > 1 else int(self.bar.max)
        # A few updates a second, not one every step, and each to one bar: an update
        # of the panel's bar (new text) lays out and repaints the dock, one of napari's
        # activity-dock bar runs a nested event loop (its setValue calls
        # processEvents) that repaints too, and both in one step stalled the GUI
        # thread twice as long (70-90 ms against 40-50 ms on vtest.avi under Xvfb).
        # The panel's bar gets three updates in four, napari's one a second; the last
        # step goes to both.  Never from inside napari's update, or each step recurses
        # into the next.
        now = time.perf_counter()
        last = done >= total
        if self._in_napari_update or (now - self._last_update < UPDATE_SECONDS and not last):
            return
        self._last_update = now
        self._updates += 1
        to_napari = last or self._updates % NAPARI_EVERY == 0
        if not self.closed and (last or not to_napari):
            self._show_step(done, total)
        if not to_napari:
            return
        self._in_napari_update = True
        try:
            self._progress.update(done - self._progress.n)
        finally:
            self._in_napari_update = False

    def _show_step(self, done: int, total: int) -> None:
        total = max(total, 1)
        elapsed = time.perf_counter() - self._started
        text = f"{self._description}: {done}/{total}"
        if 0 < done < total:
            text += f", about {_duration(elapsed / done * (total - done))} left"
        # QProgressBar repaints at once (synchronously) on a new value or text, and a
        # repaint recomposes the whole window with its OpenGL canvas: with updates off,
        # the three changes make one repaint, queued with the window's next one.
        native = self.bar.native
        native.setUpdatesEnabled(False)
        try:
            self.bar.max = total
            self.bar.value = min(max(done, 0), total)
            native.setFormat(text)
        finally:
            native.setUpdatesEnabled(True)  # queues the repaint

    def _on_error(self, exc: Exception) -> None:
        message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        show_error(f"{self._description} failed: {message}")
        self.set_status("failed; no layer changed")

    def _on_finished(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self.worker = None
        if not self.closed:
            self.bar.visible = False
            self._run_button.enabled = True
            self._cancel_button.enabled = False


def _duration(seconds: float) -> str:
    """``"12 s"`` or ``"3 min 05 s"``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} min {seconds % 60:02d} s"
