"""The time-series families, over windows of a series (:mod:`vaekit.data.kinds.series`):

- ``series-vae``: a VAE of windows of ``--context`` steps with 1-D convolutional (or, ``--series-network gru``,
  GRU) encoder and decoder; the
  decoder gives a Gaussian (mean and variance) per step and target, and missing steps are masked out of the
  likelihood; with ``--iw-samples K`` it trains MIWAE's bound (IWAE_K of the observed entries); used for
  reconstruction, per-timestamp anomaly scores and gap filling;
- ``forecast-cvae``: a conditional VAE of the next ``--horizon`` steps given the encoded ``--context`` steps
  before them and the future covariates (known in advance, calendar features); q(z | future, condition) in
  training, z ~ N(0, I) at forecast time, many samples → quantiles. A linear skip from the context and the
  future covariates to the mean (what a ridge on lags and covariates does) lets the networks learn the rest.

Both train the β-weighted −ELBO through the one Trainer; the batch is a window (``x`` [B, L, D], ``condition``
its covariates [B, L, K], ``mask`` 1 = observed) and the covariates are inputs only.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import TrainConfig
from ..core.objectives import Objective, StepOutput, gaussian_kl
from ..data.batch import Batch
from ..data.dataset import Split
from ..errors import UsageError
from .base import BatchSource, Family
from .vae import VAEBatches

#: small networks where the user set nothing (a window is a few hundred numbers)
SERIES_DEFAULTS = {"hidden": [32], "latent_dim": 8, "batch_size": 64}
LOG2PI = math.log(2 * math.pi)


def _convs(c_in: int, h: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, h, 5, padding=2), nn.GELU(), nn.Conv1d(h, h, 5, padding=2), nn.GELU())


class _GRUFeatures(nn.Module):
    """[B, C_in, L] (channels first, as the convolutions take it) → the GRU's last hidden state [B, h]."""

    def __init__(self, c_in: int, h: int):
        super().__init__()
        self.gru = nn.GRU(c_in, h, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x.transpose(1, 2))[1][-1]


def _features(network: str, c_in: int, h: int, length: int) -> tuple[nn.Module, int]:
    """(a module [B, C_in, L] → [B, F], F): two 1-D convolutions flattened, or a GRU's last state."""
    if network == "gru":
        return _GRUFeatures(c_in, h), h
    return nn.Sequential(_convs(c_in, h), nn.Flatten()), h * length


def _decoder(network: str, z_dim: int, length: int, dims: int, n_cov: int, h: int) -> nn.Module:
    return (_GRUDecoder if network == "gru" else _Decoder)(z_dim, length, dims, n_cov, h)


class _GRUDecoder(nn.Module):
    """z → the GRU's first state; the steps' covariates (zeros without any) are its inputs; a Gaussian per step."""

    def __init__(self, z_dim: int, length: int, dims: int, n_cov: int, h: int):
        super().__init__()
        self.length, self.dims = length, dims
        self.h0 = nn.Linear(z_dim, h)
        self.gru = nn.GRU(max(n_cov, 1), h, batch_first=True)
        self.out = nn.Linear(h, 2 * dims)

    def forward(self, z: torch.Tensor, cov: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        inp = cov if cov is not None else z.new_zeros(len(z), self.length, 1)
        o = self.out(self.gru(inp, torch.tanh(self.h0(z))[None])[0])
        return o[..., : self.dims], o[..., self.dims:].clamp(-9.0, 6.0)


class _Decoder(nn.Module):
    """z (and a condition vector) → a Gaussian per step: [B, L, D] means and log-variances (1-D convolutions)."""

    def __init__(self, z_dim: int, length: int, dims: int, n_cov: int, h: int):
        super().__init__()
        self.length, self.dims, self.h = length, dims, h
        self.inp = nn.Linear(z_dim, h * length)
        self.cov = nn.Conv1d(n_cov, h, 1) if n_cov else None
        self.out = nn.Sequential(nn.GELU(), nn.Conv1d(h, h, 5, padding=2), nn.GELU(), nn.Conv1d(h, 2 * dims, 5, padding=2))

    def forward(self, z: torch.Tensor, cov: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        hid = self.inp(z).view(len(z), self.h, self.length)
        if self.cov is not None:
            hid = hid + self.cov(cov.transpose(1, 2))
        o = self.out(hid).transpose(1, 2)
        return o[..., : self.dims], o[..., self.dims:].clamp(-9.0, 6.0)


def gaussian_nll(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """−log N(x; mean, exp(logvar)) per entry, 0 where ``mask`` is 0 (nats)."""
    nll = 0.5 * (LOG2PI + logvar + (x - mean).pow(2) * torch.exp(-logvar))
    return nll if mask is None else nll * mask


class SeriesVAE(nn.Module):
    """A VAE of windows [B, L, D] with covariates [B, L, K]: conv encoder on (x·mask, mask, covariates)."""

    def __init__(self, length: int, dims: int, n_cov: int, h: int, latent_dim: int, network: str = "conv"):
        super().__init__()
        self.shape, self.latent_dim, self.n_cov = (length, dims), latent_dim, n_cov
        feat, width = _features(network, 2 * dims + n_cov, h, length)
        self.encoder = nn.Sequential(feat, nn.Linear(width, 2 * latent_dim))
        self.decoder = _decoder(network, latent_dim, length, dims, n_cov, h)

    def posterior(self, x: torch.Tensor, mask: torch.Tensor | None, cov: torch.Tensor | None):
        m = torch.ones_like(x) if mask is None else mask
        parts = [x * m, m] + ([cov] if self.n_cov else [])
        o = self.encoder(torch.cat(parts, -1).transpose(1, 2))
        return o[:, : self.latent_dim], o[:, self.latent_dim:].clamp(-12.0, 8.0)

    def loss_parts(self, x, mask, cov, gen: torch.Generator | None = None):
        """(−log p(x|z) of the observed entries, KL) per window, z one draw from q(z|x)."""
        mu, logvar = self.posterior(x, mask, cov)
        z = mu + torch.randn(mu.shape, generator=gen, device=mu.device) * (0.5 * logvar).exp()
        mean, lv = self.decoder(z, cov)
        return gaussian_nll(x, mean, lv, mask).sum((1, 2)), gaussian_kl(mu, logvar).sum(1)


    def iw_bound(self, x, mask, cov, k: int, gen: torch.Generator | None = None) -> torch.Tensor:
        """log (1/k) Σ_k p(x_obs|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x), per window: IWAE_k's bound with the
        masked likelihood, MIWAE's objective (Mattei & Frellsen 2019)."""
        mu, logvar = self.posterior(x, mask, cov)
        std = (0.5 * logvar).exp()
        eps = torch.randn((k, *mu.shape), generator=gen, device=mu.device)
        z = mu[None] + eps * std[None]
        B = len(x)
        mean, lv = self.decoder(z.reshape(k * B, -1), None if cov is None else cov.repeat(k, 1, 1))
        m = None if mask is None else mask.repeat(k, 1, 1)
        logpx = -gaussian_nll(x.repeat(k, 1, 1), mean, lv, m).sum((1, 2)).view(k, B)
        logpz = -0.5 * (z.pow(2) + LOG2PI).sum(-1)
        logq = -0.5 * (eps.pow(2) + LOG2PI).sum(-1) - torch.log(std).sum(-1)[None]
        return torch.logsumexp(logpx + logpz - logq, 0) - math.log(k)


class ForecastCVAE(nn.Module):
    """A conditional VAE of the next ``horizon`` steps given ``context`` steps and the future covariates."""

    def __init__(self, context: int, horizon: int, dims: int, n_cov: int, h: int, latent_dim: int,
                 network: str = "conv"):
        super().__init__()
        self.context, self.horizon, self.dims, self.n_cov = context, horizon, dims, n_cov
        self.shape, self.latent_dim = (context + horizon, dims), latent_dim
        feat, width = _features(network, 2 * dims + n_cov, h, context)
        self.ctx = nn.Sequential(feat, nn.Linear(width, h), nn.GELU())
        self.encoder, width = _features(network, 2 * dims, h, horizon)
        self.post = nn.Linear(width + h, 2 * latent_dim)
        self.decoder = _decoder(network, latent_dim + h, horizon, dims, n_cov, h)
        self.skip = nn.Linear(context * dims + horizon * n_cov, horizon * dims)

    def condition(self, x, mask, cov):
        """(the encoded context [B, h], the future covariates [B, H, K] or None, the skip's mean [B, H, D])."""
        C = self.context
        m = torch.ones_like(x[:, :C]) if mask is None else mask[:, :C]
        xc = x[:, :C] * m
        parts = [xc, m] + ([cov[:, :C]] if self.n_cov else [])
        hc = self.ctx(torch.cat(parts, -1).transpose(1, 2))
        fut = cov[:, C:] if self.n_cov else None
        flat = [xc.flatten(1)] + ([fut.flatten(1)] if self.n_cov else [])
        return hc, fut, self.skip(torch.cat(flat, 1)).view(len(x), self.horizon, self.dims)

    def loss_parts(self, x, mask, cov, gen: torch.Generator | None = None):
        """(−log p(future|z, condition) of the observed future entries, KL) per window."""
        C = self.context
        hc, fut, base = self.condition(x, mask, cov)
        y = x[:, C:]
        m = torch.ones_like(y) if mask is None else mask[:, C:]
        o = self.post(torch.cat([self.encoder(torch.cat([y * m, m], -1).transpose(1, 2)), hc], 1))
        mu, logvar = o[:, : self.latent_dim], o[:, self.latent_dim:].clamp(-12.0, 8.0)
        z = mu + torch.randn(mu.shape, generator=gen, device=mu.device) * (0.5 * logvar).exp()
        mean, lv = self.decoder(torch.cat([z, hc], 1), fut)
        return gaussian_nll(y, base + mean, lv, m).sum((1, 2)), gaussian_kl(mu, logvar).sum(1)

    @torch.no_grad()
    def forecast(self, x, mask, cov, samples: int, gen: torch.Generator) -> torch.Tensor:
        """[samples, B, H, D] draws of the future (model units), z ~ N(0, I): ``x`` [B, C + H, D] windows whose
        future part is ignored (give zeros), ``cov`` their covariates including the future's."""
        hc, fut, base = self.condition(x, mask, cov)
        B = len(x)
        z = torch.randn((samples * B, self.latent_dim), generator=gen, device=x.device)
        rep = lambda t: None if t is None else t.repeat(samples, *([1] * (t.ndim - 1)))  # noqa: E731
        mean, lv = self.decoder(torch.cat([z, rep(hc)], 1), rep(fut))
        eps = torch.randn(mean.shape, generator=gen, device=x.device)
        y = rep(base) + mean + eps * (0.5 * lv).exp()
        return y.view(samples, B, self.horizon, self.dims)


class SeriesELBO(Objective):
    """β-weighted −ELBO of windows (nats per window); validation: −ELBO with β = 1 and a fixed draw of z."""

    def step(self, model, batch: Batch, beta: float) -> StepOutput:
        nll, kl = model.loss_parts(batch.x, batch.mask, batch.condition)
        with torch.no_grad():
            sums = torch.stack([(nll + beta * kl).sum(), nll.sum(), kl.sum()])
        return StepOutput((nll + beta * kl).mean(), sums)

    def epoch_row(self, sums: torch.Tensor, n: int, steps: int) -> dict[str, float]:
        loss, recon, kl = (sums / n).tolist()
        return {"train_loss": loss, "train_recon": recon, "train_kl": kl}

    @torch.no_grad()
    def validate(self, model, split: Split, batch_size: int) -> dict[str, float]:
        return {"val_loss": window_elbo(model, split, batch_size)["elbo"]}


@torch.no_grad()
def window_elbo(model, split: Split, batch_size: int, seed: int = 0) -> dict[str, float]:
    """Mean −ELBO per window of ``split`` (β = 1, one seeded draw of z per window) as ``elbo``, with its
    ``recon`` (−log p of the observed entries) and ``kl`` parts (nats per window)."""
    was = model.training
    model.eval()
    try:
        dev = next(model.parameters()).device
        gen = torch.Generator(dev).manual_seed(seed)
        recon, kl_sum, n = 0.0, 0.0, len(split)
        for i in range(0, n, batch_size):
            b = split.batch(slice(i, i + batch_size)).to(dev)
            nll, kl = model.loss_parts(b.x, b.mask, b.condition, gen)
            recon, kl_sum = recon + float(nll.sum()), kl_sum + float(kl.sum())
    finally:
        model.train(was)
    n = max(n, 1)
    return {"elbo": (recon + kl_sum) / n, "recon": recon / n, "kl": kl_sum / n}


class SeriesIWAE(Objective):
    """−IWAE_K of windows with the masked likelihood (MIWAE; ``--iw-samples K``), nats per window; validation:
    the same bound with seeded draws."""

    loss_label = "−IWAE"
    metric_label = "−IWAE"

    def __init__(self, k: int):
        self.k = k

    def step(self, model, batch: Batch, beta: float) -> StepOutput:
        loss = -model.iw_bound(batch.x, batch.mask, batch.condition, self.k)
        return StepOutput(loss.mean(), loss.detach().sum().reshape(1))

    def epoch_row(self, sums: torch.Tensor, n: int, steps: int) -> dict[str, float]:
        return {"train_loss": float(sums[0]) / n}

    @torch.no_grad()
    def validate(self, model, split: Split, batch_size: int) -> dict[str, float]:
        was = model.training
        model.eval()
        try:
            dev = next(model.parameters()).device
            gen = torch.Generator(dev).manual_seed(0)
            total, bs = 0.0, max(1, batch_size // self.k)
            for i in range(0, len(split), bs):
                b = split.batch(slice(i, i + bs)).to(dev)
                total -= float(model.iw_bound(b.x, b.mask, b.condition, self.k, gen).sum())
        finally:
            model.train(was)
        return {"val_loss": total / max(len(split), 1)}


class SeriesVAEFamily(Family):
    name = "series-vae"
    data_kind = "series"
    example_model = False
    # vaekit tune watches the validation −ELBO per window (val_elbo, val_recon) over tuning.space.SERIES_SPACE_YAML
    #: what the VAE commands (sample, encode, evaluate…) say instead, refusing its runs
    other_commands = ("use `vaekit score {run} --data SERIES.csv --out scores.csv` or "
                      "`vaekit impute {run} --data SERIES.csv --out filled.csv`")
    unsupported = {
        "model": ("mlp", "its networks are 1-D convolutions over the window"),
        "free_bits": (0.0, "it trains the β-weighted ELBO"),
        "corruption": (None, "gaps are masked instead"),
        "binarize": ("none", "a series is real-valued"),
        "missing": ("error", "gaps in a series are always masked"),
        "conditional": (False, "covariates are --covariate-columns"),
        "condition_columns": (None, "covariates are --covariate-columns"),
        "gaussian_std": (None, "its Gaussian's variance is learned per step"),
        "semi_supervised": (False, "it is unsupervised"),
        "horizon": (None, "it models windows of --context steps; forecasting is --family forecast-cvae"),
    }

    def defaults(self, cfg: TrainConfig) -> TrainConfig:
        return cfg.model_copy(update={k: v for k, v in SERIES_DEFAULTS.items() if k not in cfg.model_fields_set})

    def build_for_run(self, cfg: TrainConfig, info: dict, shape: tuple[int, ...], cond) -> tuple[nn.Module, nn.Module]:
        s = info["series"]
        model = self.build(cfg, shape, len(s["covariates"]) + len(s["calendar"]))
        return model, model

    def build(self, cfg: TrainConfig, shape: tuple[int, ...], n_cov: int) -> nn.Module:
        return SeriesVAE(int(shape[0]), int(shape[1]), n_cov, int(cfg.hidden[0]), cfg.latent_dim, cfg.series_network)

    def objective(self, cfg: TrainConfig, train: Split) -> Objective:
        return SeriesIWAE(cfg.iw_samples) if cfg.iw_samples > 1 else SeriesELBO()

    def batch_source(self, cfg: TrainConfig, train: Split) -> BatchSource:
        return VAEBatches(train, cfg)


class ForecastCVAEFamily(SeriesVAEFamily):
    name = "forecast-cvae"
    other_commands = "use `vaekit forecast {run} --data SERIES.csv --out forecast.csv`"
    unsupported = {**{k: v for k, v in SeriesVAEFamily.unsupported.items() if k != "horizon"},
                   "iw_samples": (1, "it trains the β-weighted ELBO of its conditional VAE")}

    def check(self, cfg: TrainConfig) -> None:
        super().check(cfg)
        if cfg.horizon is None:
            raise UsageError("--family forecast-cvae needs --horizon N, the steps to forecast after --context")

    def build(self, cfg: TrainConfig, shape: tuple[int, ...], n_cov: int) -> nn.Module:
        return ForecastCVAE(cfg.context, int(cfg.horizon), int(shape[1]), n_cov, int(cfg.hidden[0]), cfg.latent_dim,
                            cfg.series_network)
