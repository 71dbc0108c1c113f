"""Finite-size statistics of decoy-state parameter estimation: confidence bounds on expected counts.

A decoy-state estimator (Lim et al. 2014 and its descendants) needs, for each intensity ``k``, bounds
``n_k^- <= n_k^* <= n_k^+`` on the expected count ``n_k^*`` behind an observed count ``n_k``, each failing with
probability at most ``eps``. ``count_bounds(counts, eps, method)`` returns them for the counts of one basis (an
array over intensities) with one of ``FINITE_KEY_BOUNDS``:

``hoeffding_lim2014``
    C. C.-W. Lim, M. Curty, N. Walenta, F. Xu, H. Zbinden, Phys. Rev. A 89, 022307 (2014), after Eq. (2): the
    intensity label of each of the ``n = sum_k n_k`` detections is a random draw, so Hoeffding's inequality with
    ``n`` trials gives ``|n_k - n_k^*| <= delta(n, eps) = sqrt(n/2 ln(1/eps))``, one deviation for every
    intensity, however rare.

``hoeffding_per_intensity``
    The same sampling model with Hoeffding's sharper bound for each intensity's own count: W. Hoeffding, J. Am.
    Stat. Assoc. 58, 13 (1963), Theorem 1, Eq. (2.1), ``P(n_k / n >= q + t) <= exp(-n D(q + t || q))`` with ``D``
    the binary relative entropy (and the mirror image below). The bound ``q^+`` (``q^-``) on the label
    probability is the root of ``n D(n_k / n || q) = ln(1/eps)`` above (below) ``n_k / n``; its deviation
    scales as ``sqrt(n_k)`` for a rare intensity instead of ``sqrt(n)``. Lim's ``delta`` is its quadratic
    relaxation (Pinsker, ``D >= 2 t^2``), so it is never looser. (Hoeffding's ``sqrt(m/2 ln(1/eps))`` with the
    intensity's own count ``m = n_k`` in place of ``n`` is *not* a bound: its tail is about ``exp(-ln(1/eps) /
    (4 (1 - p)))`` for a label probability ``p``; tests/test_tail_bounds.py shows it failing.)

``chernoff``
    Multiplicative Chernoff bounds on a sum of independent Bernoulli trials (the pulses), which hold whatever
    the number of trials, in the form of J. S. Sidhu et al., npj Quantum Inf. 8, 18 (2022), Methods (the bounds
    of the SatQuMA estimator, which replace Lim's ``delta``), with ``L = ln(1/eps)``:

        n_k^+ = n_k + L + sqrt(2 n_k L + L^2),      n_k^- = n_k - L/2 - sqrt(2 n_k L + L^2 / 4).

    ``n_k^+`` inverts the lower tail ``P(n <= (1 - d) mu) <= exp(-d^2 mu / 2)`` exactly; inverting the upper tail
    ``P(n >= (1 + d) mu) <= exp(-d^2 mu / (2 + d))`` gives ``n_k + L/2 - sqrt(...)``, so the published ``n_k^-``
    is ``L`` lower than necessary (still valid; we keep the published form, which SatQuMA reproduces).

The phase-error estimate from the Z basis is the random-sampling (without replacement) deviation ``gamma`` of
Lim 2014, Eq. (5), which Sidhu et al. (2022) keep with the Chernoff decoy bounds (``sampling_deviation``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import betainc

from qkdjax.numerics import safe_sqrt

FINITE_KEY_BOUNDS = ("hoeffding_lim2014", "hoeffding_per_intensity", "chernoff")
NEWTON_STEPS = 12  # from the starts of _entropy_root: converged to float64's representation (tests/test_tail_bounds.py)
BISECTION_STEPS = 64  # integer bisection of a binomial quantile over [0, n <= 1.8e19]


def hoeffding_deviation(total, eps):
    """``delta(n, eps) = sqrt(n/2 ln(1/eps))``: Hoeffding's deviation for ``n`` trials (Lim 2014, below Eq. (2))."""
    return safe_sqrt(total / 2.0 * -jnp.log(eps))


def _log1p_excess(x):
    """``x - ln(1 + x) >= 0`` for ``x > -1``, without cancellation: its series below ``|x| = 1e-4``."""
    small = jnp.abs(x) < 1e-4
    series = x * x * (0.5 - x * (1.0 / 3.0 - x * (0.25 - x * 0.2)))
    direct = x - jnp.log1p(jnp.where(small, 0.0, x))
    return jnp.where(small, series, direct)


def relative_entropy(f, q):
    """Binary relative entropy ``D(f || q) = f ln(f/q) + (1-f) ln((1-f)/(1-q))`` in nats, ``q`` in (0, 1).

    Near ``f`` (``|q - f| < min(f, 1-f) / 2``, large blocks) as ``f phi(r/f) + (1-f) phi(-r/(1-f))`` with
    ``r = q - f`` and ``phi(x) = x - ln(1+x)``, whose first-order terms (which cancel) are gone; far from it in
    logarithms of ``q`` and ``1 - q`` themselves (the tails, where ``q - f`` would lose ``q``).
    """
    interior = (f > 0.0) & (f < 1.0)
    g = jnp.where(interior, f, 0.5)
    r = q - g
    near = jnp.abs(r) < 0.5 * jnp.minimum(g, 1.0 - g)
    mixed = g * _log1p_excess(r / g) + (1.0 - g) * _log1p_excess(-r / (1.0 - g))
    logs = g * (jnp.log(g) - jnp.log(q)) + (1.0 - g) * (jnp.log1p(-g) - jnp.log1p(-q))
    return jnp.where(interior, jnp.where(near, mixed, logs), jnp.where(f <= 0.0, -jnp.log1p(-q), -jnp.log(q)))


def _entropy_root(f, trials, log_inv_eps, upper):
    """``q`` on the chosen side of ``f`` with ``trials D(f || q) = ln(1/eps)`` (0 or 1 where none exists).

    Newton's method in ``u = ln q`` (below ``f``) or ``w = -ln(1 - q)`` (above), in which ``D`` is convex and
    monotone, so Newton from a start beyond the root converges monotonically and never leaves its side. Starts:
    the nearer of two points the root provably lies beyond, from ``D >= 2 (q - f)^2`` (Pinsker) and from
    ``D >= f ln(f/q) - f`` (``D >= (1-f) ln((1-f)/(1-q)) - (1-f)`` above). The iterations run without gradient;
    one more step in ``q`` carries it (implicit function theorem: ``dq = -dg / g'``).
    """
    n, target = trials, log_inv_eps / trials
    pinsker = jnp.sqrt(0.5 * target)
    if upper:
        lone = f >= 1.0  # every label is this one: q = 1
        g = jnp.where(lone, 0.0, f)
        start = jnp.minimum(-jnp.log1p(-g) + target / (1.0 - g) + 1.0, jnp.where(g + pinsker < 1.0, -jnp.log1p(-(g + pinsker)), jnp.inf))

        def step(_, w):
            q = -jnp.expm1(-w)
            return w - (relative_entropy(g, q) - target) * q / (q - g)

        q = -jnp.expm1(-jax.lax.fori_loop(0, NEWTON_STEPS, step, jax.lax.stop_gradient(start)))
    else:
        lone = f <= 0.0  # no label of this one: q = 0
        g = jnp.where(lone, 1.0, f)
        start = jnp.maximum(jnp.log(g) - target / g - 1.0, jnp.where(g > pinsker, jnp.log(g - pinsker), -jnp.inf))

        def step(_, u):
            q = jnp.exp(u)
            return u - (relative_entropy(g, q) - target) * (1.0 - q) / (q - g)

        q = jnp.exp(jax.lax.fori_loop(0, NEWTON_STEPS, step, jax.lax.stop_gradient(start)))
    q = jax.lax.stop_gradient(q)
    interior = (q > 0.0) & (q < 1.0) & (q != g)
    safe = jnp.where(interior, q, 0.5)
    slope = jnp.where(interior, n * (safe - g) / (safe * (1.0 - safe)), 1.0)  # d(n D)/dq
    excess = n * relative_entropy(g, safe) - log_inv_eps
    q = jnp.where(interior, q - (excess - jax.lax.stop_gradient(excess)) / slope, q)
    return jnp.where(lone, 1.0 if upper else 0.0, q)


def _per_intensity_hoeffding(counts, eps):
    total = jnp.sum(counts)
    trials = jnp.maximum(total, 1.0)
    f = jnp.clip(counts / trials, 0.0, 1.0)
    log_inv_eps = -jnp.log(eps)
    lower = _entropy_root(f, trials, log_inv_eps, False)
    upper = _entropy_root(f, trials, log_inv_eps, True)
    return trials * lower, trials * upper


def _chernoff(counts, eps):
    log_inv_eps = -jnp.log(eps)
    lower = counts - 0.5 * log_inv_eps - jnp.sqrt(2.0 * counts * log_inv_eps + 0.25 * log_inv_eps**2)
    upper = counts + log_inv_eps + jnp.sqrt(2.0 * counts * log_inv_eps + log_inv_eps**2)
    return lower, upper


def count_bounds(counts, eps, method: str):
    """Lower and upper bounds on the expected counts behind ``counts`` (one basis, an array over intensities),
    each holding except with probability ``eps``; ``method`` is one of ``FINITE_KEY_BOUNDS``."""
    if method == "hoeffding_lim2014":
        delta = hoeffding_deviation(jnp.sum(counts), eps)
        return counts - delta, counts + delta
    if method == "hoeffding_per_intensity":
        return _per_intensity_hoeffding(counts, eps)
    if method == "chernoff":
        return _chernoff(counts, eps)
    raise ValueError(f"unknown finite-key bound {method!r}; choose one of {', '.join(FINITE_KEY_BOUNDS)}")


def sampling_deviation(eps, error_rate, count_z, count_x):
    """``gamma(a, b, c, d)``: deviation of the X phase-error rate from the Z bit-error rate of single photons.

    Random sampling without replacement (Lim 2014, Eq. (5)):
    ``gamma = sqrt((c+d)(1-b)b / (c d ln 2) * log2((c+d) / (c d (1-b) b a^2)))``.
    """
    errors = error_rate > 0  # gamma -> 0 as b -> 0
    b = jnp.where(errors, jnp.minimum(error_rate, 0.5), 0.25)
    c, d = jnp.maximum(count_z, 1.0), jnp.maximum(count_x, 1.0)
    variance = (c + d) * (1.0 - b) * b / (c * d * jnp.log(2.0))
    # the log of the ratio as a sum of logs: its denominator underflows for b ~ 1e-300
    log_ratio = jnp.log2(c + d) - jnp.log2(c) - jnp.log2(d) - jnp.log2(1.0 - b) - jnp.log2(b) - 2.0 * jnp.log2(eps)
    return jnp.where(errors, safe_sqrt(variance * log_ratio), 0.0)


def binomial_quantile(probability, trials, success_prob):
    """``F^-1(probability; n, p)``: the smallest ``k`` with ``P(Binomial(n, p) <= k) >= probability``.

    Bisection on the integers with the regularised incomplete beta function, ``P(X <= k) = I_{1-p}(n - k, k + 1)``
    (Abramowitz & Stegun 26.5.24), exact to its ~1e-8 relative precision at ``n`` up to 1e8 (tested against
    SciPy); ``n`` is rounded down to an integer. No gradient (the quantile is a step function).
    """
    n = jnp.floor(jax.lax.stop_gradient(trials))
    p = jax.lax.stop_gradient(success_prob)

    def cdf(k):
        return jnp.where(k >= n, 1.0, betainc(jnp.maximum(n - k, 1e-300), k + 1.0, 1.0 - p))

    def step(_, bracket):  # invariant: cdf(low) < probability <= cdf(high)
        low, high = bracket
        middle = jnp.floor(0.5 * (low + high))
        enough = cdf(middle) >= probability
        return jnp.where(enough, low, middle), jnp.where(enough, middle, high)

    return jax.lax.fori_loop(0, BISECTION_STEPS, step, (jnp.asarray(-1.0), n))[1]
