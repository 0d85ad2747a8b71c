"""Model families, by the ``family`` setting: each builds its module, its objective and its batch source.

- ``vae``: MLP or conv encoder/decoder, optionally conditional (labels or attribute columns) — :mod:`.vae`;
- ``m2``: the semi-supervised VAE of Kingma et al. (2014) — :mod:`.m2`;
- ``mult-vae``, ``mult-dae``: recommendation from interactions (Liang et al. 2018) — :mod:`.mult_vae`;
- ``recvae``: recommendation from interactions (Shenbin et al. 2020) — :mod:`.recvae`;
- ``series-vae``, ``forecast-cvae``: time series (anomalies and gaps; probabilistic forecasts) — :mod:`.series`;
- ``seq-vae``: strings (SMILES, SELFIES, text) with GRUs, after the MOSES VAE — :mod:`.seq_vae`.
A new family is one module here and one line in :data:`FAMILIES`.
"""

from __future__ import annotations

from ..config import TrainConfig
from .base import BatchSource, Family
from .m2 import M2Family
from .mult_vae import MultDAEFamily, MultVAEFamily
from .recvae import RecVAEFamily
from .series import ForecastCVAEFamily, SeriesVAEFamily
from .sparse_vae import SparseVAEFamily
from .vae_gan import VAEGANFamily
from .seq_vae import SeqVAEFamily
from .vae import VAEFamily

FAMILIES: dict[str, type[Family]] = {"vae": VAEFamily, "m2": M2Family, "mult-vae": MultVAEFamily,
                                     "mult-dae": MultDAEFamily, "recvae": RecVAEFamily,
                                     "series-vae": SeriesVAEFamily, "forecast-cvae": ForecastCVAEFamily,
                                     "sparse-vae": SparseVAEFamily, "vae-gan": VAEGANFamily,
                                     "seq-vae": SeqVAEFamily}


def family_name(cfg: TrainConfig) -> str:
    """The family a config trains: its ``family`` setting; unset, ``m2`` for semi-supervised runs, else ``vae``."""
    return cfg.family or ("m2" if cfg.semi_supervised else "vae")


__all__ = ["BatchSource", "Family", "FAMILIES", "family_name"]
