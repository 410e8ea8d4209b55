"""How a score becomes a label: the default thresholds and the shadow rule.

Shared by every GMM (offline and on-line): a pixel whose score (its distance to the
nearest background component, in standard deviations) is above the threshold is
foreground (1); with shadow detection, a foreground pixel that is its background
darkened by a factor in ``[shadow_tau, 1)`` with little colour change is a shadow (2).
"""

import math

SHADOW_MODES = ("off", "show", "background")
SHADOW_DISTORTION = 0.1  # a shadow's colour may stray 10% from the darkened background

#: Default distance threshold of the offline GMM (standard deviations, see
#: ``BackgroundModel.distance``): a pixel farther than this from every background colour
#: is foreground.  The variances include ``reg_covar`` (100), so on a static pixel it
#: means about 10 grey levels per channel; on a swaying leaf, one standard deviation of
#: the leaf's own spread.  Chosen on the mean F of the seven development scenes of
#: ``benchmarks/quality_scenes.py`` (0.7-1.3 was scanned), checked leave-one-scene-out.
DEFAULT_DISTANCE = 1.0


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
    """Return the offline GMM's default threshold (the same for grey and RGB video).

    Parameters
    ----------
    n_channels : int
        1 or 3 (the distance is a mean over the channels: one value fits both).

    Returns
    -------
    float
        The threshold, a distance in standard deviations (:data:`DEFAULT_DISTANCE`).
    """
    if n_channels not in (1, 3):
        raise ValueError(f"a video has 1 or 3 channels, not {n_channels}")
    return DEFAULT_DISTANCE


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
