"""``TrainedVAE``: a trained model with what it needs to take raw data in and give data-space values out.

Inputs are raw (as :func:`vaekit.data.load_source` returns them): tables are standardized with the scaler
fitted on the training split and outputs mapped back to the original units; conditional models take
condition vectors ``c`` built by :attr:`conditioning` (``labels(...)``, ``attributes(...)``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .conditions import Conditioning
from .config import TrainConfig
from .data import Dataset, Standardizer, in_unit_interval, load_source
from .data.kinds import kind_of
from .errors import DataError, UsageError
from .evaluation.metrics import evaluate_elbo
from .core.vae import VAE


def _tensor(v: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(v) if not torch.is_tensor(v) else v, dtype=torch.float32)


class TrainedVAE:
    """A trained VAE: ``encode``, ``decode``, ``sample``, ``reconstruct``, ``elbo`` in data units."""

    def __init__(self, model: VAE, config: TrainConfig, info: dict, run_dir: Path | None = None,
                 scaler: Standardizer | None = None, result: Any = None,
                 conditioning: Conditioning | None = None):
        self.model = model.eval()
        self.config = config
        self.info = info
        self.run_dir = run_dir
        self.scaler = scaler
        self.result = result  # TrainResult when just trained
        self.conditioning = conditioning
        self.classifier: torch.nn.Module | None = None  # q(y|x) of a semi-supervised (M2) run

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim

    @property
    def shape(self) -> tuple[int, ...]:
        return self.model.shape

    @property
    def schema(self) -> list[dict] | None:
        """Column schema of a mixed-type table run (text columns as one-hot blocks), else None."""
        return self.info.get("data", {}).get("schema")

    def table_cells(self, values: Any) -> tuple[list[str], np.ndarray]:
        """(original column names, text cells ``[rows, columns]``) of feature rows in data units, for a
        mixed-type table run: numbers for numeric columns, category names (the block's argmax) for text ones."""
        from .data.tables import table_cells

        if self.schema is None:
            raise UsageError("this run was not trained on a table with text columns")
        arr = values.detach().cpu().numpy() if torch.is_tensor(values) else np.asarray(values)
        return [c["name"] for c in self.schema], table_cells(self.schema, arr, lambda v: f"{v:.7g}")

    def to(self, device: str | torch.device) -> "TrainedVAE":
        self.model.to(device)
        return self

    # -- data in and out -------------------------------------------------------------------------
    def to_model_units(self, x: Any) -> torch.Tensor:
        """Examples in data units → the model's input (tables standardized, missing cells mean-filled), on
        the model's device; a one-line error when their shape is not the training data's."""
        x = _tensor(x)
        if tuple(x.shape[1:]) != self.shape:
            raise UsageError(f"data has examples of shape {list(x.shape[1:])} but the model was trained on "
                             f"{list(self.shape)}; pass data like the training data (same --image-size)")
        if self.scaler is not None:
            x = self.scaler.transform(x)
        if self.config.missing == "mask":  # missing cells: mean-filled (0 in standardized units), as in training
            x = torch.nan_to_num(x, nan=0.0)
        return x.to(self.device)

    def to_data_units(self, x: torch.Tensor) -> torch.Tensor:
        """The model's outputs → data units (tables back to their own scale), on the CPU."""
        x = x.detach().cpu()
        return self.scaler.inverse_transform(x) if self.scaler is not None else x

    def condition_rows(self, c: Any, n: int) -> torch.Tensor | None:
        """Condition rows for ``n`` examples: None for unconditional models; a single row is repeated."""
        if self.model.cond_dim == 0:
            if c is not None:
                raise UsageError("this run is not conditional; drop the label/attributes")
            return None
        if c is None:
            what = "--label" if self.conditioning and self.conditioning.kind == "label" else "--attributes"
            raise UsageError(f"this run is a conditional VAE: give the condition ({what})")
        ct = _tensor(c)
        if ct.dim() == 1:
            ct = ct.unsqueeze(0)
        if len(ct) == 1 and n != 1:
            ct = ct.repeat(n, 1)
        if ct.shape != (n, self.model.cond_dim):
            raise UsageError(f"conditions must have shape [{n}, {self.model.cond_dim}], got {list(ct.shape)}")
        return ct.to(self.device)

    @torch.no_grad()
    def _batched(self, fn: Callable, x: torch.Tensor, c: torch.Tensor | None, batch_size: int = 1024) -> torch.Tensor:
        from .data.mapped_reads import row_chunks

        return torch.cat([fn(x[i: i + batch_size], None if c is None else c[i: i + batch_size]).cpu()
                          for i in row_chunks(x, batch_size)])

    def check_columns(self, columns: list[str] | None, source: str) -> None:
        """A one-line DataError when a table's feature columns differ from the training table's."""
        want = self.info.get("data", {}).get("columns")
        if not self.kind.cells or want is None or columns is None:
            return
        if list(columns) != list(want):
            missing = [c for c in want if c not in columns]
            extra = [c for c in columns if c not in want]
            what = (f"missing {', '.join(missing[:5])}" if missing else "") + \
                ("; " if missing and extra else "") + (f"unexpected {', '.join(extra[:5])}" if extra else "")
            raise DataError(f"{source} has different columns from the training table ({what or 'another order'}); "
                            f"give the columns {', '.join(want[:8])}{', ...' if len(want) > 8 else ''} in that order")

    def dataset_inputs(self, ds: Dataset) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(features in model units, condition rows or None) for a loaded dataset."""
        cond, x, c = self.conditioning, ds.x, None
        if cond is not None and cond.kind == "attributes":
            x, raw = cond.take(ds.x, ds.columns, ds.attributes, ds.attribute_names)
            self.check_columns(cond.feature_columns(ds.columns) if ds.columns else None, ds.name)
            c = cond.encode_raw(raw)
        elif kind_of(ds.kind).cells:
            self.check_columns(ds.columns, ds.name)
        elif cond is not None:
            if ds.y is None:
                raise UsageError(f"this run is conditioned on labels and {ds.name} has none; use labelled data")
            c = cond.from_labels(ds.y, ds.classes)
        return self.to_model_units(x), None if c is None else c.to(self.device)

    # -- uses ------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: Any, sample: bool = False, generator: torch.Generator | None = None,
               c: Any = None) -> torch.Tensor:
        """Latent codes ``[N, latent_dim]``: posterior means, or one draw from q(z|x) with ``sample``."""
        if self._strings_run("encode", x):  # a seq-vae run given strings: encode_strings
            from .tasks.sequences import encode_strings

            return encode_strings(self, [x] if isinstance(x, str) else list(x), sample, generator)
        xt = self.to_model_units(x)

        def enc(b: torch.Tensor, cb: torch.Tensor | None) -> torch.Tensor:
            if sample and getattr(self.model, "spike_prior", None) is not None:  # sparse-vae: spike-and-slab draw
                from .core.sparse import spike_slab_draw

                m, lv, gamma = self.model.posterior_all(b, cb)
                if generator is None:  # torch's global RNG, as the Gaussian draw below
                    return spike_slab_draw(m, lv, gamma, 1)[0][0]
                with torch.random.fork_rng(devices=[]):  # the draw's RNG seeded from the caller's generator
                    torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
                    return spike_slab_draw(m.cpu(), lv.cpu(), gamma.cpu(), 1)[0][0].to(m.device)
            mu, logvar = self.model.posterior_params(b, cb)
            if not sample:
                return mu
            eps = torch.randn(mu.shape, generator=generator).to(mu.device)
            return mu + eps * (0.5 * logvar).exp()

        return self._batched(enc, xt, self.condition_rows(c, len(xt)))

    @torch.no_grad()
    def decode(self, z: Any, c: Any = None) -> torch.Tensor:
        """Mean of p(x|z[, c]) for latent codes ``z`` ``[N, latent_dim]``, in data units."""
        self._strings_run("decode")
        zt = _tensor(z)
        if zt.dim() != 2 or zt.shape[1] != self.latent_dim:
            raise UsageError(f"latent codes must have shape [N, {self.latent_dim}], got {list(zt.shape)}")
        return self.to_data_units(self._batched(lambda b, cb: self.model.decode(b, cb).mean, zt.to(self.device),
                                          self.condition_rows(c, len(zt))))

    @torch.no_grad()
    def decode_drawn(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mixed-type tables: decoded codes ``z`` in data units, numeric columns at their mean and text columns
        a one-hot draw from p(category|z) (``generator``'s draws) — what a sample is, whichever sampler gave z."""
        params = self._batched(lambda b, _: self.model.decoder_params(b), z.to(self.device), None)
        return self.to_data_units(self.model.likelihood.mean_with_drawn_categories(params, generator))

    @torch.no_grad()
    def sample(self, n: int = 64, temperature: float = 1.0, seed: int | None = None, c: Any = None) -> torch.Tensor:
        """``n`` new examples: means of p(x|z[, c]) with z ~ N(0, temperature² I), in data units. Mixed-type
        tables: text columns are a one-hot draw from p(category|z), not its probabilities."""
        self._strings_run("sample")
        if n < 1:
            raise UsageError(f"-n must be at least 1, got {n}")
        if not math.isfinite(temperature) or temperature <= 0:
            raise UsageError(f"--temperature must be a positive finite number, got {temperature}")
        if self.device.type == "cpu":
            from .data._common import available_memory, check_memory

            per = self._sample_bytes()
            fits = max(1, (available_memory() or 0) // per)
            check_memory(n * per, f"-n {n} samples", f"draw fewer at a time (-n {fits} fits)")
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        if self.schema is not None:  # mixed table: numeric columns at their mean, text columns drawn
            return self.decode_drawn(self.model.prior_draw(n, temperature, gen), gen)
        return self.to_data_units(self.model.sample(n, temperature, generator=gen, c=self.condition_rows(c, n)))

    @torch.no_grad()
    def _sample_bytes(self) -> int:
        """Bytes one sample needs while it is drawn: its latent code, every decoder output (measured on one
        draw, an upper bound of what is alive at once) and the returned example with a copy."""
        sizes = [self.latent_dim]
        hooks = [m.register_forward_hook(lambda _m, _i, o: sizes.append(o.numel()) if torch.is_tensor(o) else None)
                 for m in self.model.decoder.modules()]
        try:
            c = torch.zeros(1, self.model.cond_dim, device=self.device) if self.model.cond_dim else None
            self.model.decode(torch.zeros(1, self.latent_dim, device=self.device), c)
        finally:
            for h in hooks:
                h.remove()
        return 4 * (sum(sizes) + 2 * int(np.prod(self.shape)))

    @torch.no_grad()
    def reconstruct(self, x: Any, c: Any = None, c_out: Any = None) -> torch.Tensor:
        """Mean of p(x|z, c_out) at the posterior mean of each input (under ``c``), in data units."""
        self._strings_run("reconstruct")
        xt = self.to_model_units(x)
        cin = self.condition_rows(c, len(xt))
        cout = cin if c_out is None else self.condition_rows(c_out, len(xt))
        both = None if cin is None else torch.cat([cin, cout], 1)
        d = self.model.cond_dim

        def rec(b: torch.Tensor, cb: torch.Tensor | None) -> torch.Tensor:
            return self.model.reconstruct(b, None if cb is None else cb[:, :d], None if cb is None else cb[:, d:])

        return self.to_data_units(self._batched(rec, xt, both))

    @torch.no_grad()
    def corrupt(self, x: Any, corruption: str, seed: int | None = None) -> torch.Tensor:
        """A corrupted copy of ``x`` (data units in and out; the noise level is in model input units,
        i.e. standard deviations for tables): ``gaussian:σ``, ``masking:p`` or ``salt-pepper:p``."""
        from .data.noise import corrupt, parse_corruption

        spec = parse_corruption(corruption, "--add-noise")
        xt = self.to_model_units(x)
        gen = torch.Generator(device=xt.device).manual_seed(seed) if seed is not None else None
        return self.to_data_units(corrupt(xt, spec, in_unit_interval(xt), generator=gen))

    def denoise(self, x: Any, c: Any = None) -> torch.Tensor:
        """Clean estimate of noisy ``x``: the mean of p(x|z) at the posterior mean (data units). A run trained
        with ``corruption`` (a denoising VAE, Im et al. 2017) has learned to map corrupted inputs to clean ones."""
        return self.reconstruct(x, c=c)

    @torch.no_grad()
    def elbo(self, x: Any, c: Any = None) -> dict[str, float]:
        """Mean −ELBO, reconstruction NLL and KL over ``x`` (nats per example; standardized units for tables)."""
        xt = self.to_model_units(x)
        return evaluate_elbo(self.model, xt, c=self.condition_rows(c, len(xt)))

    def anomaly_scores(self, x: np.ndarray, score: str = "iwae", k: int = 100, seed: int = 0) -> np.ndarray:
        """Per-row anomaly scores (float64, higher = more normal; see :mod:`vaekit.apps.anomaly`) of raw rows
        ``x`` (``[n, D]`` floats in data units, checked by the caller). A ``--missing mask`` run also scores rows
        with NaN cells (the density of the observed ones). Shared by ``vaekit score`` and the estimators."""
        from .tasks.anomaly import log_det, score_examples

        x = np.ascontiguousarray(x, dtype=np.float32)
        bad_rows = 0
        for i in range(0, len(x), 4096):  # temporaries of a chunk, not of x (a memory-mapped split)
            part = x[i: i + 4096]
            bad = ~np.isfinite(part) & (~np.isnan(part) if self.config.missing == "mask" else True)
            bad_rows += int(bad.any(axis=tuple(range(1, x.ndim))).sum())
        if bad_rows:
            raise DataError(f"{bad_rows} row(s) hold infinite values"
                            + ("" if self.config.missing == "mask" else " or NaN (missing cells: score them with a "
                               "run trained with --missing mask)") + "; drop or fix them")
        t = torch.from_numpy(x).reshape(len(x), *self.shape)
        mask = None
        if self.config.missing == "mask":
            observed = ~torch.isnan(t)
            if not bool(observed.reshape(len(t), -1).any(1).all()):
                raise DataError("a row has no observed value; drop rows whose every cell is missing")
            xt = self.to_model_units(t)  # missing cells mean-filled, as in training
            mask = None if bool(observed.all()) else observed.to(xt.dtype)
        else:
            xt = self.to_model_units(t)
        ld = (log_det(self.scaler, mask) if mask is not None else log_det(self.scaler)) if score != "recon" else 0.0
        return score_examples(self.model, xt, score, k, seed, ld, mask=mask)

    @torch.no_grad()
    def predict_proba(self, x: Any) -> torch.Tensor:
        """Class probabilities q(y|x) ``[N, K]`` of a semi-supervised run's classifier."""
        if self.classifier is None:
            raise UsageError("this run has no classifier; train one with --semi-supervised --labeled N")
        xt = self.to_model_units(x)
        return torch.cat([torch.softmax(self.classifier(xt[i: i + 2048]), 1).cpu() for i in range(0, len(xt), 2048)])

    @torch.no_grad()
    def impute(self, x: Any, mask: Any = None, method: str = "iw", k: int = 1000, steps: int = 200,
               burn_in: int | None = None, seed: int | None = 0, draw: bool = False,
               passes: int = 1) -> torch.Tensor:
        """``x`` with its missing entries filled in, in data units; observed entries are returned unchanged.

        Missing entries are NaN, or where ``mask`` (same shape as x, true = observed) is false. ``method``:
        ``iw`` (importance-weighted conditional mean with ``k`` samples, MIWAE), ``gibbs`` (pseudo-Gibbs) or
        ``mwg`` (Metropolis-within-Gibbs, Mattei & Frellsen 2018) with ``steps`` steps; the Gibbs samplers
        give the conditional mean averaged over the chain, or with ``draw`` the chain's last sample.
        The encoder sees missing table cells mean-filled and missing pixels zero-filled; ``passes`` > 1
        refills them with the IW estimate and repeats (for ``gibbs``/``mwg``: starts the chain there).
        """
        from .tasks.completion import METHODS, complete

        if method not in METHODS:
            raise UsageError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
        if self.model.cond_dim:
            raise UsageError("completion needs an unconditional run; this one is conditional")
        if k < 1 or steps < 1 or passes < 1:
            raise UsageError(f"--k, --steps and --passes must be at least 1, got {k}, {steps} and {passes}")
        if draw and method == "iw":
            raise UsageError("a drawn completion needs --method gibbs or mwg")
        raw = _tensor(x)
        if tuple(raw.shape[1:]) != self.shape:
            raise UsageError(f"data has examples of shape {list(raw.shape[1:])} but the model was trained on "
                             f"{list(self.shape)}; pass data like the training data")
        observed = ~torch.isnan(raw)
        if mask is not None:
            m = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask).bool()
            if m.shape != raw.shape:
                raise UsageError(f"the mask has shape {list(m.shape)} but the data has {list(raw.shape)}; "
                                 "give one mask entry per value")
            observed = observed & m
        for col in self.schema or []:  # a categorical cell is observed or missing as a whole block
            a, b = col["start"], col["stop"]
            observed[:, a:b] = observed[:, a:b].all(1, keepdim=True)
        xm = self.scaler.transform(raw) if self.scaler is not None else raw
        xm = torch.where(observed, xm, torch.zeros_like(xm))
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        res = complete(self.model, xm.to(self.device), observed.to(self.device).float(), method=method, k=k,
                       steps=steps, burn_in=burn_in, generator=gen, passes=passes)
        filled = self.to_data_units(res.draw if draw else res.mean)
        self.last_acceptance = res.acceptance
        return torch.where(observed, raw, filled)

    def recommend(self, histories: dict[str, list[str]], k: int = 20) -> dict[str, list[tuple[str, float]]]:
        """Recommendation runs (``mult-vae``/``mult-dae``): for each user (id → the item ids they have), the top
        ``k`` items not in their history, as (item id, probability) best first; users seen in training and new
        users alike. Unknown items are ignored (a warning counts them); see :mod:`vaekit.tasks.recommend`."""
        import warnings

        from .tasks.recommend import recommend

        recs = recommend(self, histories, k)
        if recs.unknown_rows or recs.skipped_users:
            warnings.warn(f"ignored {recs.unknown_rows} item(s) the run never saw; "
                          f"{len(recs.skipped_users)} user(s) with no known item got no recommendations", stacklevel=2)
        if recs.duplicate_rows:
            warnings.warn(f"{recs.duplicate_rows} repeated item(s) in the histories counted once", stacklevel=2)
        return recs.items

    # -- strings (seq-vae runs: vaekit.tasks.sequences) ----------------------------------------------
    def _strings_run(self, method: str, x: Any = None) -> bool:
        """For a seq-vae run: True when ``encode`` is given strings (it delegates), otherwise a one-line
        UsageError naming the string methods; False for every other run."""
        from .tasks.sequences import refuse_tensor_method

        return refuse_tensor_method(self, method, x)

    def sample_strings(self, n: int = 100, temperature: float = 1.0, seed: int | None = None) -> list[str]:
        """``n`` strings from a seq-vae run: z from the prior, tokens drawn from softmax(logits / temperature)
        (0: greedy); SMILES for smiles and selfies runs."""
        from .tasks.sequences import sample_strings

        return sample_strings(self, n, temperature, seed)

    def encode_strings(self, strings: list[str], sample: bool = False, seed: int | None = None) -> torch.Tensor:
        """Latent codes ``[N, latent]`` of strings (posterior means; one draw each with ``sample``)."""
        from .tasks.sequences import encode_strings

        return encode_strings(self, strings, sample, torch.Generator().manual_seed(seed) if seed is not None else None)

    def decode_latent(self, z: Any, temperature: float = 0.0, seed: int | None = None) -> list[str]:
        """Strings decoded from latent codes ``z`` (greedy by default; ``temperature`` > 0 draws tokens)."""
        from .tasks.sequences import decode_latent

        return decode_latent(self, z, temperature, seed)

    def load_data(self, source: str, *, mapped: bool = False, **kwargs: Any) -> Dataset:
        """Load ``source`` the way this run's training data was loaded (same image size, label column).
        ``mapped`` (for callers that take the run's splits): a ``--mmap`` run's own data is opened through its
        split-ordered memory-mapped cache instead of read into memory (:mod:`vaekit.data.mapped_reads`)."""
        if mapped and kwargs.get("image_size", self.config.image_size) == self.config.image_size:
            from .data.mapped_reads import run_data_options

            kwargs.update(run_data_options(self.config, self.info, source, kwargs.get("cache_dir")))
        for k, v in self.kind.load_options(self.config, self.info).items():
            kwargs.setdefault(k, v)
        return load_source(source, **kwargs)

    @property
    def kind(self):
        """The :class:`~vaekit.data.kinds.DataKind` of this run's data (its outputs, checks, loader settings)."""
        return kind_of(self.info["data"]["kind"])
