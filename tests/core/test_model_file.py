"""load_model refuses every file that is not a valid model with one ValueError."""

import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from napari_gmm_bg import load_model
from napari_gmm_bg.core.gmm import BackgroundModel, FitParameters
from napari_gmm_bg.core.intensity import IntensityScale

EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _model(height=6, width=8, k=3, grey=False, seed=0) -> BackgroundModel:
    rng = np.random.default_rng(seed)
    c = 1 if grey else 3
    weights = rng.random((height, width, k)).astype(np.float32) + 0.1
    weights = -np.sort(-weights, axis=-1)
    weights /= weights.sum(axis=-1, keepdims=True)
    return BackgroundModel(
        weights=weights.astype(np.float32),
        means=(rng.random((height, width, k, c)) * 255).astype(np.float32),
        variances=(rng.random((height, width, k, c)) * 50 + 1).astype(np.float32),
        dtype=np.dtype(np.uint8),
        grey=grey,
        intensity=IntensityScale(0.0, 1.0),
        params=FitParameters(n_components=k),
        learning_indices=np.arange(10, dtype=np.int64),
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The members of a valid model file, as a dict to tamper with."""
    path = tmp_path_factory.mktemp("model") / "m.npz"
    _model().save(path)
    with np.load(path, allow_pickle=False) as z:
        return {name: z[name] for name in z.files}


def _write(path, members: dict) -> None:
    np.savez(path, **members)


def _assert_valid_or_value_error(path) -> None:
    """Loading gives a ValueError, or a model that is valid in every way checked."""
    try:
        model = load_model(path)
    except ValueError:
        return
    w, m, v = model.weights, model.means, model.variances
    assert w.ndim == 3 and m.shape == v.shape == (*w.shape, m.shape[-1])
    assert np.isfinite(w).all() and np.isfinite(m).all() and np.isfinite(v).all()
    assert (v > 0).all() and (w >= 0).all() and (w <= 1).all()
    np.testing.assert_allclose(w.sum(-1), 1, atol=1e-3)
    assert model.intensity.scale > 0
    model.params.validate()
    frame = np.zeros((1, *w.shape[:2], *(() if model.grey else (3,))), model.dtype)
    assert model.foreground(frame).shape == frame.shape[:3]


def test_a_saved_model_loads(tmp_path, saved):
    _write(tmp_path / "m.npz", saved)
    model = load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(model.weights, saved["weights"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a, meta: a["variances"].__setitem__((0, 0, 0, 0), 0), "variances"),
        (lambda a, meta: a["variances"].__setitem__((0, 0, 0, 0), -1), "variances"),
        (lambda a, meta: a["means"].__setitem__((1, 1, 0, 2), np.nan), "means"),
        (lambda a, meta: a["weights"].__setitem__((1, 1, 0), np.nan), "weights"),
        (lambda a, meta: a["weights"].__setitem__((1, 1, 0), 5), "weights"),
        (lambda a, meta: a.__setitem__("weights", a["weights"] * 0.5), "add up to 1"),
        (lambda a, meta: a.__setitem__("weights", a["weights"][..., ::-1].copy()), "sorted"),
        (lambda a, meta: a.__setitem__("weights", a["weights"][:, :, 0]), "weights"),
        (lambda a, meta: a.__setitem__("means", a["means"][:3]), "means"),
        (lambda a, meta: a.__setitem__("means", a["means"].astype(np.int64)), "means"),
        (lambda a, meta: a.__setitem__("learning_indices", np.array([-1])), "learning"),
        (lambda a, meta: a.pop("variances"), "variances"),
        (lambda a, meta: meta.__setitem__("intensity", [0, 0]), "intensity"),
        (lambda a, meta: meta.__setitem__("intensity", [0, float("inf")]), "intensity"),
        (lambda a, meta: meta.__setitem__("intensity", "x"), "intensity"),
        (lambda a, meta: meta["params"].__setitem__("background_ratio", 5), "background_ratio"),
        (lambda a, meta: meta["params"].__setitem__("n_components", "3"), "n_components"),
        (lambda a, meta: meta["params"].__setitem__("cleanup", [7]), "cleanup"),
        (lambda a, meta: meta["params"].pop("shadows"), "settings"),
        (lambda a, meta: meta["params"].__setitem__("shadows", "sometimes"), "shadows"),
        (lambda a, meta: meta["params"].__setitem__("frame_range", [5]), "frame_range"),
        (lambda a, meta: meta.pop("grey"), "grey"),
        (lambda a, meta: meta.__setitem__("grey", "yes"), "grey"),
        (lambda a, meta: meta.__setitem__("dtype", "|O"), "dtype"),
        (lambda a, meta: meta.__setitem__("version", 99), "version"),
        (lambda a, meta: meta.__setitem__("version", 1), "version"),  # log-likelihood era
        (lambda a, meta: a["flags"].__setitem__((0, 0), 0), "flags"),
        (lambda a, meta: a["flags"].__setitem__((0, 0, 1), 7), "flags"),
        (lambda a, meta: a.__setitem__("flags", a["flags"].astype(np.int64)), "flags"),
        (lambda a, meta: a.__setitem__("consensus", a["consensus"][:2]), "consensus"),
        (lambda a, meta: a["consensus"].__setitem__((0, 0), 200), "consensus"),
        (lambda a, meta: meta["params"].__setitem__("max_variance", -1), "max_variance"),
        (lambda a, meta: meta["params"].__setitem__("consensus_radius", 1.5), "consensus"),
        (lambda a, meta: meta.clear(), "format"),
    ],
)
def test_invalid_contents_are_refused(tmp_path, saved, change, message):
    arrays = {k: v.copy() for k, v in saved.items()}
    meta = json.loads(str(arrays["meta"]))
    change(arrays, meta)
    arrays["meta"] = np.array(json.dumps(meta))
    _write(tmp_path / "m.npz", arrays)
    with pytest.raises(ValueError, match=message):
        load_model(tmp_path / "m.npz")


@pytest.mark.parametrize("meta", ["[1, 2]", '"text"', "null", "3", "{", "{}"])
def test_metadata_that_is_not_an_object_is_refused(tmp_path, saved, meta):
    _write(tmp_path / "m.npz", {**saved, "meta": np.array(meta)})
    with pytest.raises(ValueError, match="not a saved"):
        load_model(tmp_path / "m.npz")


def test_metadata_of_another_type_is_refused(tmp_path, saved):
    _write(tmp_path / "m.npz", {**saved, "meta": np.zeros(3)})
    with pytest.raises(ValueError, match="metadata"):
        load_model(tmp_path / "m.npz")


_ANY_DTYPE = st.sampled_from(
    ["<f4", "<f8", ">f4", "<f2", "<i8", "<u2", "|u1", "|b1", "<c8", "<U3", "<M8[s]"]
)


@EXAMPLES
@given(
    name=st.sampled_from(
        ["weights", "means", "variances", "learning_indices", "flags", "consensus"]
    ),
    array=_ANY_DTYPE.flatmap(
        lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=5, max_side=9))
    ),
)
def test_any_array_in_place_of_a_member(tmp_path, saved, name, array):
    _write(tmp_path / "m.npz", {**saved, name: array})
    _assert_valid_or_value_error(tmp_path / "m.npz")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@EXAMPLES
@given(data=st.data())
def test_any_json_value_in_place_of_a_setting(tmp_path, saved, data):
    meta = json.loads(str(saved["meta"]))
    where = data.draw(st.sampled_from([meta, meta["params"], meta["params"]["cleanup"]]))
    key = data.draw(st.sampled_from(sorted(where)) | st.text(max_size=5))
    if data.draw(st.booleans()):
        where[key] = data.draw(_JSON)
    else:
        where.pop(key, None)
    _write(tmp_path / "m.npz", {**saved, "meta": np.array(json.dumps(meta))})
    _assert_valid_or_value_error(tmp_path / "m.npz")


@EXAMPLES
@given(
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=4),
    cut=st.none() | st.integers(0, 10**6),
)
def test_damaged_bytes(tmp_path, saved, flips, cut):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **saved)
    data = bytearray(buffer.getvalue())
    for position, xor in flips:
        data[position % len(data)] ^= xor
    if cut is not None:
        data = data[: cut % len(data)]
    (tmp_path / "m.npz").write_bytes(bytes(data))
    _assert_valid_or_value_error(tmp_path / "m.npz")


def _with_header(array: np.ndarray, shape: tuple) -> bytes:
    """A .npy member whose header declares ``shape`` but holds ``array``'s bytes."""
    buffer = io.BytesIO()
    header = {"descr": array.dtype.str, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + array.tobytes()


@pytest.mark.parametrize(
    ("member", "shape"),
    [
        ("weights", (20000, 20000, 3)),
        ("means", (6, 8, 3, 100000)),
        ("learning_indices", (10**9,)),
        ("meta", (10**8,)),
    ],
)
def test_a_header_declaring_a_huge_array_allocates_nothing(tmp_path, saved, member, shape):
    path = tmp_path / "m.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, array in saved.items():
            data = _with_header(array, shape) if name == member else None
            if data is None:
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, array, allow_pickle=False)
                data = buffer.getvalue()
            z.writestr(f"{name}.npy", data)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError):
            load_model(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20


def test_a_4k_grey_model_still_loads(tmp_path, saved):
    shape = (2160, 3840, 3)
    weights = np.empty(shape, np.float32)
    weights[...] = (0.5, 0.3, 0.2)
    arrays = {
        "weights": weights,
        "means": np.zeros((*shape, 1), np.float32),
        "variances": np.ones((*shape, 1), np.float32),
        "learning_indices": saved["learning_indices"],
        "flags": np.ones(shape, np.uint8),
        "consensus": np.zeros(shape[:2], np.uint8),
    }
    meta = json.loads(str(saved["meta"]))
    meta["grey"] = True
    np.savez(tmp_path / "4k.npz", meta=np.array(json.dumps(meta)), **arrays)
    del arrays, weights
    loaded = load_model(tmp_path / "4k.npz")
    assert loaded.frame_shape == (2160, 3840) and loaded.n_components == 3


@pytest.mark.parametrize("depth", [1000, 30000])
def test_deeply_nested_metadata_is_refused(tmp_path, saved, depth):
    _write(tmp_path / "m.npz", {**saved, "meta": np.array("[" * depth + "]" * depth)})
    with pytest.raises(ValueError, match="not a saved"):
        load_model(tmp_path / "m.npz")
