"""Key-relay graphs of QKD networks: sites that hold key, the links between them, and max-flow as a static cut matrix.

Key travels hop by hop through sites that hold it (user sites, trusted nodes, ground stations), one-time-pad
encrypted over each link's QKD key (M. Peev et al., New J. Phys. 11, 075001 (2009), SECOQC). An untrusted relay
(the middle station of an MDI or twin-field span) holds no key, so it is not a vertex of this graph: its span is one
edge between the two sites at its ends. Each edge carries key at its rate in either direction, so the end-to-end
key rate two user sites can get is the maximum flow between them through the undirected graph (L. R. Ford,
D. R. Fulkerson, Can. J. Math. 8, 399 (1956)), equal to the capacity of a minimum s-t cut (max-flow min-cut).

Inside a jitted Monte Carlo the edge rates change every step (links fail and are repaired), so the flow is taken
as ``min_c sum_e M[c, e] r_e`` over the **minimal** s-t cuts ``c``, enumerated once per graph on the host:
``S`` containing the source and not the sink with both ``S`` and its complement connected. With non-negative
rates every minimum cut contains a minimal one, so the minimum over minimal cuts is the max-flow. A chain of ``n``
sites has ``n - 1`` of them; meshes have more. The enumeration is a reverse search with polynomial delay (each
step yields a cut: a side is grown by one site and closed over what the sink can no longer reach, in the manner of
J. S. Provan, D. R. Shier, Algorithmica 15, 351 (1996)): a 5 x 5 grid's 8742 minimal corner-to-corner cuts take
0.4 s on a 2-core CPU; past ``MAX_CUTS`` cuts it stops with one line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from qkdjax.config import ConfigError

SITE_KINDS = ("user", "trusted", "ground_station")  # the sites that hold key; untrusted relays sit inside edges
MAX_CUTS = 100_000  # minimal cuts of one demand (the static matrix is [cuts, edges])


class Graph(NamedTuple):
    """Sites (names and kinds, in order) and undirected edges as index pairs ``(i, j)``, ``i != j``."""

    sites: tuple[str, ...]
    kinds: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]

    def neighbours(self) -> list[set[int]]:
        adjacent: list[set[int]] = [set() for _ in self.sites]
        for i, j in self.edges:
            adjacent[i].add(j)
            adjacent[j].add(i)
        return adjacent


def build_graph(sites: Mapping[str, str], edges: Sequence[tuple[str, str]], what: str = "link.sites") -> Graph:
    """A validated graph from ``{site: kind}`` and ``[(site, site), ...]``; ConfigError (one line) on an unknown
    kind or site, an edge from a site to itself. Parallel edges are allowed (two links between the same sites)."""
    for name, kind in sites.items():
        if kind not in SITE_KINDS:
            raise ConfigError(
                f"{what}: site {name!r} has kind {kind!r}, not one of: {', '.join(SITE_KINDS)} (untrusted relays sit inside links)"
            )
    index = {name: i for i, name in enumerate(sites)}
    pairs = []
    for number, (a, b) in enumerate(edges):
        for end in (a, b):
            if end not in index:
                raise ConfigError(f"{what}: link {number} ({a} - {b}) names site {end!r}, which is not one of: {', '.join(sites)}")
        if a == b:
            raise ConfigError(f"{what}: link {number} joins site {a!r} to itself")
        pairs.append((index[a], index[b]))
    return Graph(tuple(sites), tuple(sites.values()), tuple(pairs))


def _reached(start: int, adjacent: list[set[int]], within: frozenset[int] | None = None) -> frozenset[int]:
    """The sites reachable from ``start`` through links, staying ``within`` the given sites (default: all)."""
    seen, stack = {start}, [start]
    while stack:
        for other in adjacent[stack.pop()]:
            if other not in seen and (within is None or other in within):
                seen.add(other)
                stack.append(other)
    return frozenset(seen)


def minimal_cuts(graph: Graph, source: int, sink: int) -> np.ndarray:
    """The minimal ``source``-``sink`` cuts as a boolean matrix ``[cuts, edges]`` (True: the edge crosses the cut),
    in a deterministic order. ConfigError if the two sites are not connected, or past ``MAX_CUTS`` cuts."""
    adjacent = graph.neighbours()
    everyone = _reached(source, adjacent)  # sites apart from the source's component cross no cut
    if sink not in everyone:
        raise ConfigError(f"sites {graph.sites[source]!r} and {graph.sites[sink]!r} are not connected by any link path")

    def closed(side: frozenset[int]) -> frozenset[int]:
        """``side`` with every site the sink cannot reach without crossing it: the side of a minimal cut."""
        return everyone - _reached(sink, adjacent, everyone - side)

    # Reverse search over the sides of minimal cuts (both sides connected): grow a side by one frontier site and
    # close it, excluding from later branches the frontier sites an earlier branch took; a closed side holding an
    # excluded site lies in that earlier branch, so every side is reached once and every step yields a cut.
    sides: list[frozenset[int]] = []
    stack: list[tuple[frozenset[int], frozenset[int]]] = [(closed(frozenset({source})), frozenset())]
    while stack:
        side, excluded = stack.pop()
        sides.append(side)
        if len(sides) > MAX_CUTS:
            raise ConfigError(
                f"the network has more than {MAX_CUTS} minimal cuts between {graph.sites[source]!r} and {graph.sites[sink]!r}"
            )
        frontier = sorted(set().union(*(adjacent[v] for v in side)) - side - excluded - {sink})
        for k, site in enumerate(frontier):
            taken = excluded | set(frontier[:k])
            grown = closed(side | {site})
            if not grown & taken:
                stack.append((grown, taken))
    ends = np.asarray(graph.edges, dtype=int).reshape(-1, 2)
    matrix = np.array([[(i in side) != (j in side) for i, j in ends] for side in sides], dtype=bool).reshape(len(sides), len(ends))
    return matrix[np.lexsort(matrix.T[::-1])]


def demand_cuts(graph: Graph, relays: Sequence[bool], source: int, sink: int) -> np.ndarray:
    """``minimal_cuts`` of a demand whose key may pass only through the sites that ``relays`` (and its own ends):
    the cuts of the graph without the other sites, as a ``[cuts, edges]`` matrix over all of ``graph``'s edges
    (an edge at a site that may not relay crosses none)."""
    keep = [i for i in range(len(graph.sites)) if relays[i] or i in (source, sink)]
    index = {site: k for k, site in enumerate(keep)}
    kept_edges = [e for e, (i, j) in enumerate(graph.edges) if i in index and j in index]
    sub = Graph(
        tuple(graph.sites[i] for i in keep),
        tuple(graph.kinds[i] for i in keep),
        tuple((index[graph.edges[e][0]], index[graph.edges[e][1]]) for e in kept_edges),
    )
    if index[sink] not in _reached(index[source], sub.neighbours()):
        raise ConfigError(
            f"sites {graph.sites[source]!r} and {graph.sites[sink]!r} are not connected by any link path through sites that relay "
            "(trusted nodes, ground stations, user sites with relays: true)"
        )
    sub_cuts = minimal_cuts(sub, index[source], index[sink])
    cuts = np.zeros((len(sub_cuts), len(graph.edges)), dtype=bool)
    cuts[:, kept_edges] = sub_cuts
    return cuts


def max_flow(cuts, rates):
    """End-to-end key rate through the graph: ``min`` over the minimal cuts of the rates of their edges
    (``rates[..., edges]``, non-negative; jit/vmap-safe)."""
    return jnp.min(jnp.asarray(rates) @ jnp.asarray(cuts, dtype=jnp.float64).T, axis=-1)
