"""The methods, by name: this package's and those other packages register.

Adding a method is one module that defines its settings and a :class:`~.interface.Method`
named ``METHOD``, plus one line in :data:`BUILTIN` below.  Another package adds one
through the entry point group ``napari_gmm_bg.methods``, naming its ``Method``::

    [project.entry-points."napari_gmm_bg.methods"]
    vibe = "my_package.vibe:METHOD"
"""

import importlib
import warnings
from importlib.metadata import entry_points

from .interface import Method

#: This package's methods: ``module:attribute`` of each ``Method``, in display order.
BUILTIN = (
    "napari_gmm_bg.core.gmm:METHOD",
    "napari_gmm_bg.core.online:METHOD",
    "napari_gmm_bg.core.mog2:METHOD",
    "napari_gmm_bg.core.knn:METHOD",
    "napari_gmm_bg.core.baseline:METHOD",
)
ENTRY_POINT_GROUP = "napari_gmm_bg.methods"

_methods: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Make a method available by its name (to the CLI, the widgets, ``evaluate``).

    Parameters
    ----------
    method : Method
        The method.

    Returns
    -------
    Method
        The same method.

    Raises
    ------
    ValueError
        If another method already has that name.
    """
    if not isinstance(method, Method):
        raise ValueError(f"expected a napari_gmm_bg Method, got {type(method).__name__}")
    known = _loaded()
    if method.name in known and known[method.name] is not method:
        raise ValueError(f"a method named {method.name!r} is already registered")
    known[method.name] = method
    return method


def _load(target: str) -> Method:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _loaded() -> dict[str, Method]:
    if not _methods:
        found: dict[str, Method] = {}  # published whole: a failed import leaves none
        for target in BUILTIN:
            method = _load(target)
            found[method.name] = method
        for point in entry_points(group=ENTRY_POINT_GROUP):
            try:
                method = point.load()
            except Exception as exc:  # another package's bug must not break ours
                warnings.warn(f"method {point.name!r} failed to load: {exc}", stacklevel=2)
                continue
            if isinstance(method, Method) and method.name not in found:
                found[method.name] = method
            else:
                warnings.warn(f"entry point {point.name!r} is not a new Method", stacklevel=2)
        _methods.update(found)
    return _methods


def get_method(name: str) -> Method:
    """Return the method of that name.

    Parameters
    ----------
    name : str
        ``gmm``, ``online``, ``mog2``, ``knn``, ``baseline`` or a registered name.

    Returns
    -------
    Method
        The method.

    Raises
    ------
    ValueError
        If there is none of that name.
    """
    known = _loaded()
    if name not in known:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(known)}")
    return known[name]


def method_names() -> list[str]:
    """Return the names of every method, this package's first."""
    return list(_loaded())


def comparison_methods() -> list[Method]:
    """Return the methods the widgets offer to compare with the GMM."""
    return [m for m in _loaded().values() if m.comparison]
