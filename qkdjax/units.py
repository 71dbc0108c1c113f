"""CF unit attributes of cube variables and coordinates.

CF asks for ``units`` strings that UDUNITS-2 parses, and other tools (cf-units, MetPy, Panoply) convert with them,
so a ``units`` attribute here always parses to what it means: ``bit/Julian_year`` (not ``bit/a``, which UDUNITS
reads as bit per are). UDUNITS has no unit for four quantities qkdjax uses: decibels of a power ratio (``dB``),
decibels per length (``dB/km``), the fractional power of the turbulence strength Cn2 (``m^(-2/3)``; UDUNITS
reads ``m-2/3`` as a third of m^-2) and money (``EUR``, ``EUR/year``, ...). Those get no ``units`` attribute (no
tool misreads them) and carry their unit in ``NON_UDUNITS_ATTR`` instead. ``units_of`` reads either back for labels.
"""

from __future__ import annotations

from collections.abc import Mapping

NON_UDUNITS = frozenset({"dB", "dB/km", "m^(-2/3)", "EUR", "EUR/year", "EUR/bit", "EUR/(km year)"})
NON_UDUNITS_ATTR = "non_udunits_units"


def cf_attrs(units: str) -> dict[str, str]:
    """The attribute that carries ``units``: ``units`` where UDUNITS-2 parses it, else ``NON_UDUNITS_ATTR``."""
    return {NON_UDUNITS_ATTR if units in NON_UDUNITS else "units": units}


def units_of(attrs: Mapping[str, object], default: str = "1") -> str:
    """The unit of a variable from its attributes (either kind), ``default`` where it has none."""
    return str(attrs.get("units", attrs.get(NON_UDUNITS_ATTR, default)))


ROLE_ATTR = "qkdjax_role"  # attr of a variable or coordinate: what analysis and reports use it for (distance, rate, bound, ...)
