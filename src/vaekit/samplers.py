"""Ex-post samplers: where ``vaekit sample --sampler`` draws latent codes from.

- ``prior``: z ~ p(z), the model's own prior (N(0, I), or the VampPrior's mixture);
- ``vamp``: the same for a ``--prior vamp`` run (refused for a normal-prior run, so the name never lies);
- ``gmm:K``: a K-component full-covariance Gaussian mixture fitted (scikit-learn's ``GaussianMixture``, seeded
  with the run's seed) on the posterior means of the run's training split (Ghosh et al. 2020; Pythae's
  "GMM sampler"). It is fitted on first use and saved in the run as ``gmm_samplers.safetensors`` (weights,
  means, Cholesky factors per K; the fit's description and the SHA-256 of ``model.safetensors`` it belongs to
  in the file's JSON metadata), so later draws reload it: the same seed gives the same samples. A saved
  mixture whose weights hash differs (the run was retrained) is refitted. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from .core.priors import mixture_draw
from .errors import RunError, UsageError
from .runs import WEIGHTS, load_tensors, lock_run, read_tensor_metadata, regular_file, save_tensors

GMM_FILE = "gmm_samplers.safetensors"
MAX_COMPONENTS = 1000


def parse_sampler(spec: str) -> tuple[str, int]:
    """``prior`` | ``vamp`` | ``gmm:K`` → (kind, K); a one-line UsageError otherwise."""
    s = spec.strip().lower()
    if s in ("prior", "vamp"):
        return s, 0
    if s.startswith("gmm:") and s[4:].isdigit() and 1 <= int(s[4:]) <= MAX_COMPONENTS:
        return "gmm", int(s[4:])
    raise UsageError(f"--sampler must be prior, vamp or gmm:K with K between 1 and {MAX_COMPONENTS} "
                     f"(e.g. gmm:10), got {spec!r}")


def _weights_hash(run: Path) -> str:
    return hashlib.sha256((run / WEIGHTS).read_bytes()).hexdigest()


def fit_gmm(z: torch.Tensor, k: int, seed: int) -> dict[str, torch.Tensor]:
    """A K-component full-covariance GaussianMixture fitted on codes ``z`` ``[N, latent]``: its weights,
    means and Cholesky factors of the covariances (float64 → float32 tensors)."""
    from sklearn.mixture import GaussianMixture

    if len(z) < k:
        raise UsageError(f"gmm:{k} needs at least {k} training examples to fit, the run has {len(z)}; use a smaller K")
    gm = GaussianMixture(n_components=k, covariance_type="full", random_state=seed, reg_covar=1e-5, max_iter=200)
    gm.fit(z.double().numpy())
    cov = torch.as_tensor(gm.covariances_)
    return {"weights": torch.as_tensor(gm.weights_).float(), "means": torch.as_tensor(gm.means_).float(),
            "scale_tril": torch.linalg.cholesky(cov).float()}


def training_codes(trained) -> torch.Tensor:
    """Posterior means of the run's training split ``[N, latent]`` (CPU, float32)."""
    from .api import _eval_data

    x, _, c, _, _ = _eval_data(trained, None, "train", trained.config.seed)
    return trained._batched(lambda b, cb: trained.model.posterior_params(b, cb)[0], x, c).float()


def gmm_sampler(trained, k: int) -> tuple[dict[str, torch.Tensor], str]:
    """(the GMM's parameters, what happened: reloaded / fitted and saved / fitted, not saved) for ``gmm:k``."""
    run = trained.run_dir
    path = run / GMM_FILE if run is not None else None
    digest = _weights_hash(run) if run is not None and regular_file(run / WEIGHTS) else None
    saved: dict[str, torch.Tensor] = {}
    meta: dict[str, str] = {}
    if path is not None and regular_file(path):
        meta = read_tensor_metadata(path)
        if meta.get("weights_sha256") == digest:
            saved = load_tensors(path)
            if f"k{k}.means" in saved:
                params = {n: saved[f"k{k}.{n}"] for n in ("weights", "means", "scale_tril")}
                _check(params, k, trained.latent_dim, path)
                return params, f"reloaded the {k}-component GMM fitted on first use from {path}"
        else:
            saved, meta = {}, {}  # fitted for other weights: replaced
    z = training_codes(trained)
    params = fit_gmm(z, k, trained.config.seed)
    what = f"fitted a {k}-component GMM on the posterior means of {len(z)} training examples (first use)"
    if path is None or digest is None:
        return params, what + "; not saved (no run directory)"
    tensors = {**saved, **{f"k{k}.{n}": v for n, v in params.items()}}
    meta = {**meta, "weights_sha256": digest, f"k{k}": json.dumps(
        {"fitted_on": "posterior means of the training split", "examples": len(z), "seed": trained.config.seed,
         "covariance": "full", "library": "sklearn.mixture.GaussianMixture"})}
    try:
        with lock_run(run, "sample --sampler gmm"):
            save_tensors(path, tensors, metadata=meta)
    except (RunError, OSError) as err:
        return params, what + f"; not saved ({str(err).split(';')[0]})"
    return params, what + f"; saved in {path}"


def _check(params: dict[str, torch.Tensor], k: int, d: int, path: Path) -> None:
    shapes = {"weights": (k,), "means": (k, d), "scale_tril": (k, d, d)}
    for n, shp in shapes.items():
        if tuple(params[n].shape) != shp:
            raise RunError(f"{path} is damaged: k{k}.{n} has shape {list(params[n].shape)}, expected {list(shp)}; "
                           "delete it (it is refitted on the next use)")


@torch.no_grad()
def sample_codes(trained, spec: str, n: int, temperature: float = 1.0,
                 seed: int | None = None) -> tuple[torch.Tensor, str]:
    """(``n`` latent codes from sampler ``spec``, a note saying where they came from)."""
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return _codes(trained, spec, n, temperature, gen)


def _codes(trained, spec: str, n: int, temperature: float,
           gen: torch.Generator | None) -> tuple[torch.Tensor, str]:
    kind, k = parse_sampler(spec)
    if trained.model.cond_dim:
        raise UsageError("--sampler applies to unconditional runs; this run is conditional: drop --sampler")
    if kind == "vamp" and getattr(trained.model, "vamp", None) is None:
        raise UsageError("--sampler vamp needs a run trained with --prior vamp; this run's prior is N(0, I) "
                         "(use --sampler prior or gmm:K)")
    if kind in ("prior", "vamp"):
        return trained.model.prior_draw(n, temperature, gen).cpu(), "drawn from the model's prior"
    params, note = gmm_sampler(trained, k)
    return mixture_draw(params["means"], None, n, temperature, gen, params["weights"], params["scale_tril"]), note


def sample_with(trained, spec: str, n: int, temperature: float = 1.0,
                seed: int | None = None) -> tuple[torch.Tensor, str]:
    """(``n`` examples in data units decoded from sampler ``spec``'s codes (means of p(x|z); mixed-type tables:
    text columns drawn from p(category|z), as :meth:`TrainedVAE.sample` does), the note)."""
    import math

    if n < 1:
        raise UsageError(f"-n must be at least 1, got {n}")
    if not math.isfinite(temperature) or temperature <= 0:
        raise UsageError(f"--temperature must be a positive finite number, got {temperature}")
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    z, note = _codes(trained, spec, n, temperature, gen)
    if trained.schema is not None:  # the same generator draws the codes, then the categories
        return trained.decode_drawn(z, gen), note
    return trained.decode(z), note
