"""Key-relay graphs (qkdjax.network.graph): validation in one line, minimal cuts against a brute-force enumeration
of every vertex subset, and max-flow as the minimum over them against scipy's maximum_flow on random graphs."""

import itertools

import jax
import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow

from qkdjax.config import ConfigError
from qkdjax.network.graph import build_graph, max_flow, minimal_cuts


def random_graph(rng, n):
    """A connected graph: a random spanning tree plus random extra edges (parallel edges allowed)."""
    sites = {f"s{i}": "trusted" for i in range(n)}
    edges = [(f"s{i}", f"s{rng.integers(0, i)}") for i in range(1, n)]
    for _ in range(rng.integers(0, 2 * n)):
        a, b = rng.choice(n, 2, replace=False)
        edges.append((f"s{a}", f"s{b}"))
    return build_graph(sites, edges)


def brute_minimal_cuts(graph, source, sink):
    n = len(graph.sites)
    adjacent = graph.neighbours()

    def connected(members):
        members = set(members)
        start = next(iter(members))
        seen, stack = {start}, [start]
        while stack:
            for other in adjacent[stack.pop()] & members:
                if other not in seen:
                    seen.add(other)
                    stack.append(other)
        return seen == members

    others = [v for v in range(n) if v not in (source, sink)]
    rows = set()
    for size in range(len(others) + 1):
        for chosen in itertools.combinations(others, size):
            side = {source, *chosen}
            rest = set(range(n)) - side
            if connected(side) and connected(rest):
                rows.add(tuple((i in side) != (j in side) for i, j in graph.edges))
    return rows


@pytest.mark.parametrize("seed", range(20))
def test_minimal_cuts_are_every_cut_with_both_sides_connected(seed):
    rng = np.random.default_rng(seed)
    graph = random_graph(rng, int(rng.integers(2, 9)))
    source, sink = (int(v) for v in rng.choice(len(graph.sites), 2, replace=False))
    cuts = minimal_cuts(graph, source, sink)
    assert {tuple(row) for row in cuts} == brute_minimal_cuts(graph, source, sink)
    assert len({tuple(row) for row in cuts}) == len(cuts)  # each once


@pytest.mark.parametrize("seed", range(30))
def test_max_flow_over_minimal_cuts_equals_scipy_maximum_flow(seed):
    rng = np.random.default_rng(100 + seed)
    graph = random_graph(rng, int(rng.integers(2, 12)))
    source, sink = (int(v) for v in rng.choice(len(graph.sites), 2, replace=False))
    rates = rng.integers(0, 1000, size=(8, len(graph.edges)))
    cuts = minimal_cuts(graph, source, sink)
    ours = np.asarray(jax.jit(jax.vmap(lambda r: max_flow(cuts, r)))(rates.astype(float)))
    n = len(graph.sites)
    for rate, flow in zip(rates, ours):
        capacity = np.zeros((n, n), dtype=np.int64)
        for (i, j), r in zip(graph.edges, rate):  # undirected: each way, parallel links add up
            capacity[i, j] += r
            capacity[j, i] += r
        assert flow == maximum_flow(csr_matrix(capacity), source, sink).flow_value


def test_a_chain_of_32_trusted_nodes_has_one_cut_per_hop():
    sites = {"a": "user", **{f"n{i}": "trusted" for i in range(32)}, "b": "user"}
    names = list(sites)
    graph = build_graph(sites, list(itertools.pairwise(names)))
    cuts = minimal_cuts(graph, 0, len(names) - 1)
    assert len(cuts) == 33 and {tuple(row) for row in cuts} == {tuple(row) for row in np.eye(33, dtype=bool)}
    assert float(max_flow(cuts, np.arange(1.0, 34.0))) == 1.0


@pytest.mark.parametrize(
    ("sites", "edges", "message"),
    [
        ({"a": "user", "b": "user"}, [("a", "c")], "link 0 (a - c) names site 'c', which is not one of: a, b"),
        ({"a": "user", "b": "user"}, [("a", "a")], "link 0 joins site 'a' to itself"),
        ({"a": "user", "r": "untrusted_relay"}, [("a", "r")], "site 'r' has kind 'untrusted_relay', not one of"),
    ],
)
def test_bad_graphs_are_one_line_errors(sites, edges, message):
    with pytest.raises(ConfigError) as error:
        build_graph(sites, edges)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_demand_between_unconnected_sites_is_refused():
    graph = build_graph({"a": "user", "b": "user", "c": "trusted"}, [("a", "c")])
    with pytest.raises(ConfigError, match="'a' and 'b' are not connected by any link path"):
        minimal_cuts(graph, 0, 1)
