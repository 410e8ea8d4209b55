import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import napari_gmm_bg
import napari_gmm_bg.core.online
from napari_gmm_bg import fit_background


@pytest.fixture(scope="module")
def clip():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, size=(10, 16, 20, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda c: c[0, ..., 0], "single 2-D image"),
        (lambda c: c[:1], "at least 2 frames"),
        (lambda c: c[:2], "only 2 learning frames for 3 components"),
        (
            lambda c: np.concatenate([c, np.full(c.shape[:3] + (1,), 128, np.uint8)], -1),
            "transparent or translucent",
        ),
        (lambda c: np.where(c == 7, np.nan, c / 255.0), "NaN"),
        (lambda c: np.where(c == 7, np.inf, c / 255.0), "infinite"),
        (lambda c: c.astype(np.int32), "dtype int32"),
        (lambda c: c[..., :2], "2 channels"),
        (lambda c: c[None], "5 dimensions"),
        (lambda c: c > 100, "dtype bool"),
    ],
    ids=[
        "2d",
        "one-frame",
        "too-few-frames",
        "rgba-transparent",
        "nan",
        "inf",
        "int32",
        "two-channels",
        "5d",
        "bool",
    ],
)
def test_bad_video_raises_clear_value_error(clip, make, message):
    with pytest.raises(ValueError, match=message):
        fit_background(make(clip))


def test_nan_in_lazy_video_is_found_when_read(clip):
    bad = (clip / 255.0).astype(np.float32)
    bad[3, 2, 2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_background(da.from_array(bad, chunks=(2, -1, -1, -1)))


def test_opaque_rgba_is_accepted_and_alpha_dropped(clip):
    rgba = np.concatenate([clip, np.full(clip.shape[:3] + (1,), 255, np.uint8)], -1)
    model = fit_background(rgba)
    reference = fit_background(clip)
    np.testing.assert_array_equal(model.means, reference.means)
    assert model.background_image().shape == (16, 20, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_components": 0}, "n_components"),
        ({"learning_frames": 1}, "learning_frames"),
        ({"reg_covar": 0.0}, "reg_covar"),
        ({"background_ratio": 1.5}, "background_ratio"),
        ({"frame_range": (5, 50)}, "not inside the clip"),
        ({"threshold": float("nan")}, "threshold"),
    ],
)
def test_bad_settings(clip, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit_background(clip, **kwargs)


def test_scoring_frames_of_another_shape(clip):
    model = fit_background(clip)
    with pytest.raises(ValueError, match="do not match"):
        model.log_likelihood(clip[:, :8])
    with pytest.raises(ValueError, match="do not match"):
        model.foreground(clip[..., 0])
    with pytest.raises(ValueError, match="region"):
        model.foreground(clip, region=np.ones((3, 3), bool))


# --- values float32 cannot hold, and dtypes a model was not fitted on ------------------
@pytest.mark.parametrize("value", [1e39, -1e39, 3e38])
def test_float_values_beyond_float32_are_refused(value):
    video = np.random.default_rng(0).random((6, 8, 10)) * 100
    video[3, 2, 2] = value
    with pytest.raises(ValueError, match="float32"):
        napari_gmm_bg.fit_background(video, learning_frames=6)
    model = napari_gmm_bg.fit_background(video[:3], learning_frames=3)
    with pytest.raises(ValueError, match="float32"):
        model.foreground(video)
    with pytest.raises(ValueError, match="float32"):
        napari_gmm_bg.core.online.OnlineModel().update(video)


@pytest.mark.parametrize("other", [np.uint16, np.float32, np.float64])
def test_a_model_refuses_frames_of_another_dtype(other):
    video = np.random.default_rng(0).integers(0, 255, (6, 8, 10), dtype=np.uint8)
    model = napari_gmm_bg.fit_background(video, learning_frames=6)
    with pytest.raises(ValueError, match="fitted on uint8"):
        model.foreground(video.astype(other))
    with pytest.raises(ValueError, match="fitted on uint8"):
        model.log_likelihood(video.astype(other))


_DTYPES = st.sampled_from(["uint8", "uint16", "float32", "float64", "int16", "bool", "int64"])
_SPECIAL = st.sampled_from([0.0, 1.0, 255.0, 65535.0, -1.0, 1e20, 1e39, np.nan, np.inf, -np.inf])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    video=_DTYPES.flatmap(
        lambda dtype: hnp.arrays(
            dtype,
            st.sampled_from([(3, 4, 5), (2, 4, 5, 3), (4, 1, 3), (2, 3, 4, 4), (1, 4, 5), (4, 5)]),
            elements=_SPECIAL if dtype.startswith("float") else None,
        )
    )
)
def test_any_array_fits_correctly_or_is_refused_with_a_value_error(video):
    try:
        model = napari_gmm_bg.fit_background(video, learning_frames=2, max_iter=2)
        scores = model.log_likelihood(video)
        mask = model.foreground(video, cleanup=napari_gmm_bg.MaskCleanup(median=0))
    except ValueError:
        return
    assert np.isfinite(model.weights).all() and np.isfinite(model.means).all()
    assert (model.variances > 0).all()
    assert scores.shape == mask.shape == video.shape[:3]
    assert not np.isnan(scores).any()
