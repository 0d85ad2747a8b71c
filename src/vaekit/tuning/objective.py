"""One trial of ``vaekit tune``: an ordinary run of ``api.train`` into ``TUNE_DIR/trials/NNNN``.

The run reports its best validation −ELBO so far (nats per example, β = 1) to the pruner after every epoch;
``optuna.TrialPruned`` raised there leaves ``api.train`` after the epoch's checkpoint, so a pruned run is a
consistent interrupted run. A retry of an interrupted trial continues its first try's run directory from
its checkpoint. Each trial writes ``trial.json`` into its run directory. ``api`` and Optuna are imported
inside functions.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import TrainConfig, make_config
from ..errors import VaekitError
from ..runs import STATE_JSON, STATE_TENSORS, read_json, read_tensor_metadata, write_json
from .job import Job, format_params
from .space import SearchSpace

#: the validation ranking numbers a recommender's trial keeps (trials.csv columns ``val_ndcg@100``…)
RANKING_EXTRAS = ("ndcg@100", "recall@20", "recall@50")


class _Progress:
    """The best validation number so far, reported to the trial (for its pruner) after each epoch: the
    −ELBO (``val_loss``), or the column a family watches (:meth:`~vaekit.families.Family.watched`). A
    higher-is-better column is negated for a minimizing study, and reported as it is to a study that
    maximizes it (``maximizing``: ``vaekit tune --metric val_ndcg@100``)."""

    def __init__(self, trial, watched: tuple[str, bool] = ("val_loss", False), maximizing: bool = False):
        self.trial = trial
        self.best = math.inf  # in minimized units: sign × the column
        self.last = 0  # the last epoch this try ran
        self.key, self.sign = watched[0], (-1.0 if watched[1] else 1.0)
        self.out = -1.0 if maximizing else 1.0  # a maximizing study is told the column itself

    def _report(self, value: float, epoch: int) -> None:
        self.trial.report(self.out * value, epoch)

    def _value(self, row: dict) -> float:
        return self.sign * float(row[self.key])

    def replay(self, rows: list[dict]) -> None:
        """Report again what an interrupted earlier try of the trial reported (its ``metrics.jsonl``)."""
        for row in rows:
            v = self._value(row)
            self.best = min(self.best, v) if math.isfinite(v) else self.best
            self._report(self.best, int(row["epoch"]))

    def on_epoch_end(self, row: dict) -> None:
        """``api.train``'s epoch callback: report, and raise ``optuna.TrialPruned`` if the pruner says so."""
        import optuna

        v = self._value(row)
        self.best = min(self.best, v) if math.isfinite(v) else self.best
        self.last = int(row["epoch"])
        self._report(self.best if math.isfinite(self.best) else v, self.last)
        if self.trial.should_prune():
            best = "validation -ELBO" if self.key == "val_loss" else self.key
            raise optuna.TrialPruned(f"pruned at epoch {row['epoch']} (best {best} so far "
                                     f"{self.sign * self.best:.3f}{' nats' if self.key == 'val_loss' else ''})")


@dataclass
class _Attempt:
    """One try of a trial: where its run is, what it tries, and when it started."""

    trial: Any
    run_dir: Path
    retry: bool  # a retry of an interrupted trial: its run continues from its checkpoint
    params: dict
    record: dict  # the common part of trial.json
    t0: float

    def seconds(self) -> float:
        return round(time.perf_counter() - self.t0, 2)


class Objective:
    """The function ``study.optimize`` calls: one trial = one ``api.train`` run; returns the job's metric."""

    def __init__(self, job: Job, space: SearchSpace):
        self.job, self.space = job, space
        self.current: int | None = None  # number of the trial in progress
        self.started = lambda: None  # called once the trial exists in the study

    def _say(self, text: str) -> None:
        if not self.job.quiet:
            print(text, flush=True)

    def __call__(self, trial) -> float:
        import optuna

        self.current = trial.number
        self.started()  # the trial exists (RUNNING): other workers may count it now
        at = self._attempt(trial)
        from ..families import FAMILIES, family_name

        from .job import MAXIMIZED

        progress = _Progress(trial, FAMILIES[family_name(make_config(self.job.base))]().watched(),
                             maximizing=self.job.metric in MAXIMIZED)
        try:
            value, extras = self._train(at, progress)
        except optuna.TrialPruned:
            self._pruned(at, progress.last)
            raise
        except VaekitError as err:
            self._failed(at, err)
            raise
        self._completed(at, value, extras)
        return value

    def _attempt(self, trial) -> _Attempt:
        """Name the trial's run directory (a retry reuses its first try's) and suggest its settings."""
        job = self.job
        frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
        origin = frozen.system_attrs.get("failed_trial", trial.number)  # a retry continues its first run
        retry = "failed_trial" in frozen.system_attrs
        rel = f"trials/{origin:04d}"
        trial.set_user_attr("run_dir", rel)
        t0 = time.perf_counter()
        params = self.space.suggest(trial)
        trial.set_user_attr("settings", params)
        record = {"format": "vaekit-trial", "study": job.study, "trial": trial.number, "metric": job.metric,
                  "settings": params}
        return _Attempt(trial, Path(job.tune_dir) / rel, retry, params, record, t0)

    def _train(self, at: _Attempt, progress: _Progress) -> tuple[float, dict]:
        """Train (or continue) the trial's run; returns the job's metric and the numbers kept with it."""
        from .. import api

        cfg = make_config({**self.job.base, **at.params})
        run_dir = at.run_dir
        if at.retry and (run_dir / STATE_JSON).is_file() and (run_dir / STATE_TENSORS).is_file():
            trained = _continue_run(run_dir, progress, self.job)
        else:
            trained = api.train(config=cfg, out=run_dir, overwrite=True, progress=False, report=False,
                                on_epoch_end=progress.on_epoch_end, log=self.job.log, log_uri=self.job.log_uri)
        return self._outcome(trained, run_dir, cfg)

    def _outcome(self, trained, run_dir: Path, cfg: TrainConfig) -> tuple[float, dict]:
        from .. import api

        job = self.job
        results = read_json(run_dir / "results.json")
        val = results["validation"]
        extras = {"epochs": results["epochs_run"], "best_epoch": results["best_epoch"]}
        if "ndcg@100" in val:  # a recommender: ranking metrics of the validation users
            extras.update({f"val_{k}": val[k] for k in RANKING_EXTRAS})
            return float(extras[job.metric]), extras
        extras.update({"val_elbo": val["elbo"], "val_recon": val["recon"], "val_kl": val["kl"]})
        if job.metric == "val_iwae":
            ev = api.evaluate(trained, split="validation", iwae_k=job.iwae_k, seed=cfg.seed)
            extras["val_iwae"] = ev["neg_iwae"]
        return float(extras[job.metric]), extras

    def _pruned(self, at: _Attempt, epoch: int) -> None:
        trial = at.trial
        trial.set_user_attr("pruned_at_epoch", epoch)
        trial.set_user_attr("seconds", at.seconds())
        write_json(at.run_dir / "trial.json", {**at.record, "state": "PRUNED", "pruned_at_epoch": epoch})
        self._say(f"trial {trial.number:3d} pruned at epoch {epoch}: {format_params(at.params)}")

    def _failed(self, at: _Attempt, err: VaekitError) -> None:
        trial = at.trial
        trial.set_user_attr("error", str(err))
        trial.set_user_attr("seconds", at.seconds())
        if at.run_dir.is_dir():
            write_json(at.run_dir / "trial.json", {**at.record, "state": "FAIL", "error": str(err)})
        self._say(f"trial {trial.number:3d} failed: {err}")

    def _completed(self, at: _Attempt, value: float, extras: dict) -> None:
        trial = at.trial
        for k, v in extras.items():
            trial.set_user_attr(k, v)
        trial.set_user_attr("seconds", at.seconds())
        write_json(at.run_dir / "trial.json", {**at.record, "state": "COMPLETE", "value": value, **extras})
        self._say(f"trial {trial.number:3d} {self.job.metric} {value:.3f} ({extras['epochs']} epochs): "
                  f"{format_params(at.params)}")

    def requeue(self, study) -> None:
        """Queue the interrupted trial again (same hyperparameters; its run continues from its checkpoint)."""
        from optuna.storages import RetryHeartbeatStaleTrialCallback
        from optuna.trial import TrialState

        number, self.current = self.current, None
        if number is None:
            return
        for t in study.get_trials(deepcopy=False):
            if t.number == number and t.state == TrialState.FAIL and "error" not in t.user_attrs:
                RetryHeartbeatStaleTrialCallback()(study, t)


def _continue_run(run_dir: Path, progress: _Progress, job: Any = None):
    """Continue an interrupted try's run from the checkpoint resume will use, after reporting its epochs
    again; a run that had already finished is loaded as it is."""
    from .. import api

    meta = read_tensor_metadata(run_dir / STATE_TENSORS)  # the checkpoint resume will use
    state = json.loads(meta["state"]) if "state" in meta else read_json(run_dir / STATE_JSON)
    progress.replay(metrics_rows(run_dir, state["epoch"]))  # what the interrupted try reported
    if state.get("finished"):
        return api.load(run_dir)
    return api.train(out=run_dir, resume=True, progress=False, report=False, on_epoch_end=progress.on_epoch_end,
                     log=getattr(job, "log", None), log_uri=getattr(job, "log_uri", None))


def metrics_rows(run_dir: Path, upto: int) -> list[dict]:
    """The rows of the run's ``metrics.jsonl`` up to epoch ``upto`` (none if the file is missing)."""
    p = run_dir / "metrics.jsonl"
    rows = [json.loads(s) for s in p.read_text().splitlines() if s.strip()] if p.is_file() else []
    return [r for r in rows if r["epoch"] <= upto]
