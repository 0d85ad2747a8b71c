"""Numbers that tell the truth about a trained VAE.

- −ELBO, reconstruction NLL and KL (nats per example), and bits per dimension;
- the importance-weighted bound IWAE_k ≤ log p(x) (Burda et al. 2015), batched over examples and
  importance samples together and computed in chunks, so k = 5000 runs in bounded memory;
- active units (Burda et al.: dimension u is active when Var_x(E_q[z_u]) > 0.01) and KL per dimension,
  with a warning and the usual remedies when the posterior has collapsed;
- reconstruction error (MSE, and binary cross-entropy for data in [0, 1]).

All functions take a :class:`~vaekit.model.VAE` and data already in the model's units.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .._memory import release_free_memory
from ..core.inference import chunking, draw, in_eval_mode, log_weights, posterior_draws  # noqa: F401
from ..core.objectives import elbo_parts, elbo_summary, evaluate_elbo  # noqa: F401 (re-exported: vaekit.evaluation API)
from ..core.vae import VAE, gaussian_kl
from ..data.dataset import in_unit_interval
from ..data.mapped_reads import row_chunks

ACTIVE_THRESHOLD = 0.01  # Burda et al. (2015)


def _device(model: VAE) -> torch.device:
    return next(model.parameters()).device


def _rows(c: torch.Tensor | None, i: int, n: int, device: torch.device) -> torch.Tensor | None:
    """Rows i..i+n of the conditions (None for unconditional models), on ``device``."""
    return None if c is None else c[i: i + n].to(device)


def iwae_bound(model: VAE, x: torch.Tensor, k: int, rows_per_chunk: int = 2048,
               c: torch.Tensor | None = None, mask: torch.Tensor | None = None,
               noise: torch.Tensor | None = None) -> torch.Tensor:
    """Per-example IWAE_k = log (1/k) Σ_i p(x, z_i) / q(z_i|x), z_i ~ q(z|x): a lower bound on log p(x) (nats).

    Examples and importance samples are batched together: each decoder call sees about
    ``rows_per_chunk`` rows (examples × samples), which bounds memory whatever ``k`` is; 2048 rows keep the
    784-400-20 decoder's activations in cache (bench/eval_speed: 1.5x faster than 16384).
    ``noise`` (``[k, latent_dim]`` standard-normal draws, see :func:`importance_bounds`) makes it a
    deterministic function of each example.
    """
    return importance_bounds(model, x, k, rows_per_chunk, c, noise, mask)[0]


@in_eval_mode
def importance_bounds(model: VAE, x: torch.Tensor, k: int, rows_per_chunk: int = 2048,
                      c: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                      mask: torch.Tensor | None = None,
                      progress: Callable[[int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example (IWAE_k, ELBO_k) from the same k importance samples (nats per example).

    IWAE_k = log mean_i w_i and ELBO_k = mean_i log w_i, with w_i = p(x, z_i) / q(z_i|x); ELBO_k ≤ IWAE_k
    ≤ log p(x) in expectation. With ``noise`` (``[k, latent_dim]`` standard-normal draws) every example
    uses the same ε_i (z_i = μ(x) + σ(x) ε_i: common random numbers), so the result for an example does
    not depend on which other examples share its batch; without it, fresh draws from torch's global RNG.
    With ``mask`` (1 = observed) p(x|z) is the likelihood of the observed entries only.
    ``progress(n)`` is called after each batch of examples with the number of examples it finished.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if noise is not None and tuple(noise.shape) != (k, model.latent_dim):
        raise ValueError(f"noise must have shape [{k}, {model.latent_dim}], got {list(noise.shape)}")
    dev = _device(model)
    n_ex, s_chunk = chunking(len(x), k, rows_per_chunk)
    iw_out, elbo_out = [], []
    calls = 0
    for i in row_chunks(x, n_ex):  # range(); a memory-mapped x is read ahead in large requests
        xb = x[i: i + n_ex].to(dev)
        b = len(xb)
        cb = _rows(c, i, n_ex, dev)
        mb = _rows(mask, i, n_ex, dev)
        draws = posterior_draws(model, xb, cb)  # Gaussian, or a sparse VAE's spike-and-slab
        acc = torch.full((b,), -math.inf, device=dev)
        total = torch.zeros(b, device=dev)
        for j in range(0, k, s_chunk):
            s = min(s_chunk, k - j)
            z, log_q = draws(s, None if noise is None else noise[j: j + s])
            log_w = log_weights(model, xb, z, log_q, cb, mb)[0]
            acc = torch.logaddexp(acc, torch.logsumexp(log_w, dim=0))
            total += log_w.sum(0)
            calls += 1
            if calls % 8 == 0:
                release_free_memory()
        iw_out.append((acc - math.log(k)).cpu())
        elbo_out.append((total / k).cpu())
        if progress is not None:
            progress(b)
    release_free_memory()
    if not iw_out:
        return torch.empty(0), torch.empty(0)
    return torch.cat(iw_out), torch.cat(elbo_out)


@in_eval_mode
def reconstruction_errors(model: VAE, x: torch.Tensor, batch_size: int = 1024,
                          c: torch.Tensor | None = None) -> torch.Tensor:
    """Per-example sum over features of the squared error of the mean reconstruction at the posterior
    mean (model units: standardized columns for tables)."""
    dev = _device(model)
    out = []
    for i in row_chunks(x, batch_size):
        xb = x[i: i + batch_size].to(dev)
        rec = model.reconstruct(xb, _rows(c, i, batch_size, dev))
        out.append(((rec - xb) ** 2).flatten(1).sum(1).cpu())
    return torch.cat(out) if out else torch.empty(0)


@in_eval_mode
def posterior_stats(model: VAE, x: torch.Tensor, batch_size: int = 1024,
                    c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and log-variances ``[N, latent_dim]`` of q(z|x) for every example."""
    dev = _device(model)
    mus, logvars = [], []
    for i in row_chunks(x, batch_size):
        mu, logvar = model.posterior_params(x[i: i + batch_size].to(dev), _rows(c, i, batch_size, dev))
        mus.append(mu.cpu())
        logvars.append(logvar.cpu())
    return torch.cat(mus), torch.cat(logvars)


def _all_chunks(x: torch.Tensor, rows: int, test: Callable[[torch.Tensor], bool]) -> bool:
    """Whether ``test`` holds for every chunk of ``rows`` rows of ``x`` (stops at the first that fails): a check over
    all values with temporaries of one chunk, not of ``x`` (a memory-mapped split may be larger than memory)."""
    return all(test(x[i: i + rows]) for i in row_chunks(x, rows))


def active_units(mu: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> tuple[int, torch.Tensor]:
    """Number of active latent dimensions and the per-dimension activity Var_x(E_q[z_u])."""
    activity = mu.var(dim=0, unbiased=True) if len(mu) > 1 else torch.zeros(mu.shape[1])
    return int((activity > threshold).sum()), activity


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean over examples of KL(q(z_u|x) || N(0, 1)) for each latent dimension u (nats)."""
    return gaussian_kl(mu, logvar).mean(0)


def collapse_warning(n_active: int, latent_dim: int) -> str | None:
    """A warning with the usual remedies when few or no latent dimensions carry information."""
    remedies = ("remedies: KL warm-up (--kl-warmup), free bits (--free-bits), a smaller beta (--beta), "
                "or a weaker decoder")
    if n_active == 0:
        return (f"posterior collapse: none of the {latent_dim} latent dimensions is active (the encoder's "
                f"means do not vary with the input, so z carries no information); {remedies}")
    if n_active < max(1, latent_dim // 4):
        return (f"partial posterior collapse: only {n_active} of {latent_dim} latent dimensions are active; "
                f"{remedies}, or a smaller --latent-dim if the rest are not needed")
    return None


@in_eval_mode
def reconstruction_error(model: VAE, x: torch.Tensor, batch_size: int = 1024,
                         c: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> dict[str, float]:
    """Mean squared error per feature of the mean reconstruction, and per-example BCE for [0, 1] data
    (over the observed entries only where ``mask`` is given)."""
    dev = _device(model)
    se = 0.0
    bce = 0.0
    unit = _all_chunks(x, batch_size, in_unit_interval)  # no [N, D] boolean temporary (a mapped split: no copy)
    for i in row_chunks(x, batch_size):
        xb = x[i: i + batch_size].to(dev)
        mb = _rows(mask, i, batch_size, dev)
        rec = model.reconstruct(xb, _rows(c, i, batch_size, dev))
        rec = rec.clamp(0, 1) if unit else rec
        sq = (rec - xb) ** 2
        se += float((sq if mb is None else sq * mb).sum())
        if unit:
            b = torch.nn.functional.binary_cross_entropy(rec.clamp(1e-6, 1 - 1e-6), xb, reduction="none")
            bce += float((b if mb is None else b * mb).sum())
    d = x[0].numel() if len(x) else 1
    count = float(mask.sum()) if mask is not None else len(x) * d
    res = {"mse": se / max(1.0, count)}
    if unit:
        res["bce"] = bce / max(1, len(x))
    return res


def marginal_iwae(model: VAE, x: torch.Tensor, n_classes: int, k: int, rows_per_chunk: int = 2048,
                  noise: torch.Tensor | None = None,
                  progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """Per-example lower bound on log p(x) (nats) of a label-conditional model with a uniform p(y) (M2):
    log Σ_y p(y) p̂_k(x|y), with p̂_k(x|y) = exp IWAE_k(x|y), summed exactly over the K classes.

    A bound because p̂_k(x|y) (importance sampling with q(z|x,y) as proposal) is unbiased for p(x|y), so
    Σ_y p(y) p̂_k(x|y) is unbiased for p(x) and, by Jensen, E log(·) ≤ log p(x). Summing over y exactly (instead
    of drawing y from q(y|x)) costs K times the conditional bound but does not depend on the classifier, which
    sees few labels and can be confidently wrong. With the same ``noise`` it is ≥ IWAE_k(x|y) − log K for every y.
    """
    cols = []
    for y in range(n_classes):
        c = torch.nn.functional.one_hot(torch.full((len(x),), y), n_classes).float()
        cols.append(importance_bounds(model, x, k, rows_per_chunk, c, noise, progress=progress)[0])
    if not cols or len(x) == 0:
        return torch.empty(0)
    return torch.logsumexp(torch.stack(cols, 1), 1) - math.log(n_classes)


def evaluate(model: VAE, x: torch.Tensor, iwae_k: int = 0, batch_size: int = 1024,
             binarized: str | None = None, c: torch.Tensor | None = None,
             mask: torch.Tensor | None = None, *, iwae_n: int | None = None, condition: str | None = None, marginal_classes: int = 0,
             progress: Callable[[int], None] | None = None) -> dict:
    """Everything above for data ``x`` (model units). ``iwae_k = 0`` skips the IWAE bound.

    Returns a JSON-ready dict; likelihoods are nats per example, ``bits_per_dim`` divides the best
    bound on −log p(x) by (number of features × ln 2). ``iwae_n`` limits the IWAE bound to the first ``iwae_n`` examples. For conditional models
    (``c`` given) the bounds are of p(x|c): ``condition`` names c in ``likelihood_of`` (default "c", e.g. "y"
    for labels); ``marginal_classes`` = K > 0 adds the bound on the unconditional log p(x) of a model with a
    uniform p(y) over K labels (:func:`marginal_iwae`, first ``iwae_n`` examples).
    """
    d = x[0].numel()
    recon, kl = elbo_parts(model, x, batch_size, c, mask)
    neg_elbo = recon + kl
    mu, logvar = posterior_stats(model, x, batch_size, c)
    n_active, activity = active_units(mu)
    given = "" if c is None else f"|{condition or 'c'}"
    res: dict = {
        "n": len(x),
        "features": d,
        "units": "nats per example",
        "likelihood_of": f"p(x{given})",
        "neg_elbo": float(neg_elbo.mean()),
        "recon_nll": float(recon.mean()),
        "kl": float(kl.mean()),
        "elbo_estimator": "ELBO (1 posterior sample)",
        "active_units": n_active,
        "latent_dim": model.latent_dim,
        "activity": activity.tolist(),
        "kl_per_dim": kl_per_dim(mu, logvar).tolist(),
        **reconstruction_error(model, x, batch_size, c, mask),
    }
    if getattr(model, "vamp", None) is not None:
        res["kl_per_dim_note"] = ("KL of each dimension against N(0, 1), a diagnostic: the VampPrior's KL (in kl) "
                                  "has no per-dimension form")
    if getattr(model, "spike_prior", None) is not None:  # sparse-vae: its own KL per dimension, and sparsity
        from ..core.sparse import sparse_summary

        res.update(sparse_summary(model, x, batch_size))
    _add_bounds(res, model, x, iwae_k, c, mask, iwae_n, marginal_classes, progress)
    res["likelihood"] = model.likelihood.name
    warnings = _evaluation_warnings(model, x, n_active, binarized)
    if mask is not None:
        res["observed_fraction"] = float(mask.float().mean())
        res["note_missing"] = "likelihoods and reconstruction error are of the observed entries only"
    res["binarized"] = binarized or "no"
    res["warnings"] = warnings
    return res


def _add_bounds(res: dict, model: VAE, x: torch.Tensor, iwae_k: int, c: torch.Tensor | None,
                mask: torch.Tensor | None, iwae_n: int | None, marginal_classes: int,
                progress: Callable[[int], None] | None) -> None:
    """Add to ``res`` (which holds ``neg_elbo``) the IWAE bound on the first ``iwae_n`` examples when
    ``iwae_k > 0``, ``bits_per_dim`` of the best bound and its name, and the marginal bound of
    :func:`marginal_iwae` when ``marginal_classes > 0``."""
    d = res["features"]
    best = res["neg_elbo"]
    best_name = "ELBO (1 sample)"
    n_iw = len(x) if iwae_n is None else max(1, min(len(x), iwae_n))
    part = "" if n_iw == len(x) else f", first {n_iw} of {len(x)} examples"
    if iwae_k > 0:
        iw = importance_bounds(model, x[:n_iw], iwae_k, c=None if c is None else c[:n_iw],
                               mask=None if mask is None else mask[:n_iw], progress=progress)[0]
        res["iwae_k"] = iwae_k
        res["iwae_n"] = n_iw
        res["neg_iwae"] = float(-iw.mean())
        best, best_name = res["neg_iwae"], f"IWAE (k={iwae_k}{part})"
    res["bits_per_dim"] = best / (d * math.log(2))
    res["bound"] = best_name
    if marginal_classes > 0 and iwae_k > 0:
        lp = marginal_iwae(model, x[:n_iw], marginal_classes, iwae_k, progress=progress)
        res["neg_iwae_marginal"] = float(-lp.double().mean())
        res["bits_per_dim_marginal"] = res["neg_iwae_marginal"] / (d * math.log(2))
        res["marginal_estimator"] = (f"log Σ_y p(y) exp IWAE_k(x|y), exact sum over {marginal_classes} labels with "
                                     f"uniform p(y), k={iwae_k} per label{part}")


def _evaluation_warnings(model: VAE, x: torch.Tensor, n_active: int, binarized: str | None) -> list[str]:
    """Warnings about the numbers of :func:`evaluate`: posterior collapse, and a Bernoulli likelihood on
    continuous targets (a cross-entropy, not a normalized log-likelihood)."""
    warnings = []
    w = collapse_warning(n_active, model.latent_dim)
    if w:
        warnings.append(w)
    if model.likelihood.name == "bernoulli" and not binarized and \
            not _all_chunks(x, 1024, lambda b: not bool(((b > 0) & (b < 1)).any())):
        warnings.append("Bernoulli likelihood on continuous targets in [0, 1]: the number is a cross-entropy, "
                        "not a normalized log-likelihood; train and evaluate with --binarize dynamic or static "
                        "for values comparable with the literature")
    return warnings
