"""Continuous-variable QKD with Gaussian-modulated coherent states (GG02), reverse reconciliation, collective attacks.

F. Grosshans, P. Grangier, PRL 88, 057902 (2002); security with trusted detector noise: J. Lodewyck et al., PRA 76,
042305 (2007); practical conventions: F. Laudenbach et al., Adv. Quantum Technol. 1, 1800011 (2018). Alice sends
``source.symbol_rate_hz`` coherent states (``source=gaussian``, variance ``V_A``), Bob measures them with his local
oscillator (``detector=coherent``, homodyne or heterodyne); ``I_AB`` and the Holevo bound ``chi_BE`` are the closed
forms of ``qkdjax.physics.cv``. Every per-use quantity is **per symbol** (one channel use, one coherent state):
``key_rate_per_pulse`` is in bit per symbol, so cubes of CV and discrete-variable designs compare per channel use.

Excess noise is referred to the channel input (the convention of Lodewyck 2007 and of Zhang et al., PRL 125, 010502
(2020)): ``protocol.excess_noise_snu`` (phase noise, modulation imperfections: what a dark fibre shows) plus the
noise the link lets in, the Raman photons of classical traffic. Raman light is broadband thermal noise; the local
oscillator selects one spatio-temporal and polarisation mode of it, so with ``n`` Raman photons per second per Hz of
bandwidth at Bob's input in that polarisation (half the unpolarised flux) the mode holds ``n`` photons and its
quadrature variance rises by ``2n`` SNU at Bob's input, ``2n / T`` at the channel input (B. Qi et al., New J. Phys.
12, 103042 (2010), Sec. 3; R. Kumar, H. Qin, R. Alleaume, New J. Phys. 17, 043027 (2015), Eq. (11)).

Asymptotic key per symbol: ``K = (1 - FER) [beta I_AB - chi_BE]`` (``FER``: share of blocks whose reconciliation
fails and are discarded, Zhang 2020's prefactor). Finite size (A. Leverrier, F. Grosshans, P. Grangier, PRA 81,
062343 (2010), Secs. III-IV): of a block of ``N = block_size`` symbols, ``m = pe_fraction N`` are disclosed to
estimate the channel and the other ``n = N - m`` make the key,

    K = (1 - FER) (n / N) [beta I_AB - chi_BE(T_min, xi_max) - Delta(n)],
    Delta(n) = 7 sqrt(log2(2 / eps_smooth) / n) + (2 / n) log2(1 / eps_pa),

with the channel at the edge of its confidence region: each of Bob's ``d`` measured quadratures (1 homodyne,
2 heterodyne) reads ``y = t x + z``, ``t^2 = eta T / d``, ``Var z = sigma^2 = 1 + v_el + eta T xi / d``; from
``d m`` samples ``t_min = t - z_e sqrt(sigma^2 / (d m V_A))``, ``sigma^2_max = sigma^2 (1 + z_e sqrt(2 / (d m)))``,
``z_e = Phi^-1(1 - eps_pe / 2)`` (6.5 standard deviations at ``eps_pe = 1e-10``, Zhang 2020's choice), hence
``T_min = d t_min^2 / eta`` and ``xi_max = d (sigma^2_max - 1 - v_el) / (eta T_min)``. The expected block takes the
estimates at their expected values (``t``, ``sigma^2`` as the model gives them), the finite-key convention of the
other protocols. Monte Carlo blocks (``montecarlo.trials``) sample the estimates as a deployed system gets them from
its ``k = d m`` samples, exactly in distribution: the least-squares slope ``t_hat = t + Z sqrt(sigma^2 / S)`` given
``S = sum x^2 ~ V_A chi^2_k``, and the residual variance ``sigma_hat^2 ~ sigma^2 chi^2_(k-1) / k`` (independent of
``t_hat``: Gaussian linear regression), and build the confidence region from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtri

from qkdjax.detectors.coherent import CoherentDetector
from qkdjax.montecarlo.estimates import COUNTS_STREAM, probability_estimate, summarise, trial_stream
from qkdjax.numerics import safe_divide
from qkdjax.parameters import NON_NEGATIVE, Protocol, Quantity, Range, number
from qkdjax.physics.bounds import plob_bound
from qkdjax.physics.cv import QUADRATURES, holevo_bound, mutual_information
from qkdjax.protocols.bb84_decoy import MONTECARLO_OUTPUTS, TRIAL_OUTPUTS
from qkdjax.sources.gaussian import GaussianModulation
from qkdjax.sweep import Output

OPEN_UNIT = Range(0.0, 1.0, low_closed=False, high_closed=False)
TRANSMITTANCE_FLOOR = 1e-150  # 1/T and T^2 of the closed forms stay finite above it; no key is resolved near it

ASYMPTOTIC_OUTPUTS: Mapping[str, Output] = {
    "key_rate": Output("bit/s", "secret key rate", role="rate"),
    "key_rate_per_pulse": Output("bit", "secret key bits per symbol (one coherent state, one channel use)", role="rate_per_pulse"),
    "mutual_information": Output("bit", "Alice-Bob mutual information I_AB per symbol"),
    "holevo_bound": Output("bit", "Holevo bound chi_BE on Eve's information per symbol (reverse reconciliation)"),
    "excess_noise_total_snu": Output("1", "excess noise at the channel input incl. the link's Raman noise, shot-noise units"),
    "raman_excess_noise_snu": Output("1", "excess noise at the channel input from Raman photons of classical traffic, shot-noise units"),
    "signal_to_noise": Output("1", "signal-to-noise ratio of Bob's measured quadratures"),
    "plob_bound_per_pulse": Output("bit", "PLOB repeaterless bound per symbol (channel use)", role="bound"),
    "channel_transmittance": Output("1", "channel transmittance T"),
}
FINITE_KEY_OUTPUTS: Mapping[str, Output] = {
    **ASYMPTOTIC_OUTPUTS,
    "key_length": Output("bit", "secret key length of a block with the expected statistics"),
    "transmittance_min": Output("1", "worst-case channel transmittance T_min of the parameter estimation"),
    "excess_noise_max_snu": Output("1", "worst-case excess noise xi_max at the channel input, shot-noise units"),
    "finite_size_offset": Output("bit", "finite-size offset Delta(n) per key symbol"),
}


def sampled_estimates(key, t, sigma2, modulation_variance_snu, samples):
    """``(t_hat, sigma_hat^2)`` that ``samples`` pairs ``(x, y = t x + z)``, ``x ~ N(0, V_A)``, ``z ~ N(0, sigma^2)``,
    give by least squares, sampled exactly from their distribution (module docstring) at any number of samples."""
    slope, spread, residual = jax.random.split(key, 3)
    sum_squares = modulation_variance_snu * 2.0 * jax.random.gamma(spread, samples / 2.0)
    t_hat = t + jax.random.normal(slope) * jnp.sqrt(sigma2 / sum_squares)
    return t_hat, sigma2 * 2.0 * jax.random.gamma(residual, (samples - 1.0) / 2.0) / samples


class CVGG02(Protocol):
    """GG02 with trusted detector noise, reverse reconciliation, asymptotic or finite size (module docstring)."""

    types = ("cv_gg02",)
    cost_family = "cv"
    needs: ClassVar[Mapping[str, type]] = {"source": GaussianModulation, "detector": CoherentDetector}
    finite_key_field = "block_size"
    reconciliation_efficiency: Any = number("1", "reverse reconciliation efficiency beta", Range(0.0, 1.0, low_closed=False))
    excess_noise_snu: Any = number(
        "1", "excess noise at the channel input (without the link's Raman noise), shot-noise units", NON_NEGATIVE,
        inverse=Quantity("max", False, "largest excess noise reaching the target key rate"),
    )  # fmt: skip
    frame_error_rate: Any = number(
        "1", "share of reconciliation blocks that fail and are discarded", Range(0.0, 1.0, high_closed=False), default=0.0
    )
    block_size: Any = number(
        "1", "finite-size block: symbols (parameter estimation and key)", Range(2.0, 1e18), optional=True, default=None,
        inverse=Quantity("min", True, "smallest block size reaching the target key rate"),
    )  # fmt: skip
    pe_fraction: Any = number("1", "share of the block's symbols disclosed for parameter estimation", OPEN_UNIT, default=0.5)
    eps_pe: Any = number("1", "failure probability of the parameter estimation", OPEN_UNIT, default=1e-10)
    eps_smooth: Any = number("1", "smoothing parameter of the smooth min-entropy", OPEN_UNIT, default=1e-10)
    eps_pa: Any = number("1", "failure probability of privacy amplification", OPEN_UNIT, default=1e-10)

    @classmethod
    def outputs(cls, static):
        return FINITE_KEY_OUTPUTS if cls.finite(static) else ASYMPTOTIC_OUTPUTS

    # --- physics -----------------------------------------------------------------------------------------------

    def raman_excess_noise(self, p, transmittance):
        """Raman noise the link lets in, referred to the channel input (SNU, module docstring)."""
        photons_per_mode = p.link.noise_photons_per_mode() / 2.0  # the local oscillator's polarisation
        return safe_divide(2.0 * photons_per_mode, transmittance)

    def channel(self, p, transmittance, excess_noise):
        """``(V_A, T, xi, eta, v_el, measurement)``: the arguments of ``qkdjax.physics.cv``."""
        detector = p.detector
        return (
            p.source.modulation_variance_snu,
            transmittance,
            excess_noise,
            detector.efficiency,
            detector.electronic_noise_snu,
            detector.measurement,
        )

    def estimation_samples(self, p):
        """Quadrature samples ``k = d m`` the parameter estimation reads."""
        return QUADRATURES[p.detector.measurement] * self.pe_fraction * self.block_size

    def observed(self, p, transmittance, excess_noise):
        """``(t, sigma^2)`` of Bob's quadratures ``y = t x + z`` (module docstring)."""
        detector, quadratures = p.detector, QUADRATURES[p.detector.measurement]
        t = jnp.sqrt(detector.efficiency * transmittance / quadratures)
        return t, 1.0 + detector.electronic_noise_snu + detector.efficiency * transmittance * excess_noise / quadratures

    def worst_case_channel(self, p, t, sigma2):
        """``(T_min, xi_max)`` at the edge of the confidence region around the estimates ``t``, ``sigma^2``."""
        detector, quadratures = p.detector, QUADRATURES[p.detector.measurement]
        samples = self.estimation_samples(p)
        z = -ndtri(self.eps_pe / 2.0)
        t_min = jnp.maximum(t - z * jnp.sqrt(sigma2 / (samples * p.source.modulation_variance_snu)), 0.0)
        sigma2_max = sigma2 * (1.0 + z * jnp.sqrt(2.0 / samples))
        transmittance_min = quadratures * t_min**2 / detector.efficiency
        excess_max = safe_divide(quadratures * (sigma2_max - 1.0 - detector.electronic_noise_snu), detector.efficiency * transmittance_min)
        return transmittance_min, jnp.maximum(excess_max, 0.0)

    def finite_size_offset(self):
        n = (1.0 - self.pe_fraction) * self.block_size
        return 7.0 * jnp.sqrt(jnp.log2(2.0 / self.eps_smooth) / n) + 2.0 / n * jnp.log2(1.0 / self.eps_pa)

    def evaluate(self, p):
        """Key bits per symbol before clipping, the quantities the cube reports, and what a sampled block needs:
        ``(I_AB, t, sigma^2)``."""
        transmittance = p.link.transmittance()
        raman = self.raman_excess_noise(p, transmittance)
        excess = self.excess_noise_snu + raman
        args = self.channel(p, transmittance, excess)
        information = mutual_information(*args)
        t, sigma2 = self.observed(p, transmittance, excess)
        found = {
            "mutual_information": information,
            "excess_noise_total_snu": excess,
            "raman_excess_noise_snu": raman,
            "signal_to_noise": t**2 * p.source.modulation_variance_snu / sigma2,
            "plob_bound_per_pulse": plob_bound(transmittance),
            "channel_transmittance": transmittance,
        }
        kept = 1.0 - self.frame_error_rate
        if self.block_size is None:
            holevo, unresolved = holevo_bound(*args)  # a key below the rounding is none, never an artefact
            margin = self.reconciliation_efficiency * information - holevo
            return kept * jnp.where(margin > unresolved, margin, -unresolved), found | {"holevo_bound": holevo}, (information, t, sigma2)
        margin, finite = self.block_margin(p, information, t, sigma2)
        return margin, found | finite, (information, t, sigma2)

    def block_margin(self, p, information, t, sigma2):
        """Key bits per symbol of a block whose estimates are ``t``, ``sigma^2`` (before clipping), and its
        worst-case channel, offset, Holevo bound and key length."""
        transmittance_min, excess_max = self.worst_case_channel(p, t, sigma2)
        usable = transmittance_min > TRANSMITTANCE_FLOOR  # below it the estimate cannot exclude a cut channel
        holevo, unresolved = holevo_bound(*self.channel(p, jnp.maximum(transmittance_min, TRANSMITTANCE_FLOOR), excess_max))
        offset = self.finite_size_offset()
        margin = self.reconciliation_efficiency * information - holevo - offset
        margin = (
            (1.0 - self.frame_error_rate)
            * (1.0 - self.pe_fraction)
            * jnp.where((margin > unresolved) & usable, margin, -unresolved - offset)
        )
        key_length = jnp.floor(jnp.maximum(margin, 0.0) * self.block_size)
        finite = {"transmittance_min": transmittance_min, "excess_noise_max_snu": excess_max, "finite_size_offset": offset}
        return margin, finite | {"holevo_bound": holevo, "key_length": key_length}

    # --- the point scenario's interface ------------------------------------------------------------------------

    def metrics(self, p):
        margin, found, block = self.evaluate(p)
        per_symbol = jnp.maximum(margin, 0.0)
        if self.block_size is not None:
            per_symbol = found["key_length"] / self.block_size
        return {"key_rate": per_symbol * p.source.symbol_rate_hz, "key_rate_per_pulse": per_symbol, **found}, block

    def sample_metrics(self, p, key, trials, keep_trials, block):
        """Distribution of the key over ``trials`` blocks whose parameter estimates are sampled (module docstring)."""
        information, t, sigma2 = block
        samples = self.estimation_samples(p)

        def one(trial):
            estimates = sampled_estimates(trial_stream(key, trial, COUNTS_STREAM), t, sigma2, p.source.modulation_variance_snu, samples)
            return self.block_margin(p, information, *estimates)[1]["key_length"]

        key_length = jax.vmap(one)(jnp.arange(trials))
        metrics = {
            **summarise("key_length", key_length),
            **summarise("key_rate", key_length / self.block_size * p.source.symbol_rate_hz),
            **probability_estimate("abort_probability", key_length == 0),
        }
        return metrics | ({"trial_key_length": key_length} if keep_trials else {})

    @classmethod
    def sample_outputs(cls, keep_trials: bool):
        return {**MONTECARLO_OUTPUTS, **({"trial_key_length": TRIAL_OUTPUTS["trial_key_length"]} if keep_trials else {})}

    def margin_per_pulse(self, p):
        """Secret bits per symbol before clipping (negative: no key), the optimiser's objective."""
        return self.evaluate(p)[0]

    def key_rate(self, p):
        return self.metrics(p)[0]["key_rate"]
