"""CV-QKD (GG02, qkdjax.protocols.cv_gg02 and qkdjax.physics.cv): the closed forms against symplectic spectra of
covariance matrices built here, limits, monotonicity, the 25 km (Lodewyck 2007) and 202.81 km (Zhang 2020)
experiments of ../shared/reference/cv_qkd.json, and the finite-size analysis."""

import jax
import numpy as np
import pytest
from conftest import reference

import qkdjax
from qkdjax.physics.cv import holevo_bound, mutual_information

CV = reference("cv_qkd")
# (V_A, T, xi, eta, v_el): metro, long haul, noisy, ideal detector, lossless
POINTS = [
    (18.5, 0.302, 0.005, 0.606, 0.041),
    (7.65, 5.7e-4, 0.0081, 0.6134, 0.1523),
    (4.0, 0.1, 0.05, 0.5, 0.3),
    (10.0, 0.5, 0.01, 1.0 - 1e-9, 0.0),
    (3.0, 1.0, 0.02, 0.7, 0.1),
]


def entropy(gamma: np.ndarray) -> float:
    """von Neumann entropy (bits) of a Gaussian state with covariance ``gamma`` (SNU): its symplectic eigenvalues
    are the moduli of the eigenvalues of ``i Omega gamma``, each twice."""
    modes = gamma.shape[0] // 2
    omega = np.kron(np.eye(modes), np.array([[0.0, 1.0], [-1.0, 0.0]]))
    nu = np.sort(np.abs(np.linalg.eigvals(1j * omega @ gamma)))[::2]
    x = np.maximum((nu - 1.0) / 2.0, 0.0)
    return float(np.sum((x + 1) * np.log2(x + 1) - np.where(x > 0, x * np.log2(np.where(x > 0, x, 1.0)), 0.0)))


def epr(v: float) -> np.ndarray:
    c = np.sqrt(v * v - 1.0)
    z = np.diag([1.0, -1.0])
    return np.block([[v * np.eye(2), c * z], [c * z, v * np.eye(2)]])


def beam_splitter(modes: int, i: int, j: int, transmittance: float) -> np.ndarray:
    """Symplectic matrix of a beam splitter mixing modes ``i`` and ``j``."""
    s = np.eye(2 * modes)
    t, r = np.sqrt(transmittance), np.sqrt(1.0 - transmittance)
    for k in range(2):
        a, b = 2 * i + k, 2 * j + k
        s[a, a], s[a, b], s[b, a], s[b, b] = t, r, -r, t
    return s


def brute_holevo(va, t, xi, eta, v_el, measurement):
    """chi_BE = S(AB) - S(A F G | Bob's outcomes): the entanglement-based picture with the detector's inefficiency
    a beam splitter fed by one half of an EPR pair (F0, G) of variance ``v``, so that its added noise is v_el
    (Lodewyck 2007, Fig. 2); heterodyne splits the mode 50:50 with vacuum and measures x and p. Modes: A, B, F0, G
    (, C)."""
    v = va + 1.0
    z = np.diag([1.0, -1.0])
    c = np.sqrt(t * (v * v - 1.0))
    gamma_ab = np.block([[v * np.eye(2), c * z], [c * z, (t * (va + xi) + 1.0) * np.eye(2)]])
    heterodyne = measurement == "heterodyne"
    noise = 1.0 + (2.0 if heterodyne else 1.0) * v_el / (1.0 - eta)
    blocks = [gamma_ab, epr(noise)] + ([np.eye(2)] if heterodyne else [])
    modes = 5 if heterodyne else 4
    gamma = np.zeros((2 * modes, 2 * modes))
    at = 0
    for block in blocks:
        gamma[at : at + len(block), at : at + len(block)] = block
        at += len(block)
    s = beam_splitter(modes, 1, 2, eta)
    if heterodyne:
        s = beam_splitter(modes, 1, 4, 0.5) @ s
    gamma = s @ gamma @ s.T
    measured = [2] if not heterodyne else [2, 9]  # x of B; or x of B and p of C
    rest = [k for k in range(2 * modes) if k not in (2, 3) and (not heterodyne or k not in (8, 9))]
    m = gamma[np.ix_(measured, measured)]
    sigma = gamma[np.ix_(rest, measured)]
    conditional = gamma[np.ix_(rest, rest)] - sigma @ np.linalg.inv(m) @ sigma.T
    return entropy(gamma_ab) - entropy(conditional)


@pytest.mark.parametrize("measurement", ["homodyne", "heterodyne"])
@pytest.mark.parametrize("point", POINTS)
def test_holevo_closed_form_equals_the_covariance_matrix_computation(point, measurement):
    closed = float(holevo_bound(*point, measurement)[0])
    assert closed == pytest.approx(brute_holevo(*point, measurement), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("measurement", ["homodyne", "heterodyne"])
@pytest.mark.parametrize("point", POINTS)
def test_mutual_information_is_that_of_the_prepare_and_measure_channel(point, measurement):
    """Bob's quadrature reads sqrt(eta T / d) x_A plus Gaussian noise 1 + v_el + eta T xi / d (d = 1, 2)."""
    va, t, xi, eta, v_el = point
    d = 2 if measurement == "heterodyne" else 1
    snr = eta * t * va / d / (1.0 + v_el + eta * t * xi / d)
    assert float(mutual_information(*point, measurement)) == pytest.approx(d / 2 * np.log2(1 + snr), rel=1e-12)


def test_ideal_lossless_channel_gives_the_capacity_of_the_modulation_and_leaks_nothing():
    for va in (0.5, 4.0, 100.0):
        assert float(holevo_bound(va, 1.0, 0.0, 1.0, 0.0, "homodyne")[0]) == pytest.approx(0.0, abs=1e-12)
        assert float(mutual_information(va, 1.0, 0.0, 1.0, 0.0, "homodyne")) == pytest.approx(0.5 * np.log2(1 + va), rel=1e-14)


def test_key_falls_with_excess_noise_electronic_noise_and_distance():
    cube = qkdjax.run(
        "protocol=cv_gg02", "source=gaussian", "detector=coherent", "link.distance_km=[10,25,50]",
        "protocol.excess_noise_snu=[0,0.005,0.01,0.02]", "detector.electronic_noise_snu=[0,0.1,0.3]", "detector.efficiency=0.6",
    )  # fmt: skip
    key = cube.key_rate.isel(
        {d: 0 for d in cube.key_rate.dims if d not in ("link.distance_km", "protocol.excess_noise_snu", "detector.electronic_noise_snu")}
    )
    key = key.transpose("link.distance_km", "protocol.excess_noise_snu", "detector.electronic_noise_snu").values
    assert np.all(key[0] > 0)
    for axis in range(3):
        assert np.all(np.diff(key, axis=axis) <= 0)
        assert np.any(np.diff(key, axis=axis) < 0)


def test_lodewyck_2007_mutual_information_holevo_bound_and_key():
    published = CV["lodewyck_2007"]["published_kbit_per_s"]
    cube = qkdjax.run("sweep=lodewyck_2007", "link.distance_km=[0]").squeeze()
    rate = CV["lodewyck_2007"]["symbol_rate_hz"] / 1e3
    assert float(cube.channel_transmittance) == pytest.approx(CV["lodewyck_2007"]["channel_transmittance_T"], rel=1e-6)
    # The paper prints three digits: each agrees to its last digit.
    assert float(cube.mutual_information) * rate == pytest.approx(published["I_AB"], abs=0.5)
    assert float(cube.holevo_bound) * rate == pytest.approx(published["chi_BE"], abs=0.5)
    assert float(cube.key_rate) / 1e3 == pytest.approx(published["secret_key"], abs=0.05)


@pytest.fixture(scope="module")
def zhang():
    return qkdjax.run("sweep=zhang_2020")


def test_zhang_2020_asymptotic_rate_lies_above_each_published_finite_size_rate(zhang):
    published = np.array(CV["zhang_2020"]["points"]["finite_size_key_bit_per_s"])
    asymptotic = zhang.key_rate.values
    assert np.all(asymptotic > published)
    # the finite-size penalty grows with loss: 0.6 % at 27 km, a factor 9 at 202.81 km
    ratio = asymptotic / published
    assert ratio[0] < 1.01 and ratio[-1] > 5


def test_finite_size_key_lies_below_the_asymptotic_and_tends_to_its_key_share():
    """Leverrier 2010: K_N < (1 - pe_fraction) K_inf, approaching it as the block grows; zero for small blocks."""
    base = ("sweep=zhang_2020",)
    asymptotic = qkdjax.run(*base).key_rate.values
    blocks = [1e8, 1e10, 1e12, 1e18]
    finite = np.stack([qkdjax.run(*base, f"+protocol.block_size={n:g}").key_rate.values for n in blocks])
    share = 0.5 * asymptotic
    assert np.all(finite <= share * (1 + 1e-12))
    assert np.all(np.diff(finite, axis=0) >= 0)
    assert finite[-1] == pytest.approx(share, rel=5e-3)
    assert np.all(finite[0, 2:] == 0)  # 1e8 symbols are too few beyond 70 km


def test_zhang_2020_worst_case_excess_noise_and_finite_size_rate_at_202_km():
    """Zhang 2020 bound their parameters at 6.5 standard deviations (our eps_pe = 1e-10 gives 6.47) and publish
    the worst-case excess noise xi' = 0.0383 SNU at 202.81 km (Table I as a third party transcribed it; not in the
    reference file). Their block size is not in the reference: m = 1e12 estimation symbols is what that xi' implies
    (the one number inferred here; block_size 2e12 with half for estimation). With it our xi_max equals xi' to 2 %,
    and the key per key symbol (our K / (1 - pe_fraction); their rate counts every symbol of the block) lies within
    10 % of the published 6.214 bit/s: the check is the rate, which nothing was fitted to."""
    cube = qkdjax.run("sweep=zhang_2020", "+protocol.block_size=2e12").sel(design="km_202_81")
    assert float(cube.excess_noise_max_snu) == pytest.approx(0.0383, rel=0.02)
    assert float(cube.key_rate) / 0.5 == pytest.approx(6.214, rel=0.1)


def test_optimised_modulation_variance_beats_every_value_of_a_grid():
    grid = qkdjax.run(
        "protocol=cv_gg02", "source=gaussian", "detector=coherent", "link.distance_km=50", "detector.efficiency=0.6",
        "link.attenuation_db_per_km=0.2", "source.modulation_variance_snu=${linspace:0.5,30,119}",
    ).squeeze()  # fmt: skip
    best = qkdjax.run(
        "protocol=cv_gg02", "source=gaussian", "detector=coherent", "link.distance_km=50", "detector.efficiency=0.6",
        "link.attenuation_db_per_km=0.2", "optimize.enabled=true",
        "optimize.params=[source.modulation_variance_snu]", "+optimize.bounds.source.modulation_variance_snu=[0.5,30]",
    ).squeeze()  # fmt: skip
    assert float(best.key_rate) >= float(grid.key_rate.max()) * (1 - 1e-4)
    assert float(best["opt.source.modulation_variance_snu"]) == pytest.approx(
        float(grid["source.modulation_variance_snu"][int(np.argmax(grid.key_rate.values))]), abs=0.5
    )


def test_cv_monte_carlo_needs_a_finite_block(capsys):
    from conftest import refused

    line = refused(capsys, "protocol=cv_gg02", "source=gaussian", "detector=coherent", "montecarlo.trials=10")
    assert "montecarlo.trials = 10" in line and "protocol.block_size" in line


def test_cv_needs_its_source_and_detector(capsys):
    from conftest import refused

    line = refused(capsys, "protocol=cv_gg02")
    assert "source" in line or "detector" in line


@pytest.mark.device
def test_sampled_estimates_have_the_distribution_of_least_squares_on_raw_samples():
    """The exact sampler of (t_hat, sigma_hat^2) against least squares on 40 raw Gaussian pairs, 4000 blocks, KS."""
    from scipy import stats

    from qkdjax.protocols.cv_gg02 import sampled_estimates

    t, sigma2, va, k, blocks = 0.3, 1.2, 4.0, 40, 4000
    keys = jax.random.split(jax.random.key(7), blocks)
    t_hat, s_hat = (np.asarray(a) for a in jax.vmap(lambda key: sampled_estimates(key, t, sigma2, va, float(k)))(keys))
    rng = np.random.default_rng(7)
    x = rng.normal(0.0, np.sqrt(va), (blocks, k))
    y = t * x + rng.normal(0.0, np.sqrt(sigma2), (blocks, k))
    slope = np.sum(x * y, axis=1) / np.sum(x * x, axis=1)
    residual = np.mean((y - slope[:, None] * x) ** 2, axis=1)
    assert stats.ks_2samp(t_hat, slope).pvalue > 1e-3
    assert stats.ks_2samp(s_hat, residual).pvalue > 1e-3


@pytest.mark.parametrize("seed", [0, 1])
def test_monte_carlo_blocks_agree_with_the_expected_block_within_their_error(seed):
    cube = qkdjax.run("sweep=zhang_2020", "+protocol.block_size=2e12", "montecarlo.trials=1000", f"seed={seed}")
    keyed = cube.abort_probability.values == 0  # 202.81 km aborts 9 % of its blocks: its mean is clipped at 0
    assert keyed.sum() == 5
    error = cube.key_length_std.values / np.sqrt(1000)
    assert np.all(np.abs(cube.key_length_mean.values - cube.key_length.values)[keyed] < 4 * error[keyed])
    assert np.all(cube.key_length_std.values > 0)
