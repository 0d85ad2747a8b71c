"""Work over a trained ``seq-vae`` run in strings: encode strings to latent codes, decode codes to strings
(greedy or drawn with a softmax temperature), sample, reconstruct, interpolate between two strings.

Strings out are SMILES for ``smiles`` and ``selfies`` runs (SELFIES symbols are decoded back to SMILES) and the
decoded text for ``char`` runs. Whether a SMILES is a valid molecule is not checked here (that is a metric).
"""

from __future__ import annotations

from typing import Any

import torch

from ..data.sequences import PAD, Vocabulary, encode, tokenize
from ..errors import DataError, UsageError

#: strings per network call
CHUNK = 1024


def is_sequence_info(info: dict) -> bool:
    """Whether a run's ``config.json`` describes a run of strings (the ``sequences`` data kind)."""
    return isinstance(info, dict) and isinstance(info.get("data"), dict) and info["data"].get("kind") == "sequences"


def check_sequence_run(trained: Any) -> None:
    """Refuse, in one line, a run that was not trained on strings."""
    if not is_sequence_info(trained.info):
        raise UsageError(f"{trained.run_dir or 'this model'} was not trained on strings (--family seq-vae); "
                         "string methods apply to seq-vae runs only")


#: what each tensor method of TrainedVAE is, for a seq-vae run, in string methods
STRING_METHODS = {"sample": "sample_strings(n, temperature, seed)",
                  "encode": "encode_strings(strings) (or encode(list_of_strings))",
                  "decode": "decode_latent(z)",
                  "reconstruct": "decode_latent(encode_strings(strings))"}


def refuse_tensor_method(trained: Any, method: str, x: Any = None) -> bool:
    """Whether ``trained.<method>`` should delegate to a string method (``encode`` given strings); a one-line
    UsageError naming the string method for any other tensor method of a seq-vae run; False for other runs."""
    if not is_sequence_info(trained.info):
        return False
    if method == "encode" and (isinstance(x, str) or (isinstance(x, (list, tuple)) and x
                                                      and all(isinstance(s, str) for s in x))):
        return True
    raise UsageError(f"{method}() works on tensors and this is a seq-vae run of strings; use "
                     f"{STRING_METHODS[method]} instead")


def vocabulary(trained: Any) -> Vocabulary:
    """The run's vocabulary (saved in ``config.json["data"]``)."""
    check_sequence_run(trained)
    data = trained.info["data"]
    return Vocabulary(data["vocab"], data["tokenizer"])


def max_length(trained: Any) -> int:
    """Tokens per string the run was trained with, ``bos`` and ``eos`` included (the longest training string)."""
    return int(trained.info["data"]["max_length"])


def token_rows(trained: Any, strings: list[str]) -> torch.Tensor:
    """``[N, L]`` token rows of ``strings`` in the run's vocabulary; one-line errors for an empty list, a
    string the tokenizer cannot read and a token the vocabulary lacks (naming the string and the token)."""
    voc = vocabulary(trained)
    if isinstance(strings, str):
        strings = [strings]
    strings = list(strings)
    if not strings:
        raise UsageError("give at least one string")
    tokens, names = [], []
    for i, s in enumerate(strings):
        if not isinstance(s, str) or not s:
            raise DataError(f"string {i} is {s!r}; give non-empty strings")
        try:
            tokens.append(tokenize(s, voc.tokenizer))
        except DataError as err:
            raise DataError(f"string {i}: {err}") from None
        names.append(f"string {i} ({s[:60]!r})")
    return encode(tokens, voc, max_length(trained), names)


@torch.no_grad()
def encode_rows(trained: Any, x: torch.Tensor, sample: bool = False,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Latent codes ``[N, latent]`` of token rows: posterior means, or one draw each (``sample``)."""
    model, dev = trained.model.eval(), trained.device
    out = []
    for i in range(0, len(x), CHUNK):
        b = x[i: i + CHUNK]
        b = b[:, : max(int((b != PAD).sum(1).max()), 2)].to(dev)
        mu, logvar = model.posterior_params(b)
        if sample:
            mu = mu + torch.randn(mu.shape, generator=generator).to(dev) * (0.5 * logvar).exp()
        out.append(mu.cpu())
    return torch.cat(out)


def encode_strings(trained: Any, strings: list[str], sample: bool = False,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Latent codes of strings (posterior means, or draws with ``sample``)."""
    return encode_rows(trained, token_rows(trained, strings), sample, generator)


@torch.no_grad()
def decode_latent(trained: Any, z: Any, temperature: float = 0.0, seed: int | None = None,
                  length: int | None = None) -> list[str]:
    """Strings decoded from latent codes ``z`` ``[N, latent]``: greedy (``temperature`` 0, the default) or each
    token drawn from softmax(logits / temperature); at most ``length`` tokens (default: the run's maximum)."""
    voc = vocabulary(trained)
    if not temperature >= 0 or temperature > 100:
        raise UsageError(f"--temperature must be between 0 (greedy) and 100, got {temperature}")
    zt = torch.as_tensor(z, dtype=torch.float32)
    if zt.dim() == 1:
        zt = zt.unsqueeze(0)
    if zt.dim() != 2 or zt.shape[1] != trained.latent_dim:
        raise UsageError(f"latent codes must have shape [N, {trained.latent_dim}], got {list(zt.shape)}")
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    out: list[str] = []
    for i in range(0, len(zt), CHUNK):
        rows = trained.model.eval().generate(zt[i: i + CHUNK].to(trained.device), length or max_length(trained),
                                             temperature, gen)
        out += voc.strings(rows.cpu())
    return out


def sample_strings(trained: Any, n: int = 100, temperature: float = 1.0, seed: int | None = None) -> list[str]:
    """``n`` strings from the model: z from the prior N(0, I), tokens drawn with ``temperature`` (0: greedy)."""
    if not 1 <= n <= 10_000_000:
        raise UsageError(f"-n must be between 1 and 10000000, got {n}")
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    z = torch.randn(n, trained.latent_dim, generator=gen)
    return decode_latent(trained, z, temperature, None if seed is None else seed + 1)


def reconstruct_rows(trained: Any, x: torch.Tensor) -> list[str]:
    """Greedy decoding of the posterior mean of each token row (as long as the run's maximum or the input)."""
    return decode_latent(trained, encode_rows(trained, x), 0.0, length=max(max_length(trained), x.shape[1]))


def exact_reconstruction(trained: Any, x: torch.Tensor) -> float:
    """Fraction of token rows whose greedy reconstruction is the same string."""
    voc = vocabulary(trained)
    rec = reconstruct_rows(trained, x)
    return sum(a == b for a, b in zip(voc.strings(x), rec)) / max(len(x), 1)


def evaluate_strings(trained: Any, data: str | None = None, split: str = "test", seed: int = 0) -> dict[str, Any]:
    """The one-sample −ELBO, reconstruction NLL and KL per string (nats; z drawn with ``seed``) of ``split`` of
    ``data`` (default: the run's own file, split as in training), and the fraction of (up to 1000) of its strings
    that greedy decoding of their posterior mean gives back exactly."""
    from ..families.seq_vae import sequence_bound

    check_sequence_run(trained)
    names = ("train", "validation", "test")
    if split not in names:
        raise UsageError(f"--split must be one of {', '.join(names)}, got {split!r}")
    source = trained.config.data if data is None else str(data)
    ds = trained.load_data(source)
    x = trained.kind.split(ds, trained.config)[names.index(split)].x
    if len(x) == 0:
        raise UsageError(f"the {split} split of {source} is empty; choose another --split")
    same = ds.fingerprint() == trained.info["data"].get("fingerprint")
    return {"data": source, "split": split, **({"same_data_as_training": True} if same else {}), "strings": len(x),
            "units": "nats per string", **sequence_bound(trained.model, x.to(trained.device), seed=seed),
            "reconstructed_exactly": exact_reconstruction(trained, x[:1000]),
            "reconstruction_strings": min(len(x), 1000)}


def interpolate_strings(trained: Any, start: str, end: str, steps: int = 10) -> list[tuple[float, str]]:
    """The decoded straight path between the posterior means of two strings: ``(t, string)`` at ``steps``
    evenly spaced t in [0, 1] (greedy), each string kept once, at its first t."""
    if not 2 <= steps <= 10_000:
        raise UsageError(f"--steps must be between 2 and 10000, got {steps}")
    z = encode_strings(trained, [start, end])
    t = torch.linspace(0, 1, steps)
    path = decode_latent(trained, z[0] + t[:, None] * (z[1] - z[0]))
    seen: set[str] = set()
    out = []
    for ti, s in zip(t.tolist(), path):
        if s not in seen:
            seen.add(s)
            out.append((round(ti, 6), s))
    return out
