"""The ``seq-vae`` family: a VAE of strings (SMILES, SELFIES, text) as token sequences, after the MOSES VAE
(Polykovskiy et al. 2020; Gómez-Bombarelli et al. 2018).

- encoder: token embedding → bidirectional GRU over the string (packed: padding never enters it) → the last
  hidden state of each direction → μ, log σ² of q(z|x);
- decoder: autoregressive GRU with teacher forcing; z gives its initial hidden state (a linear map, every layer)
  and is concatenated to the embedding of every input token, as in the MOSES VAE;
- likelihood: categorical per token, −log p(x|z) = Σ_t −log softmax(logits_t)[x_{t+1}] over the tokens up to
  and including ``eos``; padding positions are excluded (``ignore_index``), so padding never changes the loss;
- against posterior collapse: the trainer's β warm-up (``--kl-warmup``, epochs), free bits, and word dropout
  (Bowman et al. 2016: each decoder input token after ``bos`` becomes ``<unk>`` with probability
  ``--word-dropout``, training only).
Validation: the −ELBO per string (β = 1), one z draw from a fixed generator (the same draw every epoch).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import TrainConfig
from ..core.objectives import Objective, StepOutput, gaussian_kl
from ..data.batch import Batch
from ..data.dataset import Split
from ..data.sequences import BOS, EOS, PAD, UNK
from ..errors import UsageError
from .base import BatchSource, Family

#: the MOSES VAE (moses/vae/config.py): one-hot-sized embedding, GRU encoder 256 (one direction, 1 layer), GRU
#: decoder 512 × 3 layers, latent 128, batch 512, lr 3e-4, gradient clip 50, KL weight 0 → 0.05 per token.
#: vaekit's defaults keep the latent size and clip and scale the recurrent nets down about 6× in multiply-adds
#: per token (bidirectional 2 × 128 encoder = MOSES's 256-wide state; decoder 256 × 2 layers), so an epoch of
#: 250k molecules fits a CPU session; β = 1 (the ELBO) warmed up over 2 epochs. A CPU budget allows a few
#: epochs, not MOSES's 100, so the batch is 64 (not 512: 8× the optimizer steps per epoch at about the same
#: molecules/s) and lr 2e-3: on 50k MOSES molecules, one epoch, batch 512 / lr 1e-3 gave a validation −ELBO of
#: 47.6 nats per molecule and 1.5% valid samples; 128 / 2e-3, 29.3 and 25%; 64 / 2e-3, 27.9 and 41%.
#: README "Molecules" has the numbers.
SEQ_DEFAULTS: dict[str, Any] = {"hidden": [128, 256], "latent_dim": 128, "embedding_dim": 32, "decoder_layers": 2,
                                "batch_size": 64, "lr": 2e-3, "grad_clip": 50.0, "kl_warmup": 2}


class SeqVAE(nn.Module):
    """Bidirectional GRU encoder, autoregressive GRU decoder; examples are int64 token rows ``[B, L]``."""

    def __init__(self, vocab_size: int, length: int, embedding_dim: int, encoder_hidden: int, decoder_hidden: int,
                 decoder_layers: int, latent_dim: int, dropout: float = 0.0):
        super().__init__()
        self.vocab_size, self.latent_dim, self.shape = vocab_size, latent_dim, (length,)
        self.cond_dim = 0
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD)
        self.encoder = nn.ModuleDict({
            "rnn": nn.GRU(embedding_dim, encoder_hidden, batch_first=True, bidirectional=True),
            "mu": nn.Linear(2 * encoder_hidden, latent_dim), "logvar": nn.Linear(2 * encoder_hidden, latent_dim)})
        self.decoder = nn.ModuleDict({
            "lat": nn.Linear(latent_dim, decoder_hidden),
            "rnn": nn.GRU(embedding_dim + latent_dim, decoder_hidden, num_layers=decoder_layers, batch_first=True,
                          dropout=dropout if decoder_layers > 1 else 0.0),
            "out": nn.Linear(decoder_hidden, vocab_size)})

    def posterior_params(self, x: torch.Tensor, c: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ²) of q(z|x) for token rows ``x`` (padding is packed away, never read)."""
        n = (x != PAD).sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.embedding(x), n, batch_first=True, enforce_sorted=False)
        _, h = self.encoder["rnn"](packed)  # [2, B, H]: the last state of each direction
        h = torch.cat([h[0], h[1]], dim=1)
        return self.encoder["mu"](h), self.encoder["logvar"](h)

    def _h0(self, z: torch.Tensor) -> torch.Tensor:
        rnn = self.decoder["rnn"]
        return self.decoder["lat"](z).unsqueeze(0).repeat(rnn.num_layers, 1, 1).contiguous()

    def logits(self, inputs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: next-token logits ``[B, T, V]`` after each input token ``[B, T]`` given z."""
        e = self.embedding(inputs)
        out, _ = self.decoder["rnn"](torch.cat([e, z.unsqueeze(1).expand(-1, e.shape[1], -1)], dim=2), self._h0(z))
        return self.decoder["out"](out)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, max_length: int, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Token rows ``[B, max_length]`` decoded from z: ``bos``, then one token per step, drawn from
        softmax(logits / temperature) (``temperature`` 0: the most likely token, greedy), until ``eos``."""
        b, dev = len(z), z.device
        h = self._h0(z)
        tok = torch.full((b,), BOS, dtype=torch.int64, device=dev)
        out = torch.full((b, max_length), PAD, dtype=torch.int64, device=dev)
        out[:, 0] = BOS
        done = torch.zeros(b, dtype=torch.bool, device=dev)
        banned = torch.tensor([PAD, BOS, UNK], device=dev)
        for t in range(1, max_length):
            step = torch.cat([self.embedding(tok), z], dim=1).unsqueeze(1)
            o, h = self.decoder["rnn"](step, h)
            logits = self.decoder["out"](o[:, 0]).float()
            logits[:, banned] = -torch.inf
            if temperature == 0:
                tok = logits.argmax(1)
            else:
                p = torch.softmax(logits / temperature, dim=1)
                tok = torch.multinomial(p.cpu(), 1, generator=generator).squeeze(1).to(dev)
            tok = torch.where(done, torch.full_like(tok, PAD), tok)
            out[:, t] = tok
            done |= tok == EOS
            if bool(done.all()):
                break
        return out


def token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """−log p(x|z) per row (nats): the categorical NLL of each target token, padding excluded."""
    return F.cross_entropy(logits.transpose(1, 2).float(), targets, ignore_index=PAD, reduction="none").sum(1)


def word_dropout(inputs: torch.Tensor, p: float) -> torch.Tensor:
    """Decoder inputs with each token after ``bos`` (padding aside) replaced by ``<unk>`` with probability ``p``
    (Bowman et al. 2016), drawn from torch's global RNG (saved in checkpoints: resume stays exact)."""
    if p <= 0:
        return inputs
    drop = (torch.rand(inputs.shape, device=inputs.device) < p) & (inputs != PAD)
    drop[:, 0] = False
    return inputs.masked_fill(drop, UNK)


def sequence_elbo(model: SeqVAE, x: torch.Tensor, beta: float = 1.0, free_bits: float = 0.0, p_word: float = 0.0,
                  noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss to minimise, recon [B], kl [B]) of token rows ``x``: one z draw (``noise``: its standard-normal
    draw, else fresh), teacher forcing on ``x[:, :-1]`` predicting ``x[:, 1:]``."""
    mu, logvar = model.posterior_params(x)
    eps = torch.randn_like(mu) if noise is None else noise
    z = mu + eps * (0.5 * logvar).exp()
    recon = token_nll(model.logits(word_dropout(x[:, :-1], p_word), z), x[:, 1:])
    kl_dims = gaussian_kl(mu, logvar)
    kl = kl_dims.sum(1)
    if free_bits > 0:
        loss = recon.mean() + beta * kl_dims.mean(0).clamp(min=free_bits).sum()
    else:
        loss = (recon + beta * kl).mean()
    return loss, recon, kl


def trim(x: torch.Tensor) -> torch.Tensor:
    """Token rows cut after their longest row's last token (less padding to run through the decoder)."""
    return x[:, : max(int((x != PAD).sum(1).max()), 2)] if len(x) else x


class SeqObjective(Objective):
    """The β-weighted ELBO of strings; validated by the −ELBO per string (``val_loss``)."""

    def __init__(self, cfg: TrainConfig):
        self.free_bits, self.p_word = cfg.free_bits, cfg.word_dropout

    def step(self, model: SeqVAE, batch: Batch, beta: float) -> StepOutput:
        loss, recon, kl = sequence_elbo(model, batch.x, beta, self.free_bits, self.p_word)
        with torch.no_grad():
            sums = torch.stack([(recon + beta * kl).sum(), recon.sum(), kl.sum()])
        return StepOutput(loss, sums)

    def epoch_row(self, sums: torch.Tensor, n: int, steps: int) -> dict[str, float]:
        loss, recon, kl = (sums / n).tolist()
        return {"train_loss": loss, "train_recon": recon, "train_kl": kl}

    @torch.no_grad()
    def validate(self, model: SeqVAE, split: Split, batch_size: int) -> dict[str, float]:
        m = sequence_bound(model, split.x, batch_size)
        return {"val_loss": m["elbo"], "val_recon": m["recon"], "val_kl": m["kl"]}


@torch.no_grad()
def sequence_bound(model: SeqVAE, x: torch.Tensor, batch_size: int = 1024, seed: int = 0) -> dict[str, float]:
    """The one-sample −ELBO, reconstruction NLL and KL per string of token rows ``x`` (nats), in eval mode, with
    z drawn from a generator seeded ``seed`` (the same numbers on every call)."""
    was = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    dev = next(model.parameters()).device
    rec = kl = 0.0
    try:
        for i in range(0, len(x), batch_size):
            b = trim(x[i: i + batch_size].to(dev))
            noise = torch.randn(len(b), model.latent_dim, generator=gen).to(dev)
            _, r, k = sequence_elbo(model, b, noise=noise)
            rec, kl = rec + float(r.sum()), kl + float(k.sum())
    finally:
        model.train(was)
    n = max(len(x), 1)
    return {"elbo": (rec + kl) / n, "recon": rec / n, "kl": kl / n}


class SequenceBatches(BatchSource):
    """Batches of token rows, each cut to its longest string."""

    def epoch(self, perm: torch.Tensor, gen: torch.Generator) -> Iterator[Batch]:
        t, bs = self.train, self.batch_size
        for k in range(self.steps):
            yield Batch(trim(t.x[perm[k * bs: (k + 1) * bs]]))


class SeqVAEFamily(Family):
    name = "seq-vae"
    data_kind = "sequences"
    example_model = False
    other_commands = ("it is a run of strings: use `vaekit sample|reconstruct|encode|interpolate|evaluate {run} ...` "
                      "(README, Molecules); its test -ELBO is in results.json")
    unsupported = {
        "model": ("mlp", "its networks are GRUs (sizes: --hidden ENCODER,DECODER, --embedding-dim, --decoder-layers)"),
        "iw_samples": (1, "it trains the β-weighted ELBO"),
        "corruption": (None, "word dropout (--word-dropout) is its corruption"),
        "binarize": ("none", "tokens are categories"),
        "missing": ("error", "strings have no missing cells"),
        "conditional": (False, "it is not conditional"),
        "condition_columns": (None, "it is not conditional"),
        "semi_supervised": (False, "it is not semi-supervised"),
        "gaussian_std": (None, "its likelihood is categorical"),
        "compile": (False, "its GRUs run step by step when sampling"),
        "label_column": (None, "strings have no labels here"),
        "channels": (None, "its networks are GRUs"),
        "prior": ("normal", "its prior is N(0, I)"),
    }

    def defaults(self, cfg: TrainConfig) -> TrainConfig:
        """``cfg`` with the scaled MOSES settings (:data:`SEQ_DEFAULTS`) where the user set nothing."""
        return cfg.model_copy(update={k: v for k, v in SEQ_DEFAULTS.items() if k not in cfg.model_fields_set})

    def check(self, cfg: TrainConfig) -> None:
        super().check(cfg)
        if len(cfg.hidden) != 2:
            raise UsageError(f"--hidden for seq-vae is ENCODER,DECODER (two GRU sizes, e.g. 128,256), got "
                             f"{','.join(map(str, cfg.hidden))}")
        if cfg.likelihood not in ("auto", "categorical"):
            raise UsageError(f"seq-vae models tokens with --likelihood categorical; drop --likelihood {cfg.likelihood}")

    def build_for_run(self, cfg: TrainConfig, info: dict, shape: tuple[int, ...],
                      cond: Any) -> tuple[nn.Module, nn.Module]:
        model = self.build(cfg, len(info["data"]["vocab"]), int(shape[0]))
        return model, model

    def build(self, cfg: TrainConfig, vocab_size: int, length: int) -> SeqVAE:
        return SeqVAE(vocab_size, length, cfg.embedding_dim, cfg.hidden[0], cfg.hidden[1], cfg.decoder_layers,
                      cfg.latent_dim, cfg.dropout)

    def objective(self, cfg: TrainConfig, train: Split) -> Objective:
        return SeqObjective(cfg)

    def batch_source(self, cfg: TrainConfig, train: Split) -> BatchSource:
        return SequenceBatches(train, cfg.batch_size)
