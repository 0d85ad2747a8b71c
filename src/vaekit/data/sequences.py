"""Strings as token sequences (the ``sequences`` data kind): reading a file of strings, tokenizers, the
vocabulary, and strings ↔ padded int64 token tensors.

Tokenizers:

- ``smiles``: the atom-level SMILES regex of Schwaller et al. (2019): bracket atoms (``[nH]``, ``[C@@H]``,
  ``[NH3+]``), two-letter organic atoms (``Br``, ``Cl``), ``%NN`` ring-bond numbers, and every other symbol
  (single-digit ring numbers, bonds, branches) as one token each; a string the regex cannot cover whole is
  refused, naming the character;
- ``selfies``: SELFIES symbols (Krenn et al. 2020, the ``selfies`` package, extra ``vaekit[molecules]``);
  the input is SMILES, converted on the fly, and decoded tokens are turned back into SMILES;
- ``char``: one token per character.

Every sequence is ``[bos, t_1 … t_n, eos, pad …]``; the special tokens have the ids 0–3 (:data:`SPECIALS`),
so ``pad`` is 0 everywhere. The vocabulary, the tokenizer and the maximum length are saved in a run's
``config.json["data"]`` and a reloaded run encodes with them (an unknown token is a one-line error naming it).
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from pathlib import Path

import torch

from ..errors import DataError, UsageError

PAD, BOS, EOS, UNK = 0, 1, 2, 3
#: the special tokens, at ids 0..3 of every vocabulary
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
TOKENIZERS = ("smiles", "selfies", "char")
#: files of one string per line; .csv/.tsv files need a column (``--sequence-column``); each may be gzipped
LINE_SUFFIXES = (".smi", ".smiles", ".txt")
TABLE_SUFFIXES = (".csv", ".tsv")

#: Schwaller et al. (2019), "Molecular Transformer", the SMILES tokenizer of their code
SMILES_REGEX = re.compile(
    r"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|/|:|~|@|\?|>|\*|\$|%[0-9]{2}|[0-9])")


def tokenize_smiles(s: str) -> list[str]:
    """The atom-level tokens of a SMILES string; a DataError names the first character no token covers."""
    tokens, pos = [], 0
    for m in SMILES_REGEX.finditer(s):
        if m.start() != pos:
            break
        tokens.append(m.group(0))
        pos = m.end()
    if pos != len(s):
        raise DataError(f"{s!r} is not SMILES: no SMILES token starts at character {pos + 1} ({s[pos]!r}); "
                        "use --tokenizer char for other strings")
    return tokens


def _selfies():
    try:
        import selfies
    except ImportError:
        raise UsageError("--tokenizer selfies needs the selfies package: pip install 'vaekit[molecules]'") from None
    return selfies


def tokenize_selfies(smiles: str) -> list[str]:
    """The SELFIES symbols of a SMILES string (converted with ``selfies.encoder``)."""
    sf = _selfies()
    try:
        text = sf.encoder(smiles)
    except Exception as err:  # selfies.EncoderError, and what its SMILES parser raises
        raise DataError(f"{smiles!r} cannot be written as SELFIES ({str(err).splitlines()[0][:120]})") from None
    if text is None:
        raise DataError(f"{smiles!r} cannot be written as SELFIES")
    return list(sf.split_selfies(text))


def tokenize(s: str, tokenizer: str) -> list[str]:
    """The tokens of ``s`` under ``tokenizer`` (smiles, selfies or char)."""
    if tokenizer == "smiles":
        return tokenize_smiles(s)
    if tokenizer == "selfies":
        return tokenize_selfies(s)
    if tokenizer == "char":
        return list(s)
    raise UsageError(f"--tokenizer must be one of {', '.join(TOKENIZERS)}, got {tokenizer!r}")


def detokenize(tokens: list[str], tokenizer: str) -> str:
    """The string of ``tokens``; SELFIES symbols are decoded back to SMILES (any symbol string decodes)."""
    text = "".join(tokens)
    if tokenizer == "selfies":
        try:
            return _selfies().decoder(text) or ""
        except Exception:  # a symbol sequence selfies cannot decode (it decodes every valid symbol)
            return ""
    return text


class Vocabulary:
    """Token ↔ id, with the special tokens first (:data:`SPECIALS`)."""

    def __init__(self, tokens: list[str], tokenizer: str):
        if tokens[: len(SPECIALS)] != SPECIALS:
            tokens = SPECIALS + [t for t in tokens if t not in SPECIALS]
        self.tokens = list(tokens)
        self.tokenizer = tokenizer
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def fit(cls, token_lists: list[list[str]], tokenizer: str) -> "Vocabulary":
        """The vocabulary of every token in ``token_lists`` (sorted, after the special tokens)."""
        seen = sorted({t for toks in token_lists for t in toks} - set(SPECIALS))
        return cls(SPECIALS + seen, tokenizer)

    def __len__(self) -> int:
        return len(self.tokens)

    def ids(self, tokens: list[str], where: str = "") -> list[int]:
        """Ids of ``tokens``; a DataError names the first token outside the vocabulary."""
        try:
            return [self.index[t] for t in tokens]
        except KeyError as err:
            tok = err.args[0]
            raise DataError(f"{where or 'a string'} has the token {tok!r}, which is not in the run's vocabulary "
                            f"({len(self.tokens) - len(SPECIALS)} {self.tokenizer} tokens); drop that string or "
                            "train on data that has it") from None

    def strings(self, ids: torch.Tensor) -> list[str]:
        """Decoded strings of id rows ``[N, L]``: the tokens after ``bos`` up to the first ``eos``/``pad``."""
        out = []
        for row in ids.tolist():
            toks = []
            for i in row:
                if i in (EOS, PAD):
                    break
                if i != BOS:
                    toks.append(self.tokens[i] if i != UNK else "")
            out.append(detokenize(toks, self.tokenizer))
        return out


def encode(token_lists: list[list[str]], vocab: Vocabulary, length: int | None = None,
           names: list[str] | None = None) -> torch.Tensor:
    """``[N, L]`` int64 rows ``[bos, ids…, eos, pad…]``; ``L`` is ``length`` or the longest row (at least
    ``length``: a longer string is kept whole)."""
    longest = max((len(t) for t in token_lists), default=0) + 2
    width = max(longest, length or 0)
    x = torch.zeros(len(token_lists), width, dtype=torch.int64)
    for r, toks in enumerate(token_lists):
        ids = vocab.ids(toks, names[r] if names else "")
        x[r, 0] = BOS
        x[r, 1: len(ids) + 1] = torch.tensor(ids, dtype=torch.int64)
        x[r, len(ids) + 1] = EOS
    return x


def lengths(x: torch.Tensor) -> torch.Tensor:
    """Tokens per row including ``bos`` and ``eos`` (the positions before the first ``pad``)."""
    return (x != PAD).sum(1)


# -- reading ------------------------------------------------------------------------------------------------
def base_suffix(path: Path) -> str:
    sfx = [s.lower() for s in path.suffixes]
    if sfx and sfx[-1] == ".gz":
        sfx = sfx[:-1]
    return sfx[-1] if sfx else ""


#: files the sequences kind claims by their name: SMILES files (a .txt or .csv is only read for --family seq-vae)
CLAIMED_SUFFIXES = (".smi", ".smiles")


def is_sequence_path(path: Path | None) -> bool:
    """Whether ``path`` is a file the sequences kind claims by its name (.smi, .smiles, gzipped too)."""
    return path is not None and path.is_file() and base_suffix(path) in CLAIMED_SUFFIXES


def _text(path: Path) -> str:
    raw = path.read_bytes()
    if path.suffix.lower() == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise DataError(f"{path} is not a readable gzip file ({err}); check the file") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None


def read_strings(path: Path, column: str | None = None) -> tuple[list[str], list[str]]:
    """(the strings of ``path``, where each comes from: ``FILE:LINE``). A .smi file takes the first field of
    each line (SMILES files often hold ``SMILES name``) and skips a ``smiles`` header; a .txt file takes each
    whole line; a .csv/.tsv file takes ``column`` (default: a column named smiles, any case). Blank lines are
    skipped."""
    suffix = base_suffix(path)
    text = _text(path)
    if suffix in TABLE_SUFFIXES:
        return _read_column(path, text, column, "\t" if suffix == ".tsv" else ",")
    if column is not None:
        raise UsageError(f"--sequence-column applies to .csv/.tsv files, not to {path}; drop it")
    strings, where = [], []
    for i, line in enumerate(text.splitlines(), 1):
        s = line.split()[0] if suffix != ".txt" and line.split() else line.strip("\r\n")
        if not s.strip() or (i == 1 and suffix != ".txt" and s.lower() == "smiles"):
            continue
        strings.append(s)
        where.append(f"{path}:{i}")
    return strings, where


def _read_column(path: Path, text: str, column: str | None, delimiter: str) -> tuple[list[str], list[str]]:
    rows = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = next(rows, None)
    if not header:
        raise DataError(f"{path} is empty; give a table with a header row")
    if column is None:
        named = [h for h in header if h.strip().lower() == "smiles"]
        if len(named) != 1:
            raise UsageError(f"{path} is a table: name the column of strings with --sequence-column "
                             f"(columns: {', '.join(header[:20])})")
        column = named[0]
    if column not in header:
        raise UsageError(f"--sequence-column {column!r} is not a column of {path} (columns: {', '.join(header[:20])})")
    j = header.index(column)
    strings, where = [], []
    for i, row in enumerate(rows, 2):
        if j < len(row) and row[j].strip():
            strings.append(row[j].strip())
            where.append(f"{path}:{i}")
    return strings, where


def tokenize_all(strings: list[str], where: list[str], tokenizer: str) -> list[list[str]]:
    """Every string's tokens; a DataError names the file and line of the first one that fails."""
    out = []
    for s, w in zip(strings, where):
        try:
            out.append(tokenize(s, tokenizer))
        except DataError as err:
            raise DataError(f"{w}: {err}") from None
    return out
