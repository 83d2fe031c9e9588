"""Training and held-out data for the task classifier, and its generator."""
