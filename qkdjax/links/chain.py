"""Trusted-node chains: fibre hops in series joined at trusted nodes (key relay), with the reliability and
key-supply figures of ``qkdjax.network.availability``.

A hop is a QKD link of the study's protocol: one fibre span for a point-to-point protocol (BB84), or, for a
middle-station protocol (``protocol.arms == 2``: MDI, twin-field), the same span with an untrusted relay in its
middle. So a twin-field corridor with no trusted node is one span through one untrusted relay.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import jax.numpy as jnp

from qkdjax.links.fibre import FibreLink, MidpointFibre
from qkdjax.parameters import MTBF, NON_NEGATIVE, POSITIVE, Link, Range, derived, number


def hop_span(distance_km, attenuation_db_per_km, extra_loss_db, arms: int) -> FibreLink | MidpointFibre:
    """One hop's link: a fibre span (``arms == 1``), or the span to and from an untrusted relay in its middle
    (``arms == 2``), each arm with half the hop's lumped extra loss (symmetric, as twin-field QKD needs)."""
    if arms == 1:
        return FibreLink(distance_km=distance_km, attenuation_db_per_km=attenuation_db_per_km, extra_loss_db=extra_loss_db)
    return MidpointFibre(
        distance_km=distance_km,
        relay_fraction=0.5,
        attenuation_db_per_km=attenuation_db_per_km,
        alice_extra_loss_db=extra_loss_db / 2.0,
        bob_extra_loss_db=extra_loss_db / 2.0,
    )


def most(numeric, path: str) -> int:
    """The largest value of a count the grid sweeps: the slots its simulation needs."""
    return int(numeric[path].max())


def hops_field(long_name: str) -> Any:
    """A list of hops, each a fibre link with optional detector/protocol overrides: static (it shapes the study)."""
    return dataclasses.field(metadata={"static": True, "long_name": long_name, "hops": FibreLink})


class KeySupply(Link):
    """Reliability of hops and trusted nodes, key buffers and the application's demand (qkdjax.network). A hop's
    reliability covers its devices, its untrusted relay included."""

    arms: ClassVar[int | None] = None  # any: each hop is a link of the protocol's arms (``hop_span``)

    paths: Any = number("1", "disjoint parallel paths between the user sites", Range(1.0, math.inf, integer=True), role="option")
    path_slots: Any = derived(
        "paths simulated (the grid's most link.paths; fewer are masked out)", lambda static, numeric: most(numeric, "link.paths")
    )
    hop_mtbf_h: Any = number("h", "mean time between failures of a hop", MTBF)
    hop_mttr_h: Any = number("h", "mean time to repair a hop", POSITIVE)
    node_mtbf_h: Any = number("h", "mean time between failures of a trusted node", MTBF)
    node_mttr_h: Any = number("h", "mean time to repair a trusted node", POSITIVE)
    failure_shape: Any = number("1", "Weibull shape of the times to failure (1: exponential)", Range(0.2, 10.0))
    repair_log_sigma: Any = number("1", "log-sd of lognormal repair times (0: exponential)", Range(0.0, 3.0))
    buffer_bits: Any = number("bit", "key buffer of each hop", NON_NEGATIVE)
    store_bits: Any = number("bit", "end-to-end key store at the user sites", NON_NEGATIVE)
    demand_bps: Any = number("bit/s", "end-to-end key demand of the applications", NON_NEGATIVE, role="demand")

    @classmethod
    def scenario(cls, static):
        return "chain"


class TrustedNodeChain(KeySupply):
    """Fibre hops in series joined at trusted nodes, with key relay; each hop may override detector and protocol
    values of the study (e.g. a hop with other detectors)."""

    types = ("trusted_node",)
    hops: Any = hops_field("hops of the chain")

    def hop_slots(self, hop_key_rate, arms: int):
        """``hop_key_rate(hop_link, overrides)`` of every hop [H] (``arms``: the protocol's), and which slots hold
        a hop (all)."""
        per_hop = []
        for pairs in self.hops:
            values = dict(pairs)
            fibre = (values[f"link.{name}"] for name in ("distance_km", "attenuation_db_per_km", "extra_loss_db"))
            per_hop.append(hop_key_rate(hop_span(*fibre, arms), pairs))
        return {k: jnp.stack([h[k] for h in per_hop]) for k in per_hop[0]}, jnp.ones(len(per_hop), bool)


class Corridor(KeySupply):
    """A fibre corridor cut into equal hops by ``trusted_nodes`` evenly spaced trusted nodes."""

    types = ("corridor",)
    total_length_km: Any = number("km", "corridor length", NON_NEGATIVE, role="distance")
    trusted_nodes: Any = number("1", "trusted nodes along the corridor", Range(0.0, math.inf, integer=True), role="option")
    node_slots: Any = derived(
        "trusted-node slots simulated (the grid's most link.trusted_nodes; fewer are masked out)",
        lambda static, numeric: most(numeric, "link.trusted_nodes"),
    )
    attenuation_db_per_km: Any = number("dB/km", "fibre attenuation", NON_NEGATIVE)
    extra_loss_db: Any = number("dB", "extra lumped loss per hop", NON_NEGATIVE)

    def hop_slots(self, hop_key_rate, arms: int):
        """The equal hops' ``hop_key_rate`` in every hop slot [``node_slots`` + 1] (``arms``: the protocol's),
        and which slots hold a hop."""
        hops = self.trusted_nodes + 1.0
        one = hop_key_rate(hop_span(self.total_length_km / hops, self.attenuation_db_per_km, self.extra_loss_db, arms), ())
        slots = self.node_slots + 1
        return {k: jnp.full(slots, v) for k, v in one.items()}, jnp.arange(slots) < hops
