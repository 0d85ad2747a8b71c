"""Training a semi-supervised (M2) run: the run-directory side of :mod:`vaekit.apps.semisupervised`."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from .tasks.probe import choose_labeled
from .apps.semisupervised import check_labeled
from .conditions import Conditioning
from .config import TrainConfig
from .data import Dataset, Standardizer
from .evaluation.metrics import evaluate_elbo
from .families.m2 import M2Family
from .runs import RESULTS, STATE_TENSORS, WEIGHTS, prepare_run_dir, save_tensors, write_json
from .trained import TrainedVAE
from .training.trainer import Trainer


def train_semisupervised(cfg: TrainConfig, ds: Dataset, splits, shape: tuple[int, ...], info: dict,
                         scaler: Standardizer | None, out: Path | None, overwrite: bool, device: torch.device,
                         progress: bool, resume: bool = False, on_epoch_end=None,
                         held: contextlib.ExitStack | None = None, end: dict | None = None) -> TrainedVAE:
    """Train M2 with ``cfg.labeled`` labels of the training split; results.json reports test accuracy.
    ``resume`` continues the interrupted run in ``out`` (the same labelled examples: they are drawn from the seed).
    ``held`` keeps the run directory's lock (see :func:`vaekit.runs.prepare_run_dir`).
    ``end``: the report settings of :func:`vaekit.finish.end_of_run` (evaluation.json, report.html, pictures
    on the labelled test rows, conditioned on their true labels)."""

    cond = Conditioning.for_labels(ds)
    train, val, test = splits
    known = torch.nonzero(train.y >= 0).flatten()  # labels of -1 are unknown
    if cfg.labeled is None and len(known) < len(train):
        n = len(known)  # partly labelled data: use every label it has
    else:
        n = check_labeled(cfg.labeled, len(known))
    labelled_idx = known[torch.from_numpy(choose_labeled(train.y[known].numpy(), n, cfg.seed))]
    info = {**info, "condition": cond.to_dict(),
            "semi_supervised": {"labeled": n, "alpha": cfg.alpha, "model": "M2 (Kingma et al. 2014)"}}
    if out is not None and not resume:
        prepare_run_dir(out, overwrite, info, held)
    family = M2Family(labelled_idx)
    torch.manual_seed(cfg.seed)
    m2 = family.build(cfg, shape, cond.dim)
    vae = m2.vae
    trainer = Trainer(m2, cfg, device, run_dir=out, progress=progress, on_epoch_end=on_epoch_end, family=family)
    if resume and (out / STATE_TENSORS).is_file():  # a run stopped before its first checkpoint starts at 0
        trainer.load_checkpoint()
    summary = trainer.fit(train, val)
    m2.eval()
    accuracy = {name: float((m2.predict_proba(s.x[s.y >= 0]).argmax(1) == s.y[s.y >= 0]).float().mean())
                if bool((s.y >= 0).any()) else None for name, s in (("validation", val), ("test", test))}
    trained = TrainedVAE(vae, cfg, info, out, scaler, summary, cond)
    trained.classifier = m2.classifier
    if out is not None:
        save_tensors(out / WEIGHTS, m2.state_dict())
        from .finish import end_of_run

        kt = test.y >= 0
        xt, ct = test.x[kt], cond.encode_raw(test.y[kt])
        results = {"units": "nats per example", "labeled": n, "epochs_run": summary.epochs_run,
                   "estimator": "ELBO (1 posterior sample) of p(x|y) given the true labels",
                   "test_accuracy": accuracy["test"], "validation_accuracy": accuracy["validation"],
                   "test": evaluate_elbo(vae, xt, c=ct) if bool(kt.any()) else None,
                   "note": "test −ELBO is of the label-conditional p(x|y,z) given the true labels"}
        write_json(out / RESULTS, results)
        end_of_run(trained, xt, test.y[kt], ct, None, results["test"], summary.history, **(end or {}))
        trainer.save_checkpoint(finished=True)
    return trained
