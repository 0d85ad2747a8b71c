"""Molecule generation on MOSES: generators trained on a subset of the MOSES train set, their samples scored with
vaekit's MOSES metrics (``vaekit.evaluation.molecules``) against a subset of the test set, beside MOSES's
published rows.

    python -m bench.molecules [--wheel molsets-0.3.1-py3-none-any.whl] [--n-train 250000] [--n-samples 30000]
                              [--n-test 176074] [--models train,ngram] [--no-fcd] [--scaffold-test]
    python -m bench.molecules --write-train train.smi          # the training subset, for `vaekit train`
    python -m bench.molecules --models ngram,smiles-vae=runs/smi,selfies-vae=runs/sf   # score trained runs

The data come from the molsets wheel (see bench/molecules_data.py; not a dependency, only its CSVs are read).
Models: ``train`` (MOSES's "Train" row: molecules drawn from the training subset itself, a ceiling; novelty 0
by construction), ``ngram`` (MOSES's character n-gram baseline, bench/ngram.py), and ``smiles-vae`` /
``selfies-vae`` (vaekit's ``seq-vae`` family with its defaults, ``--vae-epochs`` epochs on the training subset,
samples at temperature 1; SELFIES samples are decoded to SMILES); ``smiles-vae=RUN`` samples a run trained
beforehand (e.g. by ``vaekit train --data train.smi --family seq-vae ...`` on the file ``--write-train`` writes,
which can take several processes and sessions: ``--resume``), its training time read from the run's metrics.
Novelty is against the training subset the generators saw. The test set's statistics are kept in a cache
(bench/molecules_reference.py) and computed once. FCD costs ≈ 20 ms per molecule on one CPU core (reference set and valid samples).
Needs ``pip install 'vaekit[molecules]'``.
"""

from __future__ import annotations

import argparse
import math
import time

from . import common as C
from .molecules_data import fail, molsets_wheel, read_split, subset

MODELS = ("train", "ngram", "smiles-vae", "selfies-vae")
COLUMNS = ("valid", "unique@1000", "unique@10000", "FCD/Test", "SNN/Test", "Frag/Test", "Scaf/Test", "IntDiv",
           "IntDiv2", "Novelty")
SF_COLUMNS = ("FCD/TestSF", "SNN/TestSF", "Frag/TestSF", "Scaf/TestSF")
# MOSES's README (molecularsets/moses, "Metrics"): mean over 3 runs of 30k samples against the full test set,
# trained on the full 1.58M train set
PUBLISHED = {
    "Train (MOSES)": {"valid": 1.0, "unique@1000": 1.0, "unique@10000": 1.0, "FCD/Test": 0.008, "SNN/Test": 0.6419,
                      "Frag/Test": 1.0, "Scaf/Test": 0.9907, "IntDiv": 0.8567, "IntDiv2": 0.8508, "Novelty": 1.0,
                      "FCD/TestSF": 0.4755, "SNN/TestSF": 0.5859, "Frag/TestSF": 0.9986, "Scaf/TestSF": 0.0},
    "NGram (MOSES)": {"valid": 0.2376, "unique@1000": 0.974, "unique@10000": 0.9217, "FCD/Test": 5.5069,
                      "SNN/Test": 0.5209, "Frag/Test": 0.9846, "Scaf/Test": 0.5302, "IntDiv": 0.8738,
                      "IntDiv2": 0.8644, "Novelty": 0.9694, "FCD/TestSF": 6.2306, "SNN/TestSF": 0.4997,
                      "Frag/TestSF": 0.9815, "Scaf/TestSF": 0.0977},
    "VAE (MOSES)": {"valid": 0.9767, "unique@1000": 1.0, "unique@10000": 0.9984, "FCD/Test": 0.099,
                    "SNN/Test": 0.6257, "Frag/Test": 0.9994, "Scaf/Test": 0.9386, "IntDiv": 0.8558,
                    "IntDiv2": 0.8498, "Novelty": 0.6949, "FCD/TestSF": 0.567, "SNN/TestSF": 0.5783,
                    "Frag/TestSF": 0.9984, "Scaf/TestSF": 0.0588},
}


def sample_run(run: str, n: int, seed: int) -> tuple[list[str], float, float]:
    """(samples, training seconds summed over the run's epochs, sampling seconds) of a trained seq-vae run."""
    import json
    from pathlib import Path

    import vaekit

    path = Path(run)
    if not (path / "metrics.jsonl").is_file():
        fail(f"{run} is not a trained run directory (no metrics.jsonl); train one with vaekit train first")
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines() if line.strip()]
    model = vaekit.load(path)
    t0 = time.perf_counter()
    samples = model.sample_strings(n, temperature=1.0, seed=seed)
    return samples, float(sum(r.get("seconds", 0.0) for r in rows)), time.perf_counter() - t0


def sample_model(name: str, train: list[str], n: int, seed: int, order: int,
                 vae_epochs: int = 1) -> tuple[list[str], float, float]:
    """(samples, training seconds, sampling seconds) of one generator."""
    if "=" in name:
        return sample_run(name.split("=", 1)[1], n, seed)
    if name in ("smiles-vae", "selfies-vae"):
        import tempfile
        from pathlib import Path

        import vaekit

        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "train.smi"
            data.write_text("\n".join(train) + "\n")
            t0 = time.perf_counter()
            model = vaekit.train(str(data), None, family="seq-vae", tokenizer=name.split("-")[0], epochs=vae_epochs,
                                 seed=seed, report=False)
        t1 = time.perf_counter()
        return model.sample_strings(n, temperature=1.0, seed=seed), t1 - t0, time.perf_counter() - t1
    if name == "train":
        t0 = time.perf_counter()
        return subset(train, n, seed + 1), 0.0, time.perf_counter() - t0
    if name == "ngram":
        from .ngram import NGram

        t0 = time.perf_counter()
        model = NGram(order).fit(train)
        t1 = time.perf_counter()
        return model.generate(n, seed), t1 - t0, time.perf_counter() - t1
    fail(f"unknown model {name!r}")


def print_columns(rows: dict[str, dict], keys: tuple[str, ...]) -> None:
    """One line per metric, one column per model (the MOSES table transposed: it fits a terminal)."""
    names = list(rows)
    width = max(12, *(len(n) for n in names))
    print(f"{'':<12} " + " ".join(f"{n:>{width}}" for n in names))
    for key in keys:
        print(f"{key:<12} " + " ".join(f"{C.fmt(float(rows[n].get(key, math.nan))):>{width}}" for n in names))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.molecules", description=__doc__.splitlines()[0])
    p.add_argument("--wheel", default=None, help="a molsets wheel already downloaded (default: the cache's, "
                                                 "downloaded with pip download --no-deps molsets)")
    p.add_argument("--cache-dir", default=None, help="where the wheel is kept (default ~/.cache/vaekit/molsets)")
    p.add_argument("--n-train", type=int, default=250_000, help="training molecules (random subset; MOSES: all)")
    p.add_argument("--n-samples", type=int, default=30_000, help="molecules sampled per model (MOSES: 30,000)")
    p.add_argument("--n-test", type=int, default=None, help="reference molecules (random subset; default all)")
    p.add_argument("--models", default="train,ngram",
                   help=f"comma-separated: {', '.join(MODELS)}")
    p.add_argument("--ngram-order", type=int, default=10, help="the n-gram's longest context (MOSES: 10)")
    p.add_argument("--vae-epochs", type=int, default=1, help="epochs of the seq-vae models (one 250k epoch: about "
                                                             "20 CPU-minutes with the defaults)")
    p.add_argument("--no-fcd", dest="fcd", action="store_false", help="skip FCD (its ChemNet pass is the slow part)")
    p.add_argument("--scaffold-test", action="store_true", help="also score against the scaffold test set (TestSF)")
    p.add_argument("--n-jobs", type=int, default=1, help="worker processes for the RDKit parts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write-train", default=None, metavar="PATH",
                   help="write the training subset (one SMILES per line) to PATH and stop")
    p.add_argument("--reference-cache", default=None, help="where the test set's statistics are kept (default "
                                                          "~/.cache/vaekit/molsets/reference)")
    args = p.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m.partition("=")[0] not in MODELS
               or ("=" in m and (not m.partition("=")[0].endswith("-vae") or not m.partition("=")[2]))]
    if unknown:
        fail(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)} (the -vae ones also as "
             "smiles-vae=RUN_DIR)")

    from vaekit.errors import UsageError
    from vaekit.evaluation.molecules import canonical_valid, molecule_metrics

    from .molecules_reference import cached_reference

    try:
        wheel = molsets_wheel(args.wheel, args.cache_dir)
        t0 = time.perf_counter()
        train = subset(read_split(wheel, "train"), args.n_train, args.seed)
        if args.write_train:
            from pathlib import Path

            Path(args.write_train).write_text("\n".join(train) + "\n")
            print(f"wrote {len(train)} training molecules to {args.write_train}")
            return {}
        test = subset(read_split(wheel, "test"), args.n_test, args.seed)
        test_sf = subset(read_split(wheel, "test_scaffolds"), args.n_test, args.seed) if args.scaffold_test else None
        train_canonical = set(canonical_valid(train, args.n_jobs))
        t_data = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = cached_reference(test, fcd=args.fcd, n_jobs=args.n_jobs, cache_dir=args.reference_cache)
        ref_sf = (cached_reference(test_sf, fcd=args.fcd, properties=False, n_jobs=args.n_jobs,
                                   cache_dir=args.reference_cache, what="the TestSF set")
                  if test_sf is not None else None)
        t_ref = time.perf_counter() - t0
        print(f"data {t_data:.1f} s ({len(train)} train, {len(test)} test), reference statistics {t_ref:.1f} s",
              flush=True)
        rows: dict[str, dict] = {}
        for name in models:
            samples, t_train, t_sample = sample_model(name, train, args.n_samples, args.seed, args.ngram_order,
                                                      args.vae_epochs)
            t0 = time.perf_counter()
            m = molecule_metrics(samples, train_canonical, ref, fcd=args.fcd, n_jobs=args.n_jobs,
                                 test_scaffolds=ref_sf, train_is_canonical=True)
            name = name.replace("=", " ")
            rows[name] = {**m, "train_s": t_train, "sample_s": t_sample, "metrics_s": time.perf_counter() - t0,
                          "samples_per_s": len(samples) / t_sample if t_sample > 0 else math.nan}
            print(f"{name}: valid {m['valid']:.3f}, FCD/Test {m.get('FCD/Test', math.nan):.3f}, "
                  f"train {t_train:.1f} s, sample {t_sample:.1f} s, metrics {rows[name]['metrics_s']:.1f} s",
                  flush=True)
    except UsageError as err:
        fail(str(err))

    cols = COLUMNS + (SF_COLUMNS if args.scaffold_test else ())
    cols = tuple(c for c in cols if args.fcd or not c.startswith("FCD")) + ("train_s", "sample_s")
    print(f"\nMOSES metrics: {len(train):,} train, {args.n_samples:,} samples, {len(test):,} test molecules; "
          "published rows: 1.58M train, 30k samples, 176k test")
    print_columns({**rows, **PUBLISHED}, cols)
    payload = {"settings": vars(args), "n_train": len(train), "n_test": len(test), "data_s": t_data,
               "reference_s": t_ref, "rows": rows, "published": PUBLISHED}
    print("wrote", C.write_result("molecules", payload))
    return payload


if __name__ == "__main__":
    main()
