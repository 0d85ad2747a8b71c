"""The ``m2`` family's run (:mod:`vaekit.families.m2`): labelled examples chosen, trained through the one
Trainer, then results (with test accuracy), figures and report in the run directory."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .conditions import Conditioning
from .evaluation.metrics import evaluate_elbo
from .families.m2 import M2Family, check_labeled
from .runs import RESULTS, WEIGHTS, prepare_run_dir, save_tensors, write_json
from .tasks.probe import choose_labeled
from .trained import TrainedVAE
from .training.trainer import Trainer

if TYPE_CHECKING:  # pragma: no cover
    from .api import RunContext
    from .preparation import Prepared


def train_semisupervised(prep: Prepared, info: dict, ctx: RunContext) -> TrainedVAE:
    """The ``m2`` family's run: M2 with ``cfg.labeled`` labels of the training split, trained through the one
    :class:`~vaekit.training.Trainer`; results.json reports test accuracy. A resumed run keeps the same labelled
    examples (they are drawn from the seed). ``ctx.end``: the report settings of
    :func:`vaekit.finish.end_of_run` (evaluation.json, report.html, pictures on the labelled test rows,
    conditioned on their true labels)."""
    cfg, ds, shape, scaler, out = prep.cfg, prep.ds, prep.shape, prep.scaler, ctx.out
    splits = prep.splits
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
    if out is not None and not ctx.resume:
        prepare_run_dir(out, ctx.overwrite, info, ctx.held)
    family = M2Family(labelled_idx)
    torch.manual_seed(cfg.seed)
    m2 = family.build(cfg, shape, cond.dim)
    vae = m2.vae
    trainer = Trainer(m2, cfg, ctx.device, run_dir=out, progress=ctx.progress, on_epoch_end=ctx.on_epoch_end,
                      family=family)
    if ctx.resume and not ctx.restart:
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
        end_of_run(trained, xt, test.y[kt], ct, None, results["test"], summary.history, **ctx.end)
        trainer.save_checkpoint(finished=True)
    return trained
