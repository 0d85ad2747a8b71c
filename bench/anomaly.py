"""One-class Fashion-MNIST anomaly detection: each class in turn is normal, the other nine are anomalies.

For each class c: train on the official training images of class c (6,000), score the official 10,000 test
images, AUROC with class c as normal. vaekit (``vaekit.AnomalyDetector``: IWAE log-likelihood, and the
reconstruction-error score of the same model) vs scikit-learn's IsolationForest and a PCA
reconstruction-error detector, all fitted on the same images.

    python -m bench.anomaly [--epochs 10] [--iwae-k 20] [--classes 0,1,...] [--pca 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from . import common as C


def pca_scores(train: np.ndarray, test: np.ndarray, n_components: int) -> np.ndarray:
    """Minus the squared error of the PCA reconstruction (higher = more normal)."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=n_components, random_state=0).fit(train)
    rec = pca.inverse_transform(pca.transform(test))
    return -((test - rec) ** 2).sum(1)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.anomaly", description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--iwae-k", type=int, default=20)
    p.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    p.add_argument("--pca", type=int, default=20, help="PCA components (= the VAE's latent size)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import torch
    from sklearn.ensemble import IsolationForest
    from sklearn.frozen import FrozenEstimator
    from sklearn.metrics import roc_auc_score

    import vaekit
    from vaekit.data import FASHION_MNIST_CLASSES, load_source

    ds = load_source("fashion-mnist")
    x_all = ds.x.reshape(len(ds.x), -1).numpy().astype(np.float64)
    y_all = ds.y.numpy()
    x_test = ds.test_x.reshape(len(ds.test_x), -1).numpy().astype(np.float64)
    y_test = ds.test_y.numpy()
    vae_settings = dict(latent_dim=20, hidden=(400,), likelihood="bernoulli", lr=1e-3, batch_size=128,
                        epochs=args.epochs, patience=None, random_state=args.seed)
    rows, cases = [], []
    for c in [int(v) for v in args.classes.split(",")]:
        train = x_all[y_all == c]
        anomaly = y_test != c
        t0 = time.perf_counter()
        vae = vaekit.VAE(**vae_settings).fit(train)
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        frozen = FrozenEstimator(vae)  # already trained: the detectors only score (threshold from 500 rows)
        s_iwae = vaekit.AnomalyDetector(frozen, iwae_k=args.iwae_k).fit(train[:500]).score_samples(x_test)
        t_score = time.perf_counter() - t0
        s_recon = vaekit.AnomalyDetector(frozen, method="recon").fit(train[:500]).score_samples(x_test)
        t0 = time.perf_counter()
        forest = IsolationForest(random_state=args.seed, n_jobs=1).fit(train)
        s_if = forest.score_samples(x_test)
        t_if = time.perf_counter() - t0
        t0 = time.perf_counter()
        s_pca = pca_scores(train, x_test, args.pca)
        t_pca = time.perf_counter() - t0
        auc = {name: float(roc_auc_score(anomaly, -s)) for name, s in
               (("vaekit_iwae", s_iwae), ("vaekit_recon", s_recon), ("isolation_forest", s_if), ("pca", s_pca))}
        case = {"class": c, "name": FASHION_MNIST_CLASSES[c], "n_train": len(train), **auc,
                "seconds": {"vaekit_fit": t_fit, "vaekit_iwae_score": t_score, "isolation_forest": t_if,
                            "pca": t_pca}}
        cases.append(case)
        rows.append((f"{c} {FASHION_MNIST_CLASSES[c]}", auc["vaekit_iwae"], auc["vaekit_recon"],
                     auc["isolation_forest"], auc["pca"], t_fit + t_score))
        print(f"class {c}: " + "  ".join(f"{k} {v:.4f}" for k, v in auc.items()), flush=True)
        del vae
        torch.manual_seed(0)
    mean = {k: float(np.mean([cs[k] for cs in cases])) for k in ("vaekit_iwae", "vaekit_recon",
                                                                  "isolation_forest", "pca")}
    rows.append(("mean", mean["vaekit_iwae"], mean["vaekit_recon"], mean["isolation_forest"], mean["pca"],
                 float(sum(r[-1] for r in rows))))
    C.print_table(f"one-class Fashion-MNIST: test AUROC (normal = the class; VAE {args.epochs} epochs, "
                  f"IWAE k={args.iwae_k})", rows,
                  ("normal class", "vaekit IWAE", "vaekit recon", "IsolationForest", f"PCA-{args.pca} recon",
                   "vaekit s"))
    out = {"settings": {**vae_settings, "hidden": list(vae_settings["hidden"]), "iwae_k": args.iwae_k,
                        "pca_components": args.pca, "isolation_forest": "sklearn defaults (100 trees)"},
           "cases": cases, "mean_auroc": mean}
    C.write_result("anomaly", out)
    return out


if __name__ == "__main__":
    main()
