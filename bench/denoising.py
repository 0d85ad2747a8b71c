"""Denoising Fashion-MNIST: a denoising VAE (trained with --corruption) vs a plain VAE vs a 3×3 median
filter vs doing nothing; mean squared error per pixel against the clean test images.

    python -m bench.denoising [--epochs 5] [--noise gaussian:0.3,masking:0.5,salt-pepper:0.2] [--n 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from . import common as C


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.denoising", description=__doc__.splitlines()[0])
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--noise", default="gaussian:0.3,masking:0.5,salt-pepper:0.2")
    p.add_argument("--n", type=int, default=2000, help="test images scored")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import torch
    from scipy.ndimage import median_filter

    import vaekit
    from vaekit.data import load_source, split_dataset

    ds = load_source(args.data)
    test = split_dataset(ds, seed=args.seed)[2].x[: args.n]
    del ds
    tmp = tempfile.mkdtemp()
    common = dict(model="mlp", hidden=[400], latent_dim=20, likelihood="bernoulli", batch_size=128,
                  epochs=args.epochs, patience=None, seed=args.seed, report=False)
    t0 = time.perf_counter()
    plain = vaekit.train(args.data, out=f"{tmp}/plain", **common)
    seconds = {"plain": time.perf_counter() - t0}

    def mse(a: torch.Tensor) -> float:
        return float(((a - test) ** 2).mean())

    out = {"benchmark": "denoising", "env": C.env_info(), "data": args.data, "epochs": args.epochs,
           "n": len(test), "units": "MSE per pixel, [0, 1] intensities", "cases": []}
    rows = []
    for spec in args.noise.split(","):
        t0 = time.perf_counter()
        dvae = vaekit.train(args.data, out=f"{tmp}/{spec.replace(':', '-')}", corruption=spec, **common)
        seconds[spec] = time.perf_counter() - t0
        noisy = dvae.corrupt(test, spec, seed=args.seed + 1)
        med = torch.from_numpy(median_filter(noisy.numpy(), size=(1, 1, 3, 3), mode="nearest"))
        case = {"noise": spec, "corrupted": mse(noisy), "median_3x3": mse(med),
                "plain_vae": mse(plain.denoise(noisy)), "denoising_vae": mse(dvae.denoise(noisy)),
                "train_seconds": seconds[spec]}
        out["cases"].append(case)
        rows.append((spec, case["corrupted"], case["median_3x3"], case["plain_vae"], case["denoising_vae"]))
        print(f"{spec}: corrupted {case['corrupted']:.4f}  median {case['median_3x3']:.4f}  "
              f"VAE {case['plain_vae']:.4f}  DVAE {case['denoising_vae']:.4f}", flush=True)
    out["plain_vae_train_seconds"] = seconds["plain"]
    C.print_table(f"denoising {args.data}: MSE per pixel vs the clean test images (lower is better)",
                  [tuple(f"{v:.4f}" if isinstance(v, float) else v for v in r) for r in rows],
                  ("noise", "corrupted input", "median 3x3", "plain VAE", "denoising VAE"))
    C.write_result("denoising", out)
    return out


if __name__ == "__main__":
    main()
