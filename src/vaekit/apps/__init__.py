"""Applications: short functions over a trained VAE (representation probes, and later anomaly scores,
imputation, recommendation)."""
