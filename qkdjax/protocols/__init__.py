"""Key-rate estimators: what a protocol distils from the observed detection statistics."""
