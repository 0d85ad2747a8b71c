"""Single-GPU throughput (issue 20): vaekit's Trainer on the classic recipe and on a conv VAE on 64×64 images,
with the data resident on the device, in fp32, `--precision bf16`, `--compile` and both, against the device's
own matmul rate measured in the same process; 1 vs N processes (`vaekit train --nproc N`, NCCL) where the
machine has several GPUs.

    python -m bench.gpu [--device cuda] [--budget-s 270] [--box-s 30] [--epochs 3] [--variants fp32,bf16,
        compile,bf16+compile] [--models mlp,conv] [--data auto|fashion-mnist|synthetic] [--image-size 64]
        [--batch-size 128] [--conv-batch-size 128] [--n-train N] [--nproc N] [--ddp-batch-size 1024]

Where a GPU is lent (the `device` tool), one command that brings the result back even when cut short (its image
has torch but not pydantic: carry Python 3.12 wheels of pydantic, pydantic-core, annotated-types,
typing-inspection and typing-extensions in `.whl`, as the device README says):

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 timeout -k 30 300 python3 -m bench.gpu; cp bench/results/gpu.json $OUT/

Prints a table and writes bench/results/gpu.json after every configuration (a run cut short keeps what it
measured); what each number is: bench/README.md, "gpu". `--device cpu` runs the same code (the tests, tiny sizes).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import common as C

VARIANTS = {"fp32": ("fp32", False), "bf16": ("bf16", False), "compile": ("fp32", True),
            "bf16+compile": ("bf16", True)}
RESERVE_S = {False: 10.0, True: 45.0}  # budget a configuration needs to start: eager, compiled


def fail(message: str) -> None:
    """A user mistake: one line on stderr, exit code 2 (the project's rule)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def matmul_tflops(device: torch.device, dtype: torch.dtype, n: int, seconds: float) -> float:
    """Sustained TFLOP/s of ``torch.mm`` on n×n operands of ``dtype``: 3 warm-up products, then doubling
    repetitions until one timed batch lasts ``seconds`` (CUDA events on a GPU, wall clock on the CPU)."""
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    out = torch.empty(n, n, device=device, dtype=dtype)

    def timed(reps: int) -> float:
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(reps):
                torch.mm(a, b, out=out)
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=out)
        return time.perf_counter() - t0

    timed(3)  # warm-up (cuBLAS heuristics, clocks); not counted
    reps, dt = 1, timed(1)
    while dt < seconds and reps < 1 << 20:
        reps = max(reps * 2, int(reps * seconds / max(dt, 1e-9) * 1.1))
        dt = timed(reps)
    return 2.0 * n ** 3 * reps / dt / 1e12


def matmul_rates(device: torch.device, n: int, seconds: float) -> dict[str, float]:
    """fp32 with TF32 off (``fp32``) and on (``tf32``, CUDA only) and bf16 TFLOP/s; torch's TF32 setting is
    restored afterwards."""
    rates = {}
    keep = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        rates["fp32"] = matmul_tflops(device, torch.float32, n, seconds)
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            rates["tf32"] = matmul_tflops(device, torch.float32, n, seconds)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = keep
    rates["bf16"] = matmul_tflops(device, torch.bfloat16, n, seconds)
    return rates


def load_images(data: str, size: int | None, n_train: int | None, n_val: int,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(train_x, val_x, source): Fashion-MNIST split as ``vaekit.train`` splits it (resized to ``size``) when it
    loads without a download and ``data`` is not "synthetic", else uniform noise of that shape."""
    side = size or 28
    if data != "synthetic":
        from vaekit.data import load_source, split_dataset
        from vaekit.errors import DataError

        try:
            ds = load_source("fashion-mnist", image_size=size, download=False)
        except DataError as err:
            if data == "fashion-mnist":
                fail(f"{err}; or use --data synthetic")
        else:
            train, val, _ = split_dataset(ds, val_fraction=0.1, seed=seed)
            name = "fashion-mnist" + (f" resized to {side}x{side}" if size else "")
            return train.x[:n_train].contiguous(), val.x[:n_val].contiguous(), name
    g = torch.Generator().manual_seed(seed)
    n = n_train or 54_000
    return (torch.rand(n, 1, side, side, generator=g), torch.rand(n_val, 1, side, side, generator=g),
            f"synthetic uniform [0, 1], 1x{side}x{side}")


def make_cfg(model: str, variant: str, batch_size: int, epochs: int, device: torch.device):
    from vaekit.config import make_config

    precision, compile_ = VARIANTS[variant]
    arch = dict(model="mlp", hidden=[C.H], latent_dim=C.Z) if model == "mlp" else dict(model="conv")
    return make_config(**arch, likelihood="bernoulli", lr=C.LR, batch_size=batch_size, epochs=epochs,
                       patience=None, precision=precision, compile=compile_, device=str(device), seed=0)


def step_flops(cfg, model: torch.nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one forward + backward of the training objective, per example (counted on a CPU copy)."""
    from torch.utils.flop_counter import FlopCounterMode

    from vaekit.data.dataset import Split
    from vaekit.families.vae import VAEFamily

    m = copy.deepcopy(model).cpu().train()
    split = Split(x.cpu())
    objective = VAEFamily().objective(cfg, split)
    with FlopCounterMode(display=False) as counter:
        objective.step(m, split.batch(), 1.0).loss.backward()
    return counter.get_total_flops() / len(x)


class _Stop(Exception):
    """Raised from the Trainer's epoch callback when a configuration's time box is spent."""


def run_config(model: str, variant: str, train_x: torch.Tensor, val_x: torch.Tensor, batch_size: int,
               args: argparse.Namespace, device: torch.device, box_s: float, mm: dict[str, float]) -> dict:
    """One ``Trainer.fit`` of ``model`` (mlp: the classic recipe; conv) in ``variant``; examples/s over the
    epochs after the first, and achieved TFLOP/s against ``mm``, the matmul rates."""
    from vaekit.model import build_model
    from vaekit.training import Trainer

    cfg = make_cfg(model, variant, batch_size, 1 + args.epochs, device)
    torch.manual_seed(0)
    net = build_model(cfg, tuple(train_x.shape[1:]))
    flops = step_flops(cfg, net, train_x[:4])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()

    def box(row: dict) -> None:
        if row["epoch"] >= 2 and time.perf_counter() - t0 > box_s:
            raise _Stop

    trainer = Trainer(net, cfg, device, progress=False, on_epoch_end=box)
    with contextlib.suppress(_Stop):
        trainer.fit(train_x, val_x)
    fit_s = time.perf_counter() - t0
    hist = trainer.history
    timed = hist[1:]
    eps = len(train_x) * len(timed) / sum(r["seconds"] for r in timed)
    precision, compiled = VARIANTS[variant]
    out = {"model": "classic MLP 784-400-20" if model == "mlp" else f"conv {list(train_x.shape[1:])}",
           "variant": variant, "precision": precision, "compile": compiled,
           "compiled": bool(getattr(trainer, "_compiled", False)), "batch_size": batch_size,
           "n_train": len(train_x), "n_val": len(val_x), "params": sum(p.numel() for p in net.parameters()),
           # the route Trainer.fit took (training/trainer.py _on_device: parts.fits_on_device)
           "data_route": "host, pinned, copied per batch" if trainer._host_train else f"resident on {device.type}",
           "epochs_timed": len(timed), "warmup_s": hist[0]["seconds"], "fit_s": fit_s,
           "epoch_s": [r["seconds"] for r in timed], "examples_per_s": eps, "flops_per_example": flops,
           "achieved_tflops": eps * flops / 1e12, "final_val_loss": hist[-1]["val_loss"]}
    tf32 = device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32
    out["vs"] = "bf16" if precision == "bf16" else "tf32" if tf32 else "fp32"
    out["of_matmul"] = out["achieved_tflops"] / mm[out["vs"]]
    print(f"{model} {variant}: {eps:,.0f} examples/s, {out['achieved_tflops']:.3g} TFLOP/s "
          f"({100 * out['of_matmul']:.1f}% of {out['vs']} matmul), warm-up {out['warmup_s']:.1f} s, "
          f"data {out['data_route']}", flush=True)
    if device.type == "cuda":
        out["peak_gpu_mem_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
    del trainer, net
    if compiled:
        torch._dynamo.reset()  # free the compiled graphs before the next configuration
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def cli_run(nproc: int, data_args: list[str], args: argparse.Namespace, device: torch.device, out: Path,
            timeout: float) -> dict:
    """``vaekit train`` (``--nproc`` when ``nproc`` > 1) of the conv config; examples/s over the epochs after
    the first, from its metrics.jsonl."""
    cmd = [sys.executable, "-m", "vaekit", "train", *data_args, "--model", "conv", "--likelihood", "bernoulli",
           "--batch-size", str(args.ddp_batch_size), "--epochs", str(1 + args.epochs), "--seed", "0",
           "--device", device.type, "--no-early-stopping", "--report-iwae-k", "0", "--out", str(out), "-q"]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    t0 = time.perf_counter()
    log = out.with_suffix(".stderr")
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    try:
        code = proc.wait(timeout=max(timeout, 1.0))
    finally:  # cut short (time-out, SIGTERM): the launcher stops its ranks (each in its own session) on SIGTERM
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if code:
        said = log.read_text(errors="replace").strip().splitlines()
        raise RuntimeError(f"vaekit train{f' --nproc {nproc}' if nproc > 1 else ''} exited with {code}: "
                           f"{said[-1] if said else 'no message'}")
    rows = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines() if s.strip()]
    n_train = json.loads((out / "config.json").read_text())["data"]["n_train"]
    timed = rows[1:]
    return {"processes": nproc, "n_train": n_train, "epochs_timed": len(timed), "warmup_s": rows[0]["seconds"],
            "examples_per_s": n_train * len(timed) / sum(r["seconds"] for r in timed),
            "wall_s": time.perf_counter() - t0, "final_val_loss": rows[-1]["val_loss"]}


def run_ddp(nproc: int, source: str, conv_x: torch.Tensor, args: argparse.Namespace, device: torch.device,
            left: float) -> dict:
    """1 vs ``nproc`` processes of the same conv config through the CLI, the same global batch."""
    with tempfile.TemporaryDirectory() as tmp:
        if source.startswith("fashion-mnist"):
            data_args = ["--data", "fashion-mnist", "--image-size", str(args.image_size)]
        else:  # the synthetic images as a .npy (an image array: vaekit's array kind hands it to images)
            path = Path(tmp) / "images.npy"
            np.save(path, conv_x.numpy())
            data_args = ["--data", str(path)]
        runs, t0 = {}, time.perf_counter()
        for n in (1, nproc):
            runs[n] = cli_run(n, data_args, args, device, Path(tmp) / f"run{n}", left - (time.perf_counter() - t0))
    return {"config": f"conv {args.image_size}x{args.image_size} fp32, global batch {args.ddp_batch_size}",
            "data": source, "runs": list(runs.values()),
            "speedup": runs[nproc]["examples_per_s"] / runs[1]["examples_per_s"]}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--budget-s", type=float, default=270.0, help="whole script, matmul and every config")
    p.add_argument("--box-s", type=float, default=30.0, help="a config stops after the epoch that passes this")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs after the warm-up epoch")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--models", default="mlp,conv")
    p.add_argument("--data", choices=("auto", "fashion-mnist", "synthetic"), default="auto")
    p.add_argument("--image-size", type=int, default=64, help="conv VAE images are N×N")
    p.add_argument("--batch-size", type=int, default=C.BATCH, help="classic recipe (128)")
    p.add_argument("--conv-batch-size", type=int, default=128)
    p.add_argument("--n-train", type=int, default=None, help="cap on training examples (default: all, 54,000)")
    p.add_argument("--n-val", type=int, default=2048)
    p.add_argument("--matmul-n", type=int, default=None, help="square size (8192 on CUDA, 512 on CPU)")
    p.add_argument("--matmul-s", type=float, default=0.5)
    p.add_argument("--nproc", type=int, default=None, help="1 vs N processes (default: the GPU count if > 1)")
    p.add_argument("--ddp-batch-size", type=int, default=1024)
    args = p.parse_args(argv)
    if args.epochs < 1:
        fail("--epochs must be at least 1 (the warm-up epoch comes on top)")
    t_start = time.perf_counter()
    left = lambda: args.budget_s - (time.perf_counter() - t_start)  # noqa: E731
    from vaekit.errors import UsageError
    from vaekit.training.parts import resolve_device

    try:
        device = resolve_device(args.device)
    except UsageError as err:
        fail(str(err))
    variants = [v for v in args.variants.split(",") if v]
    models = [m for m in args.models.split(",") if m]
    bad = [v for v in variants if v not in VARIANTS] + [m for m in models if m not in ("mlp", "conv")]
    if bad:
        fail(f"unknown variant or model {', '.join(bad)}; variants: {', '.join(VARIANTS)}; models: mlp, conv")
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    nproc = args.nproc if args.nproc is not None else (gpus if gpus > 1 else 0)
    matmul_n = args.matmul_n or (8192 if device.type == "cuda" else 512)

    mm = matmul_rates(device, matmul_n, args.matmul_s)
    payload = {"device": str(device), "device_name": torch.cuda.get_device_name(device) if gpus else "cpu",
               "gpus": gpus, "budget_s": args.budget_s, "box_s": args.box_s, "epochs_timed_max": args.epochs,
               "matmul_n": matmul_n, "matmul_tflops": mm,
               "tf32_during_training": {"matmul": torch.backends.cuda.matmul.allow_tf32,
                                        "cudnn": torch.backends.cudnn.allow_tf32},
               "data": {}, "configs": [], "skipped": [], "failed": [], "ddp": None, "complete": False}
    sets = {}
    if "mlp" in models:
        sets["mlp"] = (*load_images(args.data, None, args.n_train, args.n_val), args.batch_size)
    if "conv" in models or nproc > 1:
        sets["conv"] = (*load_images(args.data, args.image_size, args.n_train, args.n_val), args.conv_batch_size)
    payload["data"] = {m: s[2] for m, s in sets.items()}

    def save() -> None:  # after every step: a run cut short keeps what it measured
        payload["elapsed_s"] = time.perf_counter() - t_start
        C.write_result("gpu", payload)

    def attempt(what: str, reserve: float, fn) -> dict | None:
        """``fn()`` when ``reserve`` seconds of budget are left; a skip or a failure is recorded, never raised
        (one failed configuration must not lose the others' numbers)."""
        if left() < reserve:
            payload["skipped"].append({"what": what, "why": f"{left():.0f} s of budget left"})
            return None
        try:
            return fn()
        except Exception as err:  # noqa: BLE001
            payload["failed"].append({"what": what, "why": f"{type(err).__name__}: {err}"[:500]})
            print(f"{what} FAILED: {payload['failed'][-1]['why']}", flush=True)
            return None

    plan = [(m, v) for v in variants if not VARIANTS[v][1] for m in models]  # eager, then 1 vs N, then compiled
    plan += [("ddp", "")] if nproc > 1 else []
    plan += [(m, v) for v in variants if VARIANTS[v][1] for m in models]
    for model, variant in plan:
        if model == "ddp":
            payload["ddp"] = attempt(f"1 vs {nproc} processes", 60.0, lambda: run_ddp(
                nproc, sets["conv"][2], sets["conv"][0], args, device, left() - 5))
            save()
            continue
        train_x, val_x, _, bs = sets[model]
        r = attempt(f"{model} {variant}", RESERVE_S[VARIANTS[variant][1]], lambda: run_config(
            model, variant, train_x, val_x, bs, args, device, min(args.box_s, left() - 5), mm))
        payload["configs"] += [r] if r else []
        save()
    payload["complete"] = True
    save()
    report(payload, args)
    return payload


def report(payload: dict, args: argparse.Namespace) -> None:
    """The tables: training configurations, matmul rates, 1 vs N processes; what was skipped or failed."""
    rows = [(r["model"].split(" ")[0 if r["model"].startswith("conv") else 1], r["variant"],
             "host" if r["data_route"].startswith("host") else "device", r["examples_per_s"],
             r["flops_per_example"] / 1e6, r["achieved_tflops"], f"{100 * r['of_matmul']:.2f}%", r["vs"],
             r["warmup_s"]) for r in payload["configs"]]
    print(f"data: {'; '.join(f'{k}: {v}' for k, v in payload['data'].items())}; batch {args.batch_size} (MLP), "
          f"{args.conv_batch_size} (conv)")
    C.print_table(f"bench.gpu on {payload['device_name']}: training examples/s, warm-up epoch excluded", rows,
                  ("model", "variant", "data on", "ex/s", "MFLOP/ex", "TFLOP/s", "of mm", "mm", "warm-up s"))
    n = payload["matmul_n"]
    print(f"matmul {n}x{n} @ {n}x{n}: " + ", ".join(f"{k} {v:,.4g}" for k, v in payload["matmul_tflops"].items())
          + " TFLOP/s (fp32: TF32 off; tf32: on)")
    if payload["ddp"]:
        d = payload["ddp"]
        print(f"{d['config']}: " + ", ".join(f"{r['processes']} process(es) {r['examples_per_s']:,.0f} examples/s"
                                            for r in d["runs"]) + f"; speed-up {d['speedup']:.2f}x")
    for s in payload["skipped"] + payload["failed"]:
        print(f"skipped or failed: {s['what']}: {s['why']}")
    print(f"wrote {C.RESULTS_DIR / 'gpu.json'} ({payload['elapsed_s']:.0f} s of {args.budget_s:.0f} s budget)")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `timeout`: unwind, so a running launcher is stopped
    main()
