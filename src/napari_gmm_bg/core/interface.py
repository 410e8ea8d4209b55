"""The one interface every background-subtraction method implements.

In the spirit of OpenCV's ``BackgroundSubtractor`` and BGSLibrary's ``IBGS``: a method
has *settings* (one frozen dataclass: the single source of its defaults and validation,
read by the API, the command line and the widgets alike) and, run on a clip, gives a
:class:`MethodResult`: labels (0 background, 1 foreground, 2 shadow) and, where the
method has one, its *score*, the per-pixel value its threshold compares.

A :class:`Method` ties a name to its settings type and its run; :mod:`.registry` lists
the methods.  Settings fields carry what a form needs in their metadata (see
:func:`setting`), so a widget or a command line can be generated from the dataclass.
"""

from collections.abc import Callable, Generator
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

#: Progress steps of a run: ``(done, total)`` work units, then the result.
Steps = Generator[tuple[int, int], None, "MethodResult"]


def setting(
    default: Any,
    *,
    label: str,
    help: str,
    minimum: float | None = None,
    maximum: float | None = None,
    step: float | None = None,
    choices: tuple | None = None,
) -> Any:
    """Declare a settings dataclass field with what a form needs to show it.

    Parameters
    ----------
    default : object
        The default value (the one place it is written).
    label : str
        A short label, in plain words.
    help : str
        A tooltip / ``--help`` line, in plain words.
    minimum, maximum, step : float, optional
        The range a number control offers, and its step (its decimals follow the step).
    choices : tuple, optional
        The values a choice offers.

    Returns
    -------
    dataclasses.Field
        For the dataclass body.
    """
    meta: dict[str, Any] = {"label": label, "help": help, "minimum": minimum}
    meta.update({"maximum": maximum, "step": step, "choices": choices})
    return field(default=default, metadata=meta)


def settings_fields(settings_type: type) -> list[Field]:
    """List the fields of a settings dataclass that a form shows (made by :func:`setting`).

    Parameters
    ----------
    settings_type : type
        A settings dataclass.

    Returns
    -------
    list of dataclasses.Field
        In declaration order.
    """
    return [f for f in fields(settings_type) if "label" in f.metadata]


def settings_with(settings_type: type, values: dict[str, Any]) -> Any:
    """Build settings from the defaults and the ``values`` that name one of its fields.

    Values for fields the type does not have are ignored, so one set of options (the
    command line's) can configure several methods; the result is validated.

    Parameters
    ----------
    settings_type : type
        A settings dataclass with a ``validate()`` method.
    values : dict
        Field values to override.

    Returns
    -------
    object
        The settings.

    Raises
    ------
    ValueError
        If the settings do not validate.
    """
    names = {f.name for f in fields(settings_type)}
    settings = settings_type(**{k: v for k, v in values.items() if k in names})
    settings.validate()
    return settings


def default_of(f: Field) -> Any:
    """Return a field's default value (from its default or default factory)."""
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    raise ValueError(f"setting {f.name} has no default")


@dataclass
class MethodResult:
    """What a method gives for a clip.

    Labels and score are computed on first use and kept (lazy methods return dask
    arrays, computed frame by frame as they are read).

    Attributes
    ----------
    method : str
        The method's registered name.
    settings : object
        The settings used.
    background : numpy.ndarray or None
        The background image (``(Y, X)`` or ``(Y, X, 3)``), where the method has one.
    threshold : float or None
        What the score is compared with; None for a method without a score.
    model : object or None
        The fitted model where there is one (the pixel inspector reads it).
    relabel : callable or None
        ``relabel(threshold=None, cleanup=None, shadows=None, region=None)``: the labels
        at other decision settings without running the method again (a live threshold);
        None for a method that cannot.
    """

    method: str
    settings: Any
    make_labels: Callable[[], Any] = field(repr=False)
    make_score: Callable[[], Any] | None = field(default=None, repr=False)
    background: Any = None
    threshold: float | None = None
    model: Any = None
    relabel: Callable[..., Any] | None = field(default=None, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    def labels(self) -> Any:
        """Return the ``(T, Y, X)`` uint8 labels: 0 background, 1 foreground, 2 shadow."""
        if "labels" not in self._cache:
            self._cache["labels"] = self.make_labels()
        return self._cache["labels"]

    def score(self) -> Any:
        """Return the ``(T, Y, X)`` float32 score the threshold compares, or None."""
        if self.make_score is None:
            return None
        if "score" not in self._cache:
            self._cache["score"] = self.make_score()
        return self._cache["score"]

    @property
    def has_score(self) -> bool:
        """Whether the method has a score."""
        return self.make_score is not None


@dataclass(frozen=True)
class Method:
    """A background-subtraction method, as the registry, widgets and CLI see it.

    Attributes
    ----------
    name : str
        Short name for the command line (``gmm``, ``mog2``, ...).
    title : str
        Name in plain words, used in layer names ("OpenCV MOG2").
    settings_type : type
        Its settings dataclass: defaults, validation, form metadata.
    run_steps : callable
        ``run_steps(video, settings) -> Steps``: checks the input before its first
        yield (so a refusal raises at once, before any thread), then yields
        ``(done, total)`` and returns a :class:`MethodResult`.
    score_name : str or None
        What the score is ("log-likelihood", "colour distance"); None without one.
    score_unit : str
        The score's unit, for labels and help ("nats").
    foreground_above : bool
        True when a score *above* the threshold is foreground (a distance); False when
        below is (a likelihood).
    comparison : bool
        Offered in the widgets' list of methods to compare with.
    """

    name: str
    title: str
    settings_type: type
    run_steps: Callable[[Any, Any], Steps]
    score_name: str | None = None
    score_unit: str = ""
    foreground_above: bool = False
    comparison: bool = True

    def defaults(self) -> Any:
        """Return the default settings."""
        return self.settings_type()

    def run(self, video: Any, settings: Any = None) -> MethodResult:
        """Run the method on a clip.

        Parameters
        ----------
        video : array-like
            ``(T, Y, X)`` or ``(T, Y, X, 3)``, numpy or dask.
        settings : object, optional
            Its settings; the defaults when None.

        Returns
        -------
        MethodResult
            Labels, score and background.
        """
        from ._steps import finish

        return finish(self.run_steps(video, self.defaults() if settings is None else settings))
