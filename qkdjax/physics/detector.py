"""Threshold single-photon detectors: clicks, errors, afterpulses and dead time.

Bob has one detector per bit value. A pulse whose photons survive the channel and Bob's efficiency with
probability ``1 - v`` (``v`` = probability that no signal photon is detected) gives, after C. C.-W. Lim,
M. Curty, N. Walenta, F. Xu, H. Zbinden, Phys. Rev. A 89, 022307 (2014), Sec. IV:

    D = 1 - (1 - 2 p_dc) v                            detection without afterpulses
    R = D (1 + p_ap)                                  detection including afterpulses
    e = p_dc + e_mis (1 - v) + p_ap D / 2             detection with a bit error

For a Poisson pulse of mean ``mu``, ``v = exp(-eta mu)``; for an ``n``-photon state, ``v = (1 - eta)^n``, which gives
the n-photon yields Y_n and errors e_n Y_n that the decoy-state bounds estimate. With ``p_ap = 0`` and
``Y0 = 2 p_dc`` this is the model of X. Ma, B. Qi, Y. Zhao, H.-K. Lo, Phys. Rev. A 72, 012326 (2005), Eqs. (5)-(9).
(Lim et al. print ``eta_ch`` in ``e``; ``eta_sys`` = channel x Bob is meant, see shared/reference/lim_2014.json.)
"""


def click_and_error_probs(signal_detection, detector):
    """Per-gate probabilities (click, click with a bit error) before dead-time saturation.

    ``signal_detection`` is ``1 - v``; callers compute it without cancellation (``-expm1(-eta mu)`` for a
    Poisson pulse, ``eta`` for one photon), so it stays exact when ``v`` is within 1e-16 of one (long links).
    """
    p_dc, p_ap = detector.dark_count_prob, detector.afterpulse_prob
    detection = 2.0 * p_dc + (1.0 - 2.0 * p_dc) * signal_detection
    click = detection * (1.0 + p_ap)
    error = p_dc + detector.misalignment * signal_detection + p_ap * detection / 2.0
    return click, error


def live_fraction(click_rate_per_detector_hz, dead_time_ns):
    """Fraction of time a detector is able to click, non-paralysable dead-time model.

    A detector with true click rate ``r`` and dead time ``tau`` registers ``r / (1 + r tau)`` clicks per second
    (G. F. Knoll, Radiation Detection and Measurement, 4th ed. (2010), Sec. 4.VII; for QKD detectors:
    D. J. Rogers et al., New J. Phys. 9, 319 (2007)). Clicks and dark counts are lost alike, so every yield is
    scaled by the same factor and the error rates are unchanged.
    """
    return 1.0 / (1.0 + click_rate_per_detector_hz * dead_time_ns * 1e-9)
