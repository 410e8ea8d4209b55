import dask.array as da
import numpy as np
import pytest

from napari_gmm_bg.core.metrics import (
    Confusion,
    confusion,
    difference_labels,
    evaluate_mask,
    frame_statistics,
    truth_kind,
)


def test_cdnet_counts_by_hand():
    truth = np.array([[0, 50, 85, 170, 255, 255, 0, 50]])
    predicted = np.array([[1, 1, 1, 1, 1, 0, 0, 2]])
    # 0 ->FP, 50 ->FP (shadow is negative), 85 and 170 not scored, 255 ->TP, 255 ->FN,
    # 0 ->TN, 50 predicted shadow (2 counts as background) ->TN
    assert confusion(predicted, truth) == Confusion(tp=1, fp=2, tn=2, fn=1)


def test_binary_ground_truth_and_roi():
    truth = np.array([[1, 1, 0, 0], [1, 0, 0, 1]])
    predicted = np.array([[1, 0, 1, 0], [1, 1, 0, 0]])
    assert confusion(predicted, truth) == Confusion(tp=2, fp=2, tn=2, fn=2)
    roi = np.array([[True, True, False, False], [False, False, False, False]])
    assert confusion(predicted, truth, roi) == Confusion(tp=1, fp=0, tn=0, fn=1)


def test_metric_formulas():
    m = Confusion(tp=6, fp=2, tn=10, fn=2).metrics()
    assert m["recall"] == pytest.approx(0.75)
    assert m["precision"] == pytest.approx(0.75)
    assert m["specificity"] == pytest.approx(10 / 12)
    assert m["fpr"] == pytest.approx(2 / 12)
    assert m["fnr"] == pytest.approx(0.25)
    assert m["pwc"] == pytest.approx(100 * 4 / 20)
    assert m["f_measure"] == pytest.approx(0.75)


def test_empty_frames():
    truth = np.zeros((2, 3, 3), np.uint8)
    none_called = evaluate_mask(np.zeros_like(truth), truth)
    assert none_called["tn"] == 18 and none_called["tp"] == 0
    assert np.isnan(none_called["recall"]) and np.isnan(none_called["precision"])
    assert np.isnan(none_called["f_measure"])
    assert none_called["specificity"] == 1.0 and none_called["pwc"] == 0.0
    # Nothing to score is an error, not a table of NaN (issue 16).
    all_unscored = np.full((1, 2, 2), 85, np.uint8)
    with pytest.raises(ValueError, match="nothing to score"):
        evaluate_mask(np.ones((1, 2, 2), np.uint8), all_unscored)


def test_lazy_masks_and_frame_ranges():
    rng = np.random.default_rng(0)
    truth = rng.choice([0, 255], size=(6, 4, 5)).astype(np.uint8)
    mask = rng.integers(0, 2, size=(6, 4, 5)).astype(np.uint8)
    eager = evaluate_mask(mask, truth, frames=range(2, 5))
    lazy = evaluate_mask(
        da.from_array(mask, chunks=2), da.from_array(truth, chunks=3), frames=range(2, 5)
    )
    assert eager == lazy
    by_hand = confusion(mask[2:5], truth[2:5])
    assert eager["tp"] == by_hand.tp and eager["fn"] == by_hand.fn


@pytest.mark.parametrize(
    ("mask", "truth", "kwargs", "message"),
    [
        (np.zeros((2, 3, 3)), np.zeros((2, 3, 4)), {}, "differ"),
        (np.zeros((2, 3, 3)), np.full((2, 3, 3), 7), {}, "neither binary"),
        (np.zeros((2, 3, 3)), np.zeros((2, 3, 3)), {"frames": range(1, 5)}, "not inside"),
        (np.zeros((2, 3, 3)), np.zeros((2, 3, 3)), {"frames": range(1, 1)}, "not inside"),
    ],
)
def test_bad_input(mask, truth, kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluate_mask(mask, truth, **kwargs)


def test_truth_kind():
    assert truth_kind(np.array([0, 1])) == "binary"
    assert truth_kind(np.array([0, 255, 170])) == "cdnet"


def test_difference_labels():
    a = np.array([1, 1, 0, 0, 2])
    b = np.array([1, 0, 1, 0, 1])
    np.testing.assert_array_equal(difference_labels(a, b), [1, 2, 3, 0, 3])
    lazy = difference_labels(da.from_array(a), b)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), [1, 2, 3, 0, 3])
    with pytest.raises(ValueError, match="differ"):
        difference_labels(a, b[:3])


def test_frame_statistics_counts_blobs():
    mask = np.zeros((3, 10, 10), np.uint8)
    mask[1, 1:3, 1:3] = 1
    mask[1, 6:9, 6:9] = 1
    mask[2, 0, 0] = 2  # shadow is not foreground
    stats = frame_statistics(mask)
    np.testing.assert_array_equal(stats["foreground_pixels"], [0, 13, 0])
    np.testing.assert_array_equal(stats["blobs"], [0, 2, 0])
    assert stats["foreground_fraction"][1] == pytest.approx(0.13)


@pytest.mark.parametrize("case", ["black-roi", "no-ground-truth", "unscored-frames"])
def test_nothing_to_score_is_an_error_not_a_table_of_nan(case):
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 2, (6, 8, 10), dtype=np.uint8)
    truth = rng.choice(np.array([0, 255], np.uint8), (6, 8, 10))
    truth[:3] = 85  # the first frames lie outside the temporal region of interest
    roi, frames = None, range(0, 6)
    if case == "black-roi":
        roi = np.zeros((8, 10), bool)
    elif case == "no-ground-truth":
        truth[:] = 170
    else:
        frames = range(0, 3)
    with pytest.raises(ValueError, match="nothing to score"):
        evaluate_mask(mask, truth, roi, frames)
    # Something to score: numbers.
    assert np.isfinite(evaluate_mask(mask, rng.choice([0, 255], (6, 8, 10)))["pwc"])
