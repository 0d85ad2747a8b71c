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
        tops.append(mask_seen(model.scores(x), x).topk(min(20, x.shape[1]), dim=1).indices.cpu().numpy())
    out["coverage@20"] = coverage(np.concatenate(tops) if tops else np.zeros(0, int), split.fold.shape[1])
    return out


def evaluate_recommender(trained: TrainedVAE, data: str | None = None, split: str = "test") -> dict[str, Any]:
    """Ranking metrics of a recommendation run on ``split`` (validation or test users) of ``data`` (default:
    its own source), split as in training (same users held out with the run's seed); ``data`` must hold the
    run's items."""
    cfg = trained.config
    names = ("train", "validation", "test")
    if split not in names[1:]:
        raise UsageError(f"--split must be validation or test for a recommendation run (training users have no "
                         f"held-out items), got {split!r}")
    source = cfg.data if data is None else str(data)
    ds = trained.load_data(source)
    if ds.interactions.items != trained.info["data"]["items"]:
        raise UsageError(f"{source} does not hold the items {trained.run_dir} was trained on "
                         f"({len(ds.interactions.items)} vs {len(trained.info['data']['items'])} items); evaluate "
                         "on the run's own data or data with the same catalogue")
    part = trained.kind.split(ds, cfg)[names.index(split)]
    if part.heldout.nnz == 0:
        raise UsageError(f"no {split} user of {source} has 5 or more items to score; choose another --split")
    same = ds.fingerprint() == trained.info["data"].get("fingerprint")
    return {"data": source, "split": split, **({"same_data_as_training": True} if same else {}),
            **ranking_results(trained.model, part, trained.device)}
