"""Monte Carlo layers: finite-size fluctuations and event-level simulation."""
