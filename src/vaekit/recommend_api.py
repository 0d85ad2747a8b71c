"""The run of the recommendation families (``mult-vae``, ``mult-dae``, ``recvae``): build, train through the one
:class:`~vaekit.training.Trainer` (early stopping on validation NDCG@100), then ``results.json`` with the
ranking metrics of the test users (NDCG@100, Recall@20, Recall@50, catalogue coverage of the top 20)."""

from __future__ import annotations

from typing import Any

import torch

from .errors import UsageError
from .families import FAMILIES, family_name
from .runs import RESULTS, WEIGHTS, prepare_run_dir, save_tensors, write_json
from .trained import TrainedVAE
from .training import Trainer

#: the metrics results.json reports for the validation and test users
RANKING_KS = {"ndcg@100": 100, "recall@20": 20, "recall@50": 50}


def train_recommender(prep: Any, info: dict, ctx: Any) -> TrainedVAE:
    """Train a ``mult-vae``/``mult-dae`` run (see :func:`vaekit.api.train`) and write its results."""
    cfg, out = prep.cfg, ctx.out
    val = prep.splits[1]
    if val.heldout is None or val.heldout.nnz == 0:
        raise UsageError(f"no validation user of {cfg.data} has 5 or more items, so there is nothing to score "
                         "NDCG@100 on; give more users (or a larger --val-fraction)")
    family = FAMILIES[family_name(cfg)]()
    if out is not None and not ctx.resume:
        prepare_run_dir(out, ctx.overwrite, info, ctx.held)
    torch.manual_seed(cfg.seed)
    model = family.build(cfg, prep.shape)
    trainer = Trainer(model, cfg, ctx.device, run_dir=out, progress=ctx.progress, on_epoch_end=ctx.on_epoch_end,
                      family=family)
    if ctx.resume and not ctx.restart:
        trainer.load_checkpoint()
    result = trainer.fit(prep.splits[0], prep.splits[1])
    trained = TrainedVAE(trainer.model, cfg, info, out, None, result)
    if out is not None:
        save_tensors(out / WEIGHTS, trained.model.state_dict())
        results: dict[str, Any] = {
            "units": "ranking metrics, mean over held-out users (20% of each user's items scored given the other "
                     "80%; users with fewer than 5 items are not scored)",
            "epochs_run": result.epochs_run, "best_epoch": result.best_epoch, "stopped_early": result.stopped_early}
        for name, split in zip(("validation", "test"), prep.splits[1:]):
            results[name] = ranking_results(trained.model, split, trained.device) if split.heldout.nnz else None
        write_json(out / RESULTS, results)
        trainer.save_checkpoint(finished=True)
        from .finish import write_card

        write_card(trained)  # the model card, as a VAE run writes it (lock still held)
    return trained


@torch.no_grad()
def ranking_results(model: Any, split: Any, device: torch.device) -> dict[str, float]:
    """NDCG@100, Recall@20, Recall@50 (and how many users they average) of a held-out split, and the
    catalogue coverage of its users' top-20 lists."""
    import numpy as np

    from .core.ranking import coverage, mask_seen, split_metrics
    from .data.interactions import dense_rows

    model.eval()
    out = split_metrics(model.scores, split.fold, split.heldout, RANKING_KS, 1024, device)
    tops = []
    for i in range(0, split.fold.shape[0], 1024):
        x = dense_rows(split.fold, slice(i, i + 1024)).to(device)
        top = mask_seen(model.scores(x).float(), x).topk(min(20, x.shape[1]), dim=1)
        tops.append(top.indices[torch.isfinite(top.values)].cpu().numpy())  # never an item already seen
    out["coverage@20"] = coverage(np.concatenate(tops) if tops else np.zeros(0, int), split.fold.shape[1])
    return out


#: what each ranking number means (evaluation.json, the model card and report.html say it)
DEFINITIONS = {
    "ndcg@100": "normalized discounted cumulative gain of the top 100 unseen items: sum over held-out items ranked r "
                "<= 100 of 1/log2(r+1), divided by its best possible value (min(100, held-out items) hits first)",
    "recall@20": "held-out items among the top 20 unseen items, divided by min(20, the user's held-out items)",
    "recall@50": "held-out items among the top 50 unseen items, divided by min(50, the user's held-out items)",
    "coverage@20": "fraction of the catalogue that appears in at least one scored user's top 20",
    "users": "held-out users scored (those with 5 or more items; 20% of each one's items scored given the other 80%)"}


def evaluate_recommender(trained: TrainedVAE, data: Any = None, split: str = "test",
                         cache_dir: str | None = None) -> dict[str, Any]:
    """Ranking metrics of a recommendation run on ``split`` (validation or test users) of ``data`` (default:
    its own source), split as in training (same users held out with the run's seed); ``data`` must be a
    user,item file (or matrix) with the run's items."""
    import os

    cfg = trained.config
    names = ("train", "validation", "test")
    if split not in names[1:]:
        raise UsageError(f"--split must be validation or test for a recommendation run (training users have no "
                         f"held-out items), got {split!r}")
    if data is not None and not isinstance(data, (str, os.PathLike)):
        raise UsageError("a recommendation run is evaluated on a user,item file (or .npz/.mtx matrix) with its "
                         f"items, not a {type(data).__name__}; pass the file's path (or nothing: the run's own data)")
    source = cfg.data if data is None else os.fspath(data)
    ds = trained.load_data(source, **({"cache_dir": cache_dir} if cache_dir else {}))
    if ds.interactions is None:
        raise UsageError(f"{source} is not interactions data; give a user,item file")
    if ds.interactions.items != trained.info["data"]["items"]:
        raise UsageError(f"{source} does not hold the items {trained.run_dir} was trained on "
                         f"({len(ds.interactions.items)} vs {len(trained.info['data']['items'])} items); evaluate "
                         "on the run's own data or data with the same catalogue")
    part = trained.kind.split(ds, cfg)[names.index(split)]
    if part.heldout.nnz == 0:
        raise UsageError(f"no {split} user of {source} has 5 or more items to score; choose another --split")
    same = ds.fingerprint() == trained.info["data"].get("fingerprint")
    return {"data": source, "split": split, **({"same_data_as_training": True} if same else {}),
            **ranking_results(trained.model, part, trained.device), "definitions": DEFINITIONS}


def report_recommender(trained: TrainedVAE, data: Any = None, split: str = "test",
                       cache_dir: str | None = None) -> Any:
    """``vaekit report`` of a recommendation run: ``evaluation.json`` (ranking metrics of ``split``),
    ``report.html`` (metrics, data, validation NDCG@100 per epoch) and the model card; the report's path."""
    from .evaluation.recommend_card import write_recommend_report
    from .finish import write_card
    from .runs import EVALUATION, lock_run

    run = trained.run_dir
    with lock_run(run, "report"):  # taken before computing: a read-only or busy run fails now
        ev = evaluate_recommender(trained, data, split, cache_dir)
        write_json(run / EVALUATION, ev)
        path = write_recommend_report(run, trained.info, ev)
        write_card(trained)
        return path
