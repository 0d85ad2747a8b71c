"""Evaluation speed: the importance-weighted bound IWAE-k (default k = 1000) over the 10k test set.

    python -m bench.eval_speed [--k 1000] [--n 10000] [--chunk 16] [--train-epochs 1]

Uses ``vaekit.evaluation.iwae_bound(model, x, k, chunk=...)`` when vaekit has it, else the bench's own
implementation (same maths). FLOPs per example: the encoder once + k decoder passes (matmuls only).
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F

from . import common as C


@torch.inference_mode()
def bench_iwae(model, x: torch.Tensor, k: int, chunk: int = 16) -> torch.Tensor:
    """−log p̂(x) per example (nats) with k importance samples; ``chunk`` examples at a time."""
    model.eval()
    out = []
    for i in range(0, len(x), chunk):
        xb = x[i: i + chunk]
        b = len(xb)
        mu, logvar = model.posterior_params(xb)
        std = (0.5 * logvar).exp()
        eps = torch.randn(k, b, mu.shape[1])
        z = mu + eps * std  # [k, b, Z]
        logits = model.decoder(z.reshape(k * b, -1)).reshape(k, b, -1)
        xt = xb.reshape(1, b, -1)
        log_px = -F.binary_cross_entropy_with_logits(logits, xt.expand_as(logits), reduction="none").sum(-1)
        log_pz = -0.5 * (z * z).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)
        log_qz = (-0.5 * eps * eps - 0.5 * logvar - 0.5 * math.log(2 * math.pi)).sum(-1)
        out.append(-(torch.logsumexp(log_px + log_pz - log_qz, 0) - math.log(k)))
    return torch.cat(out)


def _as_nats(v) -> float:
    """Mean −log p̂(x) from whatever iwae_bound returns (tensor per example, float, or dict)."""
    if isinstance(v, dict):
        v = next((v[key] for key in ("iwae", "nll", "bound", "elbo", "value") if key in v), next(iter(v.values())))
    v = float(torch.as_tensor(v, dtype=torch.float64).mean())
    return -v if v < 0 else v  # a log-likelihood bound is negative; report nats as a positive −log p


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.eval_speed", description=__doc__.splitlines()[0])
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--n", type=int, default=10000, help="test examples (10k = the whole test set)")
    p.add_argument("--chunk", type=int, default=16, help="examples per batch of the bench's own implementation")
    p.add_argument("--rows-per-chunk", type=int, default=None,
                   help="decoder rows per call for vaekit's iwae_bound [its default]")
    p.add_argument("--train-epochs", type=int, default=1, help="0: untrained model (speed only)")
    p.add_argument("--impl", choices=["auto", "vaekit", "bench"], default="auto",
                   help="auto: vaekit.evaluation.iwae_bound when it exists, else the bench's own")
    p.add_argument("--matmul-seconds", type=float, default=1.0)
    args = p.parse_args(argv)

    train_x, val_x, test_x = C.load_fashion()
    x = test_x[: args.n]
    cfg = C.vaekit_config(max(1, args.train_epochs))
    model = C.vaekit_model(cfg)
    if args.train_epochs > 0:
        from vaekit.training import Trainer

        trainer = Trainer(model, cfg, torch.device("cpu"), progress=False)
        trainer.fit(train_x, val_x)
        model = trainer.model
    model.eval()

    try:
        import vaekit.evaluation as ev
    except ImportError:
        ev = None
    have = ev is not None and hasattr(ev, "iwae_bound")
    use = "vaekit" if (args.impl == "vaekit" or (args.impl == "auto" and have)) else "bench"
    if use == "vaekit" and not have:
        raise SystemExit("vaekit.evaluation.iwae_bound does not exist yet; use --impl bench")
    if use == "vaekit":
        kw = {"rows_per_chunk": args.rows_per_chunk} if args.rows_per_chunk else {}
        fn = lambda m, xx: ev.iwae_bound(m, xx, args.k, **kw)  # noqa: E731
    else:
        kw = {"chunk": args.chunk}
        fn = lambda m, xx: bench_iwae(m, xx, args.k, args.chunk)  # noqa: E731

    mm = C.matmul_rate(args.matmul_seconds)
    fn(model, x[: args.chunk])  # warm-up
    torch.manual_seed(0)
    t0, c0 = time.perf_counter(), time.process_time()
    value = _as_nats(fn(model, x))
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    elbo = C.test_elbo(model, x)["elbo"]
    flops = C.encoder_flops() + args.k * C.decoder_flops()
    eps = len(x) / dt
    gflops = eps * flops / 1e9
    mm_ref = mm["128x400@400x784"]
    rows = [(f"IWAE-{args.k} ({use})", eps, gflops, f"{100 * gflops / mm_ref:.1f}%", value, elbo, dt)]
    C.print_table(f"eval_speed: IWAE-{args.k} over {len(x):,} test examples, chunk {args.chunk}", rows,
                  ("estimator", "examples/s", "GFLOP/s", "of matmul", "−IWAE nats", "−ELBO nats", "seconds"))
    C.print_table("torch FP32 matmul rate (GFLOP/s)", [(k, v) for k, v in mm.items()], ("shape", "GFLOP/s"))
    payload = {"k": args.k, "n": len(x), "chunk": args.chunk, "impl": use, "impl_kwargs": kw, "vaekit_has_iwae_bound": have,
               "train_epochs": args.train_epochs, "seconds": dt, "cpu_seconds": cpu, "examples_per_s": eps,
               "flops_per_example": flops, "gflops": gflops, "matmul_gflops": mm,
               "fraction_of_matmul_rate": gflops / mm_ref, "neg_iwae_nats": value, "neg_elbo_nats": elbo}
    path = C.write_result("eval_speed", payload)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
