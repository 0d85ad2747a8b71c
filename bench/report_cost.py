"""The end-of-run report's cost as a fraction of the training time: the old default (IWAE k = 100 on every
test example) vs the new one (k and examples planned from a timed pilot to about 15% of training).

    python -m bench.report_cost [--data fashion-mnist] [--epochs 1] [--cache-dir DIR] [--quick]

Trains one run (report off), then times ``vaekit.finish.end_of_run`` (evaluation + report.html + pictures)
on the run's test split twice in the same process: old default, then new default. ``--quick``: digits, for a
smoke test (its 180 test examples cost nothing either way).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from . import common as C


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--idx-dir", default=None, help="read Fashion-MNIST's four IDX .gz files from this folder "
                   "(e.g. Debian's dataset-fashion-mnist, whose gzip bytes differ from the checksummed download)")
    p.add_argument("--quick", action="store_true", help="digits, 2 epochs (checks the bench runs)")
    args = p.parse_args(argv)
    data, epochs = ("digits", 2) if args.quick else (args.data, args.epochs)

    import vaekit
    from vaekit import api
    from vaekit.finish import end_of_run, training_seconds

    source = data
    if args.idx_dir and not args.quick:
        source = _idx_dataset(Path(args.idx_dir), data)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        vaekit.train(source, out=run, epochs=epochs, report=False, cache_dir=args.cache_dir, seed=0)
        trained = api.load(run)
        history = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines() if s.strip()]
        train_s = training_seconds(history)
        if source is data:
            x, y, c, _, mask = api._eval_data(trained, None, "test", 0, args.cache_dir)
        else:  # the official test set, as vaekit.train uses it
            x, y, c, mask = source.test_x, source.test_y, None, None
        stored = json.loads((run / "results.json").read_text())["test"]
        rows, raw = [], {}
        end_of_run(trained, x[:8], None if y is None else y[:8], None if c is None else c[:8],
                   None if mask is None else mask[:8], None, history, iwae_k=1, examples=8)  # warm-up (imports)
        for name, k, n in (("old", 100, len(x)), ("new", None, None)):
            t0 = time.perf_counter()
            ev = end_of_run(trained, x, y, c, mask, stored, history, iwae_k=k, examples=n)
            sec = time.perf_counter() - t0
            plan = ev["report_plan"]
            rows.append((name, plan["k"], plan["n"], plan["seconds"], sec, train_s, sec / train_s, ev["neg_iwae"]))
            raw[name] = {"seconds": sec, "train_seconds": train_s, "fraction": sec / train_s, "plan": plan,
                         "neg_iwae": ev["neg_iwae"], "neg_elbo": ev["neg_elbo"]}
    C.print_table(f"report cost on {data} ({len(x)} test examples), {epochs} epoch(s) of the default MLP; "
                  "old = IWAE k=100 on every example, new = planned",
                  rows, ("report", "k", "examples", "evaluation s", "report s", "training s", "report/training",
                         "-IWAE nats"))
    C.write_result("report_cost", {"data": data, "epochs": epochs, "results": raw})
    return raw


def _idx_dataset(folder: Path, name: str):
    """The Dataset ``vaekit.train("fashion-mnist")`` loads, read from a folder of the four IDX files."""
    import torch

    from vaekit.data import FASHION_MNIST_CLASSES, Dataset, read_idx

    def pair(prefix: str):
        x = torch.from_numpy(read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")).unsqueeze(1).float().div_(255.0)
        return x, torch.from_numpy(read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz").astype("int64"))

    (x, y), (tx, ty) = pair("train"), pair("t10k")
    return Dataset(x=x, y=y, kind="image", name=name, classes=list(FASHION_MNIST_CLASSES), test_x=tx, test_y=ty)


if __name__ == "__main__":
    main()
