"""Signal processing for audio runs, in torch only (no torchaudio, no librosa).

STFT/iSTFT (``torch.stft``/``torch.istft``, centred frames, periodic Hann window), a mel filter bank equal to
librosa's default (Slaney mel scale, Slaney area normalisation; HTK optional), log-mel spectrograms, the way
back (mel → linear by non-negative least squares, Griffin-Lim phase reconstruction with momentum), and the
distances the audio report uses (multi-scale spectral distance, mel-cepstral distortion). Spectrograms are
``[bins, frames]``; signals are 1-D float tensors in [-1, 1]; rates in Hz.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

#: the floor under mel power before the log (−115 dB): silence stays finite
LOG_FLOOR = 1e-5


# -- STFT ------------------------------------------------------------------------------------------------
def _window(n_fft: int, device: torch.device | None = None) -> torch.Tensor:
    return _cpu_window(n_fft) if device is None or torch.device(device).type == "cpu" else \
        torch.hann_window(n_fft, periodic=True, dtype=torch.float32, device=device)


@functools.lru_cache(maxsize=16)
def _cpu_window(n_fft: int) -> torch.Tensor:
    return torch.hann_window(n_fft, periodic=True, dtype=torch.float32)


def stft(y: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Complex STFT ``[n_fft // 2 + 1, frames]`` of ``y`` (centred frames, reflect padding, Hann window);
    frames = ``len(y) // hop + 1``."""
    return torch.stft(y.float(), n_fft, hop_length=hop, window=_window(n_fft, y.device), center=True,
                      pad_mode="reflect", return_complex=True)


def istft(spec: torch.Tensor, n_fft: int, hop: int, length: int | None = None) -> torch.Tensor:
    """The signal of a complex STFT (least-squares overlap-add; exact inverse of :func:`stft` for hop ≤ n_fft/2)."""
    return torch.istft(spec, n_fft, hop_length=hop, window=_window(n_fft, spec.device), center=True,
                       length=length)


# -- mel scale -----------------------------------------------------------------------------------------
_F_SP = 200.0 / 3  # Slaney: 66.67 Hz per mel below 1 kHz
_MIN_LOG_HZ, _MIN_LOG_MEL, _LOGSTEP = 1000.0, 15.0, math.log(6.4) / 27.0


def hz_to_mel(f: np.ndarray | float, htk: bool = False) -> np.ndarray:
    """Hz → mel: Slaney's scale (linear below 1 kHz, 15 mel at 1 kHz, logarithmic above; librosa's default)
    or HTK's 2595·log10(1 + f/700)."""
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    lin = f / _F_SP
    return np.where(f >= _MIN_LOG_HZ, _MIN_LOG_MEL + np.log(np.maximum(f, 1e-10) / _MIN_LOG_HZ) / _LOGSTEP, lin)


def mel_to_hz(m: np.ndarray | float, htk: bool = False) -> np.ndarray:
    """The inverse of :func:`hz_to_mel`."""
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    return np.where(m >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), _F_SP * m)


def mel_filters(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None,
                htk: bool = False, norm: str | None = "slaney") -> torch.Tensor:
    """Triangular mel filters ``[n_mels, n_fft // 2 + 1]``, as ``librosa.filters.mel`` builds them: centres
    equally spaced in mel between ``fmin`` and ``fmax`` (default sr/2); ``norm="slaney"`` divides each
    triangle by its width in Hz / 2, so every filter has unit area over frequency."""
    return _mel_filters(int(sr), int(n_fft), int(n_mels), float(fmin), fmax, htk, norm).clone()


@functools.lru_cache(maxsize=16)
def _mel_filters(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None,
                 htk: bool = False, norm: str | None = "slaney") -> torch.Tensor:
    fmax = sr / 2.0 if fmax is None else float(fmax)
    freqs = np.linspace(0.0, sr / 2.0, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return torch.from_numpy(weights.astype(np.float32))


def mel_power(y: torch.Tensor, sr: int, n_fft: int, hop: int, n_mels: int,
              fb: torch.Tensor | None = None) -> torch.Tensor:
    """Mel power spectrogram ``[n_mels, frames]`` (|STFT|² through :func:`mel_filters`)."""
    fb = mel_filters(sr, n_fft, n_mels) if fb is None else fb
    return fb @ stft(y, n_fft, hop).abs().pow(2)


def log_mel(y: torch.Tensor, sr: int, n_fft: int, hop: int, n_mels: int,
            fb: torch.Tensor | None = None) -> torch.Tensor:
    """ln(mel power + :data:`LOG_FLOOR`), ``[n_mels, frames]``."""
    return torch.log(mel_power(y, sr, n_fft, hop, n_mels, fb) + LOG_FLOOR)


def mel_to_linear(mel: torch.Tensor, fb: torch.Tensor, iters: int = 30) -> torch.Tensor:
    """Linear power spectrogram ``[F, frames]`` ≥ 0 whose mel projection is closest to ``mel`` in least
    squares: the pseudo-inverse solution clipped at 0, refined by projected gradient steps (step 1/L with
    L = ‖fb‖₂², so each step does not increase the error). A non-negative least squares solve, approximately."""
    fb = fb.to(mel)
    pinv, lip = _inverse_parts(fb)
    x = (pinv @ mel).clamp_min(0.0)
    step = fb.T.contiguous() / lip
    for _ in range(iters):
        x = (x - step @ (fb @ x - mel)).clamp_min_(0.0)
    return x


def _inverse_parts(fb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pseudo-inverse, squared spectral norm) of a filter bank, cached by its contents (built once a run)."""
    key = (tuple(fb.shape), float(fb.sum()), float(fb[:, ::7].sum()), fb.dtype)
    if key not in _INVERSES:
        _INVERSES[key] = (torch.linalg.pinv(fb), torch.linalg.matrix_norm(fb, ord=2) ** 2)
        if len(_INVERSES) > 16:
            _INVERSES.pop(next(iter(_INVERSES)))
    return _INVERSES[key]


_INVERSES: dict = {}


# -- phase reconstruction -------------------------------------------------------------------------------
def griffin_lim(mag: torch.Tensor, n_fft: int, hop: int, iters: int = 32, length: int | None = None,
                momentum: float = 0.99, seed: int = 0, history: list | None = None) -> torch.Tensor:
    """A signal whose STFT magnitude approaches ``mag`` ``[F, frames]``: Griffin & Lim (1984) with the fast
    (momentum) update of Perraudin et al. (2013). Phases start random (seeded). ``history``, when given, gets
    the spectral convergence ‖|STFT(y)| − mag‖ / ‖mag‖ after each iteration."""
    gen = torch.Generator().manual_seed(seed)
    angles = torch.exp(2j * math.pi * torch.rand(mag.shape, generator=gen)).to(torch.complex64)
    mag = mag.float()
    prev = torch.zeros_like(angles)
    y = istft(mag * angles, n_fft, hop, length)
    for _ in range(max(0, iters)):
        rebuilt = stft(y, n_fft, hop)
        if rebuilt.shape[1] != mag.shape[1]:  # length mismatch: pad or cut frames
            rebuilt = _fit_frames(rebuilt, mag.shape[1])
        if history is not None:
            history.append(float((rebuilt.abs() - mag).norm() / mag.norm().clamp_min(1e-12)))
        accel = rebuilt - (momentum / (1 + momentum)) * prev if momentum else rebuilt
        angles = accel / accel.abs().clamp_min(1e-16)
        prev = rebuilt
        y = istft(mag * angles, n_fft, hop, length)
    return y


def _fit_frames(spec: torch.Tensor, frames: int) -> torch.Tensor:
    if spec.shape[1] > frames:
        return spec[:, :frames]
    return torch.nn.functional.pad(spec, (0, frames - spec.shape[1]))


def log_mel_to_audio(lm: torch.Tensor, sr: int, n_fft: int, hop: int, iters: int = 32,
                     length: int | None = None, seed: int = 0) -> torch.Tensor:
    """Log-mel ``[n_mels, frames]`` (:func:`log_mel` units) → a signal: exp, mel → linear power, √,
    Griffin-Lim."""
    fb = mel_filters(sr, n_fft, lm.shape[0])
    power = mel_to_linear((torch.exp(lm.float()) - LOG_FLOOR).clamp_min(0.0), fb)
    return griffin_lim(power.sqrt(), n_fft, hop, iters, length=length, seed=seed)


# -- distances ---------------------------------------------------------------------------------------------
def spectral_distance(a: torch.Tensor, b: torch.Tensor, ffts: tuple[int, ...] = (2048, 1024, 512, 256, 128, 64),
                      eps: float = 1e-7) -> float:
    """Multi-scale spectral distance between signals (the shorter length is used): the mean over STFT sizes
    (hop = size/4) of spectral convergence ‖|A| − |B|‖_F / ‖|A|‖_F plus the mean |log(|A| + eps) −
    log(|B| + eps)| (as in DDSP/RAVE's multi-scale losses). 0 for equal signals; ``a`` is the reference."""
    n = min(len(a), len(b))
    a, b = a[:n].float(), b[:n].float()
    total, used = 0.0, 0
    for size in ffts:
        if size > n:
            continue
        ma, mb = stft(a, size, size // 4).abs(), stft(b, size, size // 4).abs()
        total += float((ma - mb).norm() / ma.norm().clamp_min(eps))
        total += float((torch.log(ma + eps) - torch.log(mb + eps)).abs().mean())
        used += 1
    if not used:
        raise ValueError(f"signals of {n} samples are shorter than the smallest STFT size {min(ffts)}")
    return total / used


def _dct_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """Orthonormal DCT-II ``[n_out, n_in]``."""
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    i = torch.arange(n_in, dtype=torch.float64)[None, :]
    m = torch.cos(math.pi / n_in * (i + 0.5) * k) * math.sqrt(2.0 / n_in)
    m[0] /= math.sqrt(2.0)
    return m.float()


def mel_cepstrum(lm: torch.Tensor, n_coeffs: int = 13) -> torch.Tensor:
    """Mel cepstra ``[n_coeffs, frames]``: the orthonormal DCT-II over mel bands of log mel *amplitude*
    (½ · log-mel power, natural log), as MFCCs are made."""
    return _dct_matrix(lm.shape[0], n_coeffs) @ (0.5 * lm.float())


def mcd(lm_ref: torch.Tensor, lm: torch.Tensor, n_coeffs: int = 13, active_db: float | None = 40.0,
        top_db: float | None = 80.0) -> float:
    """Mel-cepstral distortion in dB between two log-mel spectrograms (frames aligned, the shorter count
    used): the mean over frames of (10 / ln 10) · √(2 Σ_{d=1}^{D} (c_d − c'_d)²), c0 (energy) excluded
    (Kubichek 1993). As usual for speech, only the reference's active frames count: those within
    ``active_db`` dB of its loudest frame; and both spectrograms are floored ``top_db`` dB below the
    reference's loudest band (librosa's ``power_to_db(top_db=80)``), so bands of digital silence at the log
    floor do not dominate (None: neither)."""
    t = min(lm_ref.shape[1], lm.shape[1])
    ref, out = lm_ref[:, :t].float(), lm[:, :t].float()
    if top_db is not None:
        floor = ref.max() - top_db * math.log(10.0) / 10.0
        ref, out = ref.clamp_min(floor), out.clamp_min(floor)
    if active_db is not None:
        energy_db = (10.0 / math.log(10.0)) * torch.logsumexp(ref, 0)
        keep = energy_db >= energy_db.max() - active_db
        ref, out = ref[:, keep], out[:, keep]
    c1, c2 = mel_cepstrum(ref, n_coeffs)[1:], mel_cepstrum(out, n_coeffs)[1:]
    per_frame = (10.0 / math.log(10.0)) * torch.sqrt(2.0 * ((c1 - c2) ** 2).sum(0))
    return float(per_frame.mean())


def resample(y: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """``y`` resampled from ``sr_in`` to ``sr_out`` Hz by polyphase filtering (scipy's ``resample_poly``,
    a Kaiser-windowed low-pass at the lower Nyquist rate); the length is ⌈len · sr_out / sr_in⌉."""
    if sr_in == sr_out:
        return y
    from scipy.signal import resample_poly

    g = math.gcd(int(sr_in), int(sr_out))
    return resample_poly(y, sr_out // g, sr_in // g).astype(np.float32)
