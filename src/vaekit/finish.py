"""The end of a run: ``evaluation.json``, ``report.html`` and the picture files, at a bounded cost.

Shared by ordinary runs (:func:`finish_vae_run`) and semi-supervised ones (``semisupervised_api``). The report's
IWAE bound is the expensive part (k decoder passes per example; 14.5 minutes for k = 100 on Fashion-MNIST's
10k test images): unless both are given, its k and number of examples are chosen from a timed pilot chunk so
that its IWAE pass costs about ``REPORT_FRACTION`` (10%) of the training time, never less than the floors. A rich progress bar
on stderr shows it running; the estimator used is written into ``evaluation.json`` and the report.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from typing import TYPE_CHECKING

import torch

from .evaluation.figures import save_stacked
from .evaluation.metrics import evaluate_elbo
from .runs import RESULTS, WEIGHTS, write_json

if TYPE_CHECKING:  # pragma: no cover
    from .trained import TrainedVAE

REPORT_FRACTION = 0.10  # IWAE's share of the training time (seconds summed over the epochs in metrics.jsonl);
# the rest of the report (one ELBO pass, figures, HTML) adds a few seconds: about 15% in all (bench/report_cost)
MIN_BUDGET_S = 10.0  # a short run may still spend this long on its report
K_DEFAULT, K_FLOOR = 100, 10  # importance samples
N_FLOOR = 1000  # examples (or the whole split, when smaller)


@dataclass
class ReportPlan:
    """How the report's IWAE bound is computed: ``k`` samples on the first ``n`` of ``total`` examples."""

    k: int
    n: int
    total: int
    chosen: str  # "given", or why the numbers were chosen
    estimated_s: float | None = None  # predicted seconds of the IWAE pass(es)
    budget_s: float | None = None


def training_seconds(history: list[dict]) -> float:
    """Seconds of training summed over the epochs' rows (``metrics.jsonl`` / a result's history)."""
    return float(sum(float(r.get("seconds", 0.0)) for r in history))


def _seconds_per_row(model, x: torch.Tensor, k: int, c: torch.Tensor | None, mask: torch.Tensor | None) -> float:
    """Measured seconds per (example × importance sample) of the IWAE pass, from a pilot of ~4096 rows."""
    from .evaluation.metrics import importance_bounds

    m = max(1, min(len(x), 4096 // k))
    with torch.random.fork_rng(devices=[]):  # the pilot must not move the evaluation's noise
        t0 = time.perf_counter()
        importance_bounds(model, x[:m], k, c=None if c is None else c[:m], mask=None if mask is None else mask[:m])
        return (time.perf_counter() - t0) / (m * k)


def plan_report(model, x: torch.Tensor, train_s: float, k: int | None = None, n: int | None = None,
                c: torch.Tensor | None = None, mask: torch.Tensor | None = None, passes: int = 1) -> ReportPlan:
    """Choose the report's IWAE k and number of examples (``None`` = choose; both given = used as given).

    Budget = max(MIN_BUDGET_S, REPORT_FRACTION × ``train_s``). With k free it starts at K_DEFAULT; the
    examples shrink first (to N_FLOOR), then k (to K_FLOOR). ``passes`` counts IWAE passes over the examples
    (1 + K for M2, whose unconditional bound sums over K labels).
    """
    total = len(x)
    if k is not None and n is not None:
        return ReportPlan(k, min(n, total), total, "given")
    if total == 0:
        return ReportPlan(k or K_DEFAULT, 0, 0, "empty split")
    budget = max(MIN_BUDGET_S, REPORT_FRACTION * train_s)
    per_row = _seconds_per_row(model, x, k or K_DEFAULT, c, mask) * passes
    n_floor = min(total, N_FLOOR)
    if k is not None:  # examples only
        n_ = int(min(total, max(n_floor, budget / (k * per_row))))
        return ReportPlan(k, n_, total, "examples fitted to the budget", n_ * k * per_row, budget)
    n_ = min(total, n) if n is not None else int(min(total, max(n_floor, budget / (K_DEFAULT * per_row))))
    k_ = int(min(K_DEFAULT, max(K_FLOOR, budget / (max(1, n_) * per_row))))
    why = "k fitted to the budget" if n is not None else "examples, then k, fitted to the budget"
    if n_ == total and k_ == K_DEFAULT:
        why = "default k on every example (within the budget)"
    return ReportPlan(k_, n_, total, why, n_ * k_ * per_row, budget)


@contextmanager
def progress_bar(enabled: bool, total: int, what: str) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar on stderr advancing by the callback's argument (None when disabled)."""
    if not enabled or total <= 0:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn(what), MofNCompleteColumn(), BarColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(what, total=total)
        yield lambda done: bar.advance(task, done)


def plan_record(plan: ReportPlan) -> dict[str, Any]:
    """The plan as written into ``evaluation.json`` (``report_plan``)."""
    rec = asdict(plan)
    return {key: (round(v, 2) if isinstance(v, float) else v) for key, v in rec.items()}


def run_figures(trained, x: torch.Tensor, c: torch.Tensor | None, run: Path) -> None:
    """samples.png (classes.png for label-conditional runs) and reconstructions.png of an image run.
    ``x``/``c``: the test split in model units and its condition rows."""
    from .evaluation.figures import save_image_grid, save_pairs

    model, seed = trained.model, trained.config.seed
    cond = trained.conditioning
    if cond is not None and cond.kind == "label":
        from .evaluation.report import class_grid

        grid, ncol = class_grid(model, cond.dim, seed=seed)
        save_image_grid(grid, run / "classes.png", ncol=ncol)
        samples = model.sample(64, generator=torch.Generator().manual_seed(seed),
                               c=cond.encode_raw(torch.arange(64) % cond.dim)).cpu()
    else:
        samples = trained.sample(64, seed=seed, c=c[:1] if c is not None else None)
    save_image_grid(samples, run / "samples.png")
    test = x[:32]
    ctest = None if c is None else c[:32].to(trained.device)
    with torch.no_grad():
        rec = model.reconstruct(test.to(trained.device), ctest).cpu()
    save_pairs(test, rec, run / "reconstructions.png")


def evaluate_run(trained, x: torch.Tensor, iwae_k: int, seed: int, c: torch.Tensor | None = None,
                 mask: torch.Tensor | None = None, *, iwae_n: int | None = None, stored: dict | None = None,
                 progress: bool = False) -> dict:
    """:func:`vaekit.evaluation.evaluate` for a run on ``x`` (model units), with what the run knows: which
    condition c is (labels: "y"), M2's unconditional bound, and ``stored`` = the split's one-sample ELBO from
    ``results.json`` (shown instead of a second estimate of the same number)."""
    from .errors import UsageError
    from .evaluation.metrics import evaluate

    if iwae_k < 0 or iwae_k > 1_000_000:
        raise UsageError(f"--iwae-k must be between 0 (skip) and 1000000, got {iwae_k}")
    cfg, cond = trained.config, trained.conditioning
    label = cond is not None and cond.kind == "label"
    marginal = cond.dim if label and getattr(trained, "classifier", None) is not None else 0
    n_iw = len(x) if iwae_n is None else min(len(x), iwae_n)
    torch.manual_seed(seed)
    what = f"IWAE k={iwae_k}" + (f", p(x|y) and p(x) over {marginal} labels" if marginal else "")
    with progress_bar(progress and iwae_k > 0, n_iw * (1 + marginal), what) as tick:
        res = evaluate(trained.model, x, iwae_k=iwae_k, c=c, mask=mask, iwae_n=iwae_n,
                       binarized=None if cfg.binarize == "none" else f"{cfg.binarize} (evaluated on a fixed draw)",
                       condition="y" if label else None, marginal_classes=marginal, progress=tick)
    if stored:
        res.update(neg_elbo=stored["elbo"], recon_nll=stored["recon"], kl=stored["kl"],
                   elbo_estimator="ELBO (1 posterior sample), the value stored in results.json")
        if "iwae_k" not in res:
            res["bits_per_dim"] = res["neg_elbo"] / (res["features"] * math.log(2))
    if trained.scaler is not None:
        res["note"] = "likelihoods are of standardized columns"
    return res


def write_report(trained, x: torch.Tensor, y: torch.Tensor | None, evaluation: dict,
                 c: torch.Tensor | None = None) -> Path:
    """Write ``evaluation.json`` and ``report.html`` into the run directory; return the report's path."""
    import json

    from .evaluation.report import ReportInputs, build_report
    from .runs import EVALUATION, METRICS, RESULTS, atomic_write_text, read_json, write_json

    run = trained.run_dir
    extra: list[str] = []
    if trained.kind.sound:  # audio runs: clips to listen to, spectrograms, spectral distance, MCD, speed
        from .tasks.audio_report import audio_report

        audio, section = audio_report(trained)
        evaluation, extra = {**evaluation, "audio": audio}, [section]
    write_json(run / EVALUATION, evaluation)
    metrics_file = run / METRICS
    metrics = [json.loads(s) for s in metrics_file.read_text().splitlines() if s.strip()] \
        if metrics_file.is_file() else []
    results = read_json(run / RESULTS) if (run / RESULTS).is_file() else None
    html = build_report(ReportInputs(info=trained.info, model=trained.model, x=x, y=y, c=c, metrics=metrics,
                                     results=results, evaluation=evaluation, title=f"vaekit run {run.name}",
                                     extra=extra))
    atomic_write_text(run / "report.html", html)
    return run / "report.html"


def end_of_run(trained, x: torch.Tensor, y: torch.Tensor | None, c: torch.Tensor | None,
               mask: torch.Tensor | None, stored: dict | None, history: list[dict], *, report: bool = True,
               iwae_k: int | None = None, examples: int | None = None, progress: bool = False) -> dict | None:
    """Everything a finished run writes after ``results.json``: the test split's ``evaluation.json`` and
    ``report.html`` (IWAE at a planned cost, see :func:`plan_report`), for images the picture files, and the
    model card ``README.md`` (also without ``report``: then from results.json alone).
    Returns the evaluation (None without ``report``)."""
    run = trained.run_dir
    ev = None
    if report:
        cond = trained.conditioning
        m2 = cond is not None and cond.kind == "label" and getattr(trained, "classifier", None) is not None
        if iwae_k == 0:
            plan = ReportPlan(0, 0, len(x), "IWAE skipped (k = 0)")
        else:
            plan = plan_report(trained.model, x, training_seconds(history), iwae_k, examples, c, mask,
                               passes=1 + (cond.dim if m2 else 0))
        t0 = time.perf_counter()
        ev = {"data": trained.config.data, "split": "test",
              **evaluate_run(trained, x, plan.k, trained.config.seed, c, mask, iwae_n=plan.n or None,
                             stored=stored, progress=progress)}
        ev["report_plan"] = {**plan_record(plan), "seconds": round(time.perf_counter() - t0, 2),
                             "training_seconds": round(training_seconds(history), 2)}
        write_report(trained, x, y, ev, c)
    if trained.kind.pictures:
        run_figures(trained, x, c, run)
    write_card(trained)
    return ev


def write_card(trained) -> Path | None:
    """The run's model card (``README.md``, :mod:`vaekit.evaluation.model_card`) from its config.json,
    results.json and evaluation.json as they are now; its path (None when the folder's README files are the user's)."""
    from .evaluation.model_card import write_model_card

    return write_model_card(trained.run_dir, trained.info)


def _denoising_results(trained: "TrainedVAE", x: torch.Tensor, c: torch.Tensor | None,
                       run: Path) -> dict[str, Any]:
    """Test-split denoising: MSE per feature of the corrupted input and of its reconstruction, vs the clean data."""
    from .data import in_unit_interval
    from .data.noise import corrupt

    cfg, model = trained.config, trained.model
    noisy = corrupt(x, cfg.corruption, in_unit_interval(x), generator=torch.Generator().manual_seed(cfg.seed + 2))
    with torch.no_grad():
        den = torch.cat([model.reconstruct(noisy[i: i + 1024].to(trained.device),
                                           None if c is None else c[i: i + 1024].to(trained.device)).cpu()
                         for i in range(0, len(noisy), 1024)]) if len(x) else x
    if trained.kind.pictures:
        save_stacked([noisy[:32], den[:32], x[:32]], run / "denoising.png")
    return {"corruption": cfg.corruption, "split": "test",
            "mse_corrupted_input": float(((noisy - x) ** 2).mean()) if len(x) else None,
            "mse_denoised": float(((den - x) ** 2).mean()) if len(x) else None,
            "units": "per feature, model input units (standardized columns for tables)"}


def finish_vae_run(trained: "TrainedVAE", trainer, prep, **end: Any) -> None:
    """Best weights, results.json, figures, evaluation and report into the run directory; mark it finished.
    ``end``: :func:`vaekit.finish.end_of_run`'s report settings."""
    from .runs import save_tensors

    splits = prep.splits
    conds, masks = [s.c for s in splits], [s.mask for s in splits]
    run = trained.run_dir
    model = trained.model.eval()
    save_tensors(run / WEIGHTS, model.state_dict())
    r = trained.result
    results: dict[str, Any] = {"units": "nats per example", "estimator": "ELBO (1 posterior sample), beta = 1",
                               "binarized": trained.config.binarize,
                               "epochs_run": r.epochs_run, "best_epoch": r.best_epoch,
                               "stopped_early": r.stopped_early}
    if trained.kind.loss_note:
        results["note"] = trained.kind.loss_note
    if masks[0] is not None:
        results["missing"] = "mask: likelihoods of the observed cells only (MIWAE)"
        results["observed_fraction"] = {n: float(m.mean()) if m.numel() else None
                                        for n, m in zip(("train", "validation", "test"), masks)}
    torch.manual_seed(trained.config.seed + 1)
    for name, split, c, m in zip(("train", "validation", "test"), splits, conds, masks):
        results[name] = evaluate_elbo(model, split.x, c=c, mask=m) if len(split) else None
    if trained.config.corruption is not None:
        results["denoising"] = _denoising_results(trained, splits[2].x, conds[2], run)
    write_json(run / RESULTS, results)
    end_of_run(trained, splits[2].x, splits[2].y, conds[2], masks[2], results["test"], r.history, **end)
    trainer.save_checkpoint(finished=True)
