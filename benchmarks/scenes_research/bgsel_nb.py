"""Numba version of the background choice (one pass over the learning samples a pixel),
for the cost and as the reference for a kernel.  Same rule as bgsel.rest_mask."""
import math
import numpy as np
from numba import njit, prange


@njit(parallel=True, fastmath=True, cache=True)
def choose_background(x, w, mu, var, nb, w_min, l_rest, frac, vmax, bg, rest_sample, r_max=1000, same=False):
    """x (N, P, C) float32 learning samples (brightness-corrected, time order);
    w (P, K), mu/var (P, K, C); nb (P,) weight-rule count.
    Out: bg (P, K) bool, rest_sample (N, P) bool."""
    N, P, C = x.shape
    K = w.shape[1]
    for p in prange(P):
        lc = np.empty(K, np.float32)
        for k in range(K):
            s = 0.0
            for c in range(C):
                s += math.log(var[p, k, c])
            lc[k] = math.log(max(w[p, k], 1e-12)) - 0.5 * s
        z = np.empty(N, np.int64)
        resp = np.empty((N, K), np.float32)
        lp = np.empty(K, np.float32)
        for i in range(N):
            best = -1e30
            bk = 0
            for k in range(K):
                d = 0.0
                for c in range(C):
                    e = x[i, p, c] - mu[p, k, c]
                    d += e * e / var[p, k, c]
                lp[k] = lc[k] - 0.5 * d
                if lp[k] > best:
                    best = lp[k]
                    bk = k
            z[i] = bk
            tot = 0.0
            for k in range(K):
                lp[k] = math.exp(lp[k] - best)
                tot += lp[k]
            for k in range(K):
                resp[i, k] = lp[k] / tot
        # k0: the component of the earliest pair of consecutive samples, weight >= w_min
        k0 = -1
        for i in range(N - 1):
            if z[i] == z[i + 1] and w[p, z[i]] >= w_min:
                k0 = z[i]
                break
        if k0 < 0:
            k0 = 0
        # rests: runs of >= l_rest consecutive samples not in k0
        mass = np.zeros(K, np.float32)
        rmass = np.zeros(K, np.float32)
        nruns = np.zeros(K, np.int64)
        seen = np.zeros(K, np.bool_)
        i = 0
        while i < N:
            if z[i] == k0:
                for k in range(K):
                    mass[k] += resp[i, k]
                i += 1
                continue
            j = i
            while j < N and z[j] != k0 and (not same or z[j] == z[i]):
                j += 1
            is_rest = j - i >= l_rest
            for k in range(K):
                seen[k] = False
            for m in range(i, j):
                if not seen[z[m]]:
                    seen[z[m]] = True
                    nruns[z[m]] += 1
            for m in range(i, j):
                for k in range(K):
                    mass[k] += resp[m, k]
                    if is_rest:
                        rmass[k] += resp[m, k]
            i = j
        any_bg = False
        for k in range(K):
            resting = k != k0 and rmass[k] >= frac * max(mass[k], 1e-6) and nruns[k] <= r_max
            v = 0.0
            for c in range(C):
                v += var[p, k, c]
            ok = (k < nb[p] or k == k0) and not resting and v / C <= vmax
            bg[p, k] = ok
            any_bg = any_bg or ok
            for m in range(N):
                if z[m] == k:
                    rest_sample[m, p] = resting
        if not any_bg:
            bg[p, k0] = True  # (the prototype caps its variance at vmax)
