"""Inpainting: mean squared error on the hidden region, vaekit vs filling with the data mean and vs a
nearest-neighbour fill, on faces (scikit-image's bundled LFW subset) and Fashion-MNIST.

- Fashion-MNIST: the complete-data run of the classic recipe (``--fm-run``; trained here with the same
  settings if absent), which never saw a mask; ``--n`` images of the official test set.
- Faces: the 100 face images of ``skimage.data.lfw_subset()`` (25×25 grey; the other 100 are non-faces),
  shuffled, 80 to train (plus their mirror images) and 20 to test; vaekit trains on the 160 through
  ``vaekit.train`` on an .npy file.

Masks: ``center`` (the central half-height × half-width block), ``left`` and ``bottom`` halves. Methods:
vaekit Metropolis-within-Gibbs (``--steps``, the estimate averages E[x_miss|z] over the second half of the
chain, started from a 2-pass IW estimate) and importance-weighted conditional mean (``--k``, ``--passes`` 3:
each pass refills the encoder's input with the previous estimate, instead of zeros); *mean* fills each hidden pixel with its mean over
the training images; *nearest neighbour* copies the hidden pixels of the training image closest on the
observed pixels (Euclidean). MSE in pixel units ([0, 1]) over the hidden pixels of all test images.
Figures: ``bench/results/inpainting_<data>.png`` (columns: masked | vaekit MwG | nearest neighbour | mean
| original; rows: examples under each mask).

    python -m bench.inpainting [--n 500] [--steps 500] [--k 500] [--face-epochs 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import common as C

MASKS = ("center", "left", "bottom")


def nearest_fill(x: torch.Tensor, observed: torch.Tensor, train: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Each image's hidden pixels copied from the training image nearest on its observed pixels."""
    xf, mf, tf = x.flatten(1), observed.flatten(1).float(), train.flatten(1)
    t2 = tf * tf
    out = []
    for i in range(0, len(xf), chunk):
        xb, mb = xf[i: i + chunk], mf[i: i + chunk]
        # Σ_obs (x - t)² = Σ m x² - 2 (m x)·t + m·t²
        d = (mb * xb * xb).sum(1, keepdim=True) - 2 * (mb * xb) @ tf.T + mb @ t2.T
        out.append(tf[d.argmin(1)])
    nn = torch.cat(out).view_as(x)
    return torch.where(observed, x, nn)


def hidden_mse(filled: torch.Tensor, x: torch.Tensor, observed: torch.Tensor) -> float:
    h = ~observed
    return float(((filled - x)[h] ** 2).mean())


def run_case(name: str, model, test: torch.Tensor, train: torch.Tensor, steps: int, k: int, seed: int,
             figure_rows: int, fig_dir: Path, passes: int = 3) -> dict:
    from vaekit.data.masks import observed_mask
    from vaekit.figures import save_image_grid

    res = {"data": name, "test_images": len(test), "train_images": len(train), "passes": passes, "mse": {},
           "seconds": {}, "acceptance": {}}
    mean_img = train.mean(0, keepdim=True)
    tiles = []
    for mask in MASKS:
        obs = observed_mask(mask, len(test), tuple(test.shape[1:]), seed)
        row = {}
        t0 = time.perf_counter()
        mwg = model.impute(test, mask=obs, method="mwg", steps=steps, k=200, passes=passes, seed=seed).clamp(0, 1)
        res["seconds"][f"{mask} mwg"] = time.perf_counter() - t0
        acc = res["acceptance"][mask] = model.last_acceptance
        row["vaekit mwg"] = hidden_mse(mwg, test, obs)
        t0 = time.perf_counter()
        iw = model.impute(test, mask=obs, method="iw", k=k, passes=passes, seed=seed).clamp(0, 1)
        res["seconds"][f"{mask} iw"] = time.perf_counter() - t0
        row["vaekit iw"] = hidden_mse(iw, test, obs)
        meanfill = torch.where(obs, test, mean_img.expand_as(test))
        row["mean fill"] = hidden_mse(meanfill, test, obs)
        nn = nearest_fill(test, obs, train)
        row["nearest neighbour"] = hidden_mse(nn, test, obs)
        res["mse"][mask] = row
        shown = torch.where(obs, test, torch.full_like(test, 0.5))
        for i in range(figure_rows):
            tiles += [shown[i], mwg[i], nn[i], meanfill[i], test[i]]
        print(f"{name} {mask}: " + ", ".join(f"{m} {v:.4f}" for m, v in row.items())
              + f" (MwG acceptance {acc:.2f})", flush=True)
    fig = fig_dir / f"inpainting_{name}.png"
    save_image_grid(torch.stack(tiles), fig, ncol=5)
    res["figure"] = str(fig)
    return res


def fashion(args, fig_dir: Path) -> dict:
    import vaekit
    from vaekit.data import load_source, split_dataset

    run = Path(args.fm_run)
    if not (run / "model.safetensors").is_file():
        run = Path(tempfile.mkdtemp()) / "fm"
        vaekit.train("fashion-mnist", out=run, model="mlp", hidden=[400], latent_dim=20, likelihood="bernoulli",
                     lr=1e-3, batch_size=128, epochs=10, patience=None, report=False)
    model = vaekit.load(run)
    ds = load_source("fashion-mnist")
    train, _, test = split_dataset(ds, seed=model.config.seed)
    return run_case("fashion-mnist", model, test.x[: args.n], train.x, args.steps, args.k, args.seed, 3, fig_dir,
                    args.passes)


def faces(args, fig_dir: Path) -> dict:
    import skimage.data

    import vaekit

    imgs = torch.from_numpy(skimage.data.lfw_subset()[:100].astype(np.float32)).unsqueeze(1)  # faces only
    perm = torch.randperm(100, generator=torch.Generator().manual_seed(args.seed))
    train, test = imgs[perm[:80]], imgs[perm[80:]]
    train = torch.cat([train, train.flip(-1)])  # mirror images: 160 training faces
    tmp = Path(tempfile.mkdtemp())
    np.save(tmp / "faces.npy", train.squeeze(1).numpy())
    t0 = time.perf_counter()
    model = vaekit.train(str(tmp / "faces.npy"), out=tmp / "run", model="mlp", hidden=[256], latent_dim=16,
                         likelihood="bernoulli", lr=1e-3, batch_size=32, epochs=args.face_epochs, patience=100,
                         seed=args.seed, report=False)
    secs = time.perf_counter() - t0
    res = run_case("lfw-faces", model, test, train, args.steps, args.k, args.seed, 4, fig_dir, args.passes)
    res["seconds"]["training"] = secs
    res["epochs_run"] = model.result.epochs_run
    return res


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.inpainting", description=__doc__.splitlines()[0])
    p.add_argument("--data", default="lfw-faces,fashion-mnist")
    p.add_argument("--n", type=int, default=500, help="Fashion-MNIST test images")
    p.add_argument("--steps", type=int, default=500, help="Metropolis-within-Gibbs steps")
    p.add_argument("--k", type=int, default=500, help="importance samples")
    p.add_argument("--passes", type=int, default=3,
                   help="IW passes (encoder input refilled with the estimate); MwG starts from passes-1 of them")
    p.add_argument("--face-epochs", type=int, default=1000, help="most epochs on the faces (patience 100)")
    p.add_argument("--fm-run", default="runs/fm")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    fig_dir = C.RESULTS_DIR
    out: dict = {"settings": vars(args), "cases": []}
    for name in args.data.split(","):
        out["cases"].append(faces(args, fig_dir) if name == "lfw-faces" else fashion(args, fig_dir))
    rows = [(c["data"], m, *c["mse"][m].values()) for c in out["cases"] for m in MASKS]
    C.print_table("inpainting MSE on the hidden pixels (pixel units; lower is better)", rows,
                  ("data", "mask", *out["cases"][0]["mse"][MASKS[0]].keys()))
    C.write_result("inpainting", out)
    return out


if __name__ == "__main__":
    main()
