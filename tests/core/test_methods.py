"""The method interface: the registry, entry points, settings and early refusal."""

from dataclasses import dataclass

import numpy as np
import pytest

from napari_gmm_bg import Method, MethodResult, get_method, make_sample, method_names
from napari_gmm_bg.core import registry
from napari_gmm_bg.core.interface import setting, settings_fields, settings_with


@dataclass(frozen=True)
class BrightSettings:
    level: float = setting(128.0, label="level", help="brighter than this is foreground")

    def validate(self):
        if not 0 <= self.level <= 255:
            raise ValueError(f"level must be in [0, 255], got {self.level}")


def _bright_steps(video, settings):
    settings.validate()
    video = np.asarray(video)
    yield 0, 1
    score = video.reshape(*video.shape[:3], -1).mean(axis=-1).astype(np.float32)
    yield 1, 1
    labels = (score > settings.level).astype(np.uint8)
    return MethodResult(
        "bright", settings, lambda: labels, lambda: score, threshold=settings.level
    )


BRIGHT = Method(
    name="bright",
    title="bright",
    settings_type=BrightSettings,
    run_steps=_bright_steps,
    score_name="brightness",
    foreground_above=True,
)


class _EntryPoint:
    def __init__(self, name, value):
        self.name, self._value = name, value

    def load(self):
        if isinstance(self._value, Exception):
            raise self._value
        return self._value


@pytest.fixture
def plugin_methods(monkeypatch):
    """Another package's methods, as its entry points would give them."""
    points = [
        _EntryPoint("bright", BRIGHT),
        _EntryPoint("broken", ImportError("no module named vibe")),
        _EntryPoint("not-a-method", object()),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: points)
    monkeypatch.setattr(registry, "_methods", {})
    yield
    registry._methods.clear()


def test_builtin_methods_in_order():
    assert method_names()[:5] == ["gmm", "online", "mog2", "knn", "baseline"]
    assert [m.name for m in registry.comparison_methods()][:3] == ["mog2", "knn", "baseline"]
    with pytest.raises(ValueError, match="unknown method 'vibe'"):
        get_method("vibe")


def test_a_method_from_another_package(plugin_methods, cdnet_folder, capsys):
    with pytest.warns(UserWarning) as caught:
        names = method_names()
    assert names[-1] == "bright" and "broken" not in names and "not-a-method" not in names
    assert {"broken", "not-a-method"} <= {w.message.args[0].split("'")[1] for w in caught}
    assert get_method("bright") is BRIGHT
    assert BRIGHT in registry.comparison_methods()

    import json

    from napari_gmm_bg.cli import main

    assert main(["evaluate", str(cdnet_folder), "--methods", "bright,baseline", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["methods"]
    assert list(report) == ["bright", "baseline"] and 0 <= report["bright"]["f_measure"] <= 1


def test_register_method_refuses_a_second_of_the_same_name():
    with pytest.raises(ValueError, match="already registered"):
        registry.register_method(BRIGHT.__class__(**{**BRIGHT.__dict__, "name": "knn"}))
    with pytest.raises(ValueError, match="Method"):
        registry.register_method("knn")


def test_settings_with_takes_the_names_it_knows_and_validates():
    settings = settings_with(BrightSettings, {"level": 100.0, "threshold": -20.0})
    assert settings == BrightSettings(level=100.0)
    with pytest.raises(ValueError, match="level"):
        settings_with(BrightSettings, {"level": 300.0})
    assert [f.name for f in settings_fields(BrightSettings)] == ["level"]


@pytest.mark.parametrize("name", ["gmm", "online", "mog2", "knn", "baseline"])
def test_every_method_refuses_bad_input_before_its_first_step(name):
    method = get_method(name)
    steps = method.run_steps(np.zeros((8, 8), np.uint8), method.defaults())  # one 2-D image
    with pytest.raises(ValueError):
        next(steps)


@pytest.mark.parametrize("name", ["gmm", "online", "mog2", "knn", "baseline"])
def test_every_method_finds_the_moving_objects(name):
    sample = make_sample()  # objects large enough for the default 7x7 median filter
    result = get_method(name).run(sample.video)
    labels = np.asarray(result.labels())
    assert labels.shape == sample.ground_truth.shape and labels.dtype == np.uint8
    found = labels == 1
    truth = sample.ground_truth == 1
    assert (found & truth).sum() / truth.sum() > 0.7  # recall
    assert (found & truth).sum() / found.sum() > 0.5  # precision
    assert result.background is not None and result.background.shape == (120, 160, 3)
    if result.has_score:
        assert np.asarray(result.score()).shape == labels.shape


def test_online_relabel_refuses_a_region_of_another_size():
    sample = make_sample(n_frames=20, shape=(32, 48))
    result = get_method("online").run(sample.video)
    with pytest.raises(ValueError, match="region of shape"):
        result.relabel(region=np.ones((10, 10), bool))
    inside = np.zeros((32, 48), bool)
    inside[:, :24] = True
    assert not result.relabel(region=inside)[:, :, 24:].any()
