"""The schema of a run's ``config.json``: a loaded run is checked like a training run's settings.

``runs.read_run_info`` only says whether a folder is a vaekit run; :func:`check_run_info` validates what
``vaekit.load`` and ``--resume`` build from it: the settings (with :class:`~vaekit.config.TrainConfig`,
the schema training uses), the data description (kind, shape, columns, table schema), the table scaler and
the conditioning. A damaged file gives one line, ``RUN/config.json is damaged: <field>: <problem>; retrain
the run``, instead of a KeyError deep in model building or an allocation of a claimed terabyte.
Fields added by later vaekit versions are optional here, so runs written by earlier versions still load.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator, model_validator

from .config import GAN_LEGACY, TrainConfig
from .conditions import Conditioning
from .errors import RunError
from .runs import CONFIG

# More input features than this is not a run vaekit wrote (3 × 1024 × 1024 images are 3.1 M); the weights
# file's size bounds the rest (vaekit.load compares it with the model config.json describes).
MAX_FEATURES = 2**31 - 1
_Int = Annotated[int, Strict()]  # 3, not "3", 3.0 or true

class _Column(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    kind: Literal["numeric", "categorical"]
    categories: list[str] | None = None
    start: _Int = Field(ge=0)
    stop: _Int = Field(ge=1)


class _Data(BaseModel):
    model_config = ConfigDict(extra="allow")
    kind: Literal["image", "table", "array", "interactions", "series", "audio", "sequences"]
    shape: list[_Int] = Field(min_length=1, max_length=8)
    users: list[str] | None = None  # interactions: the id of each matrix row / column
    items: list[str] | None = None
    source: str | None = None
    fingerprint: str | None = None
    classes: list[str] | None = None
    columns: list[str] | None = None
    schema_: list[_Column] | None = Field(default=None, alias="schema")

    @field_validator("shape")
    @classmethod
    def _shape(cls, v: list[int]) -> list[int]:
        if any(s < 1 for s in v):
            raise ValueError(f"every size must be at least 1, got {v}")
        if math.prod(v) > MAX_FEATURES:
            raise ValueError(f"{math.prod(v)} features per example is beyond what vaekit trains ({MAX_FEATURES})")
        return v

    @model_validator(mode="after")
    def _schema(self) -> "_Data":
        width = math.prod(self.shape)
        if self.items is not None and len(self.items) != width:
            raise ValueError(f"items names {len(self.items)} items for a model of {width}")
        for col in self.schema_ or []:
            if col.stop <= col.start or col.stop > width:
                raise ValueError(f"schema column {col.name!r} covers features {col.start}..{col.stop}, "
                                 f"outside the {width} features")
        return self


class _Scaler(BaseModel):
    model_config = ConfigDict(extra="allow")
    mean: list[float]
    std: list[float]

    @model_validator(mode="after")
    def _finite(self) -> "_Scaler":
        if len(self.mean) != len(self.std):
            raise ValueError(f"{len(self.mean)} means but {len(self.std)} standard deviations")
        if not all(math.isfinite(m) for m in self.mean) or not all(math.isfinite(s) and s > 0 for s in self.std):
            raise ValueError("means must be finite and standard deviations finite and positive")
        return self


class _Condition(BaseModel):
    model_config = ConfigDict(extra="allow")
    kind: Literal["label", "attributes"]
    dim: _Int = Field(ge=1, le=100_000)
    classes: list[str] | None = None
    columns: list[str] | None = None
    scaler: _Scaler | None = None


class _RunInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    config: dict[str, Any]
    data: _Data
    scaler: _Scaler | None = None
    condition: _Condition | None = None
    semi_supervised: dict[str, Any] | None = None
    estimator: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _scaler_width(self) -> "_RunInfo":
        # a series' scaler is per target: its windows are [steps, targets]
        width = self.data.shape[-1] if self.data.kind == "series" else math.prod(self.data.shape)
        if self.scaler is not None and len(self.scaler.mean) != width:
            raise ValueError(f"scaler has {len(self.scaler.mean)} columns but data.shape "
                             f"{self.data.shape} has {width} features")
        return self


def _problem(err: ValidationError, prefix: str = "") -> str:
    """``field.path: what is wrong`` for the first error pydantic found."""
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"]) if e["loc"] else ""
    msg = e["msg"]
    for lead in ("Value error, ", "Assertion failed, "):
        msg = msg[len(lead):] if msg.startswith(lead) else msg
    where = f"{prefix}{loc}".rstrip(".")
    value = e.get("input")
    shown = f" (got {value!r:.60})" if e["type"] not in ("missing", "value_error") and \
        not isinstance(value, (dict, list)) else ""
    return f"{where or 'config.json'}: {msg[0].lower() + msg[1:]}{shown}"


def check_run_info(info: dict, run: str | Path) -> TrainConfig:
    """Validate a run's parsed ``config.json`` (settings, data description, scaler, conditioning) and
    return its settings; a :class:`RunError` naming the damaged field otherwise."""
    where = Path(run) / CONFIG
    try:
        _RunInfo.model_validate(info)
    except ValidationError as err:
        raise RunError(f"{where} is damaged: {_problem(err)}; retrain the run") from None
    try:
        cfg = info["config"]
        if isinstance(cfg, dict) and cfg.get("family") == "vae-gan":  # written before the fields existed
            cfg = {**GAN_LEGACY, **cfg}
        return TrainConfig(**cfg)
    except ValidationError as err:
        raise RunError(f"{where} is damaged: {_problem(err, 'config.')}; retrain the run") from None
    except TypeError as err:  # e.g. a non-string key
        raise RunError(f"{where} is damaged: config: {err}; retrain the run") from None


def build_run_model(cfg: TrainConfig, info: dict, shape: tuple[int, ...], cond: Conditioning | None):
    """(the VAE, the module whose state dict the weights file holds), as the run's family builds them (the VAE;
    M2 with its classifier; a recommender's own module)."""
    from .families import FAMILIES, family_name

    return FAMILIES[family_name(cfg)]().build_for_run(cfg, info, shape, cond)

