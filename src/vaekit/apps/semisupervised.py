"""Semi-supervised VAE, model M2 of Kingma et al. (2014): learn from many unlabelled and a few labelled examples.

Generative model p(y) p(z) p(x|y,z) with a uniform p(y); inference q(y|x) (the classifier) and q(z|x,y).
The generative part is exactly a label-conditional VAE (``VAE`` with ``cond_dim = K``), so a trained M2
samples, reconstructs and encodes like any conditional run; the classifier is the extra piece.

Per example (nats):
- labelled:   L(x, y) = −log p(x|y,z) + KL(q(z|x,y) || p(z)) + log K          (−ELBO with p(y) = 1/K)
- unlabelled: U(x) = Σ_y q(y|x) L(x, y) − H(q(y|x))
- objective:  (N_l mean L + N_u mean U) / N + α (N_l / N) mean CE(q(y|x), y),  α = alpha × N (Kingma: 0.1 N)

The classifier is trained directly on only the labelled examples, so it memorises them (cross-entropy
→ 0.0004 on 100 Fashion-MNIST labels); dropout (``classifier_dropout``) and Gaussian input noise on the labelled
batch (``classifier_noise``) regularise it; the unlabelled term then adds on top (numbers: bench/README.md).
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..config import TrainConfig
from ..errors import RunError, UsageError
from ..model import VAE, gaussian_kl
from ..networks import _mlp
from ..runs import (METRICS, STATE_JSON, STATE_TENSORS, atomic_write_text, json_text, load_tensors, read_json,
                    read_tensor_metadata, regular_file, save_tensors, write_json)


class Classifier(nn.Module):
    """q(y|x): an MLP on the flattened input, returning logits over the K classes."""

    def __init__(self, shape: tuple[int, ...], hidden: list[int], n_classes: int, dropout: float = 0.0):
        super().__init__()
        d = math.prod(shape)
        self.body = nn.Sequential(nn.Flatten(), *_mlp([d, *hidden], dropout))
        self.head = nn.Linear(hidden[-1] if hidden else d, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class M2(nn.Module):
    def __init__(self, vae: VAE, classifier: Classifier, n_classes: int):
        super().__init__()
        self.vae = vae
        self.classifier = classifier
        self.n_classes = n_classes

    def labelled_loss(self, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        """L(x, y) per example (nats); ``eps`` fixes the reparameterisation noise (for tests)."""
        c = nn.functional.one_hot(y, self.n_classes).to(x.dtype)
        mu, logvar = self.vae.posterior_params(x, c)
        z = mu + (torch.randn_like(mu) if eps is None else eps) * (0.5 * logvar).exp()
        recon = self.vae.likelihood.nll(self.vae.decoder_params(z, c), x)
        return recon + gaussian_kl(mu, logvar).sum(1) + math.log(self.n_classes)

    def unlabelled_loss(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        """U(x) per example: the expectation of L over q(y|x) (summed exactly over the K labels) − H(q(y|x))."""
        k, b = self.n_classes, len(x)
        log_q = nn.functional.log_softmax(self.classifier(x), dim=1)  # [b, k]
        xs = x.unsqueeze(0).expand(k, *x.shape).reshape(k * b, *x.shape[1:])
        ys = torch.arange(k, device=x.device).repeat_interleave(b)
        e = None if eps is None else eps.unsqueeze(0).expand(k, *eps.shape).reshape(k * b, -1)
        L = self.labelled_loss(xs, ys, e).view(k, b).t()  # [b, k]
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


def fit_m2(m2: M2, cfg: TrainConfig, train_x: torch.Tensor, labelled_idx: torch.Tensor, train_y: torch.Tensor,
           val_x: torch.Tensor, device: torch.device, run_dir: Path | None = None, progress: bool = False,
           alpha: float = 0.1, resume: bool = False, on_epoch_end: Callable[[dict], None] | None = None) -> dict:
    """Train M2 for ``cfg.epochs`` (early stopping on the label-free validation U with ``cfg.patience``).

    Each step takes a batch of all training examples (labels hidden) and a batch of the labelled ones.
    With ``run_dir`` every epoch ends in a checkpoint (the run's trainer-state files); ``resume`` continues
    from it exactly (same weights as an uninterrupted run). Returns the history summary; the best weights
    (lowest validation U) are restored.
    """
    from ..training import make_optimizer

    m2.to(device)
    opt = make_optimizer(m2, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    x = train_x.to(device)
    xl, yl = train_x[labelled_idx].to(device), train_y[labelled_idx].to(device)
    val_x = val_x.to(device)
    n, n_l = len(x), len(xl)
    n_u = n - n_l
    w_cls = alpha * n * n_l / n  # α (N_l/N) with α = alpha N
    steps = math.ceil(n / cfg.batch_size)
    st = {"epoch": 0, "best": math.inf, "bad": 0}
    best_state, history = copy.deepcopy(m2.state_dict()), []
    if resume:
        assert run_dir is not None
        best_state, history = _load_m2_checkpoint(run_dir, m2, opt, gen, st, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
    for epoch in range(st["epoch"] + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        m2.train()
        perm = torch.randperm(n, generator=gen).to(device)
        sums = torch.zeros(3, device=device)
        for k in range(steps):
            xb = x[perm[k * cfg.batch_size: (k + 1) * cfg.batch_size]]
            li = torch.randint(0, n_l, (min(cfg.batch_size, n_l),), generator=gen).to(device)
            with autocast:  # --precision bf16, as in Trainer (CPU autocast supports bfloat16 too)
                U = m2.unlabelled_loss(xb).mean()
                L = m2.labelled_loss(xl[li], yl[li]).mean()
                xc = xl[li]
                if cfg.classifier_noise > 0:  # the classifier sees only the few labelled inputs: jitter them
                    xc = xc + cfg.classifier_noise * torch.randn_like(xc)
                ce = nn.functional.cross_entropy(m2.classifier(xc), yl[li])
                loss = (n_l * L + n_u * U) / n + w_cls * ce
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(m2.parameters(), cfg.grad_clip)
            opt.step()
            sums += torch.stack([U.detach(), L.detach(), ce.detach()])
        u, lab, ce_mean = (sums / steps).tolist()
        if not all(map(math.isfinite, (u, lab, ce_mean))):
            from ..errors import TrainingError

            raise TrainingError(f"the M2 loss became non-finite at epoch {epoch}; lower --lr or set --grad-clip")
        m2.eval()
        with torch.no_grad():
            val_u = float(torch.cat([m2.unlabelled_loss(val_x[i: i + 512]) for i in range(0, len(val_x), 512)]).mean())
        if not math.isfinite(val_u):
            from ..errors import TrainingError

            raise TrainingError(f"the M2 validation loss became {val_u} at epoch {epoch}; lower --lr or set "
                                "--grad-clip (the last good checkpoint is kept)")
        row = {"epoch": epoch, "train_unlabelled": u, "train_labelled": lab, "train_ce": ce_mean,
               "val_unlabelled": val_u, "seconds": time.perf_counter() - t0}
        history.append(row)
        if val_u < st["best"] - cfg.min_delta:
            st["best"], st["bad"], best_state = val_u, 0, copy.deepcopy(m2.state_dict())
        else:
            st["bad"] += 1
        st["epoch"] = epoch
        if run_dir is not None:
            with open(run_dir / METRICS, "a") as f:
                f.write(json_text(row) + "\n")
            _save_m2_checkpoint(run_dir, m2, best_state, opt, gen, st)
        if progress:
            print(f"epoch {epoch}/{cfg.epochs}: U {u:.2f}  L {lab:.2f}  CE {ce_mean:.3f}  val U {val_u:.2f} nats",
                  flush=True)
        if on_epoch_end is not None:
            on_epoch_end(row)
        if cfg.patience is not None and st["bad"] >= cfg.patience:
            break
    m2.load_state_dict(best_state)
    return {"epochs_run": len(history), "best_val_unlabelled": st["best"], "history": history}


def _save_m2_checkpoint(run_dir: Path, m2: M2, best_state: dict, opt: torch.optim.Optimizer,
                        gen: torch.Generator, st: dict) -> None:
    """M2's resume state in the run's trainer-state files (safetensors + JSON, the JSON also in the metadata)."""
    from ..training import optimizer_state

    opt_tensors, opt_json = optimizer_state(opt)
    tensors = {**{f"model.{k}": v for k, v in m2.state_dict().items()},
               **{f"best.{k}": v for k, v in best_state.items()}, **opt_tensors,
               "rng.torch": torch.get_rng_state(), "rng.shuffle": gen.get_state()}
    state = {**st, "finished": False, "semi_supervised": True, "optimizer": opt_json}
    save_tensors(run_dir / STATE_TENSORS, tensors, metadata={"state": json_text(state)})
    write_json(run_dir / STATE_JSON, state)


def _load_m2_checkpoint(run_dir: Path, m2: M2, opt: torch.optim.Optimizer, gen: torch.Generator, st: dict,
                        device: torch.device) -> tuple[dict, list[dict]]:
    from ..training import load_optimizer_state

    tensors = load_tensors(run_dir / STATE_TENSORS)
    meta = read_tensor_metadata(run_dir / STATE_TENSORS)
    state = json.loads(meta["state"]) if "state" in meta else read_json(run_dir / STATE_JSON)
    if not state.get("semi_supervised"):
        raise RunError(f"{run_dir} holds no semi-supervised trainer state to resume")
    m2.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    best = {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
    load_optimizer_state(opt, tensors, state["optimizer"])
    torch.set_rng_state(tensors["rng.torch"])
    gen.set_state(tensors["rng.shuffle"])
    st.update(epoch=state["epoch"], best=math.inf if state["best"] is None else state["best"], bad=state["bad"])
    # metrics.jsonl may hold a line written after the checkpoint: keep only completed epochs.
    metrics = run_dir / METRICS
    rows = [json.loads(r) for r in metrics.read_text().splitlines() if r.strip()] if regular_file(metrics) else []
    history = [r for r in rows if r["epoch"] <= st["epoch"]]
    atomic_write_text(metrics, "".join(json_text(r) + "\n" for r in history))
    return best, history


def check_labeled(labeled: int | None, n_labelled_available: int) -> int:
    if labeled is None:
        raise UsageError("--semi-supervised needs --labeled N, the number of training labels to keep "
                         "(or data whose unknown labels are marked -1)")
    if labeled < 1 or labeled > n_labelled_available:
        raise UsageError(f"--labeled {labeled} is out of range: the training split has {n_labelled_available} "
                         "labelled examples")
    return labeled
