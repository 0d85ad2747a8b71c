"""Sharper samples on Fashion-MNIST: plain VAE, VAE + GMM sampler, VampPrior, VAE-GAN and sparse VAE with the
same encoder/decoder (MLP 784-H-L) and the same epochs; Fréchet distance, precision and recall (k=3) in the
features of vaekit's classifier for the dataset, reconstruction MSE, IWAE NLL (dynamically binarized
training, a fixed binarization of the test images), training time; a figure of samples side by side.

    python -m bench.sharper                                  # the full run (all 60k images, 20 epochs)
    python -m bench.sharper --train 6000 --epochs 3 --n-eval 1000 --iwae-k 20   # the reduced run (~5 min, 2 cores)
    python -m bench.sharper --train 6000 --epochs 3 --n-eval 1000 --iwae-k 20 --models plain,gan   # two rows

Optional: ``--probe-latents 32,200`` adds the linear-probe accuracy (1000 labels) of the plain and sparse VAE at
each latent size (Tonolini et al.'s claim: sparse codes do not degrade when the latent space is too large).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

from . import common as C


def _subset(ds, n: int | None):
    return ds if n is None or n >= len(ds.x) else dataclasses.replace(ds, x=ds.x[:n], y=ds.y[:n])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.sharper", description=__doc__.splitlines()[0])
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--train", type=int, default=None, help="first N training images (default: all)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--latent", type=int, default=16)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--n-eval", type=int, default=2000, help="test images for FD/PR, MSE and IWAE")
    p.add_argument("--iwae-k", type=int, default=100)
    p.add_argument("--gmm", type=int, default=10, help="components of the GMM sampler")
    p.add_argument("--vamp", type=int, default=100, help="VampPrior pseudo-inputs")
    p.add_argument("--probe-latents", default="", help="e.g. 32,200: probe accuracy of vae and sparse-vae")
    p.add_argument("--figure", default="bench/results/sharper_samples.png")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", default="plain,gmm,vamp,gan,sparse",
                   help="which rows, e.g. plain,gan (the GMM row needs plain)")
    p.add_argument("--gan-weight", type=float, default=None, help="VAE-GAN: --gan-weight (default: vaekit's)")
    args = p.parse_args(argv)

    import torch

    import vaekit
    from vaekit.config import make_config
    from vaekit.core.priors import mixture_draw
    from vaekit.data import load_source
    from vaekit.data.kinds import kind_of
    from vaekit.evaluation.figures import save_image_grid
    from vaekit.evaluation.metrics import importance_bounds
    from vaekit.evaluation.quality import load_or_train_classifier, sample_quality
    from vaekit.samplers import fit_gmm

    full = load_source(args.data)
    kind = kind_of(full.kind)
    t0 = time.perf_counter()
    ctrain, cval, _ = kind.split(full, make_config(data=args.data))  # as `vaekit evaluate` does: same classifier
    net, meta = load_or_train_classifier(full.fingerprint(), ctrain.x, ctrain.y, len(full.classes), cval.x, cval.y)
    classifier_s = time.perf_counter() - t0
    print(f"classifier {meta['name']}: accuracy {meta['accuracy']:.3f} ({'cached' if meta['cached'] else 'trained'} "
          f"in {classifier_s:.0f} s)", flush=True)
    ds = _subset(full, args.train)
    test = full.test_x[: args.n_eval]
    gen = torch.Generator().manual_seed(args.seed + 1)
    test_bin = torch.bernoulli(test, generator=gen)  # one fixed binarization for every model's IWAE
    common = dict(model="mlp", hidden=[args.hidden], latent_dim=args.latent, likelihood="bernoulli",
                  binarize="dynamic", batch_size=128, epochs=args.epochs, patience=None, seed=args.seed,
                  report=False)
    variants = {"plain VAE": {}, "VAE + GMM sampler": None, "VampPrior": dict(prior="vamp", vamp_components=args.vamp),
                "VAE-GAN": dict(family="vae-gan", gan_start_epoch=max(1, args.epochs // 4)),
                "sparse VAE": dict(family="sparse-vae", sparse_alpha=0.2)}
    if args.gan_weight is not None:
        variants["VAE-GAN"]["gan_weight"] = args.gan_weight
    keys = dict(zip(("plain", "gmm", "vamp", "gan", "sparse"), variants))
    chosen = [k.strip() for k in args.models.split(",") if k.strip()]
    if unknown := [k for k in chosen if k not in keys]:
        p.error(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(keys)}")
    if "gmm" in chosen and "plain" not in chosen:
        p.error("--models: gmm samples the plain VAE's run; add plain")
    variants = {keys[k]: variants[keys[k]] for k in keys if k in chosen}
    rows, out, figure, runs = [], {"settings": vars(args), "classifier": meta, "results": {}}, [], {}
    for name, extra in variants.items():
        if extra is None:  # the plain VAE's run, sampled from a GMM on its training codes
            trained, seconds = runs["plain VAE"]
            t1 = time.perf_counter()
            codes = trained.encode(ds.x)
            gmm = fit_gmm(codes, args.gmm, args.seed)
            z = mixture_draw(gmm["means"], None, len(test), 1.0, torch.Generator().manual_seed(args.seed),
                             gmm["weights"], gmm["scale_tril"])
            samples = trained.decode(z)
            seconds = seconds + (time.perf_counter() - t1)
        else:
            t1 = time.perf_counter()
            trained = vaekit.train(ds, **common, **extra)
            seconds = time.perf_counter() - t1
            runs[name] = (trained, seconds)
            samples = trained.sample(len(test), seed=args.seed)
        q = sample_quality(net, meta, test, samples.clamp(0, 1))
        mse = float(((trained.reconstruct(test) - test) ** 2).mean())
        torch.manual_seed(args.seed)
        nll = float(-importance_bounds(trained.model, test_bin, args.iwae_k)[0].double().mean())
        res = {"fd": q["fd"], "precision": q["precision"], "recall": q["recall"], "recon_mse": mse,
               "iwae_nll": nll, "train_seconds": seconds}
        out["results"][name] = res
        rows.append((name, q["fd"], q["precision"], q["recall"], mse, nll, seconds))
        figure.append(samples[:16])
        print(f"{name}: FD {q['fd']:.2f}  P {q['precision']:.3f}  R {q['recall']:.3f}  MSE {mse:.4f}  "
              f"NLL {nll:.2f}  {seconds:.0f} s", flush=True)
    fig = Path(args.figure)
    fig.parent.mkdir(parents=True, exist_ok=True)
    save_image_grid(torch.cat(figure), fig, ncol=16)
    out["figure"] = str(fig)
    out["figure_rows"] = list(variants)
    if args.probe_latents:
        out["probe"] = _probe(vaekit, ds, full, common, [int(v) for v in args.probe_latents.split(",")])
    name = meta["name"]
    C.print_table(f"{args.data}, {args.epochs} epochs on {len(ds.x)} images, MLP {args.hidden}, latent {args.latent}; "
                  f"FD/P/R in {name} features ({len(test)} samples vs test images); IWAE k={args.iwae_k}",
                  [tuple(f"{v:.4f}" if isinstance(v, float) and abs(v) < 1 else
                         (f"{v:.2f}" if isinstance(v, float) else v) for v in r) for r in rows],
                  ("model", f"FD ({name})", "precision", "recall", "recon MSE", "IWAE NLL (nats)", "train s"))
    C.write_result("sharper", out)
    return out


def _probe(vaekit, ds, full, common: dict, latents: list[int]) -> dict:
    """Linear-probe test accuracy (1000 labels) of the plain and the sparse VAE at each latent size."""
    from vaekit.tasks.probe import linear_probe

    res: dict = {}
    for fam in ("vae", "sparse-vae"):
        for L in latents:
            trained = vaekit.train(ds, **{**common, "latent_dim": L, "family": fam})
            acc = linear_probe(trained, full, labeled=1000)["accuracy_latent"]
            res[f"{fam}@{L}"] = acc
            print(f"probe {fam} latent {L}: accuracy {acc:.3f}", flush=True)
    return res


if __name__ == "__main__":
    main()
