"""The search space of ``vaekit tune``: a short YAML file naming each hyperparameter and its kind.

Each key is a :class:`~vaekit.config.TrainConfig` setting (``lr`` or ``latent-dim`` spellings). A mapping
with a ``kind`` makes it a hyperparameter; any other value fixes the setting for every trial::

    lr:          {kind: log-float, low: 1.0e-4, high: 1.0e-2, points: 3}   # points: grid only
    latent_dim:  {kind: int, low: 4, high: 32, step: 4}
    dropout:     {kind: float, low: 0.0, high: 0.3, step: 0.1}
    hidden:      {kind: categorical, choices: [[128], [256, 128], [512, 256]]}
    epochs: 40                                                             # fixed

Kinds: ``float``, ``log-float``, ``int``, ``log-int`` (ranges ``low``..``high``, both included) and
``categorical`` (``choices``). ``step`` makes a ``float``/``int`` range discrete; ``points: N`` tells
``--sampler grid`` how many evenly (log kinds: geometrically) spaced values to try. Every bound and choice
is checked against the setting's own allowed range here, so a bad space fails before any trial runs.
This module knows no Optuna beyond the duck-typed ``trial.suggest_*`` calls.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..config import TrainConfig, format_validation_error, load_yaml
from ..errors import UsageError

KINDS = ("float", "log-float", "int", "log-int", "categorical")
# The most grid points `--sampler grid` enumerates (Optuna's GridSampler lists and shuffles every point in
# every worker: 10^6 points take about a second and ~100 MB; 10^8 hung vaekit tune).
MAX_GRID_POINTS = 1_000_000
_KEYS = {"float": ("low", "high", "step", "points"), "log-float": ("low", "high", "points"),
         "int": ("low", "high", "step", "points"), "log-int": ("low", "high", "points"),
         "categorical": ("choices",)}
# Settings that describe the data or the kind of run, not a hyperparameter of one.
_NOT_TUNABLE = {
    "data": "the data is given with --data",
    "semi_supervised": "vaekit tune searches unsupervised and conditional runs only",
    "labeled": "vaekit tune searches unsupervised and conditional runs only",
}

DEFAULT_SPACE_YAML = """\
# vaekit's default search space (used when --space is not given)
lr:          {kind: log-float, low: 1.0e-4, high: 1.0e-2, points: 3}
latent_dim:  {kind: log-int, low: 2, high: 32, points: 4}
hidden:      {kind: categorical, choices: [[128], [256, 128], [512, 256]]}
batch_size:  {kind: categorical, choices: [32, 64, 128]}
dropout:     {kind: float, low: 0.0, high: 0.2, step: 0.1}
kl_warmup:   {kind: int, low: 0, high: 10, step: 5}
epochs: 40
patience: 10
"""

#: the default space of the recommendation families (mult-vae, mult-dae, recvae): around the papers' settings
RECOMMEND_SPACE_YAML = """\
# vaekit's default search space for recommenders (used when --space is not given)
lr:          {kind: log-float, low: 1.0e-4, high: 1.0e-2, points: 3}
latent_dim:  {kind: categorical, choices: [64, 200]}
hidden:      {kind: categorical, choices: [[300], [600]]}
dropout:     {kind: float, low: 0.3, high: 0.7, step: 0.1}
epochs: 50
patience: 10
"""

#: the default space of the time-series families (series-vae, forecast-cvae): hidden = conv channels / GRU units
SERIES_SPACE_YAML = """\
# vaekit's default search space for time series (used when --space is not given)
lr:          {kind: log-float, low: 3.0e-4, high: 1.0e-2, points: 3}
latent_dim:  {kind: log-int, low: 2, high: 32, points: 4}
hidden:      {kind: categorical, choices: [[16], [32], [64]]}
batch_size:  {kind: categorical, choices: [32, 64, 128]}
kl_warmup:   {kind: int, low: 0, high: 10, step: 5}
epochs: 40
patience: 10
"""


#: the default space of seq-vae (strings): around the MOSES VAE scaled for a CPU; hidden = ENCODER,DECODER GRU units
SEQUENCE_SPACE_YAML = """\
# vaekit's default search space for seq-vae (used when --space is not given)
lr:           {kind: log-float, low: 3.0e-4, high: 3.0e-3, points: 3}
latent_dim:   {kind: categorical, choices: [32, 64, 128]}
hidden:       {kind: categorical, choices: [[64, 128], [128, 256]]}
word_dropout: {kind: float, low: 0.0, high: 0.3, step: 0.1}
kl_warmup:    {kind: int, low: 0, high: 4, step: 2}
epochs: 10
patience: 3
"""

@dataclass(frozen=True)
class Param:
    """One hyperparameter: its setting name, kind and range (or choices)."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    points: int | None = None
    choices: tuple = ()

    @property
    def log(self) -> bool:
        return self.kind.startswith("log-")

    @property
    def is_int(self) -> bool:
        return self.kind in ("int", "log-int")

    @property
    def _encoded(self) -> bool:
        """Optuna's categorical values must be scalars: lists (e.g. ``hidden``) travel as JSON text."""
        return any(not (c is None or isinstance(c, (bool, int, float, str))) for c in self.choices)

    def _options(self) -> list:
        return [json.dumps(c) for c in self.choices] if self._encoded else list(self.choices)

    def decode(self, value: Any) -> Any:
        """The setting's value for a value Optuna stored."""
        return json.loads(value) if self._encoded and isinstance(value, str) else value

    def suggest(self, trial: Any) -> Any:
        """Ask ``trial`` (an ``optuna.Trial``) for this parameter; returns the setting's value."""
        if self.kind == "categorical":
            return self.decode(trial.suggest_categorical(self.name, self._options()))
        if self.is_int:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1),
                                     log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def grid_count(self) -> int:
        """How many values :meth:`grid` gives, without listing them (a step of 1e-9 means 10^9 values)."""
        if self.kind == "categorical":
            return len(self.choices)
        if self.points is not None:  # at most MAX_GRID_POINTS (parse_space); int kinds merge rounded points
            return len(self.grid()) if self.is_int else self.points
        if self.is_int:
            return len(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is not None:
            return int(round((self.high - self.low) / self.step)) + 1
        return len(self.grid())  # raises: no finite set of values

    def grid(self) -> list:
        """The values ``--sampler grid`` tries (in Optuna's stored form)."""
        if self.kind == "categorical":
            return self._options()
        lo, hi = self.low, self.high
        if self.points is not None:
            n = self.points
            if self.log:
                vals = [math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * i / (n - 1)) for i in range(n)]
            else:
                vals = [lo + (hi - lo) * i / (n - 1) for i in range(n)]
            vals[0], vals[-1] = lo, hi
            if self.is_int:
                return sorted({int(round(v)) for v in vals})
            return [float(f"{v:.6g}") if 0 < i < n - 1 else v for i, v in enumerate(vals)]
        if self.is_int:
            return list(range(int(lo), int(hi) + 1, int(self.step or 1)))
        if self.step is not None:
            n = int(round((hi - lo) / self.step)) + 1
            return [round(lo + i * self.step, 12) for i in range(n)]
        raise UsageError(f"--sampler grid needs a finite set of values: give {self.name} (kind {self.kind}) "
                         + ("points: N" if self.log else "step: or points: N") + " in the space")

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"kind": self.kind}
        if self.kind == "categorical":
            d["choices"] = list(self.choices)
        else:
            d.update({"low": self.low, "high": self.high})
            if self.step is not None:
                d["step"] = self.step
            if self.points is not None:
                d["points"] = self.points
        return d


@dataclass
class SearchSpace:
    """The hyperparameters to search and the settings fixed for every trial."""

    params: list[Param]
    fixed: dict[str, Any] = field(default_factory=dict)
    source: str = "default space"

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Settings for one trial: each parameter's value, by setting name."""
        return {p.name: p.suggest(trial) for p in self.params}

    def grid(self) -> dict[str, list]:
        """Each parameter's grid values; refused (one line) beyond :data:`MAX_GRID_POINTS` grid points."""
        self.check_grid()
        return {p.name: p.grid() for p in self.params}

    def grid_size(self) -> int:
        """The number of grid points: the product of each parameter's count, computed without listing them."""
        return math.prod(p.grid_count() for p in self.params)

    def check_grid(self) -> int:
        """The grid size, or a UsageError when it is more than ``--sampler grid`` can enumerate."""
        size = self.grid_size()
        if size > MAX_GRID_POINTS:
            counts = ", ".join(f"{p.name} {p.grid_count()}" for p in self.params)
            shown = f"{size:,}" if size < 10**15 else f"{size:.3g}"
            raise UsageError(f"{self.source}: the grid has {shown} points ({counts}), more than --sampler grid "
                             f"enumerates ({MAX_GRID_POINTS:,}); use fewer points or larger steps, or "
                             "--sampler random or tpe")
        return size

    def decode(self, params: dict[str, Any]) -> dict[str, Any]:
        """Setting values for the parameters Optuna stored for a trial."""
        by_name = {p.name: p for p in self.params}
        return {k: by_name[k].decode(v) if k in by_name else v for k, v in params.items()}

    def capped_warmup(self, epochs: int) -> "SearchSpace":
        """This space with ``kl_warmup`` limited to ``epochs`` (a warm-up longer than the run never reaches
        β); a range left with one value becomes a fixed setting. The default space uses it for ``--epochs``."""
        params: list[Param] = []
        fixed = dict(self.fixed)
        for p in self.params:
            if p.name == "kl_warmup" and p.kind != "categorical" and p.high is not None and p.high > epochs:
                step = p.step or 1
                high = p.low + ((epochs - p.low) // step) * step if epochs >= p.low else p.low
                if high <= p.low:
                    fixed[p.name] = int(p.low)
                    continue
                p = dataclasses.replace(p, high=high, points=min(p.points, int(high - p.low) + 1)
                                        if p.points else None)
            params.append(p)
        return SearchSpace(params, fixed, self.source)

    def to_dict(self) -> dict:
        """A JSON-ready description (saved with the study; a rerun must describe the same space)."""
        return json.loads(json.dumps({"params": {p.name: p.to_dict() for p in self.params}, "fixed": self.fixed}))


def _field_type(name: str) -> str:
    """'int', 'float' or 'other' for the type a TrainConfig setting holds."""
    ann = TrainConfig.model_fields[name].annotation
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        ann = args[0] if len(args) == 1 else None
    return {int: "int", float: "float"}.get(ann, "other")  # type: ignore[arg-type]


def _check_value(where: str, name: str, what: str, value: Any) -> None:
    try:
        TrainConfig(**{name: value})
    except ValidationError as err:
        raise UsageError(f"{where}: {name} {what} is not allowed ({format_validation_error(err)})") from None


def _number(where: str, name: str, key: str, value: Any, integer: bool) -> float | int:
    if isinstance(value, str):  # YAML reads 1e-4 (no dot) as text
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{where}: {name} {key} must be a number, got {value!r}")
    if integer:
        if float(value) != int(value):
            raise UsageError(f"{where}: {name} {key} must be a whole number for kind int/log-int, got {value!r}")
        return int(value)
    return float(value)


def _param(where: str, name: str, entry: dict) -> Param:
    kind = entry.get("kind")
    if kind not in KINDS:
        raise UsageError(f"{where}: {name} has kind {kind!r}; use one of {', '.join(KINDS)}")
    extra = sorted(set(entry) - {"kind", *_KEYS[kind]})
    if extra:
        raise UsageError(f"{where}: {name} (kind {kind}) does not take {', '.join(extra)}; "
                         f"it takes {', '.join(_KEYS[kind])}")
    ftype = _field_type(name)
    if kind == "categorical":
        choices = entry.get("choices")
        if not isinstance(choices, list) or len(choices) < 2:
            raise UsageError(f"{where}: {name} needs choices: a list of 2 or more values "
                             f"(fix a single value with `{name}: VALUE`)")
        seen = set()
        for c in choices:
            key = json.dumps(c, sort_keys=True)
            if key in seen:
                raise UsageError(f"{where}: {name} lists the choice {c!r} twice; give each choice once")
            seen.add(key)
            _check_value(where, name, f"choice {c!r}", c)
        return Param(name, kind, choices=tuple(choices))
    if ftype == "other":
        raise UsageError(f"{where}: {name} is not a number; search it with kind: categorical and choices")
    integer = kind in ("int", "log-int")
    if ftype == "int" and not integer:
        raise UsageError(f"{where}: {name} takes whole numbers; use kind int or log-int")
    for key in ("low", "high"):
        if key not in entry:
            raise UsageError(f"{where}: {name} (kind {kind}) needs low: and high:")
    low = _number(where, name, "low", entry["low"], integer)
    high = _number(where, name, "high", entry["high"], integer)
    if low == high:
        raise UsageError(f"{where}: {name} has an empty range (low = high = {low}); widen it, "
                         f"or fix the value with `{name}: {low}`")
    if low > high:
        raise UsageError(f"{where}: {name} has an inverted range (low {low} > high {high}); swap low and high")
    if kind.startswith("log-") and low <= 0:
        raise UsageError(f"{where}: {name} (kind {kind}) needs low > 0, got {low}; use kind "
                         f"{kind[4:]} for ranges that include 0")
    _check_value(where, name, f"low={low}", low)
    _check_value(where, name, f"high={high}", high)
    step = points = None
    if entry.get("step") is not None:
        step = _number(where, name, "step", entry["step"], integer)
        if step <= 0 or step > high - low:
            raise UsageError(f"{where}: {name} step must be > 0 and at most high - low ({high - low}), got {step}")
        n = (high - low) / step
        if abs(n - round(n)) > 1e-9 * max(1.0, n):
            raise UsageError(f"{where}: {name} range {low}..{high} is not a whole number of steps of {step}; "
                             "change high or step")
    if entry.get("points") is not None:
        points = entry["points"]
        if isinstance(points, bool) or not isinstance(points, int) or not 2 <= points <= MAX_GRID_POINTS:
            raise UsageError(f"{where}: {name} points must be a whole number from 2 to {MAX_GRID_POINTS}, "
                             f"got {points!r}")
        if step is not None:
            raise UsageError(f"{where}: {name} has both step and points; give one")
    return Param(name, kind, low, high, step, points)


def parse_space(obj: Any, where: str = "space") -> SearchSpace:
    """Validate a parsed space file (a mapping) into a :class:`SearchSpace`; one-line errors."""
    if obj is None:
        obj = {}
    if not isinstance(obj, dict):
        raise UsageError(f"{where} must be a mapping of setting: {{kind: ...}} (or setting: value), "
                         f"not a {type(obj).__name__}")
    known = TrainConfig.model_fields
    params: list[Param] = []
    fixed: dict[str, Any] = {}
    for raw_name, entry in obj.items():
        name = str(raw_name).replace("-", "_")
        if name not in known:
            raise UsageError(f"{where}: unknown hyperparameter '{raw_name}' "
                             f"(known settings: {', '.join(sorted(k for k in known if k not in _NOT_TUNABLE))})")
        if name in _NOT_TUNABLE:
            raise UsageError(f"{where}: '{raw_name}' cannot be set in a search space; {_NOT_TUNABLE[name]}")
        if isinstance(entry, dict):
            params.append(_param(where, name, entry))
        else:
            _check_value(where, name, f"value {entry!r}", entry)
            fixed[name] = entry
    if not params:
        raise UsageError(f"{where} names no hyperparameter to search; give at least one as "
                         "name: {kind: ..., ...}")
    return SearchSpace(params, fixed, where)


def load_space(path: str | Path | None) -> SearchSpace:
    """Read a space file (YAML), or vaekit's default space for ``None``."""
    import yaml

    if path is None:
        return parse_space(load_yaml(DEFAULT_SPACE_YAML), "default space")
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"space file not found: {p} (pass an existing YAML file to --space)")
    try:
        loaded = load_yaml(p.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UsageError(f"space file {p} is not valid YAML ({first}); fix its syntax") from None
    return parse_space(loaded, p.name)
