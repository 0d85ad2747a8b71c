"""Observation models p(x|z): each turns the decoder's output into a distribution object.

A likelihood is a small ``nn.Module`` (it may own parameters, e.g. a learned per-feature scale) whose
``forward(params)`` returns a ``torch.distributions`` object over one example's full shape, with
``log_prob`` summed over features (nats per example), ``sample`` and ``mean``. A new likelihood is
a new class here, never a new branch in the loss.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Bernoulli, Distribution, Independent, Normal


class Likelihood(nn.Module):
    """Base class: ``forward(decoder_output) -> Distribution`` with event shape = example shape."""

    name: str = ""
    #: how many decoder outputs per feature the likelihood needs (1 for Bernoulli logits or a mean)
    params_per_feature: int = 1

    def forward(self, params: torch.Tensor) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    def nll(self, params: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Negative log-likelihood per example (nats), summed over features; with ``mask`` (1 = observed,
        0 = missing, same shape as x) only the observed features count (MIWAE's masked likelihood)."""
        if mask is None:
            return -self(params).log_prob(x)
        return (self.nll_features(params, x) * mask).flatten(1).sum(1)

    def nll_features(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of each feature (nats), shape of x."""
        base = self(params).base_dist
        return -base.log_prob(x)

    def nll_samples(self, params: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """NLL of each example under each of ``s`` decoder outputs: params ``[s, b, *shape]``, x ``[b, *shape]``
        -> ``[s, b]`` (nats); ``mask`` ``[b, *shape]`` as in :meth:`nll`. Subclasses broadcast x instead of
        copying it ``s`` times."""
        s, b = params.shape[:2]
        target = x.unsqueeze(0).expand_as(params).reshape(s * b, *x.shape[1:])
        m = None if mask is None else mask.unsqueeze(0).expand_as(params).reshape(s * b, *x.shape[1:])
        return self.nll(params.reshape(s * b, *x.shape[1:]), target, m).view(s, b)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """E[x|z] for decoder outputs ``params`` (data in model units)."""
        return self(params).mean

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One draw x ~ p(x|z) per row of ``params``."""
        return self(params).sample()


class BernoulliLikelihood(Likelihood):
    """Independent Bernoulli per feature, parameterised by logits.

    For targets in [0, 1] that are not binary the value is the cross-entropy, which is not a normalised
    density over continuous data; evaluation reports say so.
    """

    name = "bernoulli"

    def forward(self, params: torch.Tensor) -> Distribution:
        return Independent(Bernoulli(logits=params, validate_args=False), params.dim() - 1)

    def nll(self, params: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # Same value as -log_prob, without building distribution objects in the training step.
        bce = self.nll_features(params, x)
        if mask is not None:
            bce = bce * mask
        return bce.flatten(1).sum(1)

    def nll_features(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(params, x, reduction="none")

    def nll_samples(self, params: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # -log Bernoulli(x; sigmoid(l)) = softplus(l) - x * l, with x broadcast over the samples
        per_feature = nn.functional.softplus(params) - x.unsqueeze(0) * params
        if mask is not None:
            per_feature = per_feature * mask.unsqueeze(0)
        return per_feature.flatten(2).sum(-1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(params)

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        u = torch.rand(params.shape, generator=generator).to(params.device, params.dtype)
        return (u < torch.sigmoid(params)).to(params.dtype)


class GaussianLikelihood(Likelihood):
    """Independent Gaussian per feature with the decoder output as mean.

    The standard deviation is either fixed (``std`` given) or learned, one per feature
    (``shape`` needed), as a free log-scale parameter shared across examples.
    """

    name = "gaussian"

    def __init__(self, shape: tuple[int, ...], std: float | None = None) -> None:
        super().__init__()
        self.fixed_std = std
        if std is None:
            self.log_scale = nn.Parameter(torch.zeros(shape))
        else:
            self.register_buffer("log_scale", torch.full(shape, math.log(std)))

    def forward(self, params: torch.Tensor) -> Distribution:
        scale = self.log_scale.exp().expand_as(params)
        return Independent(Normal(params, scale, validate_args=False), params.dim() - 1)

    def nll(self, params: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        per_feature = self.nll_features(params, x)
        if mask is not None:
            per_feature = per_feature * mask
        return per_feature.flatten(1).sum(1)

    def nll_features(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        log_scale = self.log_scale
        z = (x - params) * torch.exp(-log_scale)
        return 0.5 * z * z + log_scale + 0.5 * math.log(2 * math.pi)

    def nll_samples(self, params: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        z = (x.unsqueeze(0) - params) * torch.exp(-self.log_scale)
        if mask is None:
            const = (self.log_scale + 0.5 * math.log(2 * math.pi)).sum()
            return 0.5 * (z * z).flatten(2).sum(-1) + const
        per_feature = (0.5 * z * z + self.log_scale + 0.5 * math.log(2 * math.pi)) * mask.unsqueeze(0)
        return per_feature.flatten(2).sum(-1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return params

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        eps = torch.randn(params.shape, generator=generator).to(params.device, params.dtype)
        return params + eps * self.log_scale.exp()


class MixedDistribution(Distribution):
    """p(x|z) of a mixed-type table row: independent Gaussians on the numeric features, one categorical per
    one-hot block. ``log_prob`` takes one-hot blocks (nats per example); ``mean`` gives the block's category
    probabilities; ``sample`` one-hot draws."""

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, lik: "MixedLikelihood", params: torch.Tensor) -> None:
        self.lik, self.params = lik, params
        super().__init__(params.shape[:-1], params.shape[-1:], validate_args=False)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return -self.lik.nll_features(self.params, x).sum(-1)

    @property
    def mean(self) -> torch.Tensor:
        return self.lik.mean(self.params)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        if len(sample_shape):
            return torch.stack([self.lik.sample(self.params) for _ in range(int(torch.Size(sample_shape).numel()))]
                               ).view(*sample_shape, *self.params.shape)
        return self.lik.sample(self.params)


class MixedLikelihood(Likelihood):
    """Mixed-type tables: Gaussian on the numeric features (learned per-feature std, or fixed ``std``) and a
    categorical (softmax over the block's decoder outputs, i.e. logits) on each one-hot block.

    ``schema`` is the table's column schema (``data.tables``). Per-feature NLLs put a block's −log p(category)
    on its one-hot position (−x_k log softmax_k), so a mask of 0 over a block (a missing cell) removes exactly
    that cell's term, and ``nll`` sums to Σ −log N(numeric) + Σ −log Cat(block) nats per example.
    """

    name = "mixed"

    def __init__(self, shape: tuple[int, ...], schema: list[dict], std: float | None = None) -> None:
        super().__init__()
        if len(shape) != 1:
            raise ValueError(f"the mixed likelihood is for tables [N, D]; got examples of shape {list(shape)}")
        numeric = [c["start"] for c in schema if c["kind"] == "numeric"]
        self.blocks = [(int(c["start"]), int(c["stop"])) for c in schema if c["kind"] == "categorical"]
        if not self.blocks:
            raise ValueError("the mixed likelihood needs a categorical column; use gaussian")
        width = max(int(c["stop"]) for c in schema)
        if width != shape[0]:
            raise ValueError(f"the schema describes {width} features but examples have {shape[0]}")
        self.register_buffer("numeric", torch.tensor(numeric, dtype=torch.long), persistent=False)
        self.fixed_std = std
        if std is None:
            self.log_scale = nn.Parameter(torch.zeros(len(numeric)))
        else:
            self.register_buffer("log_scale", torch.full((len(numeric),), math.log(std)))

    def forward(self, params: torch.Tensor) -> Distribution:
        return MixedDistribution(self, params)

    def _log_probs(self, params: torch.Tensor) -> torch.Tensor:
        """``params`` with each block replaced by its log-softmax (numeric positions untouched)."""
        out = params.clone()
        for a, b in self.blocks:
            out[..., a:b] = torch.log_softmax(params[..., a:b], dim=-1)
        return out

    def nll_features(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        per = -x * self._log_probs(params)  # categorical: −log p(category) at the one-hot position
        if len(self.numeric):
            ls = self.log_scale
            zn = (x[..., self.numeric] - params[..., self.numeric]) * torch.exp(-ls)
            gauss = 0.5 * zn * zn + ls + 0.5 * math.log(2 * math.pi)
            per = per.index_copy(per.dim() - 1, self.numeric, gauss)
        return per

    def nll(self, params: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        per = self.nll_features(params, x)
        if mask is not None:
            per = per * mask
        return per.sum(-1)

    def nll_samples(self, params: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        per = self.nll_features(params, x.unsqueeze(0))  # x broadcast over the samples
        if mask is not None:
            per = per * mask.unsqueeze(0)
        return per.sum(-1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        out = params.clone()
        for a, b in self.blocks:
            out[..., a:b] = torch.softmax(params[..., a:b], dim=-1)
        return out

    def mean_with_drawn_categories(self, params: torch.Tensor,
                                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Numeric features at their mean, each block a one-hot draw from its categorical: what a sampled
        table shows (the argmax of the mean would always give the block's mode)."""
        out = self.sample(params, generator)
        if len(self.numeric):
            out[..., self.numeric] = params[..., self.numeric]
        return out

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        out = params.clone()
        if len(self.numeric):
            num = params[..., self.numeric]
            eps = torch.randn(num.shape, generator=generator).to(params.device, params.dtype)
            out[..., self.numeric] = num + eps * self.log_scale.exp()
        for a, b in self.blocks:
            probs = torch.softmax(params[..., a:b], dim=-1).reshape(-1, b - a)
            u = torch.rand(len(probs), 1, generator=generator).to(params.device, params.dtype)
            k = (probs.cumsum(-1) < u).sum(-1).clamp_max(b - a - 1)
            out[..., a:b] = nn.functional.one_hot(k, b - a).to(params.dtype).view(*params.shape[:-1], b - a)
        return out


def build_likelihood(name: str, shape: tuple[int, ...], std: float | None = None,
                     schema: list[dict] | None = None) -> Likelihood:
    """The likelihood called ``name`` for examples of ``shape`` (``mixed`` needs the table's ``schema``)."""
    if name == "bernoulli":
        return BernoulliLikelihood()
    if name == "gaussian":
        return GaussianLikelihood(shape, std)
    if name == "mixed":
        if schema is None:
            raise ValueError("the mixed likelihood needs the table's column schema")
        return MixedLikelihood(shape, schema, std)
    raise ValueError(f"unknown likelihood {name!r}; choose bernoulli, gaussian or mixed")
