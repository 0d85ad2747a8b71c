"""Mult-VAE at ML-20M's shape: a synthetic users × items matrix (136k × 20k, 10M clicks, item popularity
Zipf-like), split as in training; seconds per training step at batch 500 (the paper's), the epoch time that
gives, and peak memory. Only a batch is ever dense.

    python -m bench.recommend_scale [--steps 20] [--device cpu]
"""

from __future__ import annotations

import argparse
import resource
import time


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.recommend_scale", description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=136_000)
    p.add_argument("--items", type=int, default=20_000)
    p.add_argument("--clicks", type=int, default=10_000_000)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)

    import numpy as np
    import scipy.sparse as sp
    import torch

    from vaekit.config import make_config
    from vaekit.data.interactions import Interactions, split_interactions
    from vaekit.families.mult_vae import InteractionBatches, MultObjective, MultVAEFamily

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    pop = 1.0 / np.arange(1, args.items + 1) ** 0.8
    u = rng.integers(0, args.users, args.clicks)
    i = rng.choice(args.items, size=args.clicks, p=pop / pop.sum())
    m = sp.csr_matrix((np.ones(args.clicks, np.float32), (u, i)), shape=(args.users, args.items))
    m.data[:] = 1.0
    m.sum_duplicates()
    m.data[:] = 1.0
    inter = Interactions(m, [str(k) for k in range(args.users)], [str(k) for k in range(args.items)])
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    tr, va, te = split_interactions(inter, 0.1, 0.1, seed=0)
    split = time.perf_counter() - t0

    dev = torch.device(args.device)
    cfg = MultVAEFamily().defaults(make_config(data="synthetic", family="mult-vae"))
    model = MultVAEFamily().build(cfg, (args.items,)).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    tr.x = tr.x.to(dev)
    source, objective = InteractionBatches(tr, cfg.batch_size), MultObjective()
    perm = torch.randperm(len(tr))
    times = []
    for k, batch in enumerate(source.epoch(perm, torch.Generator())):
        if k == args.steps + 2:
            break
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = objective.step(model, batch, 0.2)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if k >= 2:  # two warm-up steps
            times.append(time.perf_counter() - t)
    step = float(np.median(times))
    res = {"users": args.users, "items": args.items, "clicks": int(m.nnz), "build_s": build, "split_s": split,
           "step_s": step, "steps_per_epoch": source.steps, "epoch_s": step * source.steps,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "threads": torch.get_num_threads(), "device": str(dev)}
    if dev.type == "cuda":
        res["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(res)
    return res


if __name__ == "__main__":
    main()
