"""Event-level simulation of decoy-state BB84: every pulse (or every click) drawn one by one, for cross-validation.

The analytic model (``qkdjax.physics.detector.click_and_error_probs``) gives per-pulse probabilities; this module
plays the experiment instead and counts what Bob records, so the two can be checked against each other and a
student can follow one pulse through the link. Per pulse:

1. Alice picks intensity k with probability ``intensity_probs(source)[k]`` and a basis, X with probability
   ``protocol.p_key_basis``, else Z; Bob picks his basis the same way. Only matched bases are kept (sifting).
2. The phase-randomised weak coherent pulse holds n ~ Poisson(mu_k) photons (X. Ma, B. Qi, Y. Zhao, H.-K. Lo,
   Phys. Rev. A 72, 012326 (2005), Sec. II).
3. Each photon survives the channel and Bob's efficiency independently with ``eta = channel_transmittance *
   detector.efficiency``; a threshold detector only sees whether one did: P(signal | n) = 1 - (1 - eta)^n.
4. The detector model of C. C.-W. Lim, M. Curty, N. Walenta, F. Xu, H. Zbinden, Phys. Rev. A 89, 022307 (2014),
   Sec. IV, played event by event: the signal goes to the wrong detector with probability
   ``detector.misalignment``; each of Bob's two detectors fires a dark count independently with probability
   ``detector.dark_count_prob`` per gate; a double click is assigned a random bit (squashing, N. Lütkenhaus,
   Phys. Rev. A 59, 3301 (1999)); afterpulses, booked to the pulse's intensity as in Lim et al., are noise clicks
   of each detector with probability ``p_ap D_k / 2`` on top of its dark counts
   (``qkdjax.physics.detector.noise_click_prob``). Dead time is not simulated (``detector.dead_time_ns`` must be 0).

The analytic model's click and error probabilities are exactly those of this chain of choices, summed over the
combinations of the signal and the two noise clicks (``qkdjax.physics.detector``); a gate gives at most one
detection event.

Two samplers of this one model:

- ``mode="pulses"`` draws every pulse: one 53-bit uniform per pulse from which the whole chain of choices above
  is decoded arithmetically (``_decide``). ``n_pulses`` are scanned in chunks of ``chunk_size`` with a
  ``fori_loop``, so memory is fixed by ``chunk_size`` whatever ``n_pulses``; chunk i draws from
  ``fold_in(key, i)``, so a result is reproducible for a given key and chunk size (a different chunk size gives a
  different, equally valid, sample).
- ``mode="clicks"`` is exact and draws only the pulses that click: the multinomial split of ``n_pulses`` into
  (intensity, matched basis) cells and the number of pulses with at least one click per cell
  (Binomial(N_cell, 1 - (1 - p_dc)^2 exp(-eta mu_k)), Poisson thinning) come from ``jax.random.multinomial`` and
  ``binomial`` (exact at any count), then each clicking pulse's details (signal and dark counts given at least
  one click, misalignment, double-click bit) are decoded from one uniform as above, in chunks of
  ``chunk_size`` with a loop that runs once per ``chunk_size`` clicks. Its cost scales with the clicks, not the
  pulses. Keys: ``k_cells, k_clicks, k_details = split(key, 3)``; detail chunk i draws from
  ``fold_in(k_details, i)``.

Any key implementation works; ``jax.random.key(seed, impl="rbg")`` is an alternative to the default threefry
(see ``benchmarks/bench_events.py`` for the speed of each on your machine).
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qkdjax.detectors.threshold import ThresholdDetector
from qkdjax.parameters import Range
from qkdjax.physics.detector import click_and_error_probs, noise_click_prob
from qkdjax.physics.source import intensities, intensity_probs
from qkdjax.protocols.bb84_decoy import BB84Decoy
from qkdjax.sources.wcp_decoy import WCPDecoy

MODES = ("pulses", "clicks")
MAX_INTENSITY = 10.0  # bounds the inverse-CDF photon-number table: 15 terms at mu = 0.5, 47 at mu = 10
POISSON_TAIL = 1e-16  # photon-number mass beyond the table, folded into its last term
MAX_PULSES = 2**53  # counts are drawn and summed in float64 by the binomial sampler: exact integers up to 2^53
N_PULSES_RANGE = Range(1.0, float(MAX_PULSES), integer=True)
CHUNK_SIZE_RANGE = Range(1.0, float(2**26), integer=True)
TRANSMITTANCE_RANGE = Range(0.0, 1.0)
N_CELLS = 6  # (intensity k, basis b) at index 2 k + b, bases (X, Z)
MISMATCHED = N_CELLS  # tally cell of pulses with mismatched bases; N_CELLS + 1 marks the padding of a last chunk


class EventCounts(NamedTuple):
    """What Bob records, per intensity (signal, decoy, weak) and sifted basis (X, Z): int64 arrays of shape [3, 2].

    ``sent``: pulses with matched bases; ``detections``: pulses with a detection event (afterpulses included);
    ``errors``: detection events whose bit differs from Alice's; ``n_pulses``: pulses simulated, all bases,
    as counted by the simulation (so it checks that the chunk loop covered every pulse exactly once).
    """

    sent: jax.Array
    detections: jax.Array
    errors: jax.Array
    n_pulses: jax.Array


def simulate_pulses(key, source, detector, protocol, channel_transmittance, n_pulses, *, chunk_size=2**20, mode="pulses") -> EventCounts:
    """Send ``n_pulses`` decoy-state BB84 pulses through a link of ``channel_transmittance`` and count Bob's events.

    ``source``, ``detector``, ``protocol`` are ``qkdjax.parameters`` dataclasses with concrete scalar leaves (one
    link point; loop in Python for several); only ``protocol.p_key_basis`` is read from the protocol, and any
    object with the fields read will do (ranges are checked against the dataclasses' metadata). ``mode``
    picks the sampler (see the module docstring): ``"pulses"`` draws every pulse, ``"clicks"`` only those that
    click. Memory is bounded by ``chunk_size`` in both, about 60 bytes per item of a chunk (2^16 is as fast on a
    CPU as the default; a GPU wants large chunks). Raises ``ValueError`` naming the parameter, its value and the
    allowed range for bad input, before anything is computed.
    """
    _check_inputs(source, detector, protocol, channel_transmittance, n_pulses, chunk_size, mode)
    link = _link(source, detector, protocol, channel_transmittance)
    n = jnp.asarray(int(n_pulses), dtype=jnp.int64)
    if mode == "pulses":
        n_terms = photon_number_terms(float(np.max(np.asarray(intensities(source)))))
        tally = _simulate_every_pulse(key, link, n, chunk_size, n_terms)
    else:
        tally = _simulate_clicks(key, link, n, chunk_size)
    return EventCounts(
        sent=tally[0, :N_CELLS].reshape(3, 2),
        detections=tally[1, :N_CELLS].reshape(3, 2),
        errors=tally[2, :N_CELLS].reshape(3, 2),
        n_pulses=tally[0].sum(),
    )


def expected_counts(source, detector, protocol, channel_transmittance, n_pulses) -> EventCounts:
    """Expected counts of the analytic model (Lim et al. 2014, Sec. IV), float64, in the layout of ``EventCounts``."""
    mu, p_mu = intensities(source), intensity_probs(source)
    eta = channel_transmittance * detector.efficiency
    click, error = click_and_error_probs(-jnp.expm1(-eta * mu), detector)
    q = protocol.p_key_basis
    sent = n_pulses * p_mu[:, None] * jnp.stack([q**2, (1.0 - q) ** 2])
    return EventCounts(sent, sent * click[:, None], sent * error[:, None], jnp.asarray(n_pulses, jnp.float64))


def photon_number_terms(mu_max: float) -> int:
    """Size J of the photon-number table n = 0..J-1: the smallest with P(n >= J) < ``POISSON_TAIL`` at ``mu_max``."""

    def tail(n_terms):  # past mu the terms fall faster than geometrically: 200 of them hold the whole tail
        log_pmf = (n * math.log(mu_max) - mu_max - math.lgamma(n + 1.0) for n in range(n_terms, n_terms + 200))
        return sum(map(math.exp, log_pmf))

    n_terms = 1
    while tail(n_terms) >= POISSON_TAIL:
        n_terms += 1
    return n_terms


class _Link(NamedTuple):
    """The numbers the samplers need, float64 scalars (``mu``, ``p_mu``: per intensity)."""

    mu: jax.Array
    p_mu: jax.Array
    p_key_basis: jax.Array
    eta: jax.Array
    p_noise: jax.Array  # per intensity: noise click of one detector, dark counts and afterpulses
    e_mis: jax.Array


def _link(source, detector, protocol, channel_transmittance) -> _Link:
    as_f64 = partial(jnp.asarray, dtype=jnp.float64)
    mu, eta = as_f64(intensities(source)), as_f64(channel_transmittance) * as_f64(detector.efficiency)
    return _Link(
        mu=mu,
        p_mu=as_f64(intensity_probs(source)),
        p_key_basis=as_f64(protocol.p_key_basis),
        eta=eta,
        p_noise=as_f64(noise_click_prob(-jnp.expm1(-eta * mu), detector)),
        e_mis=as_f64(detector.misalignment),
    )


# ---- Arithmetic decoding: one uniform carries the whole chain of independent choices of a pulse. ----
#
# u is uniform on the 2^-53 grid of [0, 1). A choice of probability p is the event {u < p}; given either outcome,
# u rescaled to [0, 1) within its interval is again uniform and independent of the outcome, so it feeds the next
# choice. Every outcome of the chain is thus an interval of [0, 1) of exactly its probability, up to the 2^-53 grid
# and float rounding: an absolute error of a few 1e-16 per pulse, whatever the outcome. A choice of probability P
# consumes log2(1/P) of the 53 bits, so what follows a rare outcome is resolved more coarsely: an outcome of
# probability 1e-7 leaves 30 bits; a weak intensity (p = 0.1), matched X bases (q = 0.5 each) and a dark count
# (p_dc = 6e-7) use 3.3 + 2 + 20.7 = 26 bits and leave 27. The ~1e-16 absolute error stays the bound.


def _uniform53(key, shape):
    """Uniforms on the 2^-53 grid of [0, 1), from one 64-bit word each."""
    return (jax.random.bits(key, shape, jnp.uint64) >> 11).astype(jnp.float64) * 2.0**-53


def _decide(u, p):
    """Whether the choice of probability ``p`` happens (u < p), and u rescaled to a fresh uniform given that.

    Multiplying by reciprocals, which are per-chunk constants for a scalar ``p``, is 20 % faster on CPU than
    dividing; a p of 0 or 1 makes an infinite reciprocal only on the side that is never selected.
    """
    happened = u < p
    return happened, (u - jnp.where(happened, 0.0, p)) * jnp.where(happened, 1.0 / p, 1.0 / (1.0 - p))


def _choose(u, cdf):
    """Index i of the interval [cdf[i-1], cdf[i]) holding u (cdf[-1] = 0, cdf[len] = 1), and u rescaled within it.

    ``cdf`` is a sequence of non-decreasing boundaries, each a scalar or an array shaped like ``u``.
    """
    index, low, high = jnp.zeros(u.shape, jnp.int32), jnp.zeros_like(u), jnp.ones_like(u)
    for c in cdf:
        above = u >= c
        index += above
        low = jnp.where(above, c, low)
    for c in reversed(cdf):
        high = jnp.where(u < c, c, high)
    return index, (u - low) / (high - low)


def _photon_number_cdf(mu, n_terms):
    """P(N <= n) for n = 0..n_terms-2 and each intensity, [3, n_terms - 1]; the rest of the mass is n = n_terms-1.

    Poisson terms by the recurrence P(n) = P(n-1) mu / n, exact for the vacuum (mu = 0) too.
    """
    ratios = mu[:, None] / jnp.arange(1.0, n_terms - 1.0)
    pmf = jnp.exp(-mu)[:, None] * jnp.cumprod(jnp.concatenate([jnp.ones((3, 1)), ratios], axis=1), axis=1)
    return jnp.cumsum(pmf, axis=1)


def _per_intensity(k, values):
    """``values[k]`` for per-pulse intensities ``k``, as selects that XLA fuses into the per-pulse loop."""
    return jnp.where(k == 0, values[0], jnp.where(k == 1, values[1], values[2]))


def _bob_records(u, signal, dark_right, dark_wrong, link):
    """Detection event (0, 1) and error event of one gate, given the signal and the two noise clicks.

    ``dark_right``/``dark_wrong``: noise clicks in the detector of Alice's bit and of the other bit. The signal
    lands in the wrong detector with probability ``e_mis``; a double click is squashed to a random bit
    (Lütkenhaus 1999).
    """
    misaligned, u = _decide(u, link.e_mis)
    coin, _ = _decide(u, 0.5)
    click_right = (signal & ~misaligned) | dark_right
    click_wrong = (signal & misaligned) | dark_wrong
    detected = click_right | click_wrong
    error = click_wrong & (~click_right | coin)
    return detected.astype(jnp.int32), error.astype(jnp.int32)


def _tally(cell, detections, errors):
    """Per tally cell (N_CELLS sifted cells, then mismatched): [pulses, detections, errors], int64 [3, N_CELLS + 1].

    One histogram of a per-item code rather than a reduction per cell and count: XLA then fuses most of the
    per-item chain into the loop that writes the code (masked one-hot sums ran at half the speed).
    """
    code = (cell * 3 + detections) * 3 + errors
    histogram = jnp.bincount(code, length=(N_CELLS + 2) * 9).reshape(N_CELLS + 2, 3, 3)[: N_CELLS + 1]
    value = jnp.arange(3)
    return jnp.stack([histogram.sum((1, 2)), (histogram * value[:, None]).sum((1, 2)), (histogram * value).sum((1, 2))]).astype(jnp.int64)


def _chunk_loop(n_items, chunk_size, body):
    """Sum of ``body(i, index, valid)`` over the chunks covering ``n_items``.

    Chunk i holds the items ``index``; ``valid`` masks the padding of the last chunk. The trip count is traced, so
    one compiled loop serves every ``n_items`` in the memory of one chunk.
    """

    def step(i, total):
        index = i * chunk_size + jnp.arange(chunk_size, dtype=jnp.int64)
        return total + body(i, index, index < n_items)

    n_chunks = (n_items + chunk_size - 1) // chunk_size
    return jax.lax.fori_loop(jnp.int64(0), n_chunks, step, jnp.zeros((3, N_CELLS + 1), jnp.int64))


@partial(jax.jit, static_argnames=("chunk_size", "n_terms"))
def _simulate_every_pulse(key, link: _Link, n_pulses, chunk_size: int, n_terms: int):
    """Tally of ``n_pulses`` pulses, each decoded from one uniform (mode "pulses")."""
    intensity_cdf = jnp.cumsum(link.p_mu)[:2]
    photon_cdf = _photon_number_cdf(link.mu, n_terms)
    log_loss = jnp.log1p(-link.eta)

    def chunk(i, index, valid):
        u = _uniform53(jax.random.fold_in(key, i), index.shape)
        k, u = _choose(u, (intensity_cdf[0], intensity_cdf[1]))
        alice_x, u = _decide(u, link.p_key_basis)
        bob_x, u = _decide(u, link.p_key_basis)
        n_photons, u = _choose(u, [_per_intensity(k, photon_cdf[:, j]) for j in range(n_terms - 1)])
        # (1 - eta)^0 = 1 even at eta = 1, where 0 * log1p(-1) would be nan
        signal, u = _decide(u, jnp.where(n_photons > 0, -jnp.expm1(n_photons * log_loss), 0.0))
        p_noise = _per_intensity(k, link.p_noise)
        dark_right, u = _decide(u, p_noise)
        dark_wrong, u = _decide(u, p_noise)
        detections, errors = _bob_records(u, signal, dark_right, dark_wrong, link)
        cell = jnp.where(alice_x == bob_x, 2 * k + (~alice_x).astype(jnp.int32), MISMATCHED)
        return _tally(jnp.where(valid, cell, MISMATCHED + 1), detections, errors)

    return _chunk_loop(n_pulses, chunk_size, chunk)


@partial(jax.jit, static_argnames=("chunk_size",))
def _simulate_clicks(key, link: _Link, n_pulses, chunk_size: int):
    """Tally of ``n_pulses`` pulses with only the clicking ones drawn in detail (mode "clicks")."""
    k_cells, k_clicks, k_details = jax.random.split(key, 3)
    q = link.p_key_basis
    p_cells = (link.p_mu[:, None] * jnp.stack([q**2, (1.0 - q) ** 2])).ravel()
    p_cells = jnp.append(p_cells, 2.0 * q * (1.0 - q))  # mismatched bases
    sent = jax.random.multinomial(k_cells, n_pulses.astype(jnp.float64), p_cells)

    mu = jnp.repeat(link.mu, 2)  # per sifted cell
    p_signal = -jnp.expm1(-link.eta * mu)
    p_noise = jnp.repeat(link.p_noise, 2)
    p_click = -jnp.expm1(-link.eta * mu + 2.0 * jnp.log1p(-p_noise))  # >= 1 of signal and two noise clicks
    clicks = jax.random.binomial(k_clicks, sent[:N_CELLS], p_click).astype(jnp.int64)
    ends = jnp.cumsum(clicks)
    p_signal_given_click = jnp.where(p_click > 0, p_signal / p_click, 0.0)

    def chunk(i, index, valid):
        cell = jnp.searchsorted(ends, index, side="right", method="compare_all")
        u = _uniform53(jax.random.fold_in(k_details, i), index.shape)
        within = jnp.minimum(cell, N_CELLS - 1)  # the padding of a last chunk reads the last cell
        signal, u = _decide(u, p_signal_given_click[within])
        # Given no signal, a click needs a noise click: the right one with P = p / (1 - (1 - p)^2) = 1 / (2 - p),
        # and if not, the wrong one surely.
        p = p_noise[within]
        dark_right, u = _decide(u, jnp.where(signal, p, 1.0 / (2.0 - p)))
        dark_wrong, u = _decide(u, jnp.where(signal | dark_right, p, 1.0))
        detections, errors = _bob_records(u, signal, dark_right, dark_wrong, link)
        return _tally(jnp.where(valid, cell, MISMATCHED + 1), detections, errors)

    detailed = _chunk_loop(ends[-1], chunk_size, chunk)
    return detailed.at[0].set(sent.astype(jnp.int64))


# ---- Input checks: on concrete host values, before anything is traced. ----

_FIELDS_READ = (
    ("source", WCPDecoy, ("mu_signal", "mu_decoy", "mu_weak", "p_signal", "p_decoy")),
    ("detector", ThresholdDetector, ("efficiency", "dark_count_prob", "afterpulse_prob", "dead_time_ns", "misalignment")),
    ("protocol", BB84Decoy, ("p_key_basis",)),
)


def _check_inputs(source, detector, protocol, channel_transmittance, n_pulses, chunk_size, mode):
    if mode not in MODES:
        raise ValueError(f"mode = {mode!r} is not one of {MODES}")
    _check_number("n_pulses", n_pulses, N_PULSES_RANGE)
    _check_number("chunk_size", chunk_size, CHUNK_SIZE_RANGE)
    n_chunks = -(-int(n_pulses) // int(chunk_size))
    if n_chunks > 2**32:  # fold_in takes a 32-bit chunk index
        raise ValueError(f"n_pulses / chunk_size = {n_chunks} chunks; at most 2^32 are allowed: raise chunk_size")
    _check_number("channel_transmittance", channel_transmittance, TRANSMITTANCE_RANGE)
    for (group, cls, names), params in zip(_FIELDS_READ, (source, detector, protocol)):
        allowed = {f.name: f.metadata.get("range") for f in dataclasses.fields(cls)}
        for name in names:
            _check_number(f"{group}.{name}", getattr(params, name), allowed[name])
    for constraint in WCPDecoy.constraints:
        if not constraint.holds(*(float(getattr(source, name)) for name in constraint.fields)):
            raise ValueError(f"{constraint.description} does not hold")
    for name in ("p_key_basis_bob", "p_key_basis_decoy", "p_key_basis_weak"):
        if getattr(protocol, name, None) is not None:
            raise ValueError(
                f"protocol.{name} = {float(getattr(protocol, name)):g}: the event simulator models one key-basis probability for both parties and all intensities (protocol.p_key_basis); set it to null"
            )
    if float(detector.dead_time_ns) != 0.0:
        raise ValueError(
            f"detector.dead_time_ns = {float(detector.dead_time_ns):g} ns: the event simulator does not model dead "
            "time and needs detector.dead_time_ns = 0"
        )
    if float(source.mu_signal) > MAX_INTENSITY:
        raise ValueError(
            f"source.mu_signal = {float(source.mu_signal):g} is outside (0, {MAX_INTENSITY:g}] allowed by the "
            "event simulator's photon-number table"
        )


def _check_number(name, value, allowed: Range):
    array = np.asarray(value)
    if array.ndim != 0:
        raise ValueError(f"{name} must be one number (one link point; loop in Python for more), got {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or not allowed.contains(array.astype(float)):
        raise ValueError(f"{name} = {value!r} is outside {allowed}")
