"""Fixtures shared by the whole suite: small synthetic clips and encoded video files."""

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from napari_gmm_bg import make_sample


@pytest.fixture(scope="session")
def rgb_sample():
    """A small RGB clip with moving objects and its ground truth."""
    return make_sample("moving-shapes", n_frames=60, shape=(64, 96), seed=0)


@pytest.fixture(scope="session")
def grey_sample():
    return make_sample("moving-shapes-grey", n_frames=60, shape=(64, 96), seed=1)


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
