"""Physical models: photon sources, channels, detectors and fundamental bounds, written for one grid point."""
