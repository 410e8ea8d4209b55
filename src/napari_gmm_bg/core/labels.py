"""How a score becomes a label: the default thresholds and the shadow rule.

Shared by every GMM (offline and on-line): a pixel whose score (log-likelihood under
its background components) falls below the threshold is foreground (1); with shadow
detection, a foreground pixel that is its background darkened by a factor in
``[shadow_tau, 1)`` with little colour change is a shadow (2).
"""

import math

SHADOW_MODES = ("off", "show", "background")
SHADOW_DISTORTION = 0.1  # a shadow's colour may stray 10% from the darkened background

#: Default log-likelihood threshold per channel count.  A pixel whose log-likelihood
#: under its background components falls below it is foreground.  The RGB value, with
#: ``reg_covar`` 100 and a 7x7 median filter, was chosen by ``benchmarks/quality_cdnet.py
#: --tune`` on CDnet highway frames 470-735 (frames 736-1000 held out).  It also caps the
#: spread of what can be background: a component so broad (a catch-all of passing
#: objects) that its peak density lies below the threshold explains no pixel.  The grey
#: value keeps the same Mahalanobis budget per channel.
DEFAULT_THRESHOLDS = {1: -4.5, 3: -13.0}


def check_shadows(shadows: str) -> None:
    """Raise ValueError unless ``shadows`` is one of :data:`SHADOW_MODES`.

    Parameters
    ----------
    shadows : str
        The shadow mode asked for.
    """
    if shadows not in SHADOW_MODES:
        raise ValueError(f"shadows must be one of {', '.join(SHADOW_MODES)}, got {shadows!r}")


def default_threshold(n_channels: int) -> float:
    """Return the default log-likelihood threshold for grey (1) or RGB (3) video.

    Parameters
    ----------
    n_channels : int
        1 or 3.

    Returns
    -------
    float
        The threshold, in nats.
    """
    return DEFAULT_THRESHOLDS[n_channels]


def check_threshold(threshold: float | None) -> None:
    """Raise ValueError unless ``threshold`` is None (the default) or a finite number.

    Parameters
    ----------
    threshold : float or None
        The threshold asked for.
    """
    if threshold is not None and not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold}")


def check_shadow_tau(shadow_tau: float) -> None:
    """Raise ValueError unless ``shadow_tau`` is in (0, 1).

    Parameters
    ----------
    shadow_tau : float
        The strongest darkening a shadow may cause.
    """
    if not 0 < shadow_tau < 1:
        raise ValueError(f"shadow_tau must be in (0, 1), got {shadow_tau}")
