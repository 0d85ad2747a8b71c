"""ONNX export of a trained run: ``encoder.onnx``, ``decoder.onnx`` (and ``classifier.onnx`` for M2) + ``model.json``.

The graphs hold the networks only, in model units, with a dynamic batch axis:

- encoder: ``x`` ``[batch, *shape]`` (and ``c`` ``[batch, cond_dim]`` for conditional runs) →
  ``mean``, ``log_var`` ``[batch, latent_dim]`` of q(z|x[, c]);
- decoder: ``z`` ``[batch, latent_dim]`` (and ``c``) → the likelihood's parameters (Bernoulli ``logits``,
  Gaussian ``mean``, mixed-table ``params``);
- classifier (semi-supervised runs): ``x`` → ``logits`` over the classes of q(y|x).

Sampling (z = mean + exp(log_var / 2)·ε, draws from p(x|z)) stays outside the graphs; ``model.json`` says how
to do it, how raw data becomes model units (the table scaler, image shape and range, the condition encoding)
and how decoder outputs become data. The folder is written beside ``out`` and renamed into place, so a
reader never sees half an export. The classic (TorchScript) exporter is used: it needs only the ``onnx``
package, where the dynamo exporter also needs ``onnxscript``.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import UsageError
from .runs import atomic_write_bytes, read_json, write_json
from .trained import TrainedVAE

FORMATS = ("onnx",)
OPSET = 17
OPSETS = (7, 20)  # the opsets torch's TorchScript exporter writes (torch.onnx._constants)
EXPORT_FORMAT = "vaekit-onnx"
MODEL_JSON = "model.json"
CHECK_BATCH = 64


class _Encoder(nn.Module):
    """q(z|x[, c]) → (mean, log-variance)."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.vae.posterior_params(x, c)


class _Decoder(nn.Module):
    """z[, c] → the likelihood's parameters."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.vae.decoder_params(z, c)


def _tensor_spec(name: str, shape: list, what: str) -> dict:
    return {"name": name, "shape": ["batch", *shape], "dtype": "float32", "description": what}


def _decoder_output(likelihood: str) -> str:
    return {"bernoulli": "logits", "gaussian": "mean"}.get(likelihood, "params")


def _graphs(trained: TrainedVAE) -> dict[str, dict]:
    """Each graph's file, module, example inputs and input/output specs."""
    vae, shape, latent = trained.model, list(trained.shape), trained.latent_dim
    cond = [_tensor_spec("c", [vae.cond_dim], "condition vector (see condition)")] if vae.cond_dim else []
    x_spec = _tensor_spec("x", shape, "examples in model units (see data.to_model)")
    graphs = {
        "encoder": {"file": "encoder.onnx", "module": _Encoder(vae), "inputs": [x_spec, *cond],
                    "outputs": [_tensor_spec("mean", [latent], "mean of q(z|x)"),
                                _tensor_spec("log_var", [latent], "log-variance of q(z|x)")]},
        "decoder": {"file": "decoder.onnx", "module": _Decoder(vae),
                    "inputs": [_tensor_spec("z", [latent], "latent codes"), *cond],
                    "outputs": [_tensor_spec(_decoder_output(trained.config.likelihood), shape,
                                             "parameters of p(x|z) (see likelihood)")]},
    }
    if trained.classifier is not None:
        k = vae.cond_dim
        graphs["classifier"] = {"file": "classifier.onnx", "module": trained.classifier, "inputs": [x_spec],
                                "outputs": [_tensor_spec("logits", [k], "logits of q(y|x); softmax → class "
                                                         "probabilities in the order of condition.classes")]}
    return graphs


def _example(spec: dict, trained: TrainedVAE, n: int, gen: torch.Generator) -> torch.Tensor:
    """A batch of ``n`` plausible inputs for one graph input (for tracing and the parity check)."""
    shape = [n, *spec["shape"][1:]]
    if spec["name"] == "c" and trained.conditioning is not None and trained.conditioning.kind == "label":
        k = shape[1]
        return nn.functional.one_hot(torch.randint(k, (n,), generator=gen), k).float()
    if spec["name"] == "x" and trained.kind.pictures:
        return torch.rand(shape, generator=gen)
    return torch.randn(shape, generator=gen)


def _onnx_bytes(module: nn.Module, args: tuple, graph: dict, opset: int) -> bytes:
    names_in = [s["name"] for s in graph["inputs"]]
    names_out = [s["name"] for s in graph["outputs"]]
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter warns that dynamo is the new default
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, args, buf, input_names=names_in, output_names=names_out,
                              dynamic_axes={n: {0: "batch"} for n in names_in + names_out},
                              opset_version=opset, do_constant_folding=True, dynamo=False)
        except ModuleNotFoundError as err:
            raise UsageError(f"ONNX export needs the {err.name} package; install it with "
                             "pip install 'vaekit[onnx]'") from None
    return buf.getvalue()


def _check(graphs: dict, files: dict[str, bytes], trained: TrainedVAE) -> dict | None:
    """Run every graph with onnxruntime on a batch of 64 and compare with PyTorch: the largest absolute
    difference per graph (None when onnxruntime is not installed)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    gen = torch.Generator().manual_seed(0)
    diffs = {}
    for name, g in graphs.items():
        sess = ort.InferenceSession(files[name], providers=["CPUExecutionProvider"])
        args = [_example(s, trained, CHECK_BATCH, gen) for s in g["inputs"]]
        with torch.no_grad():
            want = g["module"](*args)
        want = want if isinstance(want, tuple) else (want,)
        got = sess.run(None, {s["name"]: a.numpy() for s, a in zip(g["inputs"], args)})
        diffs[name] = max(float((torch.from_numpy(o) - w).abs().max()) for o, w in zip(got, want))
    return {"onnxruntime": ort.__version__, "batch": CHECK_BATCH, "max_abs_diff": diffs}


def export_onnx(run: str | os.PathLike | TrainedVAE, out: str | os.PathLike, overwrite: bool = False,
                opset: int = OPSET) -> dict:
    """Export a run directory (or a loaded :class:`TrainedVAE`) to the folder ``out`` as ONNX graphs plus
    ``model.json`` (see the module docstring); returns model.json's content. ``overwrite`` replaces an
    earlier export in ``out`` (never a folder that is not one). When onnxruntime is installed the graphs are
    run on a batch of 64 and the largest differences from PyTorch are recorded (``check``)."""
    out = Path(out)
    if not OPSETS[0] <= opset <= OPSETS[1]:
        raise UsageError(f"--opset must be between {OPSETS[0]} and {OPSETS[1]}, got {opset}")
    _check_out(out, overwrite)
    if isinstance(run, TrainedVAE):
        trained = run
    else:
        from .api import load_vae as load  # a recommendation run is refused in one line

        trained = load(run)
    model, classifier = trained.model, trained.classifier
    device = trained.device
    trained.to("cpu")
    if classifier is not None:
        classifier.to("cpu")
    was_training = model.training, classifier.training if classifier is not None else False
    model.eval()
    if classifier is not None:
        classifier.eval()
    try:
        graphs = _graphs(trained)
        gen = torch.Generator().manual_seed(0)
        files = {name: _onnx_bytes(g["module"], tuple(_example(s, trained, 2, gen) for s in g["inputs"]), g, opset)
                 for name, g in graphs.items()}
        check = _check(graphs, files, trained)
    finally:
        model.train(was_training[0])
        if classifier is not None:
            classifier.train(was_training[1])
            classifier.to(device)
        trained.to(device)
    from .export_spec import describe

    spec = describe(trained, graphs, opset, check)
    _write_folder(out, {graphs[n]["file"]: b for n, b in files.items()}, spec, overwrite)
    return spec


def _is_export(folder: Path) -> bool:
    try:
        info = read_json(folder / MODEL_JSON)
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("format") == EXPORT_FORMAT


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that exists (without ``overwrite``), is a file, or holds something else than an
    earlier export (with ``overwrite``: its other files would be lost)."""
    if not out.exists() and not out.is_symlink():
        return
    if not overwrite:
        raise UsageError(f"{out} already exists; pass --overwrite to replace it or choose another --out")
    if not out.is_dir() or out.is_symlink():
        raise UsageError(f"{out} is not a folder; choose another --out")
    if any(out.iterdir()) and not _is_export(out):
        raise UsageError(f"{out} is not an earlier vaekit export (no {MODEL_JSON} of one) and --overwrite "
                         "would delete its files; choose another --out")


def _write_folder(out: Path, files: dict[str, bytes], spec: dict, overwrite: bool) -> None:
    """Write the files into a temporary folder beside ``out`` and rename it into place (an earlier export
    is moved aside first and deleted after the rename)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    old: Path | None = None
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes 0700; give the folder the usual permissions
        for name, data in files.items():
            atomic_write_bytes(tmp / name, data)
        write_json(tmp / MODEL_JSON, spec)
        if out.exists():
            _check_out(out, overwrite)  # again: it may have appeared while the graphs were exported
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / out.name)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not out.exists():
            os.replace(old / out.name, out)  # put the earlier export back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_export(folder: str | os.PathLike) -> dict[str, Any]:
    """``model.json`` of an export folder (a one-line error when the folder is not one)."""
    folder = Path(folder)
    if not _is_export(folder):
        raise UsageError(f"{folder} is not a vaekit ONNX export (no {MODEL_JSON}); write one with vaekit export")
    return read_json(folder / MODEL_JSON)
