import cv2
import numpy as np
import pytest

from napari_gmm_bg import MaskCleanup, make_sample
from napari_gmm_bg.core.baseline import median_baseline
from napari_gmm_bg.core.cleanup import clean_mask
from napari_gmm_bg.core.mog2 import Mog2Settings, run_mog2
from tests.conftest import iou


def test_mog2_matches_opencv_run_directly_in_bgr(rgb_sample):
    settings = Mog2Settings(history=50, var_threshold=25, n_mixtures=4, shadow_threshold=0.6)
    result = run_mog2(rgb_sample.video, settings)
    reference = cv2.createBackgroundSubtractorMOG2(50, 25, True)
    reference.setNMixtures(4)
    reference.setShadowThreshold(0.6)
    expected = np.stack(
        [reference.apply(cv2.cvtColor(f, cv2.COLOR_RGB2BGR)) for f in rgb_sample.video]
    )
    np.testing.assert_array_equal(result.mask == 1, expected == 255)
    np.testing.assert_array_equal(result.mask == 2, expected == 127)
    assert result.mask.dtype == np.uint8 and result.mask.shape == rgb_sample.ground_truth.shape
    background = cv2.cvtColor(reference.getBackgroundImage(), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(result.background, background)


def test_mog2_marks_shadows_with_label_2():
    # A static grey scene over which a darker (same hue) patch passes: MOG2 calls it shadow.
    video = np.full((60, 40, 40, 3), 160, np.uint8)
    video += np.random.default_rng(0).integers(0, 3, video.shape, dtype=np.uint8)
    for t in range(40, 60):
        video[t, 10:30, t - 40 : t - 20] = (video[t, 10:30, t - 40 : t - 20] * 0.7).astype(
            np.uint8
        )
    mask = run_mog2(video).mask
    assert (mask[45:] == 2).sum() > 100
    assert (run_mog2(video, Mog2Settings(detect_shadows=False)).mask == 2).sum() == 0


def test_mog2_bad_settings_and_input(rgb_sample):
    with pytest.raises(ValueError, match="learning_rate"):
        run_mog2(rgb_sample.video, Mog2Settings(learning_rate=-0.5))
    with pytest.raises(ValueError, match="8-bit"):
        run_mog2(rgb_sample.video.astype(np.float32))


def test_cleanup_median_opening_closing_min_area():
    mask = np.zeros((1, 20, 20), np.uint8)
    mask[0, 5:15, 5:15] = 1
    mask[0, 9, 9] = 0  # a pinhole
    mask[0, 1, 1] = 1  # a speck
    mask[0, 18, 18] = 2  # a shadow pixel is kept
    cleaned = clean_mask(mask, MaskCleanup(median=3))
    assert cleaned[0, 9, 9] == 1 and cleaned[0, 1, 1] == 0 and cleaned[0, 18, 18] == 2
    opened = clean_mask(mask, MaskCleanup(median=0, opening=3))
    assert opened[0, 1, 1] == 0 and opened[0, 10, 10] == 1
    closed = clean_mask(mask, MaskCleanup(median=0, closing=3))
    assert closed[0, 9, 9] == 1 and closed[0, 1, 1] == 1
    small_gone = clean_mask(mask, MaskCleanup(median=0, min_area=2))
    assert small_gone[0, 1, 1] == 0 and small_gone[0, 10, 10] == 1
    assert clean_mask(mask, MaskCleanup.none()) is mask
    with pytest.raises(ValueError, match="odd"):
        MaskCleanup(median=4).validate()


def test_median_baseline_finds_the_objects(rgb_sample):
    assert iou(median_baseline(rgb_sample.video), rgb_sample.ground_truth) > 0.8


def test_cleanup_does_not_grow_out_of_the_region():
    sample = make_sample(n_frames=30, shape=(32, 48), seed=2)
    from napari_gmm_bg import fit_background

    model = fit_background(sample.video)
    region = np.zeros((32, 48), bool)
    region[:, :20] = True
    mask = model.foreground(sample.video, region=region, cleanup=MaskCleanup(closing=9))
    assert mask[:, :, 20:].sum() == 0


@pytest.mark.parametrize("size", [3, 5, 7, 9])
def test_median_filter_equals_opencv_median_blur(size):
    rng = np.random.default_rng(size)
    mask = (rng.random((3, 40, 50)) < 0.3).astype(np.uint8)
    mask[:, 10:25, 5:30] = 1
    expected = np.stack([cv2.medianBlur(frame, size) for frame in mask])
    np.testing.assert_array_equal(clean_mask(mask, MaskCleanup(median=size)), expected)
