"""Cheapest key-relay network designs (qkdjax.network.design) against a brute force over every design of small random
instances, each checked with an independent flow computation (scipy's maximum_flow for one demand, a dense LP for
two, every single-span failure re-checked under protection); one-line validation errors; the capital recovery
factor (qkdjax.network.cost) at r = 0, near it, at a textbook value and under jax."""

import itertools
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linprog
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow

from qkdjax.config import ConfigError
from qkdjax.network.cost import annualised_cost, capital_recovery_factor
from qkdjax.network.design import Demand, Option, Problem, Site, Span, cheapest_designs, problem_from_config

STEP = 500  # rates and demands are multiples of 1000 bit/s, protected demands of 500: integer capacities in STEPs


def random_problem(rng, protection=None):
    n_sites = int(rng.integers(4, 6 if protection else 7))  # protected: denser, more often feasible
    n_users = int(rng.integers(2, min(4, n_sites - 1) + 1))
    sites = [Site(f"u{i}", "user", 0.0, bool(rng.random() < 0.3)) for i in range(n_users)]
    sites += [Site(f"t{i}", "trusted", float(rng.uniform(1, 10))) for i in range(n_sites - n_users)]
    names = [s.name for s in sites]
    spans = []
    for _ in range(int(rng.integers(5, 9))):
        a, b = rng.choice(n_sites, 2, replace=False)
        options = tuple(
            Option(f"o{k}", 1000.0 * int(rng.choice([0, 1, 2, 3, 4, 6], p=[0.05, 0.25, 0.25, 0.2, 0.15, 0.1])), float(rng.uniform(1, 10)))
            for k in range(int(rng.integers(1, 3)))
        )
        spans.append(Span(names[a], names[b], options))
    demands = []
    for _ in range(int(rng.integers(1, 3))):
        a, b = rng.choice(n_users, 2, replace=False)
        demands.append(Demand(names[a], names[b], 1000.0 * int(rng.integers(1, 4))))
    fraction = float(rng.choice([0.5, 1.0]))
    return Problem(tuple(sites), tuple(spans), tuple(demands), protection, fraction)


def every_design(problem):
    """Every (opened trusted sites, option per span or None) with no span built to a closed site, and its cost."""
    trusted = [s for s in problem.sites if s.kind == "trusted"]
    for opened in itertools.product((False, True), repeat=len(trusted)):
        is_open = {s.name: s.kind == "user" for s in problem.sites} | {s.name: o for s, o in zip(trusted, opened)}
        choices = [[None, *range(len(s.options))] if is_open[s.a] and is_open[s.b] else [None] for s in problem.spans]
        site_cost = sum(s.annual_cost for s, o in zip(trusted, opened) if o)
        for chosen in itertools.product(*choices):
            cost = site_cost + sum(s.options[k].annual_cost for s, k in zip(problem.spans, chosen) if k is not None)
            yield cost, frozenset(s.name for s, o in zip(trusted, opened) if o), chosen


def relays(problem, opened, demand):
    return {
        s.name
        for s in problem.sites
        if (s.kind == "trusted" and s.name in opened) or (s.kind == "user" and (s.relays or s.name in demand[:2]))
    }


def usable_spans(problem, opened, rates, demand, failed):
    """``(span, a, b, rate)`` of the built spans (``rates[e]`` not None) that may carry ``demand``'s key."""
    ok = relays(problem, opened, demand)
    return [
        (e, s.a, s.b, r) for e, (s, r) in enumerate(zip(problem.spans, rates)) if r is not None and e != failed and s.a in ok and s.b in ok
    ]


def one_demand_served(problem, opened, rates, demand, need, failed):
    """scipy's maximum_flow on integer capacities (in STEPs), both directions of each span at its rate."""
    index = {s.name: i for i, s in enumerate(problem.sites)}
    rows, cols, caps = [], [], []
    for _, a, b, rate in usable_spans(problem, opened, rates, demand, failed):
        rows += [index[a], index[b]]
        cols += [index[b], index[a]]
        caps += [round(rate / STEP)] * 2
    n = len(problem.sites)
    graph = csr_matrix((np.array(caps, dtype=np.int32), (rows, cols)), shape=(n, n))
    graph.sum_duplicates()
    return maximum_flow(graph, index[demand.a], index[demand.b]).flow_value >= round(need / STEP)


def demands_served(problem, opened, rates, needs, failed=None):
    """All demands at once: one demand by max-flow, two by a dense multicommodity LP (after each alone passes)."""
    if not all(one_demand_served(problem, opened, rates, d, need, failed) for d, need in zip(problem.demands, needs)):
        return False
    if len(problem.demands) == 1:
        return True
    names = [s.name for s in problem.sites]
    arcs = [
        (j, e, (a, b) if way == 0 else (b, a))
        for j, d in enumerate(problem.demands)
        for e, a, b, _ in usable_spans(problem, opened, rates, d, failed)
        for way in (0, 1)
    ]
    a_eq = np.zeros((len(problem.demands) * len(names), len(arcs)))
    b_eq = np.zeros(len(problem.demands) * len(names))
    for col, (j, _, (tail, head)) in enumerate(arcs):
        a_eq[j * len(names) + names.index(tail), col] += 1
        a_eq[j * len(names) + names.index(head), col] -= 1
    for j, (d, need) in enumerate(zip(problem.demands, needs)):
        b_eq[j * len(names) + names.index(d.a)] = need
        b_eq[j * len(names) + names.index(d.b)] = -need
    spans = sorted({e for _, e, _ in arcs})
    a_ub = np.array([[1.0 if e == span else 0.0 for _, e, _ in arcs] for span in spans]).reshape(len(spans), len(arcs))
    b_ub = np.array([rates[e] for e in spans])
    result = linprog(np.zeros(len(arcs)), A_ub=a_ub if spans else None, b_ub=b_ub if spans else None, A_eq=a_eq, b_eq=b_eq, method="highs")
    return result.status == 0


def feasible(problem, opened, rates):
    """The demands met by spans of ``rates`` (None: not built) and, under protection, after any one of them fails."""
    bps = [d.bps for d in problem.demands]
    if not demands_served(problem, opened, rates, bps):
        return False
    if problem.protection == "single_span":
        protected = [problem.protected_fraction * b for b in bps]
        return all(demands_served(problem, opened, rates, protected, failed=e) for e, r in enumerate(rates) if r is not None)
    return True


def brute_force(problem, count=2):
    """The ``count`` cheapest feasible designs, checking designs in order of cost. Feasibility only grows with
    capacity (also under protection: a span added brings a failure that leaves the design without it), so if every
    span at its fastest option and every site open fails, every design does."""
    everything = {s.name for s in problem.sites}
    if not feasible(problem, everything, [max(o.key_rate_bps for o in s.options) for s in problem.spans]):
        return []
    found = []
    for cost, opened, chosen in sorted(every_design(problem), key=lambda design: design[0]):
        rates = [None if k is None else s.options[k].key_rate_bps for s, k in zip(problem.spans, chosen)]
        if feasible(problem, opened, rates):
            found.append((cost, opened, chosen))
            if len(found) == count:
                break
    return found


def key(design, problem):
    chosen = [None] * len(problem.spans)
    for built in design.spans:
        chosen[built.span] = [o.name for o in problem.spans[built.span].options].index(built.option)
    return frozenset(design.sites), tuple(chosen)


def check_flows(design, problem):
    """The reported intact-network flows: conserved, each demand delivered, every span within its rate."""
    load = np.zeros(len(design.spans))
    for demand, flows, routed in zip(problem.demands, design.flow_bps, design.routed_bps):
        net = {s.name: 0.0 for s in problem.sites}
        for built, f in zip(design.spans, flows):
            net[built.a] += f
            net[built.b] -= f
        expected = {s.name: 0.0 for s in problem.sites} | {demand.a: demand.bps, demand.b: -demand.bps}
        np.testing.assert_allclose([net[n] for n in expected], list(expected.values()), atol=1e-6 * demand.bps + 1e-9)
        assert routed == demand.bps
        load += np.abs(flows)
    assert np.all(load <= np.array([b.key_rate_bps for b in design.spans]) * (1 + 1e-7) + 1e-6)
    assert all(m >= d.bps * (1 - 1e-9) for m, d in zip(design.max_rate_bps, problem.demands))


@pytest.mark.parametrize("protection", [None, "single_span"])
@pytest.mark.parametrize("seed", range(30))
def test_cheapest_and_runner_up_match_brute_force(seed, protection):
    problem = random_problem(np.random.default_rng([seed, protection is None]), protection)
    expected = brute_force(problem)
    if not expected:
        with pytest.raises(ConfigError, match=r"^demands") as error:
            cheapest_designs(problem)
        assert "\n" not in str(error.value)
        return
    designs = cheapest_designs(problem)
    assert len(designs) == len(expected)
    for design, (cost, opened, chosen) in zip(designs, expected):
        assert design.status == "optimal"
        np.testing.assert_allclose(design.annual_cost, cost, rtol=1e-9)
        assert key(design, problem) == (opened, chosen)  # random costs: the cheapest designs are unique
        check_flows(design, problem)
    if len(designs) == 2:
        assert key(designs[0], problem) != key(designs[1], problem)
        assert designs[1].annual_cost >= designs[0].annual_cost


def test_runners_up_are_distinct_never_cheaper_and_run_out():
    """Six designs serve A - B: the relay, the direct span, and the direct span with N opened and none, one or both of
    its spans (useless, but distinct designs): asked for ten, six come back, in order of cost."""
    problem = Problem(
        sites=(Site("A"), Site("B"), Site("N", "trusted", 5.0)),
        spans=(
            Span("A", "B", (Option("tf", 1e3, 20.0),)),
            Span("A", "N", (Option("bb84", 2e3, 3.0),)),
            Span("N", "B", (Option("bb84", 2e3, 3.0),)),
        ),
        demands=(Demand("A", "B", 1e3),),
    )
    designs = cheapest_designs(problem, count=10)
    assert [d.annual_cost for d in designs] == [11.0, 20.0, 25.0, 28.0, 28.0, 31.0]
    assert len({key(d, problem) for d in designs}) == 6
    assert designs[0].sites == ("N",) and designs[0].max_rate_bps == (2e3,)
    assert designs[1].sites == () and [b.option for b in designs[1].spans] == ["tf"]
    assert designs[2].sites == ("N",) and designs[2].max_rate_bps == (1e3,) and designs[5].max_rate_bps == (3e3,)
    assert len(cheapest_designs(problem, count=1)) == 1
    # Under protection only the design with both routes survives the failure of any one of its spans.
    for fraction in (1.0, 0.5):
        protected = Problem(problem.sites, problem.spans, problem.demands, "single_span", fraction)
        assert [d.annual_cost for d in cheapest_designs(protected, count=3)] == [31.0]


def test_zero_demands_and_nothing_to_choose():
    (only,) = cheapest_designs(Problem((Site("A"), Site("B")), (), (Demand("A", "B", 0.0),)), count=3)
    assert only.annual_cost == 0.0 and only.spans == () and only.status == "optimal"
    free = Problem(
        (Site("A"), Site("B"), Site("N", "trusted", 1.0)),
        (Span("A", "B", (Option("x", 0.0, 0.0),)),),
        (Demand("A", "B", 0.0),),
        "single_span",
    )
    designs = cheapest_designs(free, count=5)
    assert sorted((d.annual_cost, d.sites, len(d.spans)) for d in designs) == [
        (0.0, (), 0),
        (0.0, (), 1),
        (1.0, ("N",), 0),
        (1.0, ("N",), 1),
    ]


def test_user_sites_relay_only_when_flagged():
    spans = (Span("A", "C", (Option("x", 1e3, 1.0),)), Span("C", "B", (Option("x", 1e3, 1.0),)), Span("A", "B", (Option("y", 1e3, 9.0),)))
    demand = (Demand("A", "B", 1e3),)
    closed = Problem((Site("A"), Site("B"), Site("C")), spans, demand)
    assert [b.span for b in cheapest_designs(closed, count=1)[0].spans] == [2]
    relaying = Problem((Site("A"), Site("B"), Site("C", relays=True)), spans, demand)
    assert [b.span for b in cheapest_designs(relaying, count=1)[0].spans] == [0, 1]


def test_problem_from_config_reads_the_yaml_shapes():
    config = {
        "sites": {"A": "user", "B": {"kind": "user", "relays": True}, "N1": {"kind": "trusted", "annual_cost": 50000}},
        "spans": [
            {
                "a": "A",
                "b": "N1",
                "options": [
                    {"name": "bb84", "key_rate_bps": "2e4", "annual_cost": 30000},
                    {"name": "tf_sns", "key_rate_bps": 5e4, "annual_cost": 80000},
                ],
            },
            {"a": "N1", "b": "B", "options": [{"name": "bb84", "key_rate_bps": 2e4, "annual_cost": 30000}]},
        ],
        "demands": [{"a": "A", "b": "B", "bps": 1e4}],
    }
    problem = problem_from_config(config)
    assert problem.sites == (Site("A"), Site("B", relays=True), Site("N1", "trusted", 50000.0))
    assert problem.spans[0].options[0] == Option("bb84", 2e4, 30000.0) and problem.protection is None
    (design,) = cheapest_designs(problem, count=1)
    assert design.annual_cost == 110000.0 and design.sites == ("N1",) and design.flow_bps == ((1e4, 1e4),)
    with pytest.raises(ConfigError, match=r"^spans\[1\]\.colour: unknown key; allowed: a, b, options$"):
        problem_from_config({**config, "spans": [config["spans"][0], {**config["spans"][1], "colour": "red"}]})
    with pytest.raises(ConfigError, match=r"^demands\[0\]\.bps: 'lots', must be a finite number >= 0$"):
        problem_from_config({**config, "demands": [{"a": "A", "b": "B", "bps": "lots"}]})


def test_numbers_of_any_scalar_type_become_floats():
    problem = Problem(
        (Site("A"), Site("B"), Site("N", "trusted", np.float32(2.0), np.bool_(True))),
        (Span("A", "N", (Option("x", jnp.array(2e3), np.int64(3)),)), Span("N", "B", (Option("x", 2000, np.array(3.0)),))),
        (Demand("A", "B", jnp.float64(1e3)),),
        protected_fraction=np.float64(0.5),
    )
    numbers = [problem.sites[2].annual_cost, *(x for s in problem.spans for o in s.options for x in o[1:]), problem.demands[0].bps]
    assert all(type(x) is float for x in [*numbers, problem.protected_fraction]) and problem.sites[2].relays is True
    assert cheapest_designs(problem, count=1)[0].annual_cost == 8.0


def test_a_solve_cut_short_by_the_time_limit_says_so():
    """A protected ring of 40 sites with 20 chords and 4 demands (about 12 s to optimality on 2 cores) given 0.5 s:
    the best design so far and its gap, or, where none was found, one line."""
    rng = np.random.default_rng(0)
    sites = [Site(f"u{i}", "user", relays=True) for i in range(8)] + [Site(f"t{i}", "trusted", float(rng.uniform(3, 8))) for i in range(32)]
    ring = [(i, (i + 1) % 40) for i in range(40)] + [(i, (i + int(rng.integers(2, 20))) % 40) for i in range(0, 40, 2)]
    options = [(Option("x", 2e3, float(rng.uniform(1, 5))), Option("y", 4e3, float(rng.uniform(4, 9)))) for _ in ring]
    spans = tuple(Span(sites[i].name, sites[j].name, o) for (i, j), o in zip(ring, options))
    problem = Problem(tuple(sites), spans, tuple(Demand(f"u{k}", f"u{k + 4}", 1e3) for k in range(4)), "single_span", 1.0)
    try:
        designs = cheapest_designs(problem, count=1, time_limit_s=0.5)
    except RuntimeError as error:
        assert str(error).startswith("no design found within time_limit_s=0.5") and "\n" not in str(error)
    else:
        assert designs[0].status == "time_limit" and designs[0].mip_gap > 0


SITES = (Site("A"), Site("B"), Site("N", "trusted", 1.0))
SPANS = (Span("A", "N", (Option("bb84", 2e3, 3.0),)), Span("N", "B", (Option("bb84", 2e3, 3.0),)))
DEMANDS = (Demand("A", "B", 1e3),)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sites": (*SITES, Site("A"))}, r"sites\[3\]\.name: 'A' appears twice; site names must be unique"),
        ({"sites": (*SITES, Site("R", "relay"))}, r"sites\[3\]\.kind: 'relay' \(site 'R'\), not one of: user, trusted"),
        (
            {"sites": (Site("A"), Site("B"), Site("N", "trusted", -1.0))},
            r"sites\[2\]\.annual_cost \(site 'N'\): -1.0, must be a finite number >= 0",
        ),
        (
            {"sites": (Site("A", "user", 5.0), *SITES[1:])},
            r"sites\[0\]\.annual_cost: 5.0 for user site 'A'; user sites are always present and cost 0",
        ),
        ({"spans": (*SPANS, Span("A", "X", (Option("bb84", 1.0, 1.0),)))}, r"spans\[2\]\.b: 'X' is not a site; sites are: A, B, N"),
        (
            {"spans": (*SPANS, Span("N", "N", (Option("bb84", 1.0, 1.0),)))},
            r"spans\[2\]: joins site 'N' to itself; a span joins two different sites",
        ),
        ({"spans": (*SPANS, Span("A", "B", ()))}, r"spans\[2\]\.options: empty \(span A - B\); give at least one option"),
        (
            {"spans": (*SPANS, Span("A", "B", (Option("tf", -1.0, 1.0),)))},
            r"spans\[2\]\.options\[0\]\.key_rate_bps: -1.0, must be a finite number >= 0",
        ),
        (
            {"spans": (*SPANS, Span("A", "B", (Option("tf", 1.0, float("nan")),)))},
            r"spans\[2\]\.options\[0\]\.annual_cost: nan, must be a finite number",
        ),
        (
            {"spans": (*SPANS, Span("A", "B", (Option("tf", 1.0, 1.0), Option("tf", 2.0, 2.0))))},
            r"spans\[2\]\.options\[1\]\.name: 'tf', must be a non-empty string unlike the span's other option names",
        ),
        ({"demands": (Demand("A", "Z", 1.0),)}, r"demands\[0\]\.b: 'Z' is not a site; sites are: A, B, N"),
        ({"demands": (Demand("A", "N", 1.0),)}, r"demands\[0\]\.b: 'N' is a trusted site; demands join user sites"),
        ({"demands": (Demand("B", "B", 1.0),)}, r"demands\[0\]: joins site 'B' to itself; a demand joins two different user sites"),
        ({"demands": (Demand("A", "B", -5.0),)}, r"demands\[0\]\.bps: -5.0, must be a finite number >= 0"),
        ({"demands": (Demand("A", "B", "1e3"),)}, r"demands\[0\]\.bps: '1e3', must be a finite number >= 0"),
        ({"protection": "double_span"}, r"protection: 'double_span', not one of: None, 'single_span'"),
        ({"protected_fraction": 1.5}, r"protected_fraction: 1.5, must be a number in \(0, 1\]"),
    ],
)
def test_bad_problems_are_one_line_errors(change, message):
    fields = {"sites": SITES, "spans": SPANS, "demands": DEMANDS} | change
    with pytest.raises(ConfigError, match="^" + message) as error:
        Problem(**fields)
    assert "\n" not in str(error.value) and isinstance(error.value, ValueError)


@pytest.mark.parametrize(
    ("problem", "kwargs", "message"),
    [
        (
            Problem(SITES, SPANS, (Demand("A", "B", 3e3),)),
            {},
            (
                r"demands\[0\] \(A - B, 3000 bps\): no candidate design serves it; with every span at its fastest option and every trusted site open "
                r"it gets at most 2000 bps"
            ),
        ),
        (
            Problem(SITES, SPANS, (Demand("A", "B", 1e3), Demand("A", "B", 1.5e3))),
            {},
            r"demands: no candidate design serves all 2 demands at once \(each can be served alone\)",
        ),
        (
            Problem(SITES, SPANS, DEMANDS, "single_span", 0.1),
            {},
            (
                r"demands\[0\] \(A - B, 1000 bps\): no candidate design protects it; with spans\[0\] \(A - N\) failed it gets at most 0 bps, "
                r"below protected_fraction \* bps = 100 bps"
            ),
        ),
        (Problem(SITES, SPANS, DEMANDS), {"count": 0}, r"count: 0, must be an integer >= 1"),
        (Problem(SITES, SPANS, DEMANDS), {"time_limit_s": -1.0}, r"time_limit_s: -1.0, must be a number > 0"),
    ],
)
def test_unservable_demands_and_bad_arguments_are_one_line_errors(problem, kwargs, message):
    with pytest.raises(ConfigError, match="^" + message) as error:
        cheapest_designs(problem, **kwargs)
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------------------------------------------- cost


def test_capital_recovery_factor_limits_and_textbook_value():
    n = np.array([1.0, 5.0, 10.0, 30.0])
    np.testing.assert_array_equal(capital_recovery_factor(0.0, n), 1 / n)
    np.testing.assert_allclose(capital_recovery_factor(1e-12, n), 1 / n + 1e-12 * (n + 1) / (2 * n), rtol=1e-15)
    np.testing.assert_allclose(capital_recovery_factor(1e-12, n), capital_recovery_factor(0.0, n), rtol=1e-10)  # differ by r (n + 1) / 2
    # Against exact rational arithmetic, on both sides of the switch to the expansion (|r n| = 1e-8) and beyond.
    for r in (1e-15, 1e-12, 0.999e-9, 1.001e-9, 1e-6, 1e-3, 0.05, 0.3, 2.0):
        for n in (1, 10, 30):
            growth = (1 + Fraction(r)) ** n
            exact = Fraction(r) * growth / (growth - 1)
            assert capital_recovery_factor(r, n) == pytest.approx(float(exact), rel=4e-16), (r, n)
    np.testing.assert_allclose(capital_recovery_factor(0.05, 10), 0.1295045750, rtol=1e-9)  # (A/P, 5 %, 10) = 0.12950
    assert capital_recovery_factor(0.05, 1) == pytest.approx(1.05)
    np.testing.assert_allclose(annualised_cost(1e6, 2e4, 0.05, 10), 1e6 * 0.1295045750 + 2e4, rtol=1e-9)


def test_capital_recovery_factor_is_monotone():
    r = np.concatenate([[0.0], np.logspace(-14, 0, 200)])
    assert np.all(np.diff(capital_recovery_factor(r, 20.0)) > 0)  # dearer money, dearer annuity
    n = np.arange(1, 60, dtype=float)
    assert np.all(np.diff(capital_recovery_factor(0.07, n)) < 0)  # longer life, smaller payment
    assert np.all(capital_recovery_factor(r, 20.0) >= 1 / 20.0)


def test_capital_recovery_factor_under_jax():
    crf = jax.jit(capital_recovery_factor)
    values = crf(jnp.array([0.0, 1e-12, 0.05]), 10.0)
    assert isinstance(values, jax.Array) and values.dtype == jnp.float64
    np.testing.assert_allclose(values, capital_recovery_factor(np.array([0.0, 1e-12, 0.05]), 10.0), rtol=1e-14)
    slope = jax.grad(capital_recovery_factor)(jnp.array(0.0), 10.0)
    np.testing.assert_allclose(slope, 11 / 20, rtol=1e-12)  # d CRF / dr at 0 is (n + 1) / (2 n)
    np.testing.assert_allclose(jax.grad(capital_recovery_factor)(jnp.array(0.05), 10.0), central_difference(0.05, 10.0), rtol=1e-6)
    assert jnp.isfinite(jax.vmap(annualised_cost, in_axes=(None, None, 0, None))(1e6, 0.0, jnp.array([0.0, 0.05]), 10.0)).all()


def central_difference(r, n, h=1e-6):
    return (capital_recovery_factor(r + h, n) - capital_recovery_factor(r - h, n)) / (2 * h)
