"""Fixtures shared by the whole suite: small synthetic clips and encoded video files."""

import gc
import os
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from napari_gmm_bg import make_sample
from napari_gmm_bg.core import warmup

#: The warm-up's child processes, for the test processes pytest-xdist starts (they
#: inherit the environment of the process that started the warm-up).
_WARM_UP_PIDS = "NAPARI_GMM_BG_TEST_WARM_UP_PIDS"
_ALL_PARTS = (*warmup.PARTS, *warmup.FLOAT_PARTS)


def _start_warm_up():
    # On an empty numba cache (CI's first run) the kernels most tests use compile in
    # child processes, side by side, while pytest collects: not one after the other in
    # whichever tests call them first.  On a warm cache this starts nothing.  Under
    # pytest-xdist only the main process starts it; its test processes wait for it.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return None
    os.environ[warmup.SWITCH] = "1"
    try:
        started = warmup.start_warm_up(_ALL_PARTS)
    finally:
        # No background compilation from every widget a test opens, nor from the
        # command lines it runs; tests/napari/test_warmup.py turns it on where it is
        # the subject.
        os.environ[warmup.SWITCH] = "0"
    if started is not None:
        os.environ[_WARM_UP_PIDS] = " ".join(str(p.pid) for p, _ in started.children)
    return started


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    return True


def _wait_for_the_main_process_warm_up(timeout: float) -> None:
    pids = [int(p) for p in os.environ.get(_WARM_UP_PIDS, "").split()]
    deadline = time.monotonic() + timeout
    while not warmup.is_warm(_ALL_PARTS) and any(map(_alive, pids)):
        if time.monotonic() > deadline:
            return
        time.sleep(0.1)


_WARM_UP = _start_warm_up()


@pytest.fixture(scope="session", autouse=True)
def _kernels_compiled():
    """The first test waits for the warm-up (a test compiling beside it would compile
    the same kernels twice)."""
    if _WARM_UP is not None:
        _WARM_UP.wait(timeout=900)
    elif os.environ.get("PYTEST_XDIST_WORKER"):
        _wait_for_the_main_process_warm_up(timeout=900)


def pytest_collection_modifyitems(items):
    # The longest tests first: under pytest-xdist one of them started last keeps one
    # process busy for a minute while the other has nothing left to do.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item):
    # napari's canvas runs a full ``gc.collect()`` each time layers are removed (every
    # viewer's teardown, every refit that replaces a layer).  The heap it walks grows by
    # some 20,000 objects a viewer test (app-model menu items, magicgui event filters
    # and matplotlib transforms that napari's and the plotting libraries' registries
    # keep), so by the end of a run each collection took over half a second: minutes in
    # all.  After a viewer's teardown, what survives a collection is alive; freezing it
    # keeps later collections from walking it again (garbage is collected first, so
    # none is kept).  What the next tests make is collected as before.
    result = yield
    if "make_napari_viewer" in item.fixturenames:
        gc.collect()
        gc.freeze()
    return result


@pytest.fixture(scope="session")
def rgb_sample():
    """A small RGB clip with moving objects and its ground truth (read-only: shared by
    the whole session, so no test may change it for the tests after it)."""
    sample = make_sample("moving-shapes", n_frames=60, shape=(64, 96), seed=0)
    sample.video.setflags(write=False)
    return sample


@pytest.fixture(scope="session")
def default_sample():
    """The built-in sample at its default size (120x160, 80 frames): objects large enough
    that the default 7x7 median filter keeps them."""
    return make_sample("moving-shapes")


@pytest.fixture(scope="session")
def grey_sample():
    return make_sample("moving-shapes-grey", seed=1)


def encode_mp4(path: Path, frames: np.ndarray, fps: int = 10) -> Path:
    """Encode RGB frames as H.264 (with B-frames) through PyAV."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "bf": "2"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def encode_avi(path: Path, frames: np.ndarray, fps: int = 10) -> Path:
    """Encode RGB frames as Motion-JPEG AVI through OpenCV."""
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture
def sample_mp4(tmp_path, rgb_sample):
    return encode_mp4(tmp_path / "clip.mp4", rgb_sample.video)


@pytest.fixture
def sample_avi(tmp_path, rgb_sample):
    return encode_avi(tmp_path / "clip.avi", rgb_sample.video)


@pytest.fixture
def sample_folder(tmp_path, rgb_sample):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(rgb_sample.video, start=1):
        cv2.imwrite(str(folder / f"in{i:06d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    mask, truth = mask.astype(bool), truth.astype(bool)
    return float((mask & truth).sum() / (mask | truth).sum())


def write_cdnet_folder(folder: Path, sample, first_scored: int = 6) -> Path:
    """Write a sample as a CDnet sequence: input/, groundtruth/, temporalROI.txt, ROI.bmp.

    Ground truth: 255 objects, 170 a one-pixel ring at their borders, 0 elsewhere, and 85
    (outside the region of interest) before ``first_scored`` (1-based).
    """
    (folder / "input").mkdir(parents=True)
    (folder / "groundtruth").mkdir()
    kernel = np.ones((3, 3), np.uint8)
    for i, (frame, truth) in enumerate(zip(sample.video, sample.ground_truth, strict=True), 1):
        cv2.imwrite(
            str(folder / "input" / f"in{i:06d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        )
        label = np.where(truth > 0, 255, 0).astype(np.uint8)
        ring = (cv2.dilate(truth, kernel) > 0) & (cv2.erode(truth, kernel) == 0)
        label[ring] = 170
        if i < first_scored:
            label[:] = 85
        cv2.imwrite(str(folder / "groundtruth" / f"gt{i:06d}.png"), label)
    (folder / "temporalROI.txt").write_text(f"{first_scored} {len(sample.video)}\n")
    roi = np.zeros(sample.video.shape[1:3], np.uint8)
    roi[:, 4:] = 255
    cv2.imwrite(str(folder / "ROI.bmp"), roi)
    return folder


@pytest.fixture
def cdnet_folder(tmp_path, rgb_sample):
    return write_cdnet_folder(tmp_path / "highway", rgb_sample)
