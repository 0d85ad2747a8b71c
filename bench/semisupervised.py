"""M2 semi-supervised VAE vs a classifier on the labelled examples alone vs a linear probe of an
unconditional VAE, all with the same N labels: test accuracy.

    python -m bench.semisupervised [--data fashion-mnist,digits] [--labels 100,1000] [--epochs 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time


from . import common as C


def labelled_only(train_x, train_y, test_x, test_y) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    clf.fit(train_x.reshape(len(train_x), -1), train_y)
    return float(clf.score(test_x.reshape(len(test_x), -1), test_y))


def mlp_only(train_x, train_y, test_x, test_y, steps: int, seed: int) -> float:
    """M2's classifier (same architecture, dropout and input noise) trained on the labelled examples alone,
    for as many steps as M2 takes: what the unlabelled term adds is M2's accuracy minus this one."""
    import torch
    from torch import nn

    from vaekit.apps.semisupervised import Classifier
    from vaekit.config import make_config

    cfg = make_config()
    torch.manual_seed(seed)
    clf = Classifier(tuple(train_x.shape[1:]), cfg.hidden, int(train_y.max()) + 1, cfg.classifier_dropout)
    opt = torch.optim.Adam(clf.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        i = torch.randint(0, len(train_x), (min(cfg.batch_size, len(train_x)),), generator=gen)
        xb = train_x[i] + cfg.classifier_noise * torch.randn(train_x[i].shape, generator=gen)
        loss = nn.functional.cross_entropy(clf(xb), train_y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    clf.eval()
    with torch.no_grad():
        return float((clf(test_x).argmax(1) == test_y).float().mean())


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.semisupervised", description=__doc__.splitlines()[0])
    p.add_argument("--data", default="fashion-mnist,digits")
    p.add_argument("--labels", default="100,1000")
    p.add_argument("--epochs", type=int, default=20, help="M2 and unconditional VAE epochs (fashion-mnist)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import vaekit
    from vaekit.apps.probe import choose_labeled, linear_probe
    from vaekit.data import load_source, split_dataset

    rows, out = [], {"benchmark": "semisupervised", "env": C.env_info(), "cases": []}
    tmp = tempfile.mkdtemp()
    for source in args.data.split(","):
        ds = load_source(source)
        train, _, test = split_dataset(ds, seed=args.seed)
        epochs = args.epochs if source != "digits" else max(args.epochs, 60)
        t0 = time.perf_counter()
        plain = vaekit.train(source, out=f"{tmp}/{source}-vae", epochs=epochs, seed=args.seed, report=False)
        t_vae = time.perf_counter() - t0
        for n in [int(v) for v in args.labels.split(",")]:
            if n > len(train):
                continue
            pick = choose_labeled(train.y.numpy(), n, args.seed)
            base = labelled_only(train.x[pick].numpy(), train.y[pick].numpy(), test.x.numpy(), test.y.numpy())
            probe = linear_probe(plain, load_source(source), n, args.seed)["accuracy_latent"]
            steps = epochs * -(-len(train) // 128)
            mlp = mlp_only(train.x[pick], train.y[pick], test.x, test.y, steps, args.seed)
            t0 = time.perf_counter()
            m2 = vaekit.train(source, out=f"{tmp}/{source}-m2-{n}", semi_supervised=True, labeled=n,
                              epochs=epochs, seed=args.seed, report=False, patience=None)
            t_m2 = time.perf_counter() - t0
            import json
            from pathlib import Path

            acc = json.loads((Path(tmp) / f"{source}-m2-{n}" / "results.json").read_text())["test_accuracy"]
            case = {"data": source, "labels": n, "m2_accuracy": acc, "labelled_only_accuracy": base,
                    "classifier_only_accuracy": mlp, "probe_accuracy": probe, "m2_seconds": t_m2, "vae_seconds": t_vae, "epochs": epochs}
            out["cases"].append(case)
            rows.append((source, n, acc, base, mlp, probe, t_m2))
            print(f"{source} {n} labels: M2 {acc:.4f}  labelled-only LR {base:.4f}  M2's classifier alone {mlp:.4f}  "
                  f"probe {probe:.4f}", flush=True)
            del m2
    C.print_table("semi-supervised: test accuracy with N labels", rows,
                  ("data", "labels", "M2", "labelled-only LR", "M2's classifier alone", "probe (VAE latents + LR)",
                   "M2 seconds"))
    C.write_result("semisupervised", out)
    return out


if __name__ == "__main__":
    main()
