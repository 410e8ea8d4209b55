"""How the napari panel feels: click-to-plot, main-thread stalls, Compare and threshold.

    xvfb-run -a -s "-screen 0 1920x1200x24" python benchmarks/gui_latency.py
    ... gui_latency.py --why              # and where the GUI thread was during stalls
    ... gui_latency.py --inspector-only   # the inspector case alone

Prints, from one run in a real napari window:

* Pixel inspector on a video opened lazily through the plugin's reader (vtest.avi from
  ../shared/data/opencv_samples when present, else BGSLibrary's video.avi, else a
  synthetic clip written here), after a fit: click to first plot, click to complete
  plot, and the longest main-thread stall while it reads (a 5 ms timer on the GUI
  thread: the largest gap between its ticks, minus 5 ms).  Target: first plot under
  1 s, no stall over 100 ms.  The pixel is decoded and the plots drawn in child
  processes; a repaint control first shows what a progress-bar update alone costs.
* Compare with ground truth (GMM and MOG2 masks, CDnet highway) in the panel against
  the CLI's ``evaluate`` on the same folder (the CLI's time includes running both
  methods; the panel's is the Compare button alone, the masks already shown).  Mask
  statistics of the GMM mask likewise.  Target: within 1.5x.
* Threshold move: from the value settling to the mask redrawn on the canvas.
"""

import collections
import statistics
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import napari
import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import shared  # noqa: E402

from napari_gmm_bg._napari.panel import open_panel  # noqa: E402


class StallMeter:
    """Largest gap between ticks of a fast timer on the GUI thread.

    With ``why``, a watcher thread also samples the Python stacks of the GUI thread and of
    any busy thread every 10 ms while a tick is over 50 ms late, and ``report`` prints
    the lines they were found in.
    """

    def __init__(self, interval_ms: int = 5, why: bool = False) -> None:
        self.interval = interval_ms / 1000
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []
        self._last = 0.0
        self.samples: collections.Counter = collections.Counter()
        if why:
            main = threading.main_thread().ident
            threading.Thread(target=self._watch, args=(main,), daemon=True).start()

    def _watch(self, main: int | None) -> None:
        while True:
            time.sleep(0.01)
            try:
                active = self.timer.isActive()
            except RuntimeError:  # the timer is gone with the application
                return
            if not active or time.perf_counter() - self._last < 0.05:
                continue
            frames = sys._current_frames()
            for ident, frame in frames.items():
                if ident == threading.get_ident():
                    continue
                stack = traceback.extract_stack(frame)[-6 if ident != main else -12 :]
                if ident != main and stack:
                    innermost = stack[-1]
                    if Path(innermost.filename).name in IDLE or innermost.name in IDLE:
                        continue  # waiting without the GIL
                where = " < ".join(
                    f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(stack)
                )
                self.samples[where if ident == main else "  (other thread) " + where] += 1

    def report(self, top: int = 8) -> None:
        for where, count in self.samples.most_common(top):
            print(f"    {10 * count:5d} ms in {where}")
        self.samples.clear()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def start(self) -> None:
        self.gaps = []
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> float:
        self.timer.stop()
        return max(0.0, max(self.gaps, default=0.0) - self.interval)


#: Files (or functions) whose code a thread other than the GUI thread waits in, without
#: the GIL: a thread stopped in one (its innermost frame) is idle, not reported.  The
#: inspector's reply reader waits in ``pickle.load`` on a pipe, inside ``_take_replies``;
#: an idle pool thread in ``SimpleQueue.get``, inside ``_worker``.
IDLE = {"threading.py", "queue.py", "selectors.py", "connection.py", "_take_replies", "_worker"}

#: Print, after each measured case, the GUI thread's stack during its stalls.
WHY = "--why" in sys.argv


def pump(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.001)


def wait(tool, timeout: float = 900.0) -> float:
    start = time.perf_counter()
    while tool.job.running and time.perf_counter() - start < timeout:
        pump(0.005)
    return time.perf_counter() - start


def video_path(tmp: Path) -> Path:
    for parts in (("opencv_samples", "vtest.avi"), ("bgslibrary", "video.avi")):
        path = shared(*parts)
        if path is not None:
            return path
    import cv2

    path = tmp / "synthetic.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (768, 576))
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (576, 768, 3), dtype=np.uint8)
    for t in range(400):
        frame = base.copy()
        frame[200:300, (t * 3) % 700 : (t * 3) % 700 + 60] = 255
        writer.write(frame)
    writer.release()
    return path


def inspector_latency(viewer, panel, path: Path) -> None:
    viewer.open(str(path), plugin="napari-gmm-bg")
    layer = viewer.layers[-1]
    fit = panel.show_tab("Fit")
    fit._video.value = layer
    fit._learning_frames.value = 60
    fit.fit()
    fit_seconds = wait(fit)
    inspector = panel.show_tab("Inspect")
    inspector._video.value = layer
    pump(0.5)
    n, height, width = layer.data.shape[:3]
    firsts, completes, stalls = [], [], []
    drawn: list[float] = []
    inspector.view.rendered.connect(lambda _: drawn.append(time.perf_counter()))
    meter = StallMeter(why=WHY)
    rng = np.random.default_rng(1)
    for _ in range(3):
        y, x = int(rng.integers(0, height)), int(rng.integers(0, width))
        drawn.clear()
        meter.start()
        start = time.perf_counter()
        inspector.click(tuple(layer.data_to_world((n // 2, y, x))))
        wait(inspector)
        completes.append(time.perf_counter() - start)
        pump(0.2)
        stalls.append(meter.stop())
        firsts.append(drawn[0] - start if drawn else float("nan"))
        if WHY:
            print(f"  click {len(stalls)}: the GUI thread during stalls (sampled):")
            meter.report()
    for i, (first, complete, stall) in enumerate(zip(firsts, completes, stalls, strict=True)):
        print(
            f"  click {i + 1}: first plot {first:.2f} s, complete {complete:.1f} s, "
            f"longest stall {1000 * stall:.0f} ms"
        )
    print(f"  plots shown: {len(drawn)} in the last click (drawn off the GUI thread)")
    print(
        f"inspector on {path.name} ({n} frames {width}x{height}, lazy, fitted in "
        f"{fit_seconds:.0f} s): click to first plot median {statistics.median(firsts):.2f} s, "
        f"to complete plot median {statistics.median(completes):.1f} s, longest main-thread "
        f"stall {1000 * max(stalls):.0f} ms (targets: 1 s, 100 ms)"
    )
    for other in list(viewer.layers):
        viewer.layers.remove(other)


def repaint_control(panel) -> None:
    """The stall of a repaint alone: the panel's progress bar updated 4 times a second,
    nothing read or drawn.  Under Xvfb (software OpenGL composes the whole window on
    every repaint) on a busy machine this alone stalls the GUI thread; a stall in the
    inspector's figures no longer than this one is the display's, not the GIL's."""
    inspector = panel.show_tab("Inspect")
    bar = inspector.job.bar
    meter = StallMeter()
    pump(0.5)
    meter.start()
    idle = time.perf_counter() + 3
    while time.perf_counter() < idle:
        pump(0.25)
    quiet = meter.stop()
    meter.start()
    bar.visible, bar.max = True, 1000
    for i in range(12):
        bar.value = 10 * i
        bar.native.setFormat(f"Reading pixel history: {10 * i}/1000, about {60 - i} s left")
        pump(0.25)
    bar.visible = False
    updating = meter.stop()
    print(
        f"repaint control: longest stall {1000 * quiet:.0f} ms idle, {1000 * updating:.0f} ms "
        "while only the progress bar updates (4 per second)"
    )


def compare_against_cli(viewer, panel) -> None:
    folder = shared("cdnet_highway_dev")
    if folder is None:
        print("compare: ../shared/data/cdnet_highway_dev is absent; skipped")
        return
    import contextlib
    import io

    from napari_gmm_bg.cli import main

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        main(["evaluate", str(folder), "--methods", "gmm,mog2", "--json"])
    cli = time.perf_counter() - start
    viewer.open(str(folder), plugin="napari-gmm-bg")
    video = viewer.layers["cdnet_highway_dev"]
    fit = panel.show_tab("Fit")
    fit._video.value = video
    fit.fit()
    wait(fit)
    methods = panel.show_tab("Methods")
    methods._video.value = video
    methods.choose("mog2")
    methods.run()
    wait(methods)
    compare = panel.show_tab("Evaluate")
    compare.reset_choices()
    compare._mask_a.value = viewer.layers["cdnet_highway_dev GMM mask"]
    compare._mask_b.value = viewer.layers["cdnet_highway_dev MOG2 mask"]
    meter = StallMeter(why=WHY)
    meter.start()
    start = time.perf_counter()
    compare.compare()
    gui = wait(compare)
    stall = meter.stop()
    if WHY:
        print("  compare: the GUI thread during stalls (sampled):")
        meter.report()
    stats = panel.show_tab("Statistics")
    stats._mask.value = viewer.layers["cdnet_highway_dev GMM mask"]
    start = time.perf_counter()
    stats.compute()
    stats_seconds = wait(stats)
    print(
        f"compare with ground truth, CDnet highway ({compare._range.value} frames scored): "
        f"panel {gui:.1f} s (longest stall {1000 * stall:.0f} ms) vs CLI evaluate (fits "
        f"and runs both methods, then scores) {cli:.1f} s: ratio {gui / cli:.2f} "
        f"(target <= 1.5); mask statistics of {video.data.shape[0]} frames {stats_seconds:.1f} s"
    )
    # Threshold move: settle, then the canvas redrawn with the new mask.
    fit = panel.show_tab("Fit")
    viewer.dims.set_current_step(0, 600)
    times = []
    for value in (1.5, 2.0, 1.2, 2.5, 0.8):  # distances, in standard deviations
        fit._threshold.value = value
        start = time.perf_counter()
        fit.settle()
        viewer.screenshot(canvas_only=True)  # forces the canvas to render the new mask
        times.append(time.perf_counter() - start)
    print(
        f"threshold move: mask recomputed and canvas redrawn in median "
        f"{1000 * statistics.median(times):.0f} ms, max {1000 * max(times):.0f} ms "
        f"(after the 250 ms settle time)"
    )


def main() -> int:
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    panel = open_panel(viewer)
    pump(0.5)
    repaint_control(panel)
    with tempfile.TemporaryDirectory() as tmp:
        inspector_latency(viewer, panel, video_path(Path(tmp)))
    if "--inspector-only" not in sys.argv:
        compare_against_cli(viewer, panel)
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
