"""``model.json`` of an ONNX export: what the graphs take and give, and how data gets in and out of them.

Everything a consumer without vaekit needs: the inputs/outputs (names, shapes with a ``batch`` axis,
dtypes), the latent size and prior, how to sample, the likelihood and how its parameters become data (with
the learned log-std as numbers), the data's preprocessing (table scaler, image shape and value range,
missing cells), the condition encoding (class names for labels, the attribute scaler) and the versions.
"""

from __future__ import annotations

from typing import Any

import torch

from . import __version__
from .trained import TrainedVAE

SAMPLING = ("z = mean + exp(0.5 * log_var) * eps with eps ~ N(0, I) (or z = mean for the posterior mean); "
            "new examples: z ~ N(0, I), the prior")


def _floats(t: torch.Tensor) -> list[float]:
    return [float(v) for v in t.detach().cpu().flatten().tolist()]


def _likelihood(trained: TrainedVAE) -> dict[str, Any]:
    """The likelihood's name, its parameters' meaning and how they become the mean (and draws) of p(x|z)."""
    lik = trained.model.likelihood
    name = trained.config.likelihood
    if name == "bernoulli":
        return {"name": "bernoulli", "output": "logits", "mean": "sigmoid(logits)",
                "sample": "1 where uniform(0, 1) < sigmoid(logits), else 0"}
    log_std = {"shape": list(lik.log_scale.shape), "values": _floats(lik.log_scale),
               "learned": lik.fixed_std is None}
    if name == "gaussian":
        return {"name": "gaussian", "output": "mean", "mean": "mean", "log_std": log_std,
                "sample": "mean + exp(log_std) * eps, eps ~ N(0, 1), log_std per feature (row-major values)"}
    blocks = [{"column": c["name"], "start": int(c["start"]), "stop": int(c["stop"]),
               "categories": c.get("categories")} for c in trained.schema or [] if c["kind"] == "categorical"]
    return {"name": "mixed", "output": "params",
            "numeric": [int(i) for i in lik.numeric.tolist()], "log_std": log_std, "blocks": blocks,
            "mean": "numeric positions: params as they are (Gaussian mean, log_std per numeric position); "
                    "each block params[start:stop]: softmax → probabilities of its categories (argmax → name)",
            "sample": "numeric: mean + exp(log_std) * eps; each block: one category drawn from its softmax"}


def _data(trained: TrainedVAE) -> dict[str, Any]:
    """The data's kind, shape and how raw values become model units and back."""
    info, cfg = trained.info["data"], trained.config
    shape = [int(s) for s in trained.shape]
    out: dict[str, Any] = {"kind": info["kind"], "shape": shape, "source": info.get("source"),
                           "fingerprint": info.get("fingerprint")}
    if trained.kind.pictures:
        channels = shape[0] if len(shape) == 3 else 1
        out.update({
            "value_range": [0.0, 1.0],
            "channels": {1: "grayscale", 3: "RGB"}.get(channels, f"{channels} channels"),
            "layout": "NCHW" if len(shape) == 3 else "N" + "x" * len(shape),
            "to_model": "8-bit pixels / 255" + (f", resized (bilinear) to {shape[-1]}x{shape[-2]}" if cfg.image_size
                                                 else "") + "; values in [0, 1], layout [batch, channels, height, width]",
            "to_data": "model units are data units (values in [0, 1])",
            "binarize": cfg.binarize,
        })
    elif trained.scaler is not None:
        out.update({
            "columns": info.get("columns") if trained.conditioning is None or trained.conditioning.source
            != "table" else trained.conditioning.feature_columns(info.get("columns") or []),
            "scaler": {"mean": _floats(trained.scaler.mean), "std": _floats(trained.scaler.std)},
            "to_model": "(x - scaler.mean) / scaler.std per column",
            "to_data": "mean of p(x|z) * scaler.std + scaler.mean per column",
        })
        if trained.schema is not None:
            out["schema"] = trained.schema
            out["to_model"] += ("; each text column one-hot over its categories at schema[i].start:stop "
                                "(those positions have mean 0, std 1)")
    else:
        out.update({"to_model": "values as they are", "to_data": "model units are data units"})
    if cfg.missing == "mask":
        out["missing"] = "missing cells (NaN) are set to 0 after to_model (the training mean), as in training"
    return out


def _condition(trained: TrainedVAE) -> dict[str, Any] | None:
    cond = trained.conditioning
    if cond is None:
        return None
    if cond.kind == "label":
        return {"kind": "label", "input": "c", "dim": cond.dim, "classes": list(cond.classes or []),
                "encoding": "one-hot: c[i] = 1 for the class at position i of classes, 0 elsewhere"}
    return {"kind": "attributes", "input": "c", "dim": cond.dim, "columns": list(cond.columns or []),
            "scaler": {"mean": _floats(cond.scaler.mean), "std": _floats(cond.scaler.std)} if cond.scaler else None,
            "encoding": "(value - scaler.mean) / scaler.std per attribute, in the order of columns"}


def _graph(g: dict) -> dict:
    return {"file": g["file"], "inputs": g["inputs"], "outputs": g["outputs"]}


def _prior(trained: TrainedVAE) -> Any:
    """The prior as model.json states it: "N(0, I)", or a VampPrior's K components (the encoder's posteriors
    at its pseudo-inputs, computed once here so a consumer needs no encoder call)."""
    vamp = getattr(trained.model, "vamp", None)
    alpha = getattr(trained.model, "spike_prior", None)
    if alpha is not None:  # sparse-vae: the encode graph's mean output is E[z|x] = gamma * mu
        return {"kind": "spike-and-slab: each dimension 0 with probability 1 - alpha, else N(0, 1)", "alpha": alpha,
                "note": "the encode graph's mean is E[z|x] = gamma * mu; its log_var is the slab's"}
    if vamp is None:
        return "N(0, I)"
    with torch.no_grad():
        means, logvars = vamp.components_of(trained.model)
    return {"kind": "vamp: (1/K) sum_k N(z; means[k], exp(log_vars[k]))", "components": len(means),
            "means": means.cpu().tolist(), "log_vars": logvars.cpu().tolist()}


def _sampling(trained: TrainedVAE) -> str:
    """How to sample: the standard text, with "z ~ N(0, I)" replaced for a VampPrior or spike-and-slab prior."""
    if getattr(trained.model, "spike_prior", None) is not None:
        return SAMPLING.replace("z ~ N(0, I), the prior", "z from the spike-and-slab prior (see prior)")
    if getattr(trained.model, "vamp", None) is not None:
        return SAMPLING.replace("z ~ N(0, I), the prior", "z from the prior's mixture (pick a component k "
                                "uniformly, z = means[k] + exp(0.5 * log_vars[k]) * eps)")
    return SAMPLING


def describe(trained: TrainedVAE, graphs: dict[str, dict], opset: int, check: dict | None) -> dict[str, Any]:
    """The content of ``model.json`` for the exported ``graphs`` of ``trained``."""
    info = trained.info
    return {
        "format": "vaekit-onnx",
        "format_version": 1,
        "vaekit_version": __version__,
        "torch_version": torch.__version__,
        "onnx_opset": opset,
        "run": {"path": str(trained.run_dir) if trained.run_dir is not None else None,
                "created": info.get("created"), "vaekit_version": info.get("vaekit_version"),
                "family": "m2" if trained.classifier is not None else "vae"},
        "latent_dim": trained.latent_dim,
        "prior": _prior(trained),
        "sampling": _sampling(trained),
        "graphs": {name: _graph(g) for name, g in graphs.items()},
        "likelihood": _likelihood(trained),
        "data": _data(trained),
        "condition": _condition(trained),
        "check": check if check is not None else
        {"onnxruntime": None, "note": "onnxruntime is not installed: the graphs were not run after export"},
    }
