"""The ``m2`` family: the semi-supervised VAE of Kingma et al. (2014), learning from many unlabelled and a
few labelled examples.

Generative model p(y) p(z) p(x|y,z) with a uniform p(y); inference q(y|x) (the classifier) and q(z|x,y).
The generative part is exactly a label-conditional VAE (``VAE`` with ``cond_dim = K``), so a trained M2
samples, reconstructs and encodes like any conditional run; the classifier is the extra piece.

Per example (nats), with KL weight β (1 unless a β schedule is set):
- labelled:   L(x, y) = −log p(x|y,z) + β KL(q(z|x,y) || p(z)) + log K          (−ELBO with p(y) = 1/K)
- unlabelled: U(x) = Σ_y q(y|x) L(x, y) − H(q(y|x))
- objective:  (N_l mean L + N_u mean U) / N + α (N_l / N) mean CE(q(y|x), y),  α = alpha × N (Kingma: 0.1 N)

Each step takes a batch of all training examples (labels hidden) and a batch of the labelled ones (drawn
with the trainer's shuffling generator). Early stopping watches the label-free validation U.
The classifier is trained directly on only the labelled examples, so it memorises them (cross-entropy
→ 0.0004 on 100 Fashion-MNIST labels); dropout (``classifier_dropout``) and Gaussian input noise on the
labelled batch (``classifier_noise``) regularise it (numbers: bench/README.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn

from ..config import TrainConfig
from ..core.objectives import Objective, StepOutput, gaussian_kl
from ..data.batch import Batch
from ..data.dataset import Split
from ..errors import UsageError
from ..core.vae import VAE, build_model
from ..core.networks import mlp_layers
from .base import BatchSource, Family


class Classifier(nn.Module):
    """q(y|x): an MLP on the flattened input, returning logits over the K classes."""

    def __init__(self, shape: tuple[int, ...], hidden: list[int], n_classes: int, dropout: float = 0.0):
        super().__init__()
        d = math.prod(shape)
        self.body = nn.Sequential(nn.Flatten(), *mlp_layers([d, *hidden], dropout))
        self.head = nn.Linear(hidden[-1] if hidden else d, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class M2(nn.Module):
    def __init__(self, vae: VAE, classifier: Classifier, n_classes: int):
        super().__init__()
        self.vae = vae
        self.classifier = classifier
        self.n_classes = n_classes

    def labelled_loss(self, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor | None = None,
                      beta: float = 1.0) -> torch.Tensor:
        """L(x, y) per example (nats); ``eps`` fixes the reparameterisation noise (for tests)."""
        c = nn.functional.one_hot(y, self.n_classes).to(x.dtype)
        mu, logvar = self.vae.posterior_params(x, c)
        z = mu + (torch.randn_like(mu) if eps is None else eps) * (0.5 * logvar).exp()
        recon = self.vae.likelihood.nll(self.vae.decoder_params(z, c), x)
        kl = gaussian_kl(mu, logvar).sum(1)
        return recon + beta * kl + math.log(self.n_classes)

    def unlabelled_loss(self, x: torch.Tensor, eps: torch.Tensor | None = None, beta: float = 1.0) -> torch.Tensor:
        """U(x) per example: the expectation of L over q(y|x) (summed exactly over the K labels) − H(q(y|x))."""
        k, b = self.n_classes, len(x)
        log_q = nn.functional.log_softmax(self.classifier(x), dim=1)  # [b, k]
        xs = x.unsqueeze(0).expand(k, *x.shape).reshape(k * b, *x.shape[1:])
        ys = torch.arange(k, device=x.device).repeat_interleave(b)
        e = None if eps is None else eps.unsqueeze(0).expand(k, *eps.shape).reshape(k * b, -1)
        L = self.labelled_loss(xs, ys, e, beta).view(k, b).t()  # [b, k]
        q = log_q.exp()
        return (q * L).sum(1) + (q * log_q).sum(1)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
        was = self.training
        self.eval()
        dev = next(self.parameters()).device
        out = torch.cat([nn.functional.softmax(self.classifier(x[i: i + batch_size].to(dev)), 1).cpu()
                         for i in range(0, len(x), batch_size)])
        self.train(was)
        return out


class M2Batches(BatchSource):
    """Per step: a batch of all training examples (labels hidden) and ``min(batch, N_l)`` labelled examples
    drawn with replacement."""

    def __init__(self, train: Split, cfg: TrainConfig, labelled_idx: torch.Tensor):
        super().__init__(train, cfg.batch_size)
        idx = labelled_idx.to(train.x.device)
        self.xl, self.yl = train.x[idx], train.y[idx].to(train.x.device)

    def epoch(self, perm: torch.Tensor, gen: torch.Generator) -> Iterator[tuple[Batch, Batch]]:
        x, bs, n_l = self.train.x, self.batch_size, len(self.xl)
        for k in range(self.steps):
            li = torch.randint(0, n_l, (min(bs, n_l),), generator=gen).to(x.device)
            yield Batch(x[perm[k * bs: (k + 1) * bs]]), Batch(self.xl[li], labels=self.yl[li])


class M2Objective(Objective):
    """(N_l mean L + N_u mean U) / N + α (N_l / N) CE; validated on the label-free U (``val_loss``)."""

    metric_label = "U"
    loss_label = "loss"

    def __init__(self, n: int, n_labelled: int, alpha: float, classifier_noise: float):
        self.n, self.n_l = n, n_labelled
        self.w_cls = alpha * n * n_labelled / n  # α (N_l/N) with α = alpha N
        self.noise = classifier_noise

    sums_reduce = "mean"  # its sums are per-step means (epoch_row divides by steps)

    def step(self, model: M2, batch: tuple[Batch, Batch], beta: float) -> StepOutput:
        unlabelled, labelled = batch
        U = model.unlabelled_loss(unlabelled.x, beta=beta).mean()
        L = model.labelled_loss(labelled.x, labelled.labels, beta=beta).mean()
        xc = labelled.x
        if self.noise > 0:  # the classifier sees only the few labelled inputs: jitter them
            xc = xc + self.noise * torch.randn_like(xc)
        ce = nn.functional.cross_entropy(model.classifier(xc), labelled.labels)
        loss = (self.n_l * L + (self.n - self.n_l) * U) / self.n + self.w_cls * ce
        return StepOutput(loss, torch.stack([U.detach(), L.detach(), ce.detach(), loss.detach()]))

    def epoch_row(self, sums: torch.Tensor, n: int, steps: int) -> dict[str, float]:
        u, lab, ce, loss = (sums / steps).tolist()
        return {"train_unlabelled": u, "train_labelled": lab, "train_ce": ce, "train_loss": loss}

    def validate(self, model: M2, split: Split, batch_size: int) -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            u = float(torch.cat([model.unlabelled_loss(split.x[i: i + 512])
                                 for i in range(0, len(split.x), 512)]).mean())
        return {"val_unlabelled": u, "val_loss": u}


class M2Family(Family):
    name = "m2"
    unsupported = {
        "free_bits": (0.0, "M2's KL is summed over the labels inside U(x); use --kl-warmup instead"),
        "iw_samples": (1, "M2 trains on its ELBO"),
        "binarize": ("none", "binarize the images before training"),
        "missing": ("error", "M2 needs complete inputs"),
        "corruption": (None, "M2 has no denoising objective"),
    }

    def __init__(self, labelled_idx: torch.Tensor | None = None):
        self.labelled_idx = labelled_idx

    def build_for_run(self, cfg: TrainConfig, info: dict, shape: tuple[int, ...], cond) -> tuple[nn.Module, nn.Module]:
        m2 = self.build(cfg, shape, cond.dim)
        return m2.vae, m2

    def build(self, cfg: TrainConfig, shape: tuple[int, ...], n_classes: int) -> M2:
        vae = build_model(cfg, shape, n_classes)
        return M2(vae, Classifier(shape, cfg.hidden, n_classes, cfg.classifier_dropout), n_classes)

    def _labelled(self) -> torch.Tensor:
        if self.labelled_idx is None:
            raise UsageError("the m2 family needs the indices of its labelled training examples")
        return self.labelled_idx

    def objective(self, cfg: TrainConfig, train: Split) -> Objective:
        return M2Objective(len(train), len(self._labelled()), cfg.alpha, cfg.classifier_noise)

    def batch_source(self, cfg: TrainConfig, train: Split) -> BatchSource:
        return M2Batches(train, cfg, self._labelled())

    def networks(self, model: nn.Module) -> nn.Module:
        return model.vae

    def state_extra(self) -> dict:
        return {"semi_supervised": True}


def check_labeled(labeled: int | None, n_labelled_available: int) -> int:
    """The number of training labels to keep (``--labeled``), checked against the labels the split has."""
    if labeled is None:
        raise UsageError("--semi-supervised needs --labeled N, the number of training labels to keep "
                         "(or data whose unknown labels are marked -1)")
    if labeled < 1 or labeled > n_labelled_available:
        raise UsageError(f"--labeled {labeled} is out of range: the training split has {n_labelled_available} "
                         "labelled examples")
    return labeled
