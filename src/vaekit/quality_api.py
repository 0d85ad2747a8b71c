"""Sample quality of a run (`vaekit evaluate`, image runs): Fréchet distance and precision/recall between the
run's samples and its test images, in the features of vaekit's classifier for the dataset
(:mod:`vaekit.evaluation.quality`, trained on first use and cached)."""

from __future__ import annotations

import os
from typing import Any

import torch

MAX_SAMPLES = 10_000


def run_quality(trained, data: Any = None, split: str = "test", sampler: str = "prior", seed: int = 0,
                cache_dir: str | None = None, n: int | None = None) -> dict | None:
    """The ``sample_quality`` block of ``evaluate`` for an image run: ``n`` samples (default: as many as the
    split's images, at most 10,000) from ``sampler`` (``prior``, ``vamp``, ``gmm:K``) with ``seed`` against the
    images of ``split`` of ``data`` (default the run's own source). None for runs whose data are not images;
    ``{"skipped": why}`` when the data have no labels to train the classifier on."""
    from .config import make_config
    from .data.kinds import kind_of
    from .errors import UsageError
    from .evaluation.quality import load_or_train_classifier, sample_quality

    if not trained.kind.pictures:
        return None
    if trained.model.cond_dim:
        return {"skipped": "conditional run: its samples depend on the condition (not measured)"}
    source = trained.config.data if data is None else os.fspath(data)
    ds = trained.load_data(source, cache_dir=cache_dir, mapped=True)  # a --mmap run's own data: its cache
    if ds.y is None or not bool((ds.y >= 0).any()):
        return {"skipped": f"{source} has no labels, and vaekit's feature classifier is trained on them"}
    kind = kind_of(ds.kind)
    ctrain, cval, _ = kind.split(ds, make_config(data=source))  # the classifier's data: the dataset alone
    classes = len(ds.classes) if ds.classes else int(ds.y.max()) + 1
    keep_t, keep_v = ctrain.y >= 0, cval.y >= 0
    net, meta = load_or_train_classifier(ds.fingerprint(), ctrain.x[keep_t], ctrain.y[keep_t], classes,
                                         cval.x[keep_v], cval.y[keep_v], cache_dir)
    splits = kind.split(ds, trained.config)
    names = ("train", "validation", "test")
    if split not in names:
        raise UsageError(f"--split must be one of {', '.join(names)}, got {split!r}")
    real = splits[names.index(split)].x
    count = n if n is not None else min(len(real), MAX_SAMPLES)
    if sampler.strip().lower() == "prior":
        fake, note = trained.sample(count, seed=seed), "drawn from the model's prior"
    else:
        from .samplers import sample_with

        fake, note = sample_with(trained, sampler, count, seed=seed)
    with torch.random.fork_rng(devices=[]):
        res = sample_quality(net, meta, real.float(), fake.float().clamp(0, 1))
    return {**res, "sampler": sampler, "sampler_note": note, "seed": seed, "split": split,
            "classifier_cached": meta["cached"], "classifier_file": meta["path"]}


def quality_lines(q: dict) -> list[str]:
    """How ``evaluate`` prints the block: each number with the classifier's name."""
    if "skipped" in q:
        return [f"sample quality: not measured ({q['skipped']})"]
    lab = q["labels"]
    return [f"{lab['fd']}: {q['fd']:.3f}",
            f"{lab['precision']}: {q['precision']:.3f}   {lab['recall']}: {q['recall']:.3f}",
            f"  ({q['n_generated']} samples from {q['sampler']} vs {q['n_real']} {q['split']} images; classifier "
            f"accuracy {q['classifier_accuracy']:.3f}, {'from the cache' if q['classifier_cached'] else 'trained now'})"
            ] + ([fd_note(q)] if q.get("fd_warning") else [])


def fd_note(q: dict) -> str:
    """The one line ``evaluate`` prints when the FD's covariances were singular (``fd_warning`` is set)."""
    from .evaluation.quality import FEATURES

    why = " ".join(str(q["fd_warning"]).split())
    return (f"note: the FD is unreliable here: {why}; it needs more examples than the classifier's "
            f"{FEATURES} features ({q['n_generated']} samples, {q['n_real']} images): evaluate a larger split or --data")
