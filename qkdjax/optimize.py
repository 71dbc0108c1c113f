"""Protocol parameters optimised at every grid point, and inverse questions answered at every grid point.

Optimisation maximises the key rate over a chosen subset of the fields that the study's classes mark
``optimisable`` (decoy BB84: the source intensities, their probabilities and the basis bias), with exact
gradients (``jax.value_and_grad``) and optax's Adam, over several starts per point and, vmapped by the sweep
engine, over the grid. Nothing here names a protocol; three choices make it work at every point of a sweep:

- A bounded, always-feasible reparameterisation. Each parameter is ``low + (high - low) sigmoid(z)`` over the
  open interval that its box and its class's constraints leave given the parameters set before it (the class's
  ``feasible_interval``; e.g. intensities from the largest down, so that ``mu_signal > mu_decoy + mu_weak``).
  Every ``z`` in R^n is a valid point, so no step leaves the region where the protocol's bounds are defined.
- A smooth surrogate of the rate: ``asinh(margin / SCALE)`` of the protocol's ``margin_per_pulse``, the key-rate
  formula before rounding and clipping at zero (bits per pulse). It is ``log(margin)`` up to a constant where
  there is key, so rates of 1e-2 and 1e-12 bit/pulse are optimised with the same relative care, and
  ``-log(-margin)`` where there is none, so the gradient still points towards parameters that give key.
- Several starts per point: the configured parameters and a deterministic Kronecker sequence (M. Roberts' R_d,
  2018) over the boxes. The best iterate of the best start is kept, and only if its exact (rounded, clipped) rate
  beats the configured parameters' rate: the result is never worse than the input.

Inverse questions: with a key-rate target, bisection on a parameter the rate is monotone in (a field whose
metadata names an ``inverse`` quantity) finds its smallest value (detector efficiency, block size) or largest
(distance, extra loss, dark-count probability, misalignment) that still gives more than the target rate (the
optimised rate when optimisation is on, warm-started along the bisection).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from qkdjax.parameters import Quantity, StudyParams, classes_of, field_of, flagged_paths, replace_values

SCALE = 1e-30  # bits per pulse below which the surrogate is linear: far below any rate a link could use
PLATEAU = 0.1  # converged: the best surrogate rose less than TOLERANCE over this last fraction of the steps
TOLERANCE = 1e-4  # in the surrogate, i.e. a relative change of the rate of 1e-4


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """What to optimise and how: ``params`` (fields whose metadata marks them optimisable) within their ``bounds``
    (low, high each), ``starts`` per point, Adam ``steps`` and peak ``learning_rate`` (unconstrained coordinates,
    cosine decay)."""

    params: tuple[str, ...]
    bounds: tuple[tuple[float, float], ...]
    starts: int = 4
    steps: int = 300
    learning_rate: float = 0.1

    def box(self, name: str) -> tuple[float, float]:
        return self.bounds[self.params.index(name)]


def value_of(p: StudyParams, path: str) -> Any:
    group, field = path.split(".")
    return getattr(getattr(p, group), field)


def optimisable(classes: Mapping[str, type]) -> tuple[str, ...]:
    """The optimisable fields of the study's ``classes`` (group -> parameter class), in the order they are set:
    each one's interval depends only on those before it (``Params.feasible_interval``)."""
    return flagged_paths(classes, "optimisable")


def ordered(classes: Mapping[str, type], optimizer: Optimizer) -> tuple[str, ...]:
    return tuple(name for name in optimisable(classes) if name in optimizer.params)


def feasible_interval(classes: Mapping[str, type], name: str, values: Mapping[str, Any], optimizer: Optimizer) -> tuple[Any, Any]:
    """Open interval of ``name``: its box cut by its class's constraints (``feasible_interval``), given the
    ``values`` of the parameters set before it and of those not optimised.

    A parameter set later counts with its box's low end, which the config check guarantees leaves room.
    """
    group, field = name.split(".")

    def least(other: str) -> Any:
        path = f"{group}.{other}"
        return optimizer.box(path)[0] if path in optimizer.params else values[path]

    own = {path.split(".")[1]: value for path, value in values.items() if path.startswith(f"{group}.")}
    return classes[group].feasible_interval(field, optimizer.box(name), own, least)


def constrained(classes: Mapping[str, type], z: jax.Array, fixed: Mapping[str, Any], optimizer: Optimizer) -> dict[str, jax.Array]:
    """The optimised parameters' values for unconstrained coordinates ``z`` (in ``ordered`` order)."""
    values = dict(fixed)
    for i, name in enumerate(ordered(classes, optimizer)):
        low, high = feasible_interval(classes, name, values, optimizer)
        values[name] = low + (high - low) * jax.nn.sigmoid(z[i])
    return {name: values[name] for name in ordered(classes, optimizer)}


def unconstrained(classes: Mapping[str, type], values: Mapping[str, Any], optimizer: Optimizer) -> jax.Array:
    """Coordinates ``z`` of ``values`` (the inverse of ``constrained``), values outside their interval moved just
    inside it."""
    current, z = dict(values), []
    for name in ordered(classes, optimizer):
        low, high = feasible_interval(classes, name, current, optimizer)
        width = high - low
        fraction = jnp.clip((values[name] - low) / jnp.where(width > 0, width, 1.0), 1e-6, 1.0 - 1e-6)
        z.append(jax.scipy.special.logit(fraction))
        current[name] = low + width * fraction
    return jnp.stack(z)


def kronecker_starts(count: int, dims: int) -> np.ndarray:
    """``count`` points spread over the unconstrained box, [count, dims]: the R_d sequence mapped through logit.

    R_d: ``frac(1/2 + k alpha)`` with ``alpha_j = phi_d^-(j+1)``, ``phi_d`` the root of ``x^(d+1) = x + 1``.
    """
    phi = 2.0
    for _ in range(50):
        phi = (1.0 + phi) ** (1.0 / (dims + 1))
    alpha = phi ** -np.arange(1, dims + 1)
    fractions = np.mod(0.5 + np.arange(1, count + 1)[:, None] * alpha, 1.0)
    fractions = np.clip(fractions, 0.02, 0.98)
    return np.log(fractions / (1.0 - fractions))


class Optimum(NamedTuple):
    """The optimised point: its parameters, the optimised values, the exact key rates before and after, and what
    the caller's ``evaluate`` made of it."""

    params: StudyParams
    values: dict[str, jax.Array]
    converged: jax.Array  # the best start's objective reached a plateau
    initial_key_rate: jax.Array  # bit/s, with the configured parameters
    key_rate: jax.Array  # bit/s, with ``values`` (never below ``initial_key_rate``)
    outcome: Any  # ``evaluate(params)[1]``


def optimise(
    p: StudyParams,
    optimizer: Optimizer,
    margin_per_pulse: Callable[[StudyParams], jax.Array],
    evaluate: Callable[[StudyParams], tuple[jax.Array, Any]],
) -> Optimum:
    """Maximise the key rate over ``optimizer.params`` at one point, following the smooth ``margin_per_pulse``.

    ``margin_per_pulse(p)``: the key bits per pulse before rounding and clipping; ``evaluate(p) -> (key_rate,
    outcome)``: the exact rate (bit/s) that decides between the optimum and the configured parameters, and what
    the caller needs at the chosen point (its metrics), returned as ``Optimum.outcome``.

    Compile time (``benchmarks/bench_compile.py``): the starts ascend together, one ``[starts, dims]`` array
    through one loop, rather than a loop per start under ``vmap`` (tracing lim_2014: 1.3 -> 1.1 s); the
    candidates and the configured point are evaluated in one call whose outcome at the chosen point is kept,
    rather than three copies of the model (candidates, configured point, the caller's metrics afterwards):
    lim_2014 compiles in 3.0-3.4 s instead of 4.1-4.7 s. Rates and outcomes come from that one program, so
    the configured point's rate equals a fixed run's only to rounding (~1e-16 relative).
    """
    classes = classes_of(p)
    fixed = {name: value_of(p, name) for name in optimisable(classes)}
    dims = len(ordered(classes, optimizer))

    def surrogate(z):
        value = jnp.arcsinh(margin_per_pulse(replace_values(p, constrained(classes, z, fixed, optimizer))) / SCALE)
        return jnp.where(jnp.isnan(value), -jnp.inf, value)

    def total(z):  # the starts are independent: the gradient of their sum is each start's own gradient
        values = jax.vmap(surrogate)(z)
        return jnp.sum(jnp.where(jnp.isfinite(values), values, 0.0)), values

    schedule = optax.cosine_decay_schedule(optimizer.learning_rate, optimizer.steps, alpha=0.01)
    adam = optax.adam(schedule)

    def step(carry, _):
        z, state, best_z, best = carry
        (_, value), grad = jax.value_and_grad(total, has_aux=True)(z)
        better = value > best
        best_z, best = jnp.where(better[:, None], z, best_z), jnp.where(better, value, best)
        updates, state = adam.update(-jnp.where(jnp.isfinite(grad), grad, 0.0), state)
        return (optax.apply_updates(z, updates), state, best_z, best), best

    starts = jnp.concatenate([unconstrained(classes, fixed, optimizer)[None], kronecker_starts(optimizer.starts - 1, dims)])
    carry = (starts, adam.init(starts), starts, jnp.full(optimizer.starts, -jnp.inf))
    (_, _, best_z, best), history = jax.lax.scan(step, carry, length=optimizer.steps)
    plateau = history[-1] - history[-max(math.ceil(PLATEAU * optimizer.steps), 1)]
    converged = jnp.isfinite(best) & (plateau < TOLERANCE)

    # The exact rate decides (the surrogate ignores rounding and aborts): the candidates, then the configured point.
    candidates = jax.vmap(lambda z: replace_values(p, constrained(classes, z, fixed, optimizer)))(best_z)
    points = jax.tree.map(lambda new, old: jnp.concatenate([new, jnp.asarray(old)[None]]), candidates, p)
    rates, outcomes = jax.vmap(evaluate)(points)
    winner = jnp.argmax(rates[:-1])
    chosen = jnp.where(rates[winner] > rates[-1], winner, optimizer.starts)
    params = jax.tree.map(lambda leaf: leaf[chosen], points)
    values = {name: value_of(params, name) for name in ordered(classes, optimizer)}
    outcome = jax.tree.map(lambda leaf: leaf[chosen], outcomes)
    return Optimum(params, values, converged[winner], rates[-1], rates[chosen], outcome)


def rate_only(key_rate: Callable[[StudyParams], jax.Array]) -> Callable[[StudyParams], tuple[jax.Array, None]]:
    """``optimise``'s ``evaluate`` for callers that need nothing at the chosen point but its key rate."""
    return lambda p: (key_rate(p), None)


def answers(optimum: Optimum) -> dict[str, jax.Array]:
    """The ``opt.*`` cube variables of an optimum: each optimised value, the convergence flag and the rate before."""
    found = {f"opt.{name}": value for name, value in optimum.values.items()}
    return found | {"opt.converged": optimum.converged.astype(jnp.float64), "opt.initial_key_rate": optimum.initial_key_rate}


def inverse_quantities(classes: Mapping[str, type]) -> dict[str, Quantity]:
    """The inverse questions the fields of ``classes`` (group -> class) answer, by dotted path."""
    return {path: _metadata(classes, path)["inverse"] for path in flagged_paths(classes, "inverse")}


def _metadata(classes: Mapping[str, type], path: str) -> Mapping[str, Any]:
    group, name = path.split(".")
    return next(f.metadata for f in dataclasses.fields(classes[group]) if f.name == name)


def output_name(name: str, quantity: Quantity) -> str:
    """The cube variable answering the inverse question of ``name``, e.g. ``max.link.distance_km``."""
    return f"{quantity.direction}.{name}"


@dataclasses.dataclass(frozen=True)
class Inverse:
    """Inverse questions: for each of ``solve`` (fields with an ``inverse`` quantity) searched within ``bounds``, the
    value at which the key rate crosses ``target_key_rate`` (bit/s), by ``iterations`` bisection steps; with
    optimisation on, each step re-optimises with ``optimize_steps`` Adam steps from the previous optimum."""

    target_key_rate: float
    solve: tuple[str, ...]
    bounds: tuple[tuple[float, float], ...]
    iterations: int = 40
    optimize_steps: int = 60


def crossing(
    rate_at: Callable[[jax.Array, Any], tuple[jax.Array, Any]],
    quantity: Quantity,
    bounds: tuple[float, float],
    target: float,
    iterations: int,
    carry: Any,
) -> jax.Array:
    """The value of the ``quantity`` where ``rate_at(value, carry) -> (rate, carry)`` crosses ``target``, by bisection.

    ``min`` quantities (rate rising with the value) return the smallest value found above the target, ``max``
    ones the largest; the interval's end where even that end suffices, NaN where no value in it does.
    """
    forward = (lambda x: jnp.log10(x)) if quantity.log_scale else (lambda x: x)
    back = (lambda u: 10.0**u) if quantity.log_scale else (lambda u: u)
    low, high = (jnp.float64(b) for b in bounds)
    rate_low, carry = rate_at(low, carry)
    rate_high, carry = rate_at(high, carry)
    rising = quantity.direction == "min"

    def bisect(_, state):
        a, b, carry = state  # the target is reached at b (min) or a (max) and not at the other end
        middle = 0.5 * (a + b)
        rate, carry = rate_at(back(middle), carry)
        reached = rate > target
        a, b = (jnp.where(reached, a, middle), jnp.where(reached, middle, b)) if rising else (
            jnp.where(reached, middle, a), jnp.where(reached, b, middle))  # fmt: skip
        return a, b, carry

    a, b, _ = jax.lax.fori_loop(0, iterations, bisect, (forward(low), forward(high), carry))
    if rising:
        return jnp.where(rate_low > target, low, jnp.where(rate_high > target, back(b), jnp.nan))
    return jnp.where(rate_high > target, high, jnp.where(rate_low > target, back(a), jnp.nan))


def answer(
    p: StudyParams,
    inverse: Inverse,
    optimizer: Optimizer | None,
    margin_per_pulse: Callable[[StudyParams], jax.Array],
    key_rate: Callable[[StudyParams], jax.Array],
) -> dict[str, jax.Array]:
    """Every inverse question of ``inverse`` at the point ``p``, keyed by its output name."""
    if optimizer is None:

        def rate_at(p_at, carry):
            return key_rate(p_at), carry
    else:
        warm = dataclasses.replace(optimizer, starts=1, steps=inverse.optimize_steps)

        def rate_at(p_at, carry):
            optimum = optimise(replace_values(p_at, carry), warm, margin_per_pulse, rate_only(key_rate))
            return optimum.key_rate, optimum.values

    carry = {} if optimizer is None else {name: value_of(p, name) for name in ordered(classes_of(p), optimizer)}
    results = {}
    for name, bounds in zip(inverse.solve, inverse.bounds):
        quantity = field_of(p, name).metadata["inverse"]
        at = lambda value, carry, name=name: rate_at(replace_values(p, {name: value}), carry)
        results[output_name(name, quantity)] = crossing(at, quantity, bounds, inverse.target_key_rate, inverse.iterations, carry)
    return results
