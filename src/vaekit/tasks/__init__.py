"""Tasks over a trained model: linear probes (:mod:`.probe`), anomaly scores and thresholds
(:mod:`.anomaly`), completion of missing values and inpainting (:mod:`.completion`), recommendations from a
user's history (:mod:`.recommend`)."""
