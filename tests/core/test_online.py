import numpy as np
import pytest

from napari_gmm_bg import make_sample
from napari_gmm_bg.core.online import OnlineSettings, run_online
from tests.conftest import iou


@pytest.fixture(scope="module")
def parked():
    """A static scene; a red box drives in fast from the left and parks at frame 80."""
    scene = make_sample("moving-shapes", n_frames=200, shape=(48, 96), n_objects=0, seed=2)
    video = scene.video.copy()
    truth = np.zeros(video.shape[:3], np.uint8)
    stop = 80
    for t in range(70, 200):
        x0 = 8 * (min(t, stop) - 70)  # 8 pixels a frame, parked at x = 80
        box = (slice(15, 30), slice(max(x0 - 16, 0), x0))
        video[(t, *box)] = (200, 30, 30)
        truth[(t, *box)] = 1
    return video, truth, stop


def test_a_parked_object_becomes_background_when_the_documentation_says(parked):
    video, truth, stop = parked
    settings = OnlineSettings(history=100, compensate_brightness=False)
    expected = settings.absorption_frames()  # ln(0.9) / ln(1 - 1/100) = 10.5 frames
    assert expected == pytest.approx(10.48, abs=0.01)
    mask = run_online(video, settings).foreground()
    on_object = [(mask[t][truth[t] == 1] == 1).mean() for t in range(stop, 200)]
    absorbed = next(i for i, fraction in enumerate(on_object) if fraction < 0.5)
    assert abs(absorbed - expected) <= 0.2 * expected, (absorbed, expected)
    assert on_object[0] > 0.9  # just parked: still foreground
    # While it drove in, it was found.
    assert iou(mask[72:stop], truth[72:stop]) > 0.8


def test_online_finds_moving_objects_and_rethresholds_exactly(default_sample):
    result = run_online(default_sample.video)
    mask = result.foreground()
    assert mask.shape == default_sample.ground_truth.shape
    assert iou(mask[20:], default_sample.ground_truth[20:]) > 0.8
    strict = result.foreground(threshold=result.threshold - 20)
    assert (strict == 1).sum() < (mask == 1).sum()
    assert result.background.shape == default_sample.video.shape[1:]


def test_online_settings_are_checked():
    with pytest.raises(ValueError, match="history"):
        OnlineSettings(history=0).validate()
    with pytest.raises(ValueError, match="var_min"):
        OnlineSettings(var_min=500, var_init=100).validate()
