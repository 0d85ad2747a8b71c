"""Sample quality in the features of a small classifier vaekit trains once per dataset.

The Inception network of FID cannot be downloaded here and is far too slow on a CPU; and for 28×28 greyscale
clothes or 8×8 digits its ImageNet features would measure the wrong thing anyway. vaekit instead trains a
small conv net (:class:`FeatureNet`) on the dataset's labelled training split (vaekit's default split, seed 0,
so it is a function of the dataset alone), seeded, for a fixed number of steps, and caches its weights in the
cache directory as ``classifiers/vaekit-classifier-<fingerprint[:12]>.safetensors`` (metadata: its settings,
held-out accuracy, torch version). The cached file pins it: every later number for that dataset uses the same
weights. Its 128 penultimate activations are the features of the Fréchet distance and of precision/recall
(:mod:`.frechet`). The name ``vaekit-classifier-<fingerprint[:12]>`` goes with every number: numbers in
different classifiers' features are not comparable, and none is comparable with a published FID.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn

FEATURES = 128
BATCH, LR, SEED = 128, 2e-3, 0
MIN_STEPS, MAX_STEPS, EPOCHS = 200, 800, 20  # 20 passes over a small dataset, ~2 over Fashion-MNIST
VERSION = 1


class FeatureNet(nn.Module):
    """conv 3×3 (16) → conv 3×3 stride 2 (32) → conv 3×3 stride 2 (64) → 2×2 average pool → 128 features
    (ReLU) → class logits. Takes images ``[N, C, H, W]`` in [0, 1], H and W at least 4."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(256, FEATURES), nn.ReLU())
        self.head = nn.Linear(FEATURES, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    @torch.no_grad()
    def features(self, x: torch.Tensor, batch: int = 1024) -> torch.Tensor:
        """Penultimate activations ``[N, 128]`` (eval mode, CPU float32)."""
        self.eval()
        return torch.cat([self.body(x[i: i + batch].float()) for i in range(0, len(x), batch)]) if len(x) \
            else torch.empty(0, FEATURES)


def classifier_name(fingerprint: str) -> str:
    """``vaekit-classifier-<first 12 hex digits of the dataset fingerprint>``."""
    return f"vaekit-classifier-{fingerprint[:12]}"


def train_steps(n: int) -> int:
    """Adam steps of the classifier for ``n`` training images: EPOCHS passes, within [MIN_STEPS, MAX_STEPS]."""
    return int(min(MAX_STEPS, max(MIN_STEPS, EPOCHS * math.ceil(n / BATCH))))


def _train(x: torch.Tensor, y: torch.Tensor, classes: int) -> FeatureNet:
    """:func:`train_steps` Adam steps of batches of BATCH drawn by a seeded permutation cycle; seeded
    initialisation."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        net = FeatureNet(x.shape[1], classes)
        gen = torch.Generator().manual_seed(SEED)
        opt = torch.optim.Adam(net.parameters(), lr=LR)
        perm, pos = torch.randperm(len(x), generator=gen), 0
        net.train()
        for _ in range(train_steps(len(x))):
            if pos + BATCH > len(perm):
                perm, pos = torch.randperm(len(x), generator=gen), 0
            idx = perm[pos: pos + BATCH]
            pos += BATCH
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()


def load_or_train_classifier(fingerprint: str, train_x: torch.Tensor, train_y: torch.Tensor, classes: int,
                             held_x: torch.Tensor, held_y: torch.Tensor,
                             cache_dir: str | Path | None = None) -> tuple[FeatureNet, dict]:
    """The dataset's classifier from the cache, or trained (on ``train_x``/``train_y``, accuracy measured on
    ``held_x``/``held_y``) and cached; (the net, its metadata incl. ``name``, ``accuracy``, ``cached``: whether
    it was read from the cache)."""
    from ..data.builtin import default_cache_dir
    from ..runs import load_tensors, read_tensor_metadata, regular_file, save_tensors

    name = classifier_name(fingerprint)
    folder = Path(cache_dir if cache_dir is not None else default_cache_dir()).expanduser() / "classifiers"
    path = folder / f"{name}.safetensors"
    net = FeatureNet(train_x.shape[1], classes)
    if regular_file(path):
        meta = json.loads(read_tensor_metadata(path).get("vaekit", "{}"))
        if meta.get("fingerprint") == fingerprint and meta.get("version") == VERSION and meta.get("classes") == classes:
            net.load_state_dict(load_tensors(path))
            return net.eval(), {**meta, "cached": True, "path": str(path)}
    net = _train(train_x.float(), train_y.long(), classes)
    with torch.no_grad():
        acc = float((net(held_x.float()).argmax(1) == held_y).double().mean()) if len(held_x) else math.nan
    meta = {"name": name, "fingerprint": fingerprint, "version": VERSION, "classes": classes,
            "architecture": "conv16-conv32/2-conv64/2-avgpool2-fc128", "steps": train_steps(len(train_x)), "batch": BATCH, "lr": LR,
            "seed": SEED, "trained_on": f"{len(train_x)} labelled training images (vaekit's default split, seed 0)",
            "accuracy": acc, "accuracy_on": f"{len(held_x)} held-out images", "torch_version": torch.__version__}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        save_tensors(path, net.state_dict(), metadata={"vaekit": json.dumps(meta)})
        cached = str(path)
    except OSError as err:  # a read-only cache: the numbers still come, from this (seeded) training
        cached = f"not cached ({err.strerror or err})"
    return net, {**meta, "cached": False, "path": cached}


def sample_quality(net: FeatureNet, meta: dict, real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> dict:
    """Fréchet distance and precision/recall (k-NN radii, ``k``) between generated images ``fake`` and ``real``
    ones in ``net``'s penultimate features; JSON-ready, every number labelled with the classifier's name."""
    from .frechet import feature_stats, frechet_distance, precision_recall

    import warnings

    fr, ff = net.features(real), net.features(fake)
    with warnings.catch_warnings(record=True) as caught:  # scipy's sqrtm warns on singular covariances
        warnings.simplefilter("always")
        fd = frechet_distance(*feature_stats(fr), *feature_stats(ff))
    precision, recall = precision_recall(fr, ff, k)
    name = meta["name"]
    return {"classifier": name, "fd": fd, "precision": precision, "recall": recall, "k": k,
            "n_generated": len(fake), "n_real": len(real), "classifier_accuracy": meta.get("accuracy"),
            "labels": {"fd": f"FD ({name})", "precision": f"precision ({name}, k={k})",
                       "recall": f"recall ({name}, k={k})"},
            "note": "in the features of vaekit's own classifier for this dataset (not Inception): comparable only "
                    "with numbers that name the same classifier",
            **({"fd_warning": f"{caught[0].message} (feature covariances are singular: fewer examples than "
                              "features, or features that never fire)"} if caught else {})}
