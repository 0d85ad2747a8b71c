"""Shared pieces of the benchmarks: data, the reference ("typical user") VAE and loop, FLOP counts,
the matmul-rate probe, timing helpers, the table printer and the JSON writer."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# The classic recipe.
D, H, Z = 784, 400, 20
BATCH, LR = 128, 1e-3


# -- FLOPs ------------------------------------------------------------------------------------------
def mlp_macs(sizes: list[int]) -> int:
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def train_flops_per_example(d: int = D, h: int = H, z: int = Z) -> float:
    """Matmul FLOPs of one training step per example: forward + weight grads + input grads
    (no input grad for the first layer). 784-400-20 gives 3.28 MFLOP."""
    fwd = mlp_macs([d, h]) + mlp_macs([h, 2 * z]) + mlp_macs([z, h]) + mlp_macs([h, d])
    first = d * h
    return 2.0 * (fwd + fwd + (fwd - first))


def encoder_flops(d: int = D, h: int = H, z: int = Z) -> float:
    return 2.0 * (d * h + h * 2 * z)


def decoder_flops(d: int = D, h: int = H, z: int = Z) -> float:
    return 2.0 * (z * h + h * d)


# -- data -------------------------------------------------------------------------------------------
def load_fashion(seed: int = 0, val_fraction: float = 0.1):
    """(train_x, val_x, test_x) exactly as ``vaekit.train("fashion-mnist")`` splits them."""
    from vaekit.data import load_source, split_dataset

    ds = load_source("fashion-mnist")
    train, val, test = split_dataset(ds, val_fraction=val_fraction, seed=seed)
    return train.x.contiguous(), val.x.contiguous(), test.x.contiguous()


# -- vaekit side ------------------------------------------------------------------------------------
def vaekit_config(epochs: int, batch_size: int = BATCH, lr: float = LR, lr_schedule: str = "none", **kw):
    from vaekit.config import make_config

    return make_config(model="mlp", hidden=[H], latent_dim=Z, likelihood="bernoulli", lr=lr,
                       batch_size=batch_size, epochs=epochs, patience=None, lr_schedule=lr_schedule,
                       device="cpu", **kw)


def vaekit_model(cfg, seed: int = 0):
    from vaekit.model import build_model

    torch.manual_seed(seed)
    return build_model(cfg, (1, 28, 28))


# -- the reference: how a typical user writes it (pytorch/examples' vae) -----------------------------
class RefVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(D, H)
        self.fc21 = nn.Linear(H, Z)
        self.fc22 = nn.Linear(H, Z)
        self.fc3 = nn.Linear(Z, H)
        self.fc4 = nn.Linear(H, D)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        return mu + torch.randn_like(std) * std

    def decode(self, z):
        return self.fc4(F.relu(self.fc3(z)))  # logits

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, D))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def ref_loss(logits, x, mu, logvar):
    bce = F.binary_cross_entropy(torch.sigmoid(logits), x.view(-1, D), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def ref_model(seed: int = 0) -> RefVAE:
    torch.manual_seed(seed)
    return RefVAE()


def ref_loader(train_x: torch.Tensor, batch_size: int = BATCH, seed: int = 0):
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(train_x), batch_size=batch_size, shuffle=True, generator=g)


def ref_train_epoch(model: RefVAE, opt, loader) -> float:
    """One epoch, written the way pytorch/examples' vae does it (``loss.item()`` every step)."""
    model.train()
    train_loss = 0.0
    for (x,) in loader:
        opt.zero_grad()
        logits, mu, logvar = model(x)
        loss = ref_loss(logits, x, mu, logvar)
        loss.backward()
        train_loss += loss.item()
        opt.step()
    return train_loss / len(loader.dataset)


def ref_as_vaekit(ref: RefVAE):
    """The reference weights inside a vaekit VAE (fc21/fc22 fused into the head), for evaluate_elbo."""
    cfg = vaekit_config(1)
    m = vaekit_model(cfg)
    sd = {
        "encoder.body.1.weight": ref.fc1.weight, "encoder.body.1.bias": ref.fc1.bias,
        "encoder.head.weight": torch.cat([ref.fc21.weight, ref.fc22.weight]),
        "encoder.head.bias": torch.cat([ref.fc21.bias, ref.fc22.bias]),
        "decoder.body.0.weight": ref.fc3.weight, "decoder.body.0.bias": ref.fc3.bias,
        "decoder.head.weight": ref.fc4.weight, "decoder.head.bias": ref.fc4.bias,
    }
    m.load_state_dict({k: v.detach().clone() for k, v in sd.items()})
    return m.eval()


def test_elbo(model, test_x: torch.Tensor, seed: int = 1234) -> dict[str, float]:
    """vaekit's evaluate_elbo (one posterior sample) with a fixed seed, so both sides see the same noise."""
    from vaekit.training import evaluate_elbo

    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        return evaluate_elbo(model, test_x)
    finally:
        torch.set_rng_state(state)


# -- the matmul rate -------------------------------------------------------------------------------
def _mm_rate(m: int, k: int, n: int, seconds: float) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    out = torch.empty(m, n)
    for _ in range(3):
        torch.mm(a, b, out=out)
    reps, t0 = 0, time.perf_counter()
    while True:
        torch.mm(a, b, out=out)
        reps += 1
        dt = time.perf_counter() - t0
        if dt >= seconds:
            break
    return 2.0 * m * k * n * reps / dt / 1e9


def matmul_rate(seconds: float = 1.0, repeats: int = 3) -> dict[str, float]:
    """torch's sustained FP32 matmul rate (GFLOP/s, median of ``repeats``) on the recipe's shapes and
    on a big square product."""
    shapes = {"128x784@784x400": (128, 784, 400), "128x400@400x784": (128, 400, 784),
              "2048x2048@2048x2048": (2048, 2048, 2048)}
    out = {}
    for name, s in shapes.items():
        out[name] = statistics.median(_mm_rate(*s, seconds) for _ in range(repeats))
    return out


# -- misc -------------------------------------------------------------------------------------------
def env_info() -> dict[str, Any]:
    try:
        import vaekit

        vv = vaekit.__version__
    except Exception:  # pragma: no cover
        vv = "?"
    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = None
    return {"torch": torch.__version__, "vaekit": vv, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "machine": platform.machine(),
            "loadavg_at_end": load, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}


def write_result(name: str, payload: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"benchmark": name, "env": env_info(), **payload}
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    return path


def print_table(title: str, rows: list[tuple], headers: tuple[str, ...]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=title)
        for h in headers:
            t.add_column(h, justify="right" if h != headers[0] else "left")
        for r in rows:
            t.add_row(*[fmt(v) for v in r])
        Console().print(t)
    except ImportError:  # pragma: no cover
        print(title)
        print(" | ".join(headers))
        for r in rows:
            print(" | ".join(fmt(v) for v in r))


def fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def median(xs):
    return statistics.median(xs)
