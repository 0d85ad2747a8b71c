"""Imputation: RMSE on values hidden completely at random (MCAR), vaekit vs scikit-learn's imputers.

Tables (scikit-learn's bundled breast cancer, wine, diabetes): a fraction of the cells is hidden, every
method fits on the incomplete table and fills it (the transductive setting of Mattei & Frellsen 2019 and of
``Imputer.fit_transform``); RMSE over the hidden cells in standardized units (each column divided by its
standard deviation over the complete table). vaekit trains through the public path (a CSV with empty cells,
``vaekit.train(..., missing="mask")``, the ELBO objective) and fills with the importance-weighted conditional
mean (``iw``) and Metropolis-within-Gibbs (``mwg``); a second model trained on MIWAE's objective
(``iw_samples=--miwae-k``, the IWAE bound of the observed cells) fills with ``iw``.

Fashion-MNIST pixels: ``--fm-n`` training images with pixels hidden at random, RMSE in pixel units [0, 1]:
a masked-likelihood VAE trained on the incomplete images (vaekit's Trainer with masks), the same imputers
(IterativeImputer limited by ``--fm-iterative``: 784 features make it the slowest by far), and the
complete-data Fashion-MNIST run (``--fm-run``, if present) filling the same images (it never saw missing
pixels, and it trained on these images complete: an upper reference, not a fair competitor). vaekit uses
``--fm-passes`` IW passes for the complete-data run (each refills the encoder's zero-filled holes with the
last estimate) and one pass for the masked-training model, whose encoder learned zero-filled holes.

    python -m bench.imputation [--rates 0.2,0.5] [--tables breast_cancer,wine,diabetes] [--fm-n 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import common as C


def hide_mcar(x: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """Boolean mask of hidden cells, each hidden with probability ``rate``; no row is hidden entirely."""
    rng = np.random.default_rng(seed)
    hidden = rng.random(x.shape) < rate
    full_rows = np.flatnonzero(hidden.all(1))
    hidden[full_rows, rng.integers(x.shape[1], size=len(full_rows))] = False
    return hidden


def rmse(filled: np.ndarray, truth: np.ndarray, hidden: np.ndarray, scale: np.ndarray | None = None) -> float:
    err = filled - truth
    if scale is not None:
        err = err / scale
    return float(np.sqrt(np.mean(err[hidden] ** 2)))


def sklearn_imputers(fast_iterative: tuple[int, int] | None = None) -> dict:
    """Each imputer behind a StandardScaler (fitted on the observed cells, inverted afterwards), so KNN's
    distances are not dominated by the widest column."""
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
    from sklearn.preprocessing import StandardScaler

    it = IterativeImputer(max_iter=10, random_state=0) if not fast_iterative else \
        IterativeImputer(max_iter=fast_iterative[0], n_nearest_features=fast_iterative[1], random_state=0,
                         skip_complete=True)
    imps = {"mean (SimpleImputer)": SimpleImputer(strategy="mean"), "KNNImputer (k=5)": KNNImputer(n_neighbors=5),
            "IterativeImputer": it}

    class Scaled:
        def __init__(self, imp):
            self.imp = imp

        def fit_transform(self, x):
            if fast_iterative:  # pixels share one scale already
                return self.imp.fit_transform(x)
            sc = StandardScaler()
            return sc.inverse_transform(self.imp.fit_transform(sc.fit_transform(x)))

    return {k: Scaled(v) for k, v in imps.items()}


def write_csv(path: Path, x: np.ndarray) -> None:
    lines = [",".join(f"f{j}" for j in range(x.shape[1]))]
    lines += [",".join("" if np.isnan(v) else repr(float(v)) for v in row) for row in x]
    path.write_text("\n".join(lines) + "\n")


def table_case(name: str, rate: float, seed: int, epochs: int, k: int, steps: int, tmp: str,
               miwae_k: int = 20) -> dict:
    import sklearn.datasets as skd

    import vaekit

    full = getattr(skd, f"load_{name}")().data.astype(np.float64)
    scale = full.std(0)
    hidden = hide_mcar(full, rate, seed)
    x = np.where(hidden, np.nan, full)
    res: dict = {"table": name, "rows": len(full), "columns": full.shape[1], "rate": rate,
                 "hidden_cells": int(hidden.sum()), "rmse": {}, "seconds": {}}
    for label, imp in sklearn_imputers().items():
        t0 = time.perf_counter()
        res["rmse"][label] = rmse(imp.fit_transform(x), full, hidden, scale)
        res["seconds"][label] = time.perf_counter() - t0
    path = Path(tmp) / f"{name}_{rate}.csv"
    write_csv(path, x)
    d = full.shape[1]
    t0 = time.perf_counter()
    model = vaekit.train(str(path), missing="mask", hidden=[128, 128], latent_dim=max(2, d // 2), epochs=epochs,
                         batch_size=64, lr=1e-3, patience=50, seed=seed, report=False)
    res["seconds"]["vaekit training"] = time.perf_counter() - t0
    res["epochs_run"] = model.result.epochs_run
    for method, kw in (("iw", {"k": k}), ("mwg", {"steps": steps})):
        t0 = time.perf_counter()
        filled = model.impute(x, method=method, seed=seed, **kw).numpy().astype(np.float64)
        label = f"vaekit {method}"
        res["rmse"][label] = rmse(filled, full, hidden, scale)
        res["seconds"][label] = time.perf_counter() - t0
    if miwae_k > 1:  # the same model trained on MIWAE's objective, the IWAE_K bound of the observed cells
        t0 = time.perf_counter()
        model = vaekit.train(str(path), missing="mask", hidden=[128, 128], latent_dim=max(2, d // 2),
                             epochs=epochs, batch_size=64, lr=1e-3, patience=50, seed=seed, report=False,
                             iw_samples=miwae_k)
        filled = model.impute(x, method="iw", seed=seed, k=k).numpy().astype(np.float64)
        label = f"vaekit iw, MIWAE K={miwae_k} training"
        res["rmse"][label] = rmse(filled, full, hidden, scale)
        res["seconds"][label] = time.perf_counter() - t0
    return res


def fm_case(rate: float, n: int, seed: int, epochs: int, k: int, fm_run: str | None,
            iterative: tuple[int, int], passes: int) -> dict:
    from vaekit.apps.completion import iw_conditional_mean
    from vaekit.config import make_config
    from vaekit.data import load_source, split_dataset
    from vaekit.model import build_model
    from vaekit.training import Trainer

    ds = load_source("fashion-mnist")
    train, _, _ = split_dataset(ds, seed=0)  # the images the complete-data run trained on
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(train.x), generator=gen)[: n + n // 10]
    imgs = train.x[idx]
    flat = imgs.reshape(len(imgs), -1).numpy().astype(np.float64)
    hidden = hide_mcar(flat, rate, seed)
    x = np.where(hidden, np.nan, flat)
    fit_rows = slice(0, n)  # all methods impute these n images; vaekit validates on the extra n/10
    res: dict = {"data": "fashion-mnist pixels", "images": n, "rate": rate, "units": "pixel values in [0, 1]",
                 "iterative_imputer": {"max_iter": iterative[0], "n_nearest_features": iterative[1]},
                 "passes": passes, "rmse": {}, "seconds": {}}
    for label, imp in sklearn_imputers(fast_iterative=iterative).items():
        t0 = time.perf_counter()
        filled = imp.fit_transform(x[fit_rows])
        # SimpleImputer/IterativeImputer drop columns with no observed value (never here at these rates)
        res["rmse"][label] = rmse(filled, flat[fit_rows], hidden[fit_rows])
        res["seconds"][label] = time.perf_counter() - t0
    obs = torch.from_numpy(~hidden).float().view_as(imgs)
    xin = imgs * obs  # missing pixels zero-filled for the encoder (MIWAE)
    cfg = make_config(data="fashion-mnist", model="mlp", hidden=[400], latent_dim=20, likelihood="bernoulli",
                      lr=1e-3, batch_size=128, epochs=epochs, patience=None, seed=seed)
    torch.manual_seed(seed)
    model = build_model(cfg, (1, 28, 28))
    t0 = time.perf_counter()
    Trainer(model, cfg, torch.device("cpu"), progress=False).fit(xin[:n], xin[n:], train_mask=obs[:n],
                                                                 val_mask=obs[n:])
    res["seconds"]["vaekit training"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # one pass: this encoder was trained on zero-filled holes (refilling them puts it off its training data;
    # measured at 50%: 0.151 with 1 pass, 0.237 with 3)
    filled = iw_conditional_mean(model, xin[:n], obs[:n], k=k, generator=gen).mean
    res["rmse"]["vaekit iw (masked training)"] = rmse(filled.reshape(n, -1).numpy(), flat[fit_rows], hidden[fit_rows])
    res["seconds"]["vaekit iw (masked training)"] = time.perf_counter() - t0
    if fm_run and Path(fm_run, "model.safetensors").is_file():
        import vaekit

        full_model = vaekit.load(fm_run)
        t0 = time.perf_counter()
        filled = full_model.impute(imgs[:n], mask=obs[:n].bool(), k=k, seed=seed, passes=passes)
        res["rmse"]["vaekit iw (complete-data run)"] = rmse(filled.reshape(n, -1).numpy(), flat[fit_rows],
                                                            hidden[fit_rows])
        res["seconds"]["vaekit iw (complete-data run)"] = time.perf_counter() - t0
    return res


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.imputation", description=__doc__.splitlines()[0])
    p.add_argument("--tables", default="breast_cancer,wine,diabetes")
    p.add_argument("--rates", default="0.2,0.5")
    p.add_argument("--epochs", type=int, default=400, help="most epochs for the tables (early stopping, patience 50)")
    p.add_argument("--k", type=int, default=1000, help="importance samples")
    p.add_argument("--steps", type=int, default=300, help="Metropolis-within-Gibbs steps (half burn-in)")
    p.add_argument("--miwae-k", type=int, default=20, help="also train with the IWAE_K objective (MIWAE; 1 skips)")
    p.add_argument("--fm-n", type=int, default=1000, help="Fashion-MNIST images (0 skips)")
    p.add_argument("--fm-epochs", type=int, default=100)
    p.add_argument("--fm-iterative", default="3,20",
                   help="IterativeImputer max_iter,n_nearest_features on the 784 pixels (its cost grows with both)")
    p.add_argument("--fm-passes", type=int, default=3, help="IW passes on the images (zero-filled holes mislead q)")
    p.add_argument("--fm-run", default="runs/fm", help="complete-data Fashion-MNIST run to compare with")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # small models: one thread is as fast and suffers less from shared cores
    rates = [float(r) for r in args.rates.split(",")]
    out: dict = {"settings": vars(args), "tables": [], "fashion_mnist": []}
    tmp = tempfile.mkdtemp()
    rows = []
    for name in [t for t in args.tables.split(",") if t]:
        for rate in rates:
            r = table_case(name, rate, args.seed, args.epochs, args.k, args.steps, tmp, args.miwae_k)
            out["tables"].append(r)
            rows.append((f"{name} ({r['rows']}×{r['columns']})", f"{rate:.0%}", *r["rmse"].values()))
            print(f"{name} {rate:.0%}: " + ", ".join(f"{m} {v:.3f}" for m, v in r["rmse"].items()), flush=True)
    if rows:
        C.print_table("imputation RMSE on hidden cells (standardized units; lower is better)", rows,
                      ("table", "MCAR", *out["tables"][0]["rmse"].keys()))
    if args.fm_n > 0:
        fm_rows = []
        for rate in rates:
            it = tuple(int(v) for v in args.fm_iterative.split(","))
            r = fm_case(rate, args.fm_n, args.seed, args.fm_epochs, min(args.k, 500), args.fm_run, it, args.fm_passes)
            out["fashion_mnist"].append(r)
            fm_rows.append((f"{args.fm_n} images", f"{rate:.0%}", *r["rmse"].values()))
            print(f"fashion-mnist {rate:.0%}: " + ", ".join(f"{m} {v:.4f}" for m, v in r["rmse"].items()), flush=True)
        C.print_table("Fashion-MNIST pixel imputation RMSE (pixel units)", fm_rows,
                      ("data", "MCAR", *out["fashion_mnist"][0]["rmse"].keys()))
    C.write_result("imputation", out)
    return out


if __name__ == "__main__":
    main()
