"""Mixed-type imputation: category accuracy and numeric RMSE on cells hidden at random, vaekit vs scikit-learn.

Mixed tables built from scikit-learn's bundled data (no download):
- ``wine``: 13 numeric columns + ``cultivar`` (text: class_0, class_1, class_2);
- ``breast_cancer``: 30 numeric columns + ``diagnosis`` (text: malignant, benign);
- ``diabetes`` (unscaled): 9 numeric columns + ``sex`` (text: s1, s2) + ``progression`` (the target cut into
  terciles, text: low, mid, high).

A fraction ``--rate`` of all cells (numeric and text) is hidden completely at random (never a whole row); every
method fits on the incomplete table and fills it (transductive, as in ``bench/imputation.py``). Scores: the
fraction of hidden text cells given the right category, and the RMSE of hidden numeric cells in standardized
units (each column divided by its standard deviation over the complete table).

- ``most frequent + mean``: SimpleImputer(strategy="most_frequent") on text, SimpleImputer(mean) on numbers;
- ``KNNImputer (k=5)``: on standardized numbers beside one-hot blocks (a missing cell is NaN across its block);
  a filled block's argmax is the category;
- ``vaekit iw``: a CSV with empty cells, ``vaekit.train(..., missing="mask")`` (numbers Gaussian, text
  categorical: the mixed likelihood), filled by ``TrainedVAE.impute`` (importance-weighted conditional mean,
  k samples; a block's argmax is the category), i.e. what ``vaekit impute`` writes.

    python -m bench.mixed [--tables wine,breast_cancer,diabetes] [--rate 0.2] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from . import common as C


def mixed_table(name: str) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    """(numeric [n, d] float64, numeric names, text [n, t] object, text names)."""
    import sklearn.datasets as skd

    if name == "diabetes":
        b = skd.load_diabetes(scaled=False)
        sex = b.feature_names.index("sex")
        num = np.delete(b.data, sex, axis=1)
        names = [n for n in b.feature_names if n != "sex"]
        cuts = np.quantile(b.target, [1 / 3, 2 / 3])
        prog = np.array(["low", "mid", "high"], dtype=object)[np.searchsorted(cuts, b.target, side="right")]
        text = np.stack([np.where(b.data[:, sex] == 1, "s1", "s2").astype(object), prog], 1)
        return num, names, text, ["sex", "progression"]
    b = getattr(skd, f"load_{name}")()
    label = {"wine": "cultivar", "breast_cancer": "diagnosis"}[name]
    text = np.array([str(b.target_names[t]) for t in b.target], dtype=object)[:, None]
    return b.data.astype(np.float64), [f"f{j}" for j in range(b.data.shape[1])], text, [label]


def hide_cells(n: int, cols: int, rate: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hidden = rng.random((n, cols)) < rate
    full = np.flatnonzero(hidden.all(1))
    hidden[full, rng.integers(cols, size=len(full))] = False
    return hidden


def write_csv(path: Path, num: np.ndarray, names: list[str], text: np.ndarray, tnames: list[str],
              hidden: np.ndarray) -> None:
    d = num.shape[1]
    lines = [",".join(names + tnames)]
    for i in range(len(num)):
        cells = [repr(float(v)) for v in num[i]] + [str(v) for v in text[i]]
        lines.append(",".join("" if hidden[i, j] else c for j, c in enumerate(cells)))
    path.write_text("\n".join(lines) + "\n")
    assert len(lines[0].split(",")) == d + text.shape[1]


def scores(num_f, text_f, num, text, hidden, scale) -> tuple[float, float]:
    d = num.shape[1]
    hn, ht = hidden[:, :d], hidden[:, d:]
    err = (num_f - num) / scale
    return float((text_f[ht] == text[ht]).mean()), float(np.sqrt(np.mean(err[hn] ** 2)))


def baselines(num, text, hidden) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.impute import KNNImputer, SimpleImputer

    d = num.shape[1]
    xn = np.where(hidden[:, :d], np.nan, num)
    xt = np.where(hidden[:, d:], None, text).astype(object)
    out = {"most frequent + mean": (SimpleImputer(strategy="mean").fit_transform(xn),
                                    SimpleImputer(strategy="most_frequent", missing_values=None).fit_transform(xt))}
    mu, sd = np.nanmean(xn, 0), np.nanstd(xn, 0)
    blocks, cats = [], []
    for j in range(text.shape[1]):
        c = sorted({v for v in xt[:, j] if v is not None})
        oh = np.array([[np.nan] * len(c) if v is None else [float(v == k) for k in c] for v in xt[:, j]])
        blocks.append(oh)
        cats.append(c)
    filled = KNNImputer(n_neighbors=5).fit_transform(np.concatenate([(xn - mu) / sd] + blocks, 1))
    t = np.empty_like(text)
    at = d
    for j, c in enumerate(cats):
        t[:, j] = np.array(c, dtype=object)[filled[:, at: at + len(c)].argmax(1)]
        at += len(c)
    out["KNNImputer (k=5)"] = (filled[:, :d] * sd + mu, t)
    return out


def vaekit_fill(path: Path, num, text, seed: int, epochs: int, k: int) -> tuple[np.ndarray, np.ndarray, int]:
    import vaekit
    from vaekit.data.tables import table_cells

    d = num.shape[1]
    width = d + text.shape[1]
    model = vaekit.train(str(path), missing="mask", hidden=[128, 128], latent_dim=max(2, width // 2),
                         epochs=epochs, batch_size=64, lr=1e-3, patience=50, seed=seed, report=False)
    ds = model.load_data(str(path))
    filled = model.impute(ds.x, k=k, seed=seed)
    cells = table_cells(model.schema, filled.numpy())
    return cells[:, :d].astype(np.float64), cells[:, d:], model.result.epochs_run


def case(name: str, rate: float, seed: int, epochs: int, k: int, tmp: str) -> dict:
    num, names, text, tnames = mixed_table(name)
    hidden = hide_cells(len(num), num.shape[1] + text.shape[1], rate, seed)
    scale = num.std(0)
    res: dict = {"table": name, "rows": len(num), "numeric": num.shape[1], "text": tnames, "rate": rate,
                 "seed": seed, "hidden_text_cells": int(hidden[:, num.shape[1]:].sum()),
                 "hidden_numeric_cells": int(hidden[:, : num.shape[1]].sum()), "accuracy": {}, "rmse": {},
                 "seconds": {}}
    t0 = time.perf_counter()
    for label, (nf, tf) in baselines(num, text, hidden).items():
        res["accuracy"][label], res["rmse"][label] = scores(nf, tf, num, text, hidden, scale)
    res["seconds"]["baselines"] = time.perf_counter() - t0
    path = Path(tmp) / f"{name}_{seed}.csv"
    write_csv(path, num, names, text, tnames, hidden)
    t0 = time.perf_counter()
    nf, tf, res["epochs_run"] = vaekit_fill(path, num, text, seed, epochs, k)
    res["seconds"]["vaekit (train + impute)"] = time.perf_counter() - t0
    res["accuracy"]["vaekit iw"], res["rmse"]["vaekit iw"] = scores(nf, tf, num, text, hidden, scale)
    return res


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", default="wine,breast_cancer,diabetes")
    p.add_argument("--rate", type=float, default=0.2)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=400, help="most epochs (early stopping, patience 50)")
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--quick", action="store_true", help="one table, one seed, 30 epochs (smoke test)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    tables = args.tables.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.quick:
        tables, seeds, args.epochs, args.k = tables[:1], seeds[:1], 30, 100
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in tables:
            for seed in seeds:
                runs.append(case(name, args.rate, seed, args.epochs, args.k, tmp))
                print(f"{name} seed {seed}: accuracy {runs[-1]['accuracy']}, rmse {runs[-1]['rmse']}", flush=True)
    rows = []
    for name in tables:
        rs = [r for r in runs if r["table"] == name]
        for label in rs[0]["accuracy"]:
            acc = [r["accuracy"][label] for r in rs]
            err = [r["rmse"][label] for r in rs]
            rows.append((name, label, f"{np.mean(acc):.3f} ± {np.std(acc):.3f}", f"{np.mean(err):.3f} ± {np.std(err):.3f}"))
    C.print_table(f"mixed-type imputation, {args.rate:.0%} of cells hidden (MCAR), mean ± sd over seeds {seeds}", rows,
                  ("table", "method", "accuracy on hidden text cells", "RMSE on hidden numbers (std units)"))
    payload = {"settings": vars(args), "runs": runs, "env": C.env_info()}
    C.write_result("mixed", payload)
    return payload


if __name__ == "__main__":
    main()
