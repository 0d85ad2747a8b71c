"""Training: one readable loop, with schedules, β warm-up, early stopping, checkpoints and resume.

The step is forward → backward → clip → optimizer step. Batches are index slices of tensors already on
the device. Metrics are accumulated on the device and read once per epoch, so the loop does not wait
on the host at every step. Everything else (β warm-up, LR schedule, early stopping, checkpoints) hangs
off the epoch boundary.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import gc
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..config import TrainConfig
from . import distributed
from .parts import (beta_at, compile_networks, fits_on_device, load_optimizer_state, make_optimizer,
                    make_scheduler, may_pin, optimizer_state, tensor_bytes, to_device)
from ..data.dataset import Split
from ..errors import TrainingError
from ..core.objectives import Objective
from ..families.base import BatchSource, Family
from ..families.vae import VAEFamily
from ..runs import (METRICS, STATE_JSON, STATE_TENSORS, WEIGHTS, atomic_write_text, json_text, load_tensors,
                   read_json, read_tensor_metadata, regular_file, save_tensors, write_json)


@dataclass
class TrainResult:
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    history: list[dict] = field(default_factory=list)


EpochCallback = Callable[[dict], None]


class Trainer:
    """The one training loop of every model family: fits ``model`` on in-memory tensors with the family's
    batches and objective; optionally checkpoints into a run directory (exact resume). Inside a torchrun world
    joined by :func:`vaekit.training.distributed.start` (``vaekit.train`` does it), each rank steps on its share
    of every global batch through DistributedDataParallel and only rank 0 writes ``run_dir``."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, device: torch.device, run_dir: str | Path | None = None,
                 progress: bool = True, on_epoch_end: EpochCallback | None = None, family: Family | None = None):
        self.model = model.to(device)
        self.family = family if family is not None else VAEFamily()
        self.cfg = cfg
        self.device = device
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.dist = distributed.current()  # None: one process (the path every single-process run takes)
        self._read_dir = self.run_dir if self.dist is None else (self.run_dir or self.dist.run_dir)
        if self.dist is not None and not self.dist.writer:
            self.run_dir = None  # only rank 0 writes the run directory; the others read a checkpoint on resume
            torch.manual_seed(distributed.rank_seed(cfg.seed, self.dist.rank))  # each rank its own noise
        self._ddp: dict[str | None, nn.Module] | None = None
        self._host_train = False  # the training split stays in host memory (too big for the GPU): batches move
        self._rank_rngs: list[dict[str, torch.Tensor]] | None = None
        self.progress = progress
        self.on_epoch_end = on_epoch_end
        groups = self.family.param_groups(self.model)  # None: one optimizer over every parameter
        self.opts = ({} if groups is None else
                     {name: make_optimizer(self.model, cfg, params) for name, params in groups.items()})
        self.opt = next(iter(self.opts.values())) if self.opts else make_optimizer(self.model, cfg)
        self.sched = make_scheduler(self.opt, cfg)
        self.gen = torch.Generator().manual_seed(cfg.seed)  # shuffling, independent of model RNG
        self.epoch = 0  # epochs completed
        self.best_val = math.inf
        self.best_epoch = 0
        self.bad_epochs = 0
        self.best_state = copy.deepcopy(self.model.state_dict())
        self.history: list[dict] = []

    # -- the loop --------------------------------------------------------------------------------
    def fit(self, train: Split | torch.Tensor, val: Split | torch.Tensor, train_c: torch.Tensor | None = None,
            val_c: torch.Tensor | None = None, train_mask: torch.Tensor | None = None,
            val_mask: torch.Tensor | None = None) -> TrainResult:
        """Train on ``train``, validating on ``val`` (each a :class:`~vaekit.data.Split` carrying its
        conditions and masks, or a tensor of examples with ``*_c``/``*_mask`` given separately).

        Conditions are the rows a conditional model takes; masks (1 = observed, 0 = missing, shape of x)
        train on incomplete data, the likelihood counting observed entries only (MIWAE); x must hold a fill
        value (not NaN) where missing. The family (``vae`` unless given) turns the training split into
        batches and names the objective; early stopping and the plateau schedule watch its metric.
        """
        cfg, model, opt, family = self.cfg, self.model, self.opt, self.family
        family.check(cfg)
        train = self._on_device(_as_split(train, train_c, train_mask), may_stay=True)
        val = self._on_device(_as_split(val, val_c, val_mask))
        objective = family.objective(cfg, train)
        source = family.batch_source(cfg, train)
        n = len(train)
        stopped_early = False
        if cfg.compile and not getattr(self, "_compiled", False):
            self._compiled = compile_networks(family.networks(model))
        self._autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
        with _progress(self.progress, cfg.epochs, self.epoch, (objective.loss_label, objective.metric_label),
                       objective.metric_unit) as bar, self._world():
            while self.epoch < cfg.epochs:
                e, t0 = self.epoch + 1, time.perf_counter()
                sums, beta = (self._train_epoch(source, objective, n) if self.dist is None else
                              self._train_epoch_ddp(source, objective, n))
                row = {"epoch": e, **objective.epoch_row(sums, n, source.steps), **self._validate(objective, val, e)}
                lr = opt.param_groups[0]["lr"]
                improved = self._end_epoch(-row[objective.metric] if objective.maximize else row[objective.metric])
                row.update(beta=beta, lr=lr, seconds=time.perf_counter() - t0)
                self.history.append(row)
                if self.dist is not None:  # a collective: every rank, whether or not it writes
                    self._rank_rngs = distributed.gather_rng(self.device)
                if self.run_dir is not None:
                    self._append_metrics(row)
                    if improved:
                        save_tensors(self.run_dir / WEIGHTS, self.best_state)
                    self.save_checkpoint()
                bar(e, row["train_loss"], row[objective.metric])
                if self.on_epoch_end is not None:
                    self.on_epoch_end(row)
                if cfg.patience is not None and self.bad_epochs >= cfg.patience:
                    stopped_early = True
                    break
        model.load_state_dict(self.best_state)
        best = -self.best_val if objective.maximize else self.best_val
        return TrainResult(self.epoch, self.best_epoch, best, stopped_early, self.history)

    @contextlib.contextmanager
    def _world(self) -> Iterator[None]:
        """The distributed side of a fit: a lost rank becomes one TrainingError, and the DDP wrappers are let go
        when the fit ends, however it ends (a DDP reducer outliving its process group can abort the process)."""
        try:
            with distributed.lost_ranks(self.dist, self._kept):
                yield
        finally:
            if self._ddp is not None:
                self._ddp = None
                gc.collect()  # DDP's hooks make reference cycles: free the reducer now

    def _train_epoch(self, source: BatchSource, objective: Objective, n: int) -> tuple[torch.Tensor, float]:
        """One pass over the training split: forward → backward → clip → step per batch. Losses stay on the
        device (one host sync, in the non-finite guard). Returns the objective's sums and the last β."""
        cfg, model, opt, steps = self.cfg, self.model, self.opt, source.steps
        model.train()
        perm = torch.randperm(n, generator=self.gen).to("cpu" if self._host_train else self.device)
        sums = None
        step_losses = torch.empty(steps, device=self.device)
        beta = cfg.beta
        for k, batch in enumerate(source.epoch(perm, self.gen)):
            beta = beta_at(cfg, self.epoch * steps + k + 1, steps)
            if self._host_train:
                batch = to_device(batch, self.device)
            phase = getattr(batch, "phase", None)  # a phased batch steps only its phase's optimizer
            if phase is not None:
                opt = self.opts[phase]
            with self._autocast:
                out = objective.step(model, batch, beta)
            if phase is not None:
                model.zero_grad(set_to_none=True)
            else:
                opt.zero_grad(set_to_none=True)
            out.loss.backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            with torch.no_grad():
                step_losses[k] = out.loss
                sums = out.sums if sums is None else sums.add_(out.sums)  # out.sums is a fresh tensor
        self._check_finite(step_losses, self.epoch + 1)
        return sums, beta

    def _train_epoch_ddp(self, source: BatchSource, objective: Objective, n: int) -> tuple[torch.Tensor, float]:
        """:meth:`_train_epoch` on one rank of a distributed run: the same global permutation and global
        batches on every rank, each rank stepping on its share through DDP (gradients averaged); the epoch's
        sums and step losses are reduced over the ranks, so every rank sees the global numbers."""
        cfg, model, opt, steps, rank, world = self.cfg, self.model, self.opt, source.steps, self.dist.rank, \
            self.dist.world
        if self._ddp is None:  # one DDP wrapper, or one per phase syncing that phase's parameters
            groups = self.family.param_groups(model) if self.opts else None
            self._ddp = {None: distributed.wrap(model, objective)} if groups is None else \
                {name: distributed.wrap(model, objective, params) for name, params in groups.items()}
        for ddp in self._ddp.values():
            ddp.module.objective = objective
        mean_sums = getattr(objective, "sums_reduce", "sum") == "mean"
        model.train()
        perm = torch.randperm(n, generator=self.gen).to("cpu" if self._host_train else self.device)
        sums = None
        step_losses = torch.empty(steps, device=self.device)
        beta = cfg.beta
        for k, batch in enumerate(source.epoch(perm, self.gen)):
            beta = beta_at(cfg, self.epoch * steps + k + 1, steps)
            phase = getattr(batch, "phase", None)
            if phase is not None:
                opt = self.opts[phase]
            part, weight = distributed.shard_batch(batch, rank, world)
            if self._host_train:
                part = to_device(part, self.device)  # only this rank's share crosses to the GPU
            with self._autocast:
                loss, part_sums = self._ddp[phase](part, beta, weight)
            if phase is not None:
                model.zero_grad(set_to_none=True)
            else:
                opt.zero_grad(set_to_none=True)
            loss.backward()  # DDP averages the gradients over the ranks here
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            with torch.no_grad():
                step_losses[k] = loss  # weighted: the ranks' sum / world is the global batch's loss
                # per-example sums add over the ranks; per-step means are averaged with the loss weights
                part_sums = part_sums * (weight if mean_sums else float(weight > 0))
                sums = part_sums if sums is None else sums.add_(part_sums)
        reduced = distributed.all_reduce_sum(torch.cat([sums.reshape(-1).float(), step_losses.float()]))
        m = sums.numel()
        sums = (reduced[:m] / (world if mean_sums else 1)).to(sums.dtype).reshape(sums.shape)
        self._check_finite(reduced[m:] / world, self.epoch + 1)
        return sums, beta

    def _validate(self, objective: Objective, val: Split, e: int) -> dict[str, float]:
        """The objective's validation numbers, guarded like the training loss: a non-finite one stops the run
        before anything of this epoch is logged, checkpointed or kept. Distributed: rank 0 validates and sends
        its row to the others, so every rank takes the same early-stopping and schedule decisions."""
        if self.dist is None:
            val_row = objective.validate(self.model, val, max(self.cfg.batch_size, 1024))
        else:
            val_row = objective.validate(self.model, val, max(self.cfg.batch_size, 1024)) if self.dist.writer \
                else None
            val_row = distributed.broadcast_json(val_row)
        if not all(map(math.isfinite, val_row.values())):
            raise TrainingError(
                f"the validation {objective.metric_label.replace('−', '-')} became {val_row[objective.metric]} "
                f"at epoch {e}{self._kept()}; lower --lr, set --grad-clip, or check the validation data for "
                "extreme values")
        return val_row

    def _end_epoch(self, metric: float) -> bool:
        """Step the LR schedule, track the best weights by ``metric`` (improved: lower by more than
        ``min_delta``; a maximised objective metric arrives negated, and ``best_val`` keeps that sign) and
        count epochs for early stopping; True when this epoch improved."""
        if self.sched is not None:
            if isinstance(self.sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.sched.step(metric)
            else:
                self.sched.step()
        improved = metric < self.best_val - self.cfg.min_delta
        if improved:
            self.best_val, self.best_epoch, self.bad_epochs = metric, self.epoch + 1, 0
            self.best_state = copy.deepcopy(self.model.state_dict())
        else:
            self.bad_epochs += 1
        self.epoch += 1
        return improved

    def _on_device(self, split: Split, may_stay: bool = False) -> Split:
        if may_stay and not fits_on_device(tensor_bytes(split.x, split.c, split.mask), self.device):
            self._host_train = True  # pinned host memory, one batch at a time to the device (parts.to_device)
            pin = (lambda t: t.pin_memory() if may_pin(t) else t) if self.device.type == "cuda" else (lambda t: t)
            return dataclasses.replace(split, x=pin(split.x), c=pin(split.c),
                                       mask=None if split.mask is None else pin(split.mask.to(split.x.dtype)))
        x = split.x.to(self.device)  # a Split subclass keeps its own fields (interactions: the CSR matrices)
        return dataclasses.replace(split, x=x, c=None if split.c is None else split.c.to(self.device),
                                   mask=None if split.mask is None else split.mask.to(self.device, x.dtype))

    def _check_finite(self, step_losses: torch.Tensor, e: int) -> None:
        """The non-finite guard: one host sync per epoch; names the first bad step, keeps the last checkpoint."""
        finite = torch.isfinite(step_losses)
        if not bool(finite.all()):
            bad = int((~finite).nonzero()[0, 0]) + 1
            raise TrainingError(
                f"the loss became {step_losses[bad - 1].item()} at epoch {e}, step {bad}{self._kept()}; "
                "lower --lr, set --grad-clip, or check the data for extreme values")

    def _kept(self) -> str:
        """What a TrainingError says about the checkpoint on disk (the last completed epoch's)."""
        if self.run_dir is None:
            return ""
        if self.epoch == 0:
            return f"; no epoch finished, so {self.run_dir} holds no weights"
        return f"; the last good checkpoint (epoch {self.epoch}) is kept in {self.run_dir}"

    # -- persistence -----------------------------------------------------------------------------
    def _append_metrics(self, row: dict) -> None:
        with open(self.run_dir / METRICS, "a") as f:
            f.write(json_text(row) + "\n")

    def save_checkpoint(self, finished: bool = False) -> None:
        """Everything needed to continue exactly where training is, as safetensors + JSON."""
        tensors: dict[str, torch.Tensor] = {}
        for k, v in self.model.state_dict().items():
            tensors[f"model.{k}"] = v
        for k, v in self.best_state.items():
            tensors[f"best.{k}"] = v
        opt_tensors, opt_json = optimizer_state(self.opt) if not self.opts else ({}, None)
        tensors.update(opt_tensors)
        per_phase = {}
        for name, o in self.opts.items():  # a family with one optimizer per phase: each one's state
            t, per_phase[name] = optimizer_state(o, f"opt_{name}")
            tensors.update(t)
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.shuffle"] = self.gen.get_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        for r, states in list(enumerate(self._rank_rngs or []))[1:]:  # distributed: every other rank's own noise
            tensors.update({f"rng.{key}.rank{r}": v for key, v in states.items()})
        state = {"epoch": self.epoch, "best_val": self.best_val, "best_epoch": self.best_epoch,
                 "bad_epochs": self.bad_epochs, "finished": finished,
                 "optimizer": opt_json,
                 "scheduler": self.sched.state_dict() if self.sched is not None else None,
                 "family": self.family.name, **({"optimizers": per_phase} if per_phase else {}),
                 **({"world_size": self.dist.world} if self.dist is not None else {}),
                 **self.family.state_extra()}
        # The JSON state also rides in the tensors file's metadata: one atomic write holds a consistent
        # checkpoint even when an interrupt lands between the two files (load prefers the metadata).
        save_tensors(self.run_dir / STATE_TENSORS, tensors, metadata={"state": json_text(state)})
        write_json(self.run_dir / STATE_JSON, state)

    def load_checkpoint(self) -> None:
        """Restore the state :meth:`save_checkpoint` wrote (model, optimizer, schedule, RNGs, counters)."""
        run = self._read_dir  # rank 0's run directory on every rank of a distributed run
        tensors = load_tensors(run / STATE_TENSORS)
        meta = read_tensor_metadata(run / STATE_TENSORS)
        state = json.loads(meta["state"]) if "state" in meta else read_json(run / STATE_JSON)
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        self.best_state = {k[5:]: v.to(self.device) for k, v in tensors.items() if k.startswith("best.")}
        if state["optimizer"] is not None:
            load_optimizer_state(self.opt, tensors, state["optimizer"])
        for name, o in self.opts.items():
            load_optimizer_state(o, tensors, state["optimizers"][name], f"opt_{name}")
        if self.sched is not None and state["scheduler"] is not None:
            self.sched.load_state_dict(state["scheduler"])
        mine = "" if self.dist is None or self.dist.rank == 0 else f".rank{self.dist.rank}"
        if f"rng.torch{mine}" in tensors:
            torch.set_rng_state(tensors[f"rng.torch{mine}"])
        else:  # a rank the checkpoint's run did not have (resumed on more processes): its own seed
            torch.manual_seed(distributed.rank_seed(self.cfg.seed + state["epoch"], self.dist.rank))
        self.gen.set_state(tensors["rng.shuffle"])
        if self.device.type == "cuda" and f"rng.cuda{mine}" in tensors:
            torch.cuda.set_rng_state(tensors[f"rng.cuda{mine}"], self.device)
        self.epoch = state["epoch"]
        # metrics.jsonl may hold a line written after the checkpoint: keep only completed epochs.
        metrics = run / METRICS
        rows = [json.loads(s) for s in metrics.read_text().splitlines() if s.strip()] if regular_file(metrics) else []
        self.history = [r for r in rows if r["epoch"] <= self.epoch]
        if self.run_dir is not None:  # the writing rank
            atomic_write_text(metrics, "".join(json_text(r) + "\n" for r in self.history))
        if "best_val" not in state:  # an M2 checkpoint of vaekit <= 0.1 (its own loop): best, bad, no best epoch
            state = {**state, "best_val": math.inf if state["best"] is None else state["best"],
                     "bad_epochs": state["bad"],
                     "best_epoch": _best_epoch(self.history, "val_unlabelled", self.cfg.min_delta)}
        self.best_val = math.inf if state["best_val"] is None else state["best_val"]  # null: no best yet
        self.best_epoch = state["best_epoch"]
        self.bad_epochs = state["bad_epochs"]


class _progress:
    """A rich progress bar over epochs showing train and validation loss (a no-op when disabled)."""

    def __init__(self, enabled: bool, total: int, done: int, labels: tuple[str, str] = ("−ELBO", "−ELBO"),
                 unit: str = " nats"):
        self.enabled, self.total, self.done, self.labels, self.unit = enabled, total, done, labels, unit
        self._p = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._p = Progress(TextColumn("[bold]epoch"), MofNCompleteColumn(), BarColumn(),
                               TextColumn("{task.fields[losses]}"), TimeElapsedColumn(), transient=False)
            self._p.start()
            self._task = self._p.add_task("train", total=self.total, completed=self.done, losses="")
        return self

    def __call__(self, epoch: int, train_loss: float, val_loss: float) -> None:
        if self._p is not None:
            self._p.update(self._task, completed=epoch,
                           losses=f"train {self.labels[0]} {train_loss:.2f}  val {self.labels[1]} {val_loss:.2f}"
                                  f"{self.unit}")

    def __exit__(self, *exc) -> None:
        if self._p is not None:
            self._p.stop()


def _best_epoch(history: list[dict], key: str, min_delta: float) -> int:
    """The epoch early stopping last counted as an improvement of ``key`` (0 when none)."""
    best, epoch = math.inf, 0
    for row in history:
        if row[key] < best - min_delta:
            best, epoch = row[key], row["epoch"]
    return epoch


def _as_split(data: Split | torch.Tensor, c: torch.Tensor | None, mask: torch.Tensor | None) -> Split:
    if isinstance(data, Split):
        if c is not None or mask is not None:
            raise ValueError("pass conditions and masks inside the Split, not beside it")
        return data
    return Split(data, c=c, mask=mask)
