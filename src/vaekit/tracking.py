"""Experiment tracking: ``--log tensorboard|mlflow`` sends a finished run to TensorBoard or MLflow.

What is logged, read from the run directory once the run has ended (so a resumed run logs its whole history,
and the tracker holds the same numbers as the files): every column of ``metrics.jsonl`` as a scalar per epoch
(step = epoch), the settings of ``config.json`` as parameters, the numbers of ``results.json`` and
``evaluation.json`` as final metrics (``results/test/elbo``, ``evaluation/neg_iwae``: their paths in the
JSON), the figures (``*.png``), and

- TensorBoard (``RUN/tensorboard/``, rewritten on each logging): the figures as images, the config as text,
  the posterior means of (up to :data:`EMBED_MAX` of) the test examples to the embedding projector with
  their labels as metadata;
- MLflow (the local file store ``RUN/mlruns`` unless ``log_uri`` names another tracking URI, e.g.
  ``sqlite:///mlflow.db`` or ``http://host:5000``; experiment ``vaekit``): one MLflow run per training run
  (a resumed run gets a new one), with the run directory's files as the artifact ``run/``.

``tensorboard`` and ``mlflow`` (``mlflow-skinny`` suffices) are optional (``pip install 'vaekit[track]'``)
and imported only when asked for; :func:`check_tracker` refuses a missing one before training starts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import RunError, UsageError, VaekitError
from .runs import CONFIG, EVALUATION, LOCK, METRICS, RESULTS, read_json

TRACKERS = ("tensorboard", "mlflow")
TENSORBOARD_DIR = "tensorboard"  # RUN/tensorboard/: TensorBoard's event files and projector
MLFLOW_DIR = "mlruns"  # RUN/mlruns: MLflow's local file store, the default tracking URI
EMBED_MAX = 1000  # test examples sent to the embedding projector (the first ones of the test split)
EXPERIMENT = "vaekit"
_NEEDS = {"tensorboard": "tensorboard", "mlflow": "mlflow"}


def check_tracker(log: str | None, log_uri: str | None = None, out: Any = None) -> None:
    """Refuse (UsageError, exit 2) an unknown tracker, a missing package or a run without a directory."""
    if log is None:
        if log_uri is not None:
            raise UsageError("--log-uri is MLflow's tracking URI; give it with --log mlflow")
        return
    if log not in TRACKERS:
        raise UsageError(f"--log must be one of {', '.join(TRACKERS)}, got {log!r}")
    if log_uri is not None and log != "mlflow":
        raise UsageError("--log-uri is MLflow's tracking URI; TensorBoard writes into RUN/tensorboard")
    if out is None:
        raise UsageError(f"--log {log} logs a run directory; give out (--out RUN)")
    if not _available(_NEEDS[log]):
        raise UsageError(f"--log {log} needs the {_NEEDS[log]} package; install it with: "
                         "pip install 'vaekit[track]'")
    if log_uri is not None:
        check_mlflow_uri(log_uri)


def _available(module: str) -> bool:
    """Whether ``module`` can be imported (found without importing it)."""
    return importlib.util.find_spec(module) is not None


def history(run: Path) -> list[dict]:
    """The rows of ``metrics.jsonl`` (one per epoch)."""
    p = run / METRICS
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.is_file() else []


def epoch_scalars(rows: list[dict]) -> Iterator[tuple[str, float, int]]:
    """(column, value, epoch) for every finite number of every ``metrics.jsonl`` row except the epoch."""
    for row in rows:
        for k, v in row.items():
            if k != "epoch" and _number(v):
                yield k, float(v), int(row["epoch"])


def final_metrics(run: Path) -> dict[str, float]:
    """The numbers of ``results.json`` and ``evaluation.json``, named by their paths (``results/test/elbo``)."""
    out: dict[str, float] = {}
    for name, prefix in ((RESULTS, "results"), (EVALUATION, "evaluation")):
        if (run / name).is_file():
            _flatten(read_json(run / name), prefix, out)
    return out


def parameters(run: Path) -> dict[str, str]:
    """The run's settings (``config.json["config"]``) as strings, plus the data's name and fingerprint."""
    info = read_json(run / CONFIG)
    params = {k: json.dumps(v) if isinstance(v, (list, dict)) else str(v) for k, v in info["config"].items()}
    data = info.get("data") or {}
    for k in ("fingerprint", "kind"):
        if k in data:
            params[f"data_{k}"] = str(data[k])
    return params


def latent_sample(trained: Any, split: Any) -> tuple[np.ndarray, list[str] | None] | None:
    """Posterior means of the first :data:`EMBED_MAX` examples of ``split`` (model units) and their labels."""
    n = min(len(split), EMBED_MAX)
    if n == 0:
        return None
    model = trained.model
    was_training, dev = model.training, next(model.parameters()).device
    model.eval()
    codes = []
    try:
        with torch.no_grad():
            for i in range(0, n, 256):
                x = split.x[i:min(n, i + 256)].to(dev)
                c = split.c[i:min(n, i + 256)].to(dev) if split.c is not None else None
                codes.append(model.posterior_params(x, c)[0].float().cpu())
    finally:
        model.train(was_training)
    labels = None
    if split.y is not None:
        names = (trained.info.get("data") or {}).get("classes")
        ys = split.y[:n].tolist()
        labels = [str(names[int(y)]) if names and 0 <= int(y) < len(names) else str(y) for y in ys]
    return torch.cat(codes).numpy(), labels


def log_run(run: str | os.PathLike, log: str, log_uri: str | None = None,
            codes: tuple[np.ndarray, list[str] | None] | None = None) -> str:
    """Log the finished run directory ``run`` to ``log`` (see the module docstring); returns where it went.
    A tracker's failure (a server gone, a full disk) is a RunError saying that the run itself is saved."""
    run = Path(run)
    try:
        if log == "tensorboard":
            return _tensorboard(run, codes)
        return _mlflow(run, log_uri)
    except (KeyboardInterrupt, VaekitError):
        raise
    except Exception as err:
        raise RunError(f"the run in {run} is trained and saved, but logging it to {log} failed: "
                       f"{_first_line(err)}") from err


def figures(run: Path) -> list[Path]:
    """The run's pictures (samples.png, reconstructions.png, ...), sorted by name."""
    return sorted(p for p in run.glob("*.png") if p.is_file())


# -- TensorBoard -----------------------------------------------------------------------------------
def _tensorboard(run: Path, codes: tuple[np.ndarray, list[str] | None] | None) -> str:
    from PIL import Image
    from torch.utils.tensorboard import SummaryWriter

    logdir = run / TENSORBOARD_DIR
    shutil.rmtree(logdir, ignore_errors=True)  # the whole history is logged again (e.g. after --resume)
    rows = history(run)
    last = int(rows[-1]["epoch"]) if rows else 0
    writer = SummaryWriter(log_dir=str(logdir))
    try:
        for tag, value, step in epoch_scalars(rows):
            writer.add_scalar(tag, value, step)
        for tag, value in final_metrics(run).items():
            writer.add_scalar(tag, value, last)
        table = "\n".join(f"| {k} | {v} |" for k, v in parameters(run).items())
        writer.add_text("config", "| setting | value |\n|---|---|\n" + table, last)
        for p in figures(run):
            with Image.open(p) as im:
                writer.add_image(p.stem, np.asarray(im.convert("RGB")), last, dataformats="HWC")
        if codes is not None:
            z, labels = codes
            writer.add_embedding(torch.from_numpy(z), metadata=labels, global_step=last, tag="latent")
    finally:
        writer.close()
    return str(logdir)


# -- MLflow -----------------------------------------------------------------------------------------
@contextlib.contextmanager
def _file_store_allowed() -> Iterator[None]:
    """MLflow 3 refuses a file store (``RUN/mlruns``, ``file:`` URIs) unless MLFLOW_ALLOW_FILE_STORE is set; the
    user who asked for one gets it (a value the user set is kept)."""
    old = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)


def check_mlflow_uri(log_uri: str) -> None:
    """Reach the tracking server or store ``log_uri`` before training, so a wrong URI costs no run."""
    from mlflow.tracking import MlflowClient

    with _file_store_allowed():
        try:
            MlflowClient(tracking_uri=log_uri).search_experiments(max_results=1)
        except Exception as err:  # MLflow's own errors, connection errors, unknown schemes
            raise UsageError(f"--log-uri {log_uri}: MLflow cannot use it ({_first_line(err)}); "
                             "give a tracking URI such as sqlite:///mlflow.db or http://host:5000") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:200]


def mlflow_key(name: str) -> str:
    """A metric name MLflow accepts (letters, digits, ``_-. /``): other characters become ``_``
    (``val_ndcg@100`` → ``val_ndcg_100``)."""
    return re.sub(r"[^\w\-. /]", "_", name)


def _mlflow(run: Path, log_uri: str | None) -> str:
    uri = log_uri if log_uri is not None else (run / MLFLOW_DIR).resolve().as_uri()
    with _file_store_allowed():
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        exp_id = _experiment(client)
        rid = client.create_run(exp_id, run_name=run.resolve().name, tags={"vaekit.run_dir": str(run.resolve())}
                                ).info.run_id
        try:
            now = int(time.time() * 1000)
            metrics = [Metric(mlflow_key(k), v, now, step) for k, v, step in epoch_scalars(history(run))]
            last = max((m.step for m in metrics), default=0)
            metrics += [Metric(mlflow_key(k), v, now, last) for k, v in final_metrics(run).items()]
            params = [Param(k, v[:6000]) for k, v in parameters(run).items()]
            for i in range(0, max(len(metrics), len(params)), 100):  # log_batch: ≤ 1000 metrics, 100 params
                client.log_batch(rid, metrics=metrics[i:i + 100], params=params[i:i + 100])
            for p in sorted(run.iterdir()):
                if p.is_file() and p.name != LOCK and not p.name.startswith("."):
                    client.log_artifact(rid, str(p), artifact_path="run")
            client.set_terminated(rid)
        except BaseException:
            client.set_terminated(rid, status="FAILED")
            raise
    return f"{uri} (run {rid})"


def _experiment(client: Any) -> str:
    """The id of the experiment :data:`EXPERIMENT`, created when missing (another tune worker may create
    it at the same moment: then its id is read back)."""
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(EXPERIMENT)
    except Exception:
        exp = client.get_experiment_by_name(EXPERIMENT)
        if exp is None:
            raise
        return exp.experiment_id


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _flatten(obj: Any, prefix: str, out: dict[str, float]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}/{k}", out)
    elif _number(obj):
        out[prefix] = float(obj)
