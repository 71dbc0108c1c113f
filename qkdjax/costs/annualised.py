"""Annualised cost of ownership of a QKD network: capital expenditure spread over the equipment's life at a
discount rate (the capital recovery factor), plus the yearly operating costs.

``annual cost = sum(capex) x CRF(r, n) + opex per year``, ``CRF = r (1 + r)^n / ((1 + r)^n - 1)`` (the uniform
series that repays a present value over ``n`` years at rate ``r``: e.g. W. G. Sullivan, E. M. Wicks, C. P.
Koelling, Engineering Economy, 17th ed., Pearson (2018), Ch. 4; ``qkdjax.network.cost``). What is bought: a QKD
terminal pair per link (priced by the link protocol's family), a trusted-node site per trusted node (build and
physical security), a middle station per untrusted relay, a ground station per satellite ground site. What runs
every year: site rent per site with equipment (trusted nodes, relays, ground stations), staff per trusted node,
fibre per km (leased dark fibre, or a wavelength of a lit fibre where the link shares it with classical traffic),
maintenance as a fraction of capex, and one repair bill per failure (the failures a year the Monte Carlo counts,
or the expected number, hours per year / (MTBF + MTTR), without it).

A price set is an input: ``conf/cost/example.yaml`` states where each of its numbers comes from.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import jax.numpy as jnp

from qkdjax.network.cost import annualised_cost
from qkdjax.parameters import NON_NEGATIVE, Cost, Range, number

FAMILIES = ("bb84", "mdi", "twin_field", "entanglement", "cv")  # Protocol.cost_family of the protocols
EUR = "EUR"


class Inventory(NamedTuple):
    """What a network design has, counted for its price: terminal pairs per protocol family (``[families]``, in
    ``FAMILIES`` order), sites with equipment, fibre lengths, failures a year."""

    terminal_pairs: Any
    trusted_nodes: Any
    untrusted_relays: Any
    ground_stations: Any
    dark_fibre_km: Any
    lit_fibre_km: Any
    failures_per_year: Any


class NoCost(Cost):
    """No price set: the study reports no costs."""

    types = ("unpriced",)
    priced: ClassVar[bool] = False


class AnnualisedCost(Cost):
    """Capex annualised by the capital recovery factor, plus opex; every price may be a sweep axis."""

    types = ("annualised",)
    priced: ClassVar[bool] = True

    terminal_pair_bb84_eur: Any = number(EUR, "capex of a prepare-and-measure (decoy BB84) terminal pair", NON_NEGATIVE)
    terminal_pair_mdi_eur: Any = number(
        EUR, "capex of an MDI-QKD transmitter pair (the relay's detectors: untrusted_relay_eur)", NON_NEGATIVE
    )
    terminal_pair_twin_field_eur: Any = number(EUR, "capex of a twin-field transmitter pair with phase stabilisation", NON_NEGATIVE)
    terminal_pair_entanglement_eur: Any = number(EUR, "capex of an entanglement-based (BBM92) source and receiver pair", NON_NEGATIVE)
    terminal_pair_cv_eur: Any = number(EUR, "capex of a CV-QKD transmitter and coherent receiver pair", NON_NEGATIVE)
    trusted_node_eur: Any = number(EUR, "capex of a trusted-node site: build-out and physical security", NON_NEGATIVE)
    untrusted_relay_eur: Any = number(EUR, "capex of an untrusted middle station (detectors, cryostat, rack)", NON_NEGATIVE)
    ground_station_eur: Any = number(EUR, "capex of a satellite ground station (telescope, dome, tracking)", NON_NEGATIVE)
    site_rent_eur_per_year: Any = number("EUR/year", "rent and power of a site with equipment (node, relay, station)", NON_NEGATIVE)
    staff_eur_per_year: Any = number("EUR/year", "staff (operations, security) per trusted node", NON_NEGATIVE)
    dark_fibre_eur_per_km_year: Any = number("EUR/(km year)", "lease of a dark fibre pair", NON_NEGATIVE)
    lit_fibre_eur_per_km_year: Any = number("EUR/(km year)", "lease of a wavelength on a lit fibre", NON_NEGATIVE)
    maintenance_fraction_per_year: Any = number("1/Julian_year", "maintenance contracts as a fraction of capex per year", Range(0.0, 1.0))
    repair_eur: Any = number(EUR, "cost of one repair (call-out, parts)", NON_NEGATIVE)
    lifetime_years: Any = number("Julian_year", "equipment lifetime over which capex is annualised", Range(1.0, 100.0))
    discount_rate: Any = number("1/Julian_year", "discount rate (weighted cost of capital)", Range(0.0, 1.0))

    def capex(self, inventory: Inventory):
        terminals = jnp.stack([getattr(self, f"terminal_pair_{family}_eur") for family in FAMILIES])
        return (
            jnp.sum(inventory.terminal_pairs * terminals)
            + inventory.trusted_nodes * self.trusted_node_eur
            + inventory.untrusted_relays * self.untrusted_relay_eur
            + inventory.ground_stations * self.ground_station_eur
        )

    def opex_per_year(self, inventory: Inventory, capex):
        sites = inventory.trusted_nodes + inventory.untrusted_relays + inventory.ground_stations
        return (
            sites * self.site_rent_eur_per_year
            + inventory.trusted_nodes * self.staff_eur_per_year
            + inventory.dark_fibre_km * self.dark_fibre_eur_per_km_year
            + inventory.lit_fibre_km * self.lit_fibre_eur_per_km_year
            + capex * self.maintenance_fraction_per_year
            + inventory.failures_per_year * self.repair_eur
        )

    def cost_per_year(self, inventory: Inventory):
        """Annualised cost of ownership (EUR per year) of what ``inventory`` counts."""
        capex = self.capex(inventory)
        return annualised_cost(capex, self.opex_per_year(inventory, capex), self.discount_rate, self.lifetime_years)
