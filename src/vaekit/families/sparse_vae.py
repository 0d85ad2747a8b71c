"""The ``sparse-vae`` family: variational sparse coding (Tonolini, Jensen & Murray-Smith 2020).

The model is the ``vae`` family's network with a spike-and-slab posterior and prior of sparsity
``--sparse-alpha`` (:mod:`vaekit.core.sparse`: its closed-form KL, exact-spike IWAE weights, sampling). It
trains through the ``vae`` family's batches and ELBO objective (``elbo_loss`` dispatches on the model), so
binarization, denoising and masks work as for a VAE; its run is the ``vae`` runner's.
"""

from __future__ import annotations

from .vae import VAEFamily


class SparseVAEFamily(VAEFamily):
    name = "sparse-vae"
    unsupported = {
        "iw_samples": (1, "its spike-and-slab ELBO is trained with relaxed spikes; IWAE training is not implemented"),
        "free_bits": (0.0, "its KL is the spike-and-slab one; --sparse-alpha sets how many dimensions stay active"),
        "conditional": (False, "it is unconditional"),
        "condition_columns": (None, "it is unconditional"),
        "prior": ("normal", "its prior is the spike-and-slab one"),
    }
