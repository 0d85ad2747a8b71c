"""MOSES's character n-gram baseline (``moses.baselines.NGram``), rewritten: counts of the next character after
every context of 1 to ``order`` characters (the start token included), sampling character by character from
the longest context seen in training (dropping characters from the front until one was seen), with
``l_smooth`` added to the count of every character and of the end token. MOSES's settings: order 10,
l_smooth 0.01, at most 100 tokens (start and end included).

The counts live in one Counter keyed by context + next character (strings; start/end are two control
characters no SMILES contains), which takes a fraction of the memory of MOSES's one float vector per context.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

BOS, EOS = "\x02", "\x03"


class NGram:
    """Character n-gram generator of SMILES: ``NGram(10).fit(train).generate(n, rng)``."""

    def __init__(self, order: int = 10, l_smooth: float = 0.01, max_len: int = 100):
        self.order, self.l_smooth, self.max_len = order, l_smooth, max_len
        self.counts: Counter = Counter()
        self.contexts: set[str] = set()
        self.chars: list[str] = []
        self._dist: dict[str, np.ndarray] = {}

    def fit(self, smiles: list[str]) -> NGram:
        """Count every (context of 1..order tokens, next token) pair of the training strings."""
        if any(BOS in s or EOS in s for s in smiles):
            raise ValueError("a training string contains the start/end control characters")
        self.chars = sorted(set().union(*smiles))
        for s in smiles:
            t = BOS + s + EOS
            self.counts.update(t[i:i + k + 1] for i in range(len(t)) for k in range(1, self.order + 1)
                               if i + k < len(t))
        self.contexts = {key[:-1] for key in self.counts}
        self._dist = {}
        return self

    def _distribution(self, context: str) -> np.ndarray:
        """p(next | context) over chars + [EOS], smoothed, for the longest suffix of ``context`` seen."""
        while context not in self.contexts:
            context = context[1:]
        dist = self._dist.get(context)
        if dist is None:
            counts = np.array([self.counts.get(context + c, 0) for c in self.chars + [EOS]], dtype=np.float64)
            dist = counts + self.l_smooth
            dist /= dist.sum()
            self._dist[context] = dist
        return dist

    def generate_one(self, rng: np.random.Generator) -> str:
        """One string: from the start token until the end token or ``max_len`` tokens (start included)."""
        if not self.chars:
            raise RuntimeError("fit the n-gram before generating")
        out = BOS
        symbols = self.chars + [EOS]
        while out[-1] != EOS and len(out) < self.max_len:
            dist = self._distribution(out[-self.order:])
            out += symbols[rng.choice(len(symbols), p=dist)]
        return out[1:].removesuffix(EOS)

    def generate(self, n: int, seed: int = 0) -> list[str]:
        """``n`` strings from a seeded generator."""
        rng = np.random.default_rng(seed)
        return [self.generate_one(rng) for _ in range(n)]
