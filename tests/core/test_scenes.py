"""The offline GMM on the kinds of scene that broke a fixed log-likelihood threshold.

Small synthetic clips, each a case from the development scenes (issue 14): a background
with two broad colours (leaves, water), a background that sways by a pixel or two (a
tree, a shaking camera), an object that arrives and rests for most of the clip (a bag
left, a person who sits down), and plain moving objects, which must still be found.
"""

import dataclasses

import cv2
import numpy as np
import pytest

from napari_gmm_bg import (
    FitParameters,
    MaskCleanup,
    OnlineModel,
    OnlineSettings,
    fit_background,
    make_sample,
    run_online,
)
from napari_gmm_bg.core import _kernels, gmm

N_FRAMES, SHAPE = 80, (96, 128)


def _background(rng, detail=12.0):
    """A smooth random colour field with fine texture, float32 (Y, X, 3)."""
    height, width = SHAPE
    coarse = rng.uniform(50, 190, (height // 16, width // 16, 3))
    smooth = np.kron(coarse, np.ones((16, 16, 1)))
    return (smooth + rng.normal(0, detail, (height, width, 3))).astype(np.float32)


def _clip(frames):
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def _square_path(n_frames, size=14, row=70):
    """A square crossing the frame left to right: (T, Y, X) bool."""
    truth = np.zeros((n_frames, *SHAPE), bool)
    for t in range(n_frames):
        x0 = int(round(t * (SHAPE[1] - size) / (n_frames - 1)))
        truth[t, row : row + size, x0 : x0 + size] = True
    return truth


def _with_square(frames, truth, colour=(230, 30, 200)):
    out = frames.copy()
    out[truth] = colour
    return out


def _recall_precision(mask, truth, where=None):
    found = mask != 0
    if where is not None:
        found, truth = found & where, truth & where
    tp = np.count_nonzero(found & truth)
    return tp / max(np.count_nonzero(truth), 1), tp / max(np.count_nonzero(found), 1)


def test_a_broad_two_colour_background_is_background():
    # Rows 8-48: each pixel shows one of two distant colours at random every frame, each
    # with a spread of 12 grey levels (leaves against sky, water): two broad modes.
    rng = np.random.default_rng(0)
    frames = np.repeat(_background(rng)[None], N_FRAMES, axis=0)
    frames += rng.normal(0, 2, frames.shape).astype(np.float32)
    region = (slice(None), slice(8, 48), slice(None))
    pick = rng.random(frames[region].shape[:3]) < 0.5
    a = np.array([60, 90, 50], np.float32) + rng.normal(0, 12, frames[region].shape)
    b = np.array([190, 200, 215], np.float32) + rng.normal(0, 12, frames[region].shape)
    frames[region] = np.where(pick[..., None], a, b)
    truth = _square_path(N_FRAMES)
    video = _clip(_with_square(frames, truth))
    mask = fit_background(video).foreground(video)
    assert (mask[region] != 0).mean() < 0.01  # 0.89 with the fixed log-likelihood threshold
    recall, precision = _recall_precision(mask, truth)
    assert recall >= 0.9 and precision >= 0.9


def _swaying_clip(amplitude, n_frames=N_FRAMES):
    """A fine texture that shifts by up to ``amplitude`` pixels a frame; a square crosses.

    Returns the clip, the square's ``(T, Y, X)`` truth and where background is scored
    (off the square and off the border, which ``np.roll`` wraps).
    """
    rng = np.random.default_rng(1)
    still = cv2.GaussianBlur(_background(rng, detail=25.0), (0, 0), 1.0)  # fine detail
    shifts = rng.integers(-amplitude, amplitude + 1, (n_frames, 2))
    frames = np.stack([np.roll(still, tuple(s), axis=(0, 1)) for s in shifts])
    frames += rng.normal(0, 2, frames.shape).astype(np.float32)
    truth = _square_path(n_frames)
    inner = np.zeros(SHAPE, bool)
    inner[amplitude:-amplitude, amplitude:-amplitude] = True
    return _clip(_with_square(frames, truth)), truth, ~truth & inner


@pytest.mark.parametrize(("amplitude", "radius"), [(1, None), (2, 2)])
def test_a_swaying_textured_background_is_background(amplitude, radius):
    # The whole textured scene shifts by up to `amplitude` pixels each frame (a tree in
    # the wind, a shaking camera); a square crosses it.  Its own background does not
    # explain a pixel's colour, a neighbour's does: within the default radius (1) for a
    # one-pixel sway, within consensus_radius=2 for two.
    video, truth, background = _swaying_clip(amplitude)
    model = fit_background(video, **({} if radius is None else {"consensus_radius": radius}))
    mask = model.foreground(video)
    assert (mask[background] != 0).mean() < 0.005
    recall, _ = _recall_precision(mask, truth)
    assert recall >= 0.9  # 0.14 with the fixed log-likelihood threshold: broad components
    # learned from the sway explained the square too
    # The score is what the threshold compares, consensus included.
    raw = model.foreground(video, cleanup=MaskCleanup.none())
    np.testing.assert_array_equal(raw, (model.distance(video) > model.threshold).view(np.uint8))
    assert (model.consensus > 0).mean() > 0.1  # consulted where the sway is


def test_an_object_that_rests_for_most_of_the_clip_stays_foreground():
    # A box is put down at frame 15 and stays to the end: 65 of 80 frames.  The most
    # frequent colour is the box's; the background is what showed before it came.
    rng = np.random.default_rng(2)
    frames = np.repeat(_background(rng)[None], N_FRAMES, axis=0)
    frames += rng.normal(0, 2, frames.shape).astype(np.float32)
    truth = np.zeros((N_FRAMES, *SHAPE), bool)
    truth[15:, 20:50, 30:70] = True
    video = _clip(_with_square(frames, truth, colour=(40, 160, 90)))
    mask = fit_background(video).foreground(video)
    recall, precision = _recall_precision(mask, truth)
    assert recall >= 0.9 and precision >= 0.9  # recall was 0.0: the box was background
    # With absorb_after, a change that lasts longer than that is background.
    absorbed = fit_background(video, absorb_after=40).foreground(video)
    assert (absorbed[truth] != 0).mean() < 0.1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_moving_objects_are_still_found(seed):
    sample = make_sample("moving-shapes", seed=seed)
    mask = fit_background(sample.video).foreground(sample.video)
    recall, precision = _recall_precision(mask, sample.ground_truth.astype(bool))
    assert recall >= 0.9 and precision >= 0.9


def test_the_online_gmm_scores_distances_too():
    sample = make_sample("moving-shapes", seed=0)
    result = run_online(sample.video)
    assert result.distance.dtype == np.float32 and (result.distance >= 0).all()
    mask = result.foreground()
    np.testing.assert_array_equal(
        result.foreground(cleanup=MaskCleanup.none()),
        (result.distance > result.threshold).view(np.uint8),
    )
    recall, precision = _recall_precision(mask[20:], sample.ground_truth[20:].astype(bool))
    assert recall >= 0.85 and precision >= 0.85


def test_the_online_gmm_takes_a_swaying_background_too():
    # The on-line mode has no learning frames to draw a consensus map on: it counts, as
    # the stream goes by, where a neighbour's background explains a pixel's misses.  On
    # by default (radius 1), as offline.
    video, truth, background = _swaying_clip(1, n_frames=120)
    later = slice(48, None)  # the evidence gathers over the first windows
    false_alarms, precision = {}, {}
    for radius, settings in ((0, OnlineSettings(consensus_radius=0)), (1, OnlineSettings())):
        mask = run_online(video, settings).foreground()[later]
        false_alarms[radius] = (mask[background[later]] != 0).mean()
        recall, precision[radius] = _recall_precision(mask, truth[later])
        assert recall >= 0.85  # 0.89 alone, 0.87 with consensus
    # Fed one frame at a time, as a camera gives them: the same scores as the clip in
    # blocks (the evidence and the neighbours' backgrounds change at 16-frame windows).
    settings = OnlineSettings(consensus_radius=1, compensate_brightness=False)
    model = OnlineModel(settings)
    single = np.stack([model.update(frame)[0] for frame in video[:60]])
    whole = run_online(video[:60], settings).distance
    np.testing.assert_array_equal(single, whole)
    alone = run_online(video[:60], dataclasses.replace(settings, consensus_radius=0)).distance
    assert (whole < alone).mean() > 0.001  # the neighbours were consulted
    # Measured: 0.41% of the background alone (precision 0.78), 0.024% with consensus (0.98).
    assert false_alarms[1] < false_alarms[0] / 10, false_alarms
    assert precision[0] < 0.85 and precision[1] > 0.95, precision


def _choose(samples, weights, means, variances):
    """The offline fit's background choice for one pixel, at the fit's defaults."""
    samples = np.asarray(samples, np.float32)[:, None, :]
    n = len(samples)
    weights = np.asarray(weights, np.float32)[None]
    flags = _kernels.choose_background(
        samples,
        np.zeros(n),
        np.ones(n),
        weights,
        np.asarray(means, np.float32)[None],
        np.asarray(variances, np.float32)[None],
        gmm.weight_rule_count(weights, FitParameters.background_ratio),
        gmm.STILL_WEIGHT,
        gmm.STILL_SAMPLES,
        gmm._short_still(gmm.STILL_SAMPLES),
        gmm.SHORT_STILL_RATIO,
        gmm.REST_SAMPLES,
        gmm.REST_SHARE,
        FitParameters.max_variance,
        0,
    )
    return flags[0].tolist()


def test_a_bag_at_rest_is_not_the_fallback_of_a_broad_background():
    # sbi_candela: the sofa shows for the first 10 of 40 learning samples; people passing
    # close by made its component broader than max_variance allows.  Then a bag rests on
    # it to the end (EM split it in two).  With no background left, the pixel falls
    # back on the heaviest of its background components, here the earliest still
    # colour, its variances capped: not on the heaviest component, the bag (that
    # fallback cost sbi_candela F 0.76 against 0.96).
    sofa, bag = (73, 117, 144), (186, 211, 202)
    samples = [sofa] * 10 + [bag] * 30
    weights = [0.4, 0.35, 0.25]
    means = [bag, bag, sofa]
    variances = [[120] * 3, [120] * 3, [900, 320, 150]]
    assert _choose(samples, weights, means, variances) == [0, 0, 2]


def test_a_broad_component_is_not_an_object_at_rest():
    # Leaves that sway: the pixel's colours come in runs, and every component is broad.
    # Runs away from the earliest still colour are no object at rest there: the pixel
    # falls back on its heaviest component, its variances capped.  (The fallback above
    # alone, with broad components taken for objects at rest, fell back on the earliest
    # still colour here, a branch: cdnet_fall lost F 0.07.)
    leaf, sky, branch = (60, 90, 50), (190, 200, 215), (110, 120, 100)
    samples = [branch] * 5 + ([leaf] * 3 + [sky] * 3) * 5 + [branch] * 5
    weights = [0.38, 0.37, 0.25]
    means = [leaf, sky, branch]
    variances = [[400] * 3, [400] * 3, [400] * 3]
    assert _choose(samples, weights, means, variances) == [2, 0, 0]


def test_plants_seen_still_briefly_are_the_background_not_a_person_who_stands():
    # sbi_people_and_foliage: plants that sway show one colour for two learning samples
    # at most, then alternate with another; a person stands there for eight.  The person
    # is the first colour held for four samples, but the plants' brief still moment came
    # first and weighs more: the plants are the background, the person is an object at
    # rest.  (Taking the first colour held for four samples cost that scene F 0.13.)
    plant, leaf, person = (60, 110, 50), (90, 140, 70), (200, 160, 140)
    samples = [plant] * 2 + [leaf, plant] * 4 + [person] * 8 + [plant, leaf] * 11
    weights = [0.425, 0.375, 0.2]
    means = [plant, leaf, person]
    variances = [[100] * 3] * 3
    assert _choose(samples, weights, means, variances) == [1, 1, 0]


def test_a_car_in_the_first_frames_is_not_the_background_of_the_road():
    # sbi_highway_i: a car waits at the pixel for the first two samples, then the road
    # shows for runs of five between cars.  A brief still moment must weigh at least as
    # much as the long one: the car's does not, and the road stays background
    # (taken as the scene, the car made the road an object at rest: that scene lost
    # F 0.07).
    car, road = (40, 40, 160), (120, 120, 120)
    samples = [car] * 2 + [road] * 6 + ([car] + [road] * 5) * 5 + [car] * 2
    weights = [0.775, 0.225]
    means = [road, car]
    variances = [[100] * 3] * 2
    assert _choose(samples, weights, means, variances)[0] == 1
