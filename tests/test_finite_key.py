"""Finite-key decoy BB84 (Lim et al., PRA 89, 022307 (2014)) and the Monte Carlo of block-to-block fluctuations."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from conftest import reference, run_cli
from scipy import stats

import qkdjax
from qkdjax.config import ConfigError
from qkdjax.detectors.threshold import ThresholdDetector
from qkdjax.montecarlo.fluctuations import binomial_quantile, sample_multinomial
from qkdjax.montecarlo.uniforms import stream_uniforms
from qkdjax.physics.detector import click_and_error_probs
from qkdjax.protocols.bb84_decoy import BB84Decoy
from qkdjax.protocols.bb84_finite import expected_block_counts, finite_key

LIM_DETECTOR = ThresholdDetector(efficiency=0.1, dark_count_prob=6e-7, afterpulse_prob=0.04, dead_time_ns=0.0, misalignment=0.005)


def lim_block(distance_km, block_size, q_x, p_mu1, p_mu2, mu1, mu2, mu3, kappa=1e-15):
    """Key of the Lim 2014 Fig. 1 link with the expected counts of one block."""
    protocol = BB84Decoy(
        decoy="vacuum_weak", p_key_basis=q_x, ec_efficiency=1.16, block_size=block_size, eps_sec=None,
        eps_sec_per_key_bit=kappa, eps_cor=1e-15, qber_abort=0.5,
    )  # fmt: skip
    intensity = jnp.array([mu1, mu2, mu3])
    probs = jnp.array([p_mu1, p_mu2, 1.0 - p_mu1 - p_mu2])
    eta = 0.1 * 10 ** (-0.2 * distance_km / 10)
    gain, error_gain = click_and_error_probs(-jnp.expm1(-eta * intensity), LIM_DETECTOR)
    counts, pulses = expected_block_counts(protocol, probs, gain, error_gain)
    return finite_key(counts, intensity, probs, protocol), pulses, (intensity, probs, gain, error_gain)


def check_vector():
    vector = reference("lim_2014")["independent_check_vector"]
    inputs = dict(vector["inputs"])
    args = [inputs.pop(k) for k in ("distance_km", "n_X")]
    return args, inputs, vector["outputs"]


def test_estimator_reproduces_the_independent_check_vector():
    (distance, n_x), params, expected = check_vector()
    key, pulses, _ = lim_block(distance, n_x, **params)
    found = {
        "s_X0": key.vacuum_detections_x,
        "s_X1": key.single_photon_detections_x,
        "phase_error_upper": key.phase_error,
        "qber_X": key.qber_x,
        "eps_sec": key.eps_sec,
        "key_length_ell": key.key_length,
        "total_pulses_N": pulses,
        "key_rate_per_pulse": key.key_length / pulses,
    }
    for name, value in found.items():
        assert float(value) == pytest.approx(expected[name], rel=1e-3), name


@pytest.mark.parametrize(("p_mu1", "p_mu2"), [(1.0, 0.0), (0.6, 0.0), (0.5, 0.5)])
def test_an_intensity_never_sent_gives_no_key_and_no_nan(p_mu1, p_mu2):
    """Without decoy (or weak) counts Lim's bounds n_k^-/+ = e^k / p_k (n_k -/+ delta) are -/+ infinite: s_0, s_1 >= 0
    is all that is known, so there is no key, and neither the values nor the gradients are NaN."""
    (_, n_x), params, _ = check_vector()
    params = {**params, "p_mu1": p_mu1, "p_mu2": p_mu2}
    key, _, _ = lim_block(50.0, n_x, **params)
    assert key.key_length == 0 and key.vacuum_detections_x == 0 and key.single_photon_detections_x == 0
    assert np.all(np.isfinite(np.asarray(jax.tree.leaves(key))))
    grad = jax.grad(lambda mu1: lim_block(50.0, n_x, **{**params, "mu1": mu1})[0].length_margin)(params["mu1"])
    assert np.isfinite(grad)


def test_eps_sec_is_self_consistent_with_the_key_length():
    (distance, n_x), params, _ = check_vector()
    key, _, _ = lim_block(distance, n_x, **params)
    assert float(key.eps_sec) == pytest.approx(1e-15 * float(key.key_length), rel=1e-9)


def asymptotic_limit(intensity, probs, gain, error_gain, q_x, f_ec=1.16):
    """Per-pulse key of Lim's estimator as n_X -> infinity, from the exact decoy equations (written independently).

    With no statistical deviation the bounds become those of Ma et al., PRA 72, 012326 (2005) for the gains
    Q_k = R_k: Y0 from the two weakest intensities, Y1 from Eq. (3)'s limit, e1 from the Z-basis errors.
    """
    mu1, mu2, mu3 = np.asarray(intensity)
    q = np.asarray(gain) * np.exp(np.asarray(intensity))
    eq = np.asarray(error_gain) * np.exp(np.asarray(intensity))
    y0 = (mu2 * q[2] - mu3 * q[1]) / (mu2 - mu3)
    y1 = mu1 * (q[1] - q[2] - (mu2**2 - mu3**2) / mu1**2 * (q[0] - y0)) / (mu1 * (mu2 - mu3) - mu2**2 + mu3**2)
    e1 = (eq[1] - eq[2]) / (mu2 - mu3) / y1
    probs = np.asarray(probs)
    tau0 = probs @ np.exp(-np.asarray(intensity))
    tau1 = probs @ (np.asarray(intensity) * np.exp(-np.asarray(intensity)))
    h = lambda p: -p * np.log2(p) - (1 - p) * np.log2(1 - p)
    qber = (probs @ np.asarray(error_gain)) / (probs @ np.asarray(gain))
    return q_x**2 * (tau0 * y0 + tau1 * y1 * (1 - h(e1)) - f_ec * (probs @ np.asarray(gain)) * h(qber))


def test_finite_key_rate_approaches_the_asymptotic_rate():
    (_, _), params, _ = check_vector()
    sizes = [1e6, 1e8, 1e10, 1e12, 1e14, 1e16]
    rates, limit = [], None
    for n_x in sizes:
        key, pulses, block = lim_block(50.0, n_x, **params)
        rates.append(float(key.key_length / pulses))
        limit = asymptotic_limit(*block, params["q_x"])
    gaps = [limit - r for r in rates]
    assert all(g > 0 for g in gaps)  # finite blocks never beat the limit
    assert all(a > b for a, b in itertools.pairwise(gaps))  # and close in on it
    assert gaps[-1] / limit < 1e-3


def test_lim_2014_sweep_cube():
    cube = qkdjax.run("sweep=lim_2014", "link.distance_km=[0,100,180]")
    assert cube["protocol.block_size"].values.tolist() == pytest.approx([1e4, 1e5, 1e6, 1e7, 1e8, 1e9])
    rate = cube.key_rate_per_pulse
    assert np.all(np.isfinite(rate)) and np.all(rate >= 0)
    assert np.all(np.diff(rate.sel({"link.distance_km": 100.0}).values) >= 0)  # bigger blocks, more key
    assert np.all(rate <= cube.plob_bound_per_pulse)
    assert cube.key_length.attrs["units"] == "bit"


@pytest.mark.device
def test_multinomial_sampler_is_exact_in_mean_and_covariance():
    probs = jnp.array([0.3, 0.2, 1e-3, 0.4])
    counts = jax.vmap(lambda k: sample_multinomial(k, 1000.0, probs))(jax.random.split(jax.random.key(1), 20000))
    counts = np.asarray(counts)
    assert np.all(counts.sum(axis=1) <= 1000)
    p = np.asarray(probs)
    expected_cov = 1000 * (np.diag(p) - np.outer(p, p))
    z = (counts.mean(axis=0) - 1000 * p) / np.sqrt(np.diag(expected_cov) / 20000)
    assert np.all(np.abs(z) < 4)
    variance = np.diag(expected_cov)
    cov_standard_error = np.sqrt((np.outer(variance, variance) + expected_cov**2) / 20000)  # normal approximation
    assert np.all(np.abs(np.cov(counts.T) - expected_cov) < 4 * cov_standard_error)


def binomial_distance(trials, p, grid=400_000):
    """Kolmogorov distance between ``binomial_quantile`` and the exact law, from an even grid of uniforms (which
    resolves it to 1 / grid, with no sampling noise)."""
    u = (np.arange(grid) + 0.5) / grid
    counts = np.sort(np.asarray(jax.jit(binomial_quantile)(u, trials, p)))
    k = np.arange(*stats.binom.ppf([1e-9, 1 - 1e-9], trials, p) + [-2, 3])
    return np.abs(np.searchsorted(counts, k, side="right") / grid - stats.binom.cdf(k, trials, p)).max()


@pytest.mark.parametrize("p", [1e-6, 1e-3, 0.1, 0.5, 0.9, 0.999])
def test_binomial_sampler_is_exact_for_small_means_and_within_its_bound_above(p):
    rarer = min(p, 1 - p)
    for mean in (0.02, 1.0, 4.0, 9.7):  # exact inversion: the grid's resolution only
        assert binomial_distance(np.floor(mean / rarer), p) < 1.5 / 400_000
    for mean in (10.0, 40.0, 400.0, 4000.0):  # Cornish-Fisher: the documented 0.015 / mean
        assert binomial_distance(np.ceil(mean / rarer), p) < 0.015 / mean + 1 / 400_000


@pytest.mark.device
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(("trials", "p"), [(1e9, 3e-9), (1e9, 4e-7), (200.0, 0.45), (1e12, 2e-4)])
def test_binomial_sampler_passes_a_ks_test_on_fixed_keys(seed, trials, p):
    u = stream_uniforms(jax.random.key(seed), 20_000)
    counts = np.asarray(jax.jit(binomial_quantile)(u, trials, p))
    # a discrete law: the sample's distribution function stays within the KS band of the exact one at every count
    k = np.arange(*stats.binom.ppf([1e-9, 1 - 1e-9], trials, p) + [-2, 3])
    gap = np.abs(np.searchsorted(np.sort(counts), k, side="right") / counts.size - stats.binom.cdf(k, trials, p))
    assert gap.max() < 1.63 / np.sqrt(counts.size)  # the 1 % critical value


@pytest.mark.parametrize("designs", [((1e6, 1e-6), (1e6, 8e-6), (1.2e6, 8e-6)), ((1e6, 2e-5), (2e6, 2e-5), (2e6, 4e-3))])
def test_binomial_sampler_is_monotone_in_probability_and_trials_within_a_branch(designs):
    u = stream_uniforms(jax.random.key(0), 5000)
    counts = [np.asarray(binomial_quantile(u, n, p)) for n, p in designs]  # means below 10, then from 20 up
    assert all(np.all(a <= b) for a, b in itertools.pairwise(counts))


MC = ("sweep=lim_2014", "optimize.enabled=false", "link.distance_km=[20,100,200]", "protocol.block_size=[1e5,1e9]", "montecarlo.trials=200")


@pytest.fixture(scope="module")
def montecarlo_cube():
    return qkdjax.run(*MC, "montecarlo.keep_trials=true")


def test_montecarlo_adds_statistics_and_keeps_trials_when_asked(montecarlo_cube):
    cube = montecarlo_cube
    assert cube.key_rate_quantile.dims[-1] == "quantile"
    assert cube["quantile"].values.tolist() == [0.05, 0.5, 0.95]
    assert cube.trial_key_length.sizes["trial"] == 200
    q = cube.key_length_quantile
    assert np.all(q.diff("quantile") >= 0)
    lengths = cube.trial_key_length
    xr.testing.assert_allclose(lengths.mean("trial"), cube.key_length_mean)
    xr.testing.assert_allclose(lengths.std("trial", ddof=1), cube.key_length_std)
    assert "trial" not in qkdjax.run(*MC).dims


@pytest.mark.device
def test_montecarlo_mean_agrees_with_expected_counts_for_large_blocks(montecarlo_cube):
    point = montecarlo_cube.sel({"protocol.block_size": 1e9, "link.distance_km": [20.0, 100.0]})
    standard_error = point.key_length_std / np.sqrt(200)
    assert np.all(point.key_length_std > 0)
    assert np.all(np.abs(point.key_length_mean - point.key_length) < 4 * standard_error)
    assert np.all(point.abort_probability == 0)


def test_blocks_beyond_reach_always_abort(montecarlo_cube):
    far = montecarlo_cube.sel({"link.distance_km": 200.0})
    assert np.all(far.key_length == 0) and np.all(far.abort_probability == 1) and np.all(far.key_rate_mean == 0)


@pytest.mark.device
def test_montecarlo_cube_is_identical_for_any_chunk_size():
    small = qkdjax.run(*MC, "sweep.chunk_size=1")
    large = qkdjax.run(*MC, "sweep.chunk_size=100000")
    xr.testing.assert_identical(small.drop_attrs(), large.drop_attrs())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("montecarlo.trials=10",), "montecarlo.trials = 10 samples finite blocks: set protocol.block_size"),
        (("montecarlo.keep_trials=true",), "montecarlo.keep_trials = true keeps per-trial values"),
        (("montecarlo.trials=-1", "protocol.block_size=1e6"), "montecarlo.trials = -1 must be an integer >= 0"),
        (("protocol.eps_sec_per_key_bit=1e-15",), "set exactly one of protocol.eps_sec and protocol.eps_sec_per_key_bit"),
        (("protocol.block_size=0.5",), "protocol.block_size = 0.5 is outside the allowed range [1, 1e+18]"),
    ],
)
def test_bad_finite_key_settings_are_rejected(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("+", r"\+")):
        qkdjax.run(*overrides)


def test_montecarlo_command_writes_the_statistics(tmp_path):
    """The issue's command: `qkdjax sweep=lim_2014 montecarlo.trials=1000 'protocol.block_size=[1e5]'`."""
    done = run_cli("sweep=lim_2014", "montecarlo.trials=1000", "protocol.block_size=[1e5]", f"output.dir={tmp_path}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    cube = qkdjax.open_cube(done.stdout.strip().splitlines()[-1])
    assert dict(cube.sizes) == {"link.distance_km": 201, "protocol.block_size": 1, "quantile": 3}
    near = cube.sel({"link.distance_km": 0.0})
    assert np.all(near.abort_probability < 0.5) and np.all(near.key_rate_quantile > 0)
    assert np.all(cube.abort_probability.sel({"link.distance_km": 200.0}) == 1)
