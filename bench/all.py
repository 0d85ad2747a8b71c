"""Run every benchmark in turn with its defaults: ``python -m bench.all`` (or ``python -m bench``).

Each benchmark writes its own ``bench/results/<name>.json``; this also writes ``bench/results/all.json``
with the headline numbers. ``--quick`` shortens everything (for a smoke test, not for numbers).
"""

from __future__ import annotations

import argparse
import time

from . import common as C


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.all", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny settings: checks the benches run, numbers are noise")
    p.add_argument("--only", default="train_speed,time_to_quality,eval_speed,memory,imputation,inpainting,"
                                      "anomaly,anomaly_tabular,mixed,denoising")
    args = p.parse_args(argv)
    q = args.quick
    plan = {
        "train_speed": ["--epochs", "1", "--repeats", "1", "--matmul-seconds", "0.2"] if q else [],
        "time_to_quality": ["--max-epochs", "2", "--threshold", "300"] if q else ["--repeats", "2"],
        "eval_speed": ["--k", "50", "--n", "200", "--train-epochs", "0", "--matmul-seconds", "0.2"] if q else [],
        "memory": ["--cases", "import,classic"] if q else [],
        "imputation": ["--tables", "wine", "--rates", "0.2", "--epochs", "20", "--k", "50", "--steps", "20",
                       "--fm-n", "0"] if q else [],
        "inpainting": ["--data", "lfw-faces", "--face-epochs", "5", "--steps", "20", "--k", "50"] if q else [],
        "anomaly": ["--classes", "0", "--epochs", "1", "--iwae-k", "2"] if q else [],
        "anomaly_tabular": ["--sets", "glass", "--trials", "1"] if q else [],
        "mixed": ["--quick"] if q else [],
        "denoising": ["--epochs", "1", "--n", "200", "--noise", "masking:0.5"] if q else [],
    }
    out, t0 = {}, time.perf_counter()
    for name in args.only.split(","):
        mod = __import__(f"bench.{name}", fromlist=["main"])
        print(f"\n### {name} {' '.join(plan[name])}", flush=True)
        out[name] = mod.main(plan[name])
    head = {}
    if "train_speed" in out:
        s = out["train_speed"]
        head["train_speed"] = {"vaekit_examples_per_s": s["summary"]["vaekit"]["examples_per_s"],
                               "reference_examples_per_s": s["summary"]["reference"]["examples_per_s"],
                               "ratio": s["ratio"], "equal_quality": s["equal_quality"],
                               "matmul_gflops": s["matmul_gflops"]}
    if "time_to_quality" in out:
        head["time_to_quality"] = {k: {"seconds": v["seconds"], "seconds_robust": v["seconds_robust"],
                                       "epochs": v["epochs"]} for k, v in out["time_to_quality"]["summary"].items()}
    if "eval_speed" in out:
        head["eval_speed"] = {k: out["eval_speed"][k] for k in ("k", "n", "impl", "examples_per_s", "gflops")}
    if "memory" in out:
        head["memory_mb"] = {k: v["peak_rss_mb"] for k, v in out["memory"]["cases"].items()}
    if "mixed" in out:
        head["mixed_accuracy"] = {f"{r['table']} seed {r['seed']}": r["accuracy"] for r in out["mixed"]["runs"]}
    if "imputation" in out:
        head["imputation_rmse"] = {f"{t['table']} {t['rate']:.0%}": t["rmse"] for t in out["imputation"]["tables"]}
        head["imputation_rmse"].update({f"fashion-mnist {t['rate']:.0%}": t["rmse"]
                                        for t in out["imputation"]["fashion_mnist"]})
    if "inpainting" in out:
        head["inpainting_mse"] = {c["data"]: c["mse"] for c in out["inpainting"]["cases"]}
    if "anomaly" in out:
        head["anomaly_fashion_mnist_mean_auroc"] = out["anomaly"]["mean_auroc"]
    if "anomaly_tabular" in out:
        head["anomaly_odds_mean_auroc"] = out["anomaly_tabular"]["mean_auroc"]
    C.write_result("all", {"quick": q, "seconds": time.perf_counter() - t0, "headline": head})
    return head


if __name__ == "__main__":
    main()
