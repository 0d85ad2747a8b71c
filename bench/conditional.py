"""Conditional generation quality: a classifier trained on the real training images (scikit-learn logistic
regression) reads conditional samples; we report, per class, the fraction it assigns to the class asked for.

    python -m bench.conditional [--data digits,fashion-mnist] [--epochs 60,15] [--n 200]
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np

from . import common as C


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.conditional", description=__doc__.splitlines()[0])
    p.add_argument("--data", default="digits,fashion-mnist")
    p.add_argument("--epochs", default="100,15", help="epochs per dataset, in the order of --data")
    p.add_argument("--n", type=int, default=200, help="samples per class")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from sklearn.linear_model import LogisticRegression

    import vaekit
    from vaekit.data import load_source, split_dataset

    out, rows = {"benchmark": "conditional", "env": C.env_info(), "cases": []}, []
    tmp = tempfile.mkdtemp()
    for source, epochs in zip(args.data.split(","), [int(e) for e in args.epochs.split(",")]):
        ds = load_source(source)
        train, _, test = split_dataset(ds, seed=args.seed)
        clf = LogisticRegression(max_iter=1000).fit(train.x.reshape(len(train), -1).numpy()[:20000],
                                                    train.y.numpy()[:20000])
        real_acc = float(clf.score(test.x.reshape(len(test), -1).numpy(), test.y.numpy()))
        model = vaekit.train(source, out=f"{tmp}/{source}", conditional=True, epochs=epochs, seed=args.seed,
                             report=False)
        cond = model.conditioning
        per_class = []
        for k, name in enumerate(cond.classes):
            s = model.sample(args.n, seed=args.seed + k, c=cond.labels([name] * args.n))
            per_class.append(float((clf.predict(s.reshape(args.n, -1).numpy()) == k).mean()))
        case = {"data": source, "epochs": epochs, "classifier_test_accuracy_on_real": real_acc,
                "fraction_read_as_requested": dict(zip(cond.classes, per_class)), "mean": float(np.mean(per_class))}
        out["cases"].append(case)
        rows.append((source, real_acc, float(np.mean(per_class)), float(np.min(per_class)),
                     " ".join(f"{v:.2f}" for v in per_class)))
    C.print_table("conditional samples read as the requested class", rows,
                  ("data", "classifier acc. on real test", "mean", "worst class", "per class"))
    C.write_result("conditional", out)
    return out


if __name__ == "__main__":
    main()
