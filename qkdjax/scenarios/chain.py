"""Trusted-node chains: key rate of every hop (a point study of the protocol over each hop, optimised per hop with
the optimiser), the end-to-end rate of key relay, and the key supply's availability over simulated years
(``qkdjax.network.availability``)."""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp

from qkdjax import optimize
from qkdjax.montecarlo.estimates import probability_outputs, stderr_output
from qkdjax.network import availability
from qkdjax.parameters import replace_values
from qkdjax.scenarios import point
from qkdjax.study import Study
from qkdjax.sweep import Output

CHAIN_OUTPUTS: Mapping[str, Output] = {
    "key_rate": Output("bit/s", "end-to-end secret key rate (key relay: the slowest hop)", role="rate"),
    "bottleneck_hop": Output("1", "index of the slowest hop (0: the first)", role="bottleneck"),
    "bottleneck_loss_db": Output("dB", "channel loss of the slowest hop", role="bottleneck_loss"),
    "trusted_nodes": Output("1", "trusted nodes on each path", role="trusted_nodes"),
    "untrusted_relays": Output(
        "1", "untrusted relays on each path (one in every hop of a middle-station protocol)", role="untrusted_relays"
    ),
}
SUPPLY_OUTPUTS: Mapping[str, Output] = {
    "availability": Output("1", "fraction of time a relay path is up (mean over trials)"),
    **stderr_output("availability", "1", "availability (mean over trials of the fraction of time up)"),
    **probability_outputs("demand_met_probability", "probability that the demand is fully met over the horizon", "demand_met"),
    "unserved_bits_mean": Output("bit", "expected demanded key not served over the horizon"),
    **stderr_output("unserved_bits_mean", "bit", "expected unserved key"),
    "unserved_fraction_mean": Output("1", "expected fraction of the demand not served"),
    **stderr_output("unserved_fraction_mean", "1", "expected unserved fraction"),
    "longest_starvation_h_mean": Output("h", "mean longest interval without enough key"),
    **stderr_output("longest_starvation_h_mean", "h", "mean longest starvation"),
    "longest_starvation_h_q95": Output("h", "95 % quantile of the longest interval without enough key"),
    "first_starvation_h_quantile": Output("h", "quantiles of the time to the first starvation (horizon: never)", ("quantile",)),
}


def hop_key_rate(p, hop_link, overrides=(), optimizer: optimize.Optimizer | None = None) -> dict:
    """Secret key rate (bit/s) and channel loss of one hop: the study's detector, source and protocol over
    ``hop_link``, with the hop's own ``(group.field, value)`` overrides; with an ``optimizer``, at the hop's
    optimal protocol parameters (each hop is its own pair of QKD devices) and the ``opt.*`` answers."""
    hop = replace_values(p._replace(link=hop_link), {k: v for k, v in overrides if k.split(".")[0] != "link"})
    loss_db = hop_link.loss_db()
    if optimizer is None:
        return {"key_rate": hop.protocol.key_rate(hop), "loss_db": loss_db}
    optimum = optimize.optimise(hop, optimizer, point.margin_per_pulse, optimize.rate_only(point.key_rate))
    return {"key_rate": optimum.key_rate, "loss_db": loss_db, **optimize.answers(optimum)}


def chain_metrics(p, optimizer: optimize.Optimizer | None = None) -> tuple[dict, tuple]:
    """End-to-end key rate of a trusted-node chain: key relay delivers what its slowest hop makes (the ``opt.*``
    answers are the slowest hop's)."""
    arms = p.protocol.arms
    hops, mask = p.link.hop_slots(lambda hop_link, overrides: hop_key_rate(p, hop_link, overrides, optimizer), arms)
    rates = jnp.where(mask, hops["key_rate"], jnp.inf)
    slowest = jnp.argmin(rates)
    metrics = {
        "key_rate": rates[slowest],
        "bottleneck_hop": slowest.astype(jnp.float64),
        "bottleneck_loss_db": hops["loss_db"][slowest],
        "trusted_nodes": jnp.sum(mask) - 1.0,
        "untrusted_relays": jnp.sum(mask) * (arms - 1.0),
    }
    metrics |= {name: values[slowest] for name, values in hops.items() if name.startswith("opt.")}
    return metrics, (hops["key_rate"], mask)


def supply_metrics(p, key, trials: int, horizon_h: float, steps: int, hops) -> dict:
    """Availability of the key supply over ``trials`` simulated horizons (qkdjax.network.availability).

    ``link.paths`` identical disjoint paths, each the chain of hops; hops and their intermediate nodes fail and
    are repaired with the link's reliability figures.
    """
    link = p.link
    rates, mask = hops
    path_mask = (jnp.arange(link.path_slots) < link.paths)[:, None] & mask[None, :]
    shape = path_mask.shape

    def reliability(mtbf_h, mttr_h, columns):
        full = lambda v: jnp.full((link.path_slots, columns), v)
        return availability.Reliability(full(mtbf_h), full(mttr_h), full(link.failure_shape), full(link.repair_log_sigma))

    summary = availability.simulate_trials(
        key, jnp.broadcast_to(rates, shape), jnp.full(shape, link.buffer_bits), path_mask,
        reliability(link.hop_mtbf_h, link.hop_mttr_h, shape[1]), reliability(link.node_mtbf_h, link.node_mttr_h, shape[1] - 1),
        link.store_bits, link.demand_bps, horizon_h, steps, trials=trials,
    )  # fmt: skip
    renamed = {"availability_mean": "availability", "availability_mean_stderr": "availability_stderr"}
    renamed |= {"first_starvation_h_quantiles": "first_starvation_h_quantile"}
    return {renamed.get(name, name): value for name, value in summary._asdict().items()}


class ChainStudy(Study):
    """The end-to-end rate of a trusted-node chain; with ``trials``, the key supply over simulated horizons."""

    name = "chain"

    @classmethod
    def check(cls, static, classes, settings):
        cls.refuse_point_settings(settings, "trusted-node chains", optimises=True)

    @property
    def outputs(self):
        optimised = {name: output._replace(long_name=f"{output.long_name} (slowest hop)") for name, output in self.optimize_outputs.items()}
        return {**CHAIN_OUTPUTS, **optimised, **(SUPPLY_OUTPUTS if self.trials else {})}

    @property
    def evaluations_per_point(self) -> int:
        static = self.static
        hops = len(static["link.hops"]) if "link.hops" in static else static["link.node_slots"] + 1
        return max(self.trials, 1) * static["link.path_slots"] * hops  # per time step: the scan's state

    def __call__(self, values, key):
        p = self.params(values)
        metrics, hops = chain_metrics(p, self.optimizer)
        if self.trials:
            metrics |= supply_metrics(p, key, self.trials, self.supply_horizon_h, self.supply_steps, hops)
        return metrics
