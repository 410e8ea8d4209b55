import warnings

import dask.array as da
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from napari_gmm_bg import MaskCleanup, fit_background, load_model, make_sample
from napari_gmm_bg.core import _kernels
from napari_gmm_bg.core.intensity import (
    BrightnessReference,
    IntensityScale,
    gain_stride,
    luminance,
)
from napari_gmm_bg.core.online import run_online
from tests.conftest import iou


def _reference_inputs(model, frames):
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[..., None]
    gains, lifts = model.brightness(frames)  # tested on its own below
    x = (frames.astype(np.float64) - model.intensity.offset) * model.intensity.scale
    x = (x - lifts[:, None, None, None]) / gains[:, None, None, None]
    flags = model.background_flags()
    var = model.variances.astype(np.float64)
    capped = (flags == 2)[..., None]
    var = np.where(capped, np.minimum(var, model.params.max_variance), var)
    return x, flags != 0, model.means.astype(np.float64), var


def reference_distance(model, frames):
    """Plain numpy: RMS z-score to the nearest background component."""
    x, is_bg, mu, var = _reference_inputs(model, frames)
    d2 = ((x[:, :, :, None, :] - mu[None]) ** 2 / var[None]).sum(-1)
    d2 = np.where(is_bg[None], d2, np.inf).min(-1)
    return np.sqrt(d2 / model.n_channels).astype(np.float32)


def reference_log_likelihood(model, frames):
    """Plain numpy: log of the renormalised background mixture density."""
    x, is_bg, mu, var = _reference_inputs(model, frames)
    w = model.weights.astype(np.float64)
    w = np.where(is_bg, w, 0.0)
    w /= w.sum(-1, keepdims=True)
    diff = x[:, :, :, None, :] - mu[None]
    log_n = -0.5 * (np.log(2 * np.pi * var)[None] + diff**2 / var[None]).sum(-1)
    with np.errstate(divide="ignore"):
        terms = np.log(w)[None] + log_n
    top = terms.max(-1, keepdims=True)
    return (top[..., 0] + np.log(np.exp(terms - top).sum(-1))).astype(np.float32)


def test_mask_recovers_moving_objects(default_sample):
    model = fit_background(default_sample.video)
    mask = model.foreground(default_sample.video)
    assert mask.dtype == np.uint8 and mask.shape == default_sample.ground_truth.shape
    assert set(np.unique(mask)) <= {0, 1}
    assert iou(mask, default_sample.ground_truth) >= 0.8


def test_grey_clip_fits_and_scores(grey_sample):
    model = fit_background(grey_sample.video)
    assert model.n_channels == 1
    assert iou(model.foreground(grey_sample.video), grey_sample.ground_truth) >= 0.8
    assert model.background_image().shape == grey_sample.video.shape[1:]


@pytest.mark.parametrize("kind", ["uint8-rgb", "uint8-grey", "uint16-rgb", "float32-grey"])
def test_em_agrees_with_scikit_learn_from_the_same_start(kind):
    dtype, colour = kind.split("-")
    name = "moving-shapes" if colour == "rgb" else "moving-shapes-grey"
    sample = make_sample(name, n_frames=40, shape=(32, 48), seed=3)
    crop = sample.video[:, 8:14, 10:16]  # 36 pixels
    if dtype == "uint16":
        crop = crop.astype(np.uint16) * 257
    elif dtype == "float32":
        crop = crop.astype(np.float32) / 255.0
    n_iter, reg = 8, 4.0
    model = fit_background(
        crop, n_components=3, max_iter=n_iter, tol=0.0, reg_covar=reg, compensate_brightness=False
    )
    offset, scale = model.intensity.offset, model.intensity.scale
    samples = crop.reshape(len(crop), 6 * 6, -1)
    offsets, scales = np.full(len(crop), offset), np.full(len(crop), scale)
    w0, mu0, var0 = _kernels.fit_pixels(samples, offsets, scales, 3, 0, 0.0, reg)  # the start
    worst = 0.0
    for p in range(samples.shape[1]):
        x = (samples[:, p].astype(np.float64) - offset) * scale  # the model's 0-255 scale
        gm = GaussianMixture(
            3,
            covariance_type="diag",
            max_iter=n_iter,
            tol=0.0,
            reg_covar=reg,
            weights_init=w0[p] / w0[p].sum(dtype=np.float64),
            means_init=mu0[p].astype(np.float64),
            precisions_init=1.0 / var0[p].astype(np.float64),
        )
        with warnings.catch_warnings():  # "did not converge": with tol=0 it runs every step
            warnings.simplefilter("ignore", ConvergenceWarning)
            gm.fit(x)
        ours = GaussianMixture(3, covariance_type="diag")
        y, xx = divmod(p, 6)
        ours.weights_ = model.weights[y, xx].astype(np.float64)
        ours.means_ = model.means[y, xx].astype(np.float64)
        ours.covariances_ = model.variances[y, xx].astype(np.float64)
        ours.precisions_cholesky_ = 1.0 / np.sqrt(ours.covariances_)
        worst = max(worst, abs(ours.score(x) - gm.score(x)))
    assert worst < 0.05


def reference_start(x, k, reg):
    """Plain numpy: split one pixel's samples (N, C) into k brightness quantiles."""
    order = np.argsort(x.sum(axis=1), kind="stable")
    bounds = [(i * len(x)) // k for i in range(k + 1)]
    parts = [x[order[a:b]] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    w = np.array([len(part) / len(x) for part in parts])
    mu = np.array([part.mean(axis=0) for part in parts])
    var = np.array([part.var(axis=0) + reg for part in parts])
    heaviest_first = np.argsort(-w, kind="stable")
    return w[heaviest_first], mu[heaviest_first], var[heaviest_first]


@pytest.mark.parametrize("kind", ["uint8-rgb", "uint8-grey", "uint16-rgb", "float32-rgb"])
@pytest.mark.parametrize(("k", "n_samples"), [(1, 37), (3, 37), (4, 37), (3, 100)])
def test_start_splits_samples_into_brightness_quantiles(kind, k, n_samples):
    # Up to RANK_SAMPLES samples the quantiles come from ranks, beyond from a sort.
    dtype, colour = kind.split("-")
    rng = np.random.default_rng(k)
    channels = 3 if colour == "rgb" else 1
    raw = rng.integers(0, 256, (n_samples, 150, channels))  # 150 pixels: a partial block
    raw[:, :20] = raw[:1, :20]  # pixels whose samples all tie
    samples = raw.astype(dtype) * (257 if dtype == "uint16" else 1)
    if dtype == "float32":
        samples = (samples / 255.0).astype(np.float32)
    offsets = rng.uniform(-5, 5, len(samples))
    scales = rng.uniform(0.8, 1.2, len(samples)) * (255 / samples.max())
    w, mu, var = _kernels.fit_pixels(samples, offsets, scales, k, 0, 0.0, 4.0)
    x = (samples.astype(np.float64) - offsets[:, None, None]) * scales[:, None, None]
    for p in range(samples.shape[1]):
        w_ref, mu_ref, var_ref = reference_start(x[:, p], k, 4.0)
        np.testing.assert_allclose(w[p], w_ref, rtol=1e-6)
        np.testing.assert_allclose(mu[p], mu_ref, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(var[p], var_ref, rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize(
    "kind", ["uint8-rgb", "uint8-grey", "uint16-rgb", "float32-grey", "float64-rgb"]
)
def test_log_likelihood_matches_numpy_reference(kind):
    dtype, colour = kind.split("-")
    sample = make_sample(
        "moving-shapes" if colour == "rgb" else "moving-shapes-grey",
        n_frames=20,
        shape=(24, 32),
        seed=5,
    )
    video = sample.video.astype(np.float64)
    if dtype == "uint16":
        video = (video * 257).astype(np.uint16)
    elif dtype.startswith("float"):
        video = (video / 255.0).astype(dtype)
    else:
        video = video.astype(np.uint8)
    model = fit_background(video, consensus_radius=0)
    ll = model.log_likelihood(video)
    assert ll.dtype == np.float32 and ll.shape == video.shape[:3]
    np.testing.assert_allclose(ll, reference_log_likelihood(model, video), rtol=1e-4, atol=1e-3)
    distance = model.distance(video)
    assert distance.dtype == np.float32 and distance.shape == video.shape[:3]
    np.testing.assert_allclose(distance, reference_distance(model, video), rtol=1e-4, atol=1e-4)
    # Without consensus the labels are exactly the thresholded distances.
    for threshold in (model.threshold, 0.5, 2.5):
        raw = model.foreground(video, threshold=threshold, cleanup=MaskCleanup.none())
        np.testing.assert_array_equal(raw, (distance > threshold).astype(np.uint8))


def test_same_scene_in_other_dtypes_gives_the_same_mask(rgb_sample):
    as_uint8 = fit_background(rgb_sample.video).foreground(rgb_sample.video)
    as_uint16 = rgb_sample.video.astype(np.uint16) * 257
    mask16 = fit_background(as_uint16).foreground(as_uint16)
    assert iou(mask16, as_uint8) > 0.98
    # float64 far from zero (a calibrated sensor, say): float32 alone would hold the
    # values to 1.0, four of the clip's steps between grey levels (IoU 0.960 and 0.996).
    far = rgb_sample.video.astype(np.float64) / 4 + 1e7
    mask_far = fit_background(far).foreground(far)
    assert iou(mask_far, as_uint8) > 0.98
    online = run_online(rgb_sample.video).foreground()
    online_far = run_online(far).foreground()
    assert iou(online_far, online) > 0.999


def test_dask_input_stays_lazy_and_equals_numpy(rgb_sample):
    video = rgb_sample.video
    model = fit_background(video)
    lazy = da.from_array(video, chunks=(7, -1, -1, -1))
    ll = model.log_likelihood(lazy)
    mask = model.foreground(lazy)
    assert isinstance(ll, da.Array) and isinstance(mask, da.Array)
    assert ll.chunks[0] == (1,) * len(video)  # computed per frame on demand
    np.testing.assert_array_equal(ll[5].compute(), model.log_likelihood(video[5:6])[0])
    np.testing.assert_array_equal(mask.compute(), model.foreground(video))
    # A fit on the dask array reads the same learning frames.
    lazy_model = fit_background(lazy)
    np.testing.assert_array_equal(lazy_model.means, model.means)


def test_background_image_keeps_dtype_and_shows_no_objects(rgb_sample):
    model = fit_background(rgb_sample.video)
    bg = model.background_image()
    assert bg.dtype == np.uint8 and bg.shape == rgb_sample.video.shape[1:]
    # Median of the frames where nothing covers a pixel: the true background.
    truth = rgb_sample.ground_truth.astype(bool)
    clean = np.where(truth[..., None], np.nan, rgb_sample.video.astype(float))
    expected = np.nanmedian(clean, axis=0)
    assert np.nanpercentile(np.abs(bg - expected), 99) < 3.0

    as_float = rgb_sample.video.astype(np.float32) / 255.0
    bg_float = fit_background(as_float).background_image()
    assert bg_float.dtype == np.float32
    # The float clip's range is not exactly 0-1, so its scale, and a few pixels' fits,
    # differ slightly.
    assert (np.abs(bg_float * 255.0 - bg) <= 1.5).mean() > 0.99


def test_threshold_and_region(rgb_sample):
    model = fit_background(rgb_sample.video)
    video = rgb_sample.video
    loose = model.foreground(video, threshold=0.5)
    strict = model.foreground(video, threshold=4.0)
    assert loose.sum() > model.foreground(video).sum() > strict.sum()
    region = np.zeros(video.shape[1:3], bool)
    region[:, :40] = True
    limited = model.foreground(video, region=region)
    assert limited[:, :, 40:].sum() == 0
    np.testing.assert_array_equal(limited[:, :, :40], model.foreground(video)[:, :, :40])


def test_learning_from_a_frame_range(rgb_sample):
    model = fit_background(rgb_sample.video, learning_frames=10, frame_range=(20, 50))
    assert model.learning_indices.min() >= 20 and model.learning_indices.max() <= 49
    assert len(model.learning_indices) == 10


def test_save_load_round_trip(tmp_path, rgb_sample):
    model = fit_background(rgb_sample.video, n_components=4, threshold=2.0)
    path = model.save(tmp_path / "model.npz")
    loaded = load_model(path)
    for name in ("weights", "means", "variances", "learning_indices"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
        assert getattr(loaded, name).dtype == getattr(model, name).dtype
    assert loaded.params == model.params
    assert loaded.intensity == model.intensity and loaded.dtype == model.dtype
    assert loaded.threshold == 2.0
    np.testing.assert_array_equal(loaded.flags, model.flags)
    np.testing.assert_array_equal(loaded.consensus, model.consensus)
    np.testing.assert_array_equal(
        loaded.distance(rgb_sample.video), model.distance(rgb_sample.video)
    )
    np.testing.assert_array_equal(
        loaded.foreground(rgb_sample.video), model.foreground(rgb_sample.video)
    )
    # A second scene of the same camera is scored with the saved model.
    other = make_sample("moving-shapes", n_frames=60, shape=(64, 96), seed=0).video[::-1]
    assert loaded.foreground(other).shape == other.shape[:3]


def test_load_rejects_files_that_are_not_models(tmp_path):
    with pytest.raises(ValueError, match="no model file"):
        load_model(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a saved napari-gmm-bg model"):
        load_model(junk)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a saved napari-gmm-bg model"):
        load_model(other)


def test_intensity_scale_of_float_uses_data_range():
    scale = IntensityScale.for_data(np.dtype(np.float32), np.array([0.0, 0.5, 1.0]))
    assert scale.offset == 0.0 and scale.scale == pytest.approx(255.0)


def test_a_global_brightness_change_floods_no_frame(default_sample):
    # Frames 50-57 lose 30% of their light (camera gain, a cloud): the step alone must
    # not turn them into foreground, and the moving objects must still be found.  (A
    # change that lasts, like a light switched on, becomes background as the model learns.)
    dark = slice(50, 58)
    video = default_sample.video.astype(np.float32)
    video[dark] *= 0.7
    video = np.clip(video, 0, 255).astype(np.uint8)
    truth = default_sample.ground_truth
    model = fit_background(video)
    gains, lifts = model.brightness(video)
    assert np.allclose(np.delete(gains, np.r_[dark]), 1.0, atol=0.05)
    assert np.allclose(gains[dark], 0.7, atol=0.03)
    assert np.allclose(lifts, 0.0, atol=5.0)
    mask = model.foreground(video)

    def flooded(labels):  # more than 30% called foreground where objects cover under 10%
        called = (labels == 1).mean(axis=(1, 2))
        return (called > 0.3) & (truth.mean(axis=(1, 2)) < 0.1)

    assert not flooded(mask).any()
    assert (mask == 1).mean(axis=(1, 2)).max() < 0.2
    # Still finding the objects: nearly as well as in the same frames left bright.
    bright = fit_background(default_sample.video).foreground(default_sample.video)
    assert iou(mask[dark], truth[dark]) >= 0.9 * iou(bright[dark], truth[dark])
    # Without compensation the darker frames flood.
    raw = fit_background(video, compensate_brightness=False).foreground(video)
    assert flooded(raw)[dark].sum() >= 6


def test_shadows_are_labelled_2_shown_or_counted_as_background():
    # A textured scene; a patch passes that only darkens it (x0.6, same hue), and a
    # saturated red car: the patch is a shadow, the car is not.
    sample = make_sample("moving-shapes", n_frames=60, shape=(60, 80), n_objects=1, seed=9)
    video = sample.video.astype(np.float32)
    shade = np.zeros(video.shape[:3], bool)
    for t in range(30, 40):
        shade[t, 5:25, 2 * t - 60 : 2 * t - 40] = True
    video[shade] *= 0.6
    video = np.clip(video, 0, 255).astype(np.uint8)
    model = fit_background(video, shadows="show")
    labels = model.foreground(video, cleanup=MaskCleanup.none())
    in_shade = labels[shade & (sample.ground_truth == 0)]
    # What stands out of the background's spread in the shade is called shadow, not
    # foreground.
    assert (in_shade == 2).mean() > 0.9 and (in_shade == 1).mean() < 0.05
    on_objects = labels[sample.ground_truth == 1]
    # The objects are found; few of their pixels pass for shadows (the darker ones whose
    # colour is close to the darkened background's: 12% of those found).
    assert (on_objects != 0).mean() > 0.85
    assert (on_objects == 2).sum() < 0.15 * (on_objects != 0).sum()
    as_background = model.foreground(video, cleanup=MaskCleanup.none(), shadows="background")
    np.testing.assert_array_equal(as_background, np.where(labels == 2, 0, labels))
    off = model.foreground(video, cleanup=MaskCleanup.none(), shadows="off")
    np.testing.assert_array_equal(off, np.where(labels == 2, 1, labels))
    with pytest.raises(ValueError, match="shadows must be one of"):
        model.foreground(video, shadows="hide")


@pytest.mark.parametrize("n_pixels", [400, 401])
def test_brightness_gains_are_the_two_medians_of_each_frame(n_pixels):
    # The gains are computed for many frames at once; each must be what the definition
    # gives frame by frame: the median of the ratios, then the median of those within
    # the tolerance of it (the first median where 16 or fewer are), both as np.median.
    rng = np.random.default_rng(5)
    reference = BrightnessReference(rng.uniform(20.0, 250.0, n_pixels).astype(np.float32))
    n_frames = 21  # not a multiple of the frames estimated together
    luma = np.empty((n_frames, n_pixels), np.float32)
    for t in range(n_frames):
        gain = rng.uniform(0.5, 1.5)
        # A share of the pixels far off (objects), its size from none to nearly all, and
        # ties: values rounded to a coarse step.
        off = rng.random(n_pixels) < t / n_frames
        noise = rng.normal(0.0, 0.05 * (1 + t % 3), n_pixels)
        ratio = np.where(off, rng.uniform(0.05, 5.0, n_pixels), gain * (1 + noise))
        luma[t] = np.round(reference.values * ratio, 1)
    expected = np.empty(n_frames)
    for t in range(n_frames):
        r = luma[t, reference.pixels] / reference.values
        first = float(np.median(r))
        near = r[np.abs(r - first) < reference.TOLERANCE * abs(first)]
        expected[t] = float(np.median(near)) if near.size > 16 else first
    gains, lifts = reference.correction(luma)
    np.testing.assert_array_equal(gains, np.clip(expected, 0.1, 10.0))
    np.testing.assert_array_equal(lifts, 0.0)


def test_a_large_frame_gets_its_brightness_from_a_sparser_grid_and_the_same_gains():
    # Frames up to 320x240 keep every 4th pixel of every 4th row; larger ones a sparser
    # grid of about GAIN_PIXELS.  At 640x360 (every 8th) the gains of an exposure ramp
    # with a large moving object are those of the dense grid, to 0.5%.
    assert gain_stride((120, 160)) == gain_stride((240, 320)) == 4
    assert gain_stride((360, 640)) == 8 and gain_stride((1080, 1920)) > 16
    rng = np.random.default_rng(8)
    background = rng.integers(30, 220, (360, 640, 3)).astype(np.float32)
    gains = np.linspace(0.7, 1.3, 12)
    frames = background[None] * gains[:, None, None, None]
    for t in range(len(frames)):
        frames[t, 100:260, 40 * t : 40 * t + 200] = rng.integers(0, 255, 3)  # an object
    frames = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
    intensity = IntensityScale.for_data(frames.dtype, frames)
    stride = gain_stride(frames.shape[1:3])
    sparse = BrightnessReference(luminance(background[None], intensity)[0])
    dense = BrightnessReference(luminance(background[None], intensity, 4)[0])
    got, _ = sparse.correction_of_frames(frames, intensity)
    want, _ = dense.correction_of_frames(frames, intensity, 4)
    assert luminance(frames, intensity).shape[1:] == (360 // stride, 640 // stride)
    np.testing.assert_allclose(got, want, rtol=0.005)
    np.testing.assert_allclose(got, gains, rtol=0.01)


def test_a_scene_mostly_of_one_value_still_gets_its_brightness_fitted():
    # Three quarters white sky (one value, many quantiles): bands between are empty.
    rng = np.random.default_rng(3)
    background = np.full((64, 96, 3), 200, np.uint8)
    background[48:] = rng.integers(20, 180, (16, 96, 1), dtype=np.uint8)
    gains = np.array([1.0, 0.7, 0.85])
    frames = np.clip(np.rint(background[None] * gains[:, None, None, None]), 0, 255)
    frames = frames.astype(np.uint8)
    intensity = IntensityScale.for_data(frames.dtype, frames)
    reference = BrightnessReference(luminance(background[None], intensity)[0])
    for got, lifts in (
        reference.correction(luminance(frames, intensity)),
        reference.correction_of_frames(frames, intensity),
    ):
        np.testing.assert_allclose(got, gains, atol=0.02)
        np.testing.assert_allclose(lifts, 0.0, atol=3.0)
