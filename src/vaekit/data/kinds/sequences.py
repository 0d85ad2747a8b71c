"""Sequences: strings (SMILES, SELFIES, any text) as padded int64 token rows ``[N, L]`` (:mod:`vaekit.data.sequences`),
split at random like tables; a categorical likelihood per token; outputs as one string per line.

Claim rule: a .smi/.smiles file (gzipped too) is claimed by this kind; a .txt file or a CSV column of strings is
chosen by the family that needs it (``seq-vae``'s ``data_kind``), which passes the tokenizer. Without a tokenizer (another family)
the load is refused in one line naming ``--family seq-vae``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import DataError, UsageError
from ..dataset import Dataset
from .base import DataKind


@dataclass
class SequenceDataset(Dataset):
    """A :class:`Dataset` of token rows with its vocabulary (:class:`~vaekit.data.sequences.Vocabulary`) and the
    strings it was read from."""

    vocab: Any = None
    strings: list[str] | None = None


class SequenceKind(DataKind):
    name = "sequences"
    bernoulli_ok = False
    bernoulli_refusal = "strings are modelled token by token"
    loss_note = "losses are nats per string (categorical likelihood of each token, padding excluded)"

    def claims(self, source: str, path: Path | None) -> bool:
        from ..sequences import is_sequence_path

        return is_sequence_path(path)

    def load(self, source: str, path: Path | None, *, tokenizer: str | None = None,
             sequence_column: str | None = None, vocab: list[str] | None = None, max_length: int | None = None,
             reload: bool = False, **_: Any) -> Dataset:
        from ..sequences import TABLE_SUFFIXES, Vocabulary, base_suffix, encode, read_strings, tokenize_all

        if tokenizer is None:
            raise UsageError(f"{source} is a file of strings; train it with --family seq-vae "
                             "(and --tokenizer smiles, selfies or char)")
        if path is None or not path.is_file():
            raise DataError(f"strings are read from a .smi/.txt file (one per line) or a .csv column, not {source}")
        if reload and base_suffix(path) not in TABLE_SUFFIXES:
            sequence_column = None  # the training table's column; this file is one string per line
        strings, where = read_strings(path, sequence_column)
        if not strings:
            raise DataError(f"{source} holds no strings; give one string per line")
        tokens = tokenize_all(strings, where, tokenizer)
        voc = Vocabulary(vocab, tokenizer) if vocab is not None else Vocabulary.fit(tokens, tokenizer)
        x = encode(tokens, voc, max_length, where)
        return SequenceDataset(x=x, kind=self.name, name=source, vocab=voc, strings=strings)

    def load_options(self, config: Any, info: dict) -> dict[str, Any]:
        data = info.get("data", {}) if info else {}
        return {"kind": self.name, "tokenizer": config.tokenizer, "sequence_column": config.sequence_column,
                "vocab": data.get("vocab"), "max_length": data.get("max_length"), "reload": bool(info)}

    def default_likelihood(self, in_unit: bool, mixed: bool) -> str:
        return "categorical"

    def likelihood_error(self, likelihood: str, in_unit: bool) -> str | None:
        if likelihood != "categorical":
            return (f"strings are modelled with --likelihood categorical (one distribution per token); drop "
                    f"--likelihood {likelihood}")
        return None

    def write(self, values: Any, out: Path, columns: list[str] | None = None,
              schema: list[dict] | None = None) -> None:
        """Strings one per line (.smi/.txt); anything else as the base kind writes it."""
        if isinstance(values, (list, tuple)) and all(isinstance(v, str) for v in values):
            from ...runs import atomic_write_text

            atomic_write_text(out, "".join(f"{v}\n" for v in values))
            return
        super().write(values, out, columns, schema)
