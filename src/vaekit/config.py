"""Typed, validated training settings: the one place where user settings are checked.

A :class:`TrainConfig` is flat (one level, plain values) so that a YAML file, command-line flags and
Python keyword arguments all map onto it the same way. It is saved in every run directory.
Validation errors become one-line :class:`~vaekit.errors.UsageError` messages that name the setting,
the value given and the allowed range.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from .errors import UsageError

ModelName = Literal["mlp", "conv"]
LikelihoodName = Literal["auto", "bernoulli", "gaussian", "mixed", "multinomial", "categorical"]
BinarizeName = Literal["none", "dynamic", "static"]
MissingName = Literal["error", "mask"]
KLScheduleName = Literal["linear", "cyclical"]
ScheduleName = Literal["none", "exponential", "step", "plateau", "cosine"]
OptimizerName = Literal["adam", "adamw"]
PrecisionName = Literal["fp32", "bf16"]
PriorName = Literal["normal", "vamp"]
FamilyName = Literal["vae", "m2", "mult-vae", "mult-dae", "recvae", "series-vae", "forecast-cvae", "sparse-vae",
                     "vae-gan", "seq-vae"]
TokenizerName = Literal["smiles", "selfies", "char"]


class TrainConfig(BaseModel):
    """Every setting of a training run, with its default and its allowed range."""

    # allow_inf_nan=False: every float setting must be finite (--lr nan, --min-delta inf were accepted)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    # data
    data: str = Field(default="digits",
        description="digits, fashion-mnist, mnist, a folder of images, .npy/.npz, .csv/.parquet")
    image_size: int | None = Field(default=None, ge=4, le=1024, description="resize images to N×N")
    label_column: str | None = Field(default=None, description="table column holding labels")
    binarize: BinarizeName = Field(default="none", description="none, dynamic (fresh draw every step) or static")
    val_fraction: float = Field(default=0.1, gt=0.0, lt=0.5,
        description="fraction of the data held out for validation")
    test_fraction: float = Field(default=0.1, gt=0.0, lt=0.5, description="fraction of the data held out for testing")
    # data larger than memory (vaekit.data.outofcore): a split-ordered memory-mapped cache on disk
    mmap: bool = Field(default=False,
        description="read a .npy, a folder of .npy/.npz shards or a folder of images memory-mapped (data larger "
                    "than memory), through a split-ordered cache in --cache-dir (images decoded once)")
    # missing table cells: "error" refuses them; "mask" trains on incomplete rows, the likelihood counting
    # observed cells only (MIWAE, Mattei & Frellsen 2019)
    missing: MissingName = Field(default="error",
        description="missing table cells: error, or mask (train on incomplete rows, MIWAE)")

    # audio (vaekit.data.kinds.audio): log-mel patches of .wav/.flac/.ogg files; saved with the run
    sample_rate: int | None = Field(default=None, ge=1000, le=384_000,
        description="audio: resample every clip to this rate (Hz); unset: the clips' own rate (all the same)")
    n_mels: int = Field(default=64, ge=4, le=512, description="audio: mel bands of the log-mel spectrogram")
    n_fft: int = Field(default=1024, ge=32, le=16384, description="audio: STFT size (samples)")
    hop: int = Field(default=256, ge=8, le=16384, description="audio: STFT hop (samples between frames)")
    patch_frames: int = Field(default=32, ge=2, le=4096,
        description="audio: spectrogram frames per training patch (one example)")
    patch_hop: int | None = Field(default=None, ge=1, le=4096,
        description="audio: frames between the starts of consecutive training patches (unset: half a patch); "
                    "smaller gives more, more overlapping patches per clip")
    griffin_lim_iters: int = Field(default=32, ge=0, le=10_000,
        description="audio: Griffin-Lim iterations when decoded spectrograms become sound")

    # conditioning (conditional VAE, Sohn et al. 2015): on the labels, or on these numeric table columns
    conditional: bool = Field(default=False, description="conditional VAE on the data's labels")
    condition_columns: list[str] | None = Field(default=None,
        description="conditional VAE on these numeric table columns, e.g. a,b")

    # model family (vaekit.families): vae (MLP/conv, optionally conditional) or m2; unset = m2 when
    # semi_supervised, else vae
    family: FamilyName | None = Field(default=None,
        description="model family: vae (MLP/conv, optionally conditional), m2 (semi-supervised), or mult-vae / "
                    "mult-dae / recvae (recommendation from a user,item interactions file), series-vae / "
                    "forecast-cvae (time series: anomalies and gaps / probabilistic forecasts), sparse-vae "
                    "(spike-and-slab latents), vae-gan (VAE + image discriminator) or seq-vae (strings: SMILES, "
                    "SELFIES, text); unset: m2 with "
                    "--semi-supervised, "
                    "else vae")

    # interactions (families mult-vae, mult-dae: vaekit.data.kinds.interactions)
    user_column: str = Field(default="user", description="interactions: the column naming the user")
    item_column: str = Field(default="item", description="interactions: the column naming the item")
    rating_column: str = Field(default="rating",
        description="interactions: the rating column, read only with --min-rating")
    min_rating: float | None = Field(default=None,
        description="interactions: keep rows with rating >= this as clicks (implicit feedback); unset: every row")
    min_user_items: int = Field(default=1, ge=1, le=1_000_000,
        description="interactions: drop users with fewer items (after --min-rating)")
    total_anneal_steps: int = Field(default=0, ge=0, le=100_000_000,
        description="beta rises linearly from 0 to --beta (its cap) over this many steps (Liang et al. 2018); "
                    "0: off (mult-vae default 200000)")
    gamma: float = Field(default=0.005, gt=0.0, le=1000.0,
        description="recvae: the KL weight of a user is gamma times the user's item count (Shenbin et al. 2020)")
    n_enc_epochs: int = Field(default=3, ge=1, le=1000,
        description="recvae: passes over the training users updating the encoder, per epoch")
    n_dec_epochs: int = Field(default=1, ge=1, le=1000,
        description="recvae: passes over the training users updating the decoder, per epoch (after the encoder's)")

    # time series (families series-vae, forecast-cvae: vaekit.data.kinds.series)
    time_column: str | None = Field(default=None,
        description="series: the time column (unset: a column named time, date, timestamp, ds or datetime)")
    target_columns: list[str] | None = Field(default=None,
        description="series: the value columns modelled (unset: every numeric column but time, covariates, label)")
    covariate_columns: list[str] | None = Field(default=None,
        description="series: numeric columns known in advance (e.g. temperature,workday), inputs only")
    frequency: str | None = Field(default=None,
        description="series: the step, e.g. 30min, 1h, 1D (unset: the smallest step of the time column; .npy: "
                    "steps without a clock)")
    context: int = Field(default=48, ge=2, le=100_000,
        description="series: steps per window (series-vae) or of past context (forecast-cvae)")
    horizon: int | None = Field(default=None, ge=1, le=100_000,
        description="series: steps forecast after the context (forecast-cvae only)")
    stride: int = Field(default=1, ge=1, le=100_000, description="series: steps between training windows")
    series_network: Literal["conv", "gru"] = Field(default="conv",
        description="series: encoder/decoder networks, conv (two 1-D convolutions) or gru (one GRU layer)")
    calendar_features: bool = Field(default=True,
        description="series: derive hour-of-day and day-of-week sin/cos covariates from the timestamps")

    # sequences (family seq-vae: vaekit.data.kinds.sequences, vaekit.families.seq_vae)
    tokenizer: TokenizerName = Field(default="smiles",
        description="seq-vae: smiles (atom-level regex), selfies (SMILES converted to SELFIES symbols) or char")
    sequence_column: str | None = Field(default=None,
        description="seq-vae: the CSV column holding the strings (default: a column named smiles)")
    word_dropout: float = Field(default=0.0, ge=0.0, lt=1.0,
        description="seq-vae: probability of replacing a decoder input token by <unk> in training (Bowman et al. "
                    "2016)")
    embedding_dim: int = Field(default=32, ge=1, le=4096, description="seq-vae: token embedding size")
    decoder_layers: int = Field(default=2, ge=1, le=16, description="seq-vae: GRU layers of the decoder")

    # semi-supervised M2 (Kingma et al. 2014): keep `labeled` training labels, learn from all examples
    # (semi_supervised: true is the m2 family)
    semi_supervised: bool = Field(default=False,
        description="M2 semi-supervised VAE (Kingma et al. 2014); needs --labeled")
    labeled: int | None = Field(default=None, ge=1, description="training labels kept for --semi-supervised")
    alpha: float = Field(default=0.1, ge=0.0, le=1000.0,
        description="classification weight of M2, times the training set size")
    # q(y|x) sees only `labeled` examples directly: dropout on its hidden layers and Gaussian noise (std, in
    # model input units) on its labelled inputs keep it from memorising them (FMNIST, 100 labels: bench/)
    classifier_dropout: float = Field(default=0.5, ge=0.0, lt=1.0, description="dropout in M2's classifier q(y|x)")
    classifier_noise: float = Field(default=0.3, ge=0.0, le=100.0,
        description="std of Gaussian noise on M2's labelled classifier inputs")

    # model
    model: ModelName = Field(default="mlp", description="mlp or conv")
    latent_dim: int = Field(default=16, ge=1, le=4096, description="latent size")
    hidden: list[int] = Field(default_factory=lambda: [512, 256], description="hidden layer sizes, e.g. 400,200")
    channels: list[int] | None = Field(default=None, description="conv channels, e.g. 32,64")
    likelihood: LikelihoodName = Field(default="auto", description="auto, bernoulli, gaussian, mixed (tables with text columns) or multinomial (interactions)")
    gaussian_std: float | None = Field(default=None, gt=0.0,
        description="fixed std of the Gaussian likelihood (learned per feature when unset)")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="dropout in encoder and decoder")

    # objective
    beta: float = Field(default=1.0, ge=0.0, le=1000.0, description="weight of the KL term")
    kl_warmup: int = Field(default=0, ge=0, le=100_000, description="epochs over which beta ramps up from 0")
    kl_schedule: KLScheduleName = Field(default="linear", description="linear (warm-up) or cyclical (Fu et al. 2019)")
    kl_cycles: int = Field(default=4, ge=1, le=10_000, description="cycles of the cyclical schedule")
    kl_ratio: float = Field(default=0.5, gt=0.0, le=1.0, description="fraction of each cycle spent ramping beta")
    free_bits: float = Field(default=0.0, ge=0.0, le=100.0,
        description="KL floor per latent dimension, nats (Kingma et al. 2016)")
    # denoising VAE (Im et al. 2017): train on corrupted inputs against the clean data, e.g. gaussian:0.3,
    # masking:0.25, salt-pepper:0.1 (vaekit.data.noise)
    corruption: str | None = Field(default=None,
        description="denoising VAE: corrupt inputs, reconstruct the clean data; gaussian:0.3, masking:0.25 or salt-"
                    "pepper:0.1")
    # importance samples of the training objective: 1 = ELBO, K > 1 = IWAE_K (Burda et al. 2015);
    # with missing: mask this is MIWAE's objective (Mattei & Frellsen 2019)
    iw_samples: int = Field(default=1, ge=1, le=10_000,
        description="importance samples of the training objective: 1 = ELBO, K > 1 = IWAE_K (MIWAE with "
                    "--missing mask)")

    # the prior p(z): N(0, I), or a VampPrior (Tomczak & Welling 2018): a mixture of the encoder's posteriors
    # at K learned pseudo-inputs (vaekit.core.priors)
    prior: PriorName = Field(default="normal",
        description="prior p(z): normal (N(0, I)) or vamp (VampPrior: K learned pseudo-inputs, --vamp-components)")
    vamp_components: int = Field(default=500, ge=1, le=100_000,
        description="--prior vamp: number of pseudo-inputs K (mixture components)")

    # sparse-vae (variational sparse coding, Tonolini et al. 2020): spike-and-slab prior and posterior
    sparse_alpha: float = Field(default=0.2, gt=0.0, lt=1.0,
        description="sparse-vae: sparsity target alpha, the prior probability that a latent dimension is active")

    # vae-gan (Larsen et al. 2016; the adaptive adversarial weight of latent diffusion's autoencoder loss)
    gan_start_epoch: int = Field(default=1, ge=0, le=100_000,
        description="vae-gan: epochs of plain VAE training before the discriminator and adversarial terms start")
    gan_weight: float = Field(default=0.5, ge=0.0, le=1000.0,
        description="vae-gan: factor on the adaptive adversarial weight (gradient-norm ratio at the decoder's "
                    "last layer)")
    gan_feature_weight: float = Field(default=1.0, ge=0.0, le=1000.0,
        description="vae-gan: weight of the reconstruction error in the discriminator's feature space")
    gan_adversarial: Literal["prior", "both"] = Field(default="prior",
        description="vae-gan: which decodings the generator's adversarial term scores: prior (samples from p(z); "
                    "reconstructions get the feature term only) or both (also the reconstructions; MSE +31%)")
    gan_spectral_norm: bool = Field(default=True,
        description="vae-gan: spectral normalization on the discriminator's layers (Miyato et al. 2018)")

    # optimisation
    optimizer: OptimizerName = Field(default="adam", description="adam or adamw")
    lr: float = Field(default=1e-3, gt=0.0, le=10.0, description="learning rate")
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0, description="weight decay of the optimizer")
    batch_size: int = Field(default=128, ge=1, le=1_000_000, description="examples per training step")
    epochs: int = Field(default=100, ge=1, le=100_000, description="maximum number of epochs")
    patience: int | None = Field(default=10, ge=1, le=100_000,
        description="early stopping: epochs without validation improvement")
    min_delta: float = Field(default=0.0, ge=0.0, description="improvement (nats) that resets early stopping")
    lr_schedule: ScheduleName = Field(default="none", description="none, exponential, step, plateau or cosine")
    lr_gamma: float = Field(default=0.5, gt=0.0, le=1.0,
        description="decay factor of the exponential/step/plateau schedules")
    lr_step: int = Field(default=10, ge=1, description="epochs between step decays")
    grad_clip: float | None = Field(default=None, gt=0.0, description="clip the gradient norm to this value")

    # run
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="random seed (splits, initialisation, shuffling)")
    # checked against the machine in training.resolve_device
    device: str = Field(default="auto", description="auto, cpu, cuda, cuda:N or mps")
    precision: PrecisionName = Field(default="fp32", description="fp32, or bf16 (autocast; GPUs with bf16, or CPUs)")
    compile: bool = Field(default=False, description="torch.compile the networks")
    # CPU threads of torch; None: as the process is (the CLI sets vaekit's default, see vaekit._threads)
    threads: int | None = Field(default=None, ge=1, le=1024,
        description="CPU threads of torch (unset: VAEKIT_THREADS, OMP_NUM_THREADS, else vaekit's default: see README, "
                    "Performance)")

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        """true/false is not a number: pydantic's lax mode read ``latent_dim: true`` as 1. Numeric strings
        stay accepted (YAML 1.1 reads ``lr: 1e-3`` as the string "1e-3")."""
        if cls.model_fields[info.field_name].annotation is not bool and (
                isinstance(v, bool) or (isinstance(v, (list, tuple)) and any(isinstance(i, bool) for i in v))):
            raise ValueError("give a number (or the setting's own kind of value), not true/false")
        return v

    @field_validator("hidden")
    @classmethod
    def _hidden_sizes(cls, v: list[int]) -> list[int]:
        if any(h < 1 or h > 65536 for h in v):
            raise ValueError("each hidden size must be between 1 and 65536")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        v = v.strip().lower()
        if v not in ("auto", "cpu", "cuda", "mps") and not (v.startswith("cuda:") and v[5:].isdigit()):
            raise ValueError("use auto, cpu, cuda, cuda:N (a GPU index, e.g. cuda:1) or mps")
        return v

    @field_validator("corruption")
    @classmethod
    def _corruption(cls, v: str | None) -> str | None:
        if v is None or v.strip().lower() in ("", "none"):
            return None
        from .data.noise import check_corruption

        return str(check_corruption(v))

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or any(c < 1 or c > 4096 for c in v)):
            raise ValueError("give 1 or more channel counts, each between 1 and 4096")
        return v

    @model_validator(mode="before")
    @classmethod
    def _family(cls, data: Any) -> Any:
        """``family: m2`` is a semi-supervised run; ``family: vae`` with ``semi_supervised`` contradicts itself."""
        if isinstance(data, dict):
            if data.get("family") == "m2" and not data.get("semi_supervised"):
                data = {**data, "semi_supervised": True}
            elif data.get("family") == "vae" and data.get("semi_supervised"):
                raise ValueError("--family vae contradicts --semi-supervised (the m2 family); drop one")
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "TrainConfig":
        if self.gaussian_std is not None and self.likelihood == "bernoulli":
            raise ValueError("gaussian_std applies only to --likelihood gaussian")
        if self.binarize != "none" and self.likelihood in ("gaussian", "mixed"):
            raise ValueError("binarized data needs --likelihood bernoulli (or auto)")
        if self.iw_samples > 1 and (self.beta != 1.0 or self.kl_warmup or self.free_bits or
                                    self.kl_schedule != "linear" or self.semi_supervised):
            raise ValueError("--iw-samples > 1 trains the IWAE bound, which has no β: drop --beta, --kl-warmup, "
                             "--kl-schedule, --free-bits and --semi-supervised")
        if self.prior == "vamp" and (self.conditional or self.condition_columns or self.semi_supervised or
                                     self.free_bits or (self.family or "vae") != "vae"):
            raise ValueError("--prior vamp is for unconditional vae-family runs (its pseudo-inputs carry no "
                             "condition, and its KL has no per-dimension form for free bits): drop --prior vamp, or "
                             "--conditional, --condition-columns, --semi-supervised, --free-bits and --family")
        if self.missing == "mask" and (self.conditional or self.condition_columns or self.semi_supervised):
            raise ValueError("--missing mask cannot be combined with --conditional, --condition-columns or "
                             "--semi-supervised; drop one")
        if self.hop > self.n_fft // 2:
            raise ValueError(f"--hop {self.hop} must be at most half of --n-fft {self.n_fft} (frames must overlap "
                             "for the spectrogram to turn back into sound)")
        return self


# The command-line flag that sets each field, for error messages.
def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def format_validation_error(err: ValidationError) -> str:
    """One line naming each bad setting, its value and what is allowed."""
    parts = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"] if not isinstance(p, int)]
        name = loc[0] if loc else "config"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            known = ", ".join(sorted(TrainConfig.model_fields))
            parts.append(f"unknown setting '{name}' (known settings: {known})")
            continue
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        value = e.get("input")
        shown = f"={value!r}" if not isinstance(value, dict) else ""
        parts.append(f"invalid {flag_name(name)}{shown}: {msg[0].lower() + msg[1:]}")
    return "; ".join(parts)


def make_config(base: dict[str, Any] | None = None, **overrides: Any) -> TrainConfig:
    """Build a validated config from a base dict (e.g. a YAML file) and overrides (flags win).

    Overrides whose value is None are ignored, so unset command-line flags keep the file's value.
    """
    values: dict[str, Any] = dict(base or {})
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig(**values)
    except ValidationError as err:
        raise UsageError(format_validation_error(err)) from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) config file into a dict of settings; clear errors for bad files."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"config file not found: {p} (pass an existing YAML file to --config)")
    try:
        loaded = load_yaml(p.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UsageError(f"config file {p} is not valid YAML ({first}); fix its syntax") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise UsageError(f"config file {p} must hold a mapping of setting: value, not a {type(loaded).__name__}")
    # Accept both flag spelling (latent-dim) and field spelling (latent_dim).
    return {str(k).replace("-", "_"): v for k, v in loaded.items()}


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses a repeated key in a mapping (PyYAML keeps the last one silently, so
    a second ``lr:`` overrode the first unnoticed); the error names the key and both lines."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` merges; its keys may be overridden
                continue
            key = loader.construct_object(key_node, deep=True)
            try:
                if key in first_line:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} on line {key_node.start_mark.line + 1} (first on line "
                        f"{first_line[key]}): give each setting once", key_node.start_mark)
                first_line[key] = key_node.start_mark.line + 1
            except TypeError:  # an unhashable key: construct_mapping says so
                pass
        return loader.construct_mapping(node, deep=deep)

    UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


# The settings a vae-gan run written before these fields existed was trained with: its config.json lacks them,
# and its weights (a discriminator without spectral normalization) load only with these values.
GAN_LEGACY: dict[str, Any] = {"gan_adversarial": "both", "gan_spectral_norm": False}
