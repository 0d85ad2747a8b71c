"""The audio DSP against known signals: mel scale and filter bank, STFT round trip, Griffin-Lim, distances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaekit.audio import dsp

SR = 16000


def tone(freq: float, seconds: float = 0.5, sr: int = SR) -> torch.Tensor:
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    return (0.5 * torch.sin(2 * math.pi * freq * t)).float()


def test_slaney_mel_scale_known_points():
    # Slaney: linear 200/3 Hz per mel below 1 kHz, 15 mel at 1 kHz, 27 mel per factor 6.4 above
    assert dsp.hz_to_mel(1000.0) == pytest.approx(15.0)
    assert dsp.hz_to_mel(6400.0) == pytest.approx(42.0)
    assert dsp.hz_to_mel(200.0) == pytest.approx(3.0)
    assert dsp.hz_to_mel(1000.0, htk=True) == pytest.approx(1000.0, abs=0.1)  # HTK's scale: 1000 mel at 1 kHz
    f = np.array([0.0, 50.0, 999.0, 1000.0, 4321.0, 8000.0])
    assert np.allclose(dsp.mel_to_hz(dsp.hz_to_mel(f)), f)
    assert np.allclose(dsp.mel_to_hz(dsp.hz_to_mel(f, htk=True), htk=True), f)


def test_mel_filters_shape_peaks_and_unit_area():
    n_fft, n_mels = 1024, 40
    fb = dsp.mel_filters(SR, n_fft, n_mels).double()
    assert fb.shape == (n_mels, n_fft // 2 + 1) and bool((fb >= 0).all())
    centres = dsp.mel_to_hz(np.linspace(0, dsp.hz_to_mel(SR / 2), n_mels + 2))[1:-1]
    freqs = np.linspace(0, SR / 2, n_fft // 2 + 1)
    for i in (5, 20, 39):  # each triangle peaks at the bin nearest its centre frequency
        assert abs(freqs[int(fb[i].argmax())] - centres[i]) <= SR / n_fft
    # Slaney normalisation: every triangle has unit area over frequency (Σ weights · bin width ≈ 1)
    area = fb.sum(1) * (SR / n_fft)
    assert float(area[10:].sub(1).abs().max()) < 0.02
    # neighbouring triangles overlap so that, unnormalised, they sum to 1 between the first and last centre
    flat = dsp.mel_filters(SR, n_fft, n_mels, norm=None).sum(0).numpy()
    inside = (freqs > centres[0]) & (freqs < centres[-1])
    assert np.allclose(flat[inside], 1.0, atol=1e-6)


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0])
def test_pure_tone_lands_in_its_mel_band(freq):
    n_mels = 40
    energy = dsp.mel_power(tone(freq), SR, 512, 128, n_mels).mean(1)
    centres = dsp.mel_to_hz(np.linspace(0, dsp.hz_to_mel(SR / 2), n_mels + 2))[1:-1]
    band = int(energy.argmax())
    assert band in np.argsort(np.abs(centres - freq))[:2]  # the band centred nearest the tone (or its neighbour)
    assert float(energy[band] / energy.sum()) > 0.4


def test_stft_istft_round_trip():
    rng = np.random.default_rng(0)
    y = torch.from_numpy(rng.uniform(-0.9, 0.9, 12345).astype(np.float32))
    for n_fft, hop in ((512, 128), (1024, 256), (400, 100)):
        spec = dsp.stft(y, n_fft, hop)
        assert spec.shape == (n_fft // 2 + 1, len(y) // hop + 1)
        assert float((dsp.istft(spec, n_fft, hop, len(y)) - y).abs().max()) < 1e-5


def test_griffin_lim_reduces_spectral_distance_over_iterations():
    t = torch.arange(SR // 2) / SR
    chirp = 0.5 * torch.sin(2 * math.pi * (200 * t + 1500 * t ** 2))
    mag = dsp.stft(chirp, 512, 128).abs()
    history: list[float] = []
    few = dsp.griffin_lim(mag, 512, 128, iters=2, length=len(chirp))
    many = dsp.griffin_lim(mag, 512, 128, iters=40, length=len(chirp), history=history)
    assert len(many) == len(chirp)
    assert history[-1] < 0.5 * history[0]
    assert history[-1] < history[4] < history[0]
    assert dsp.spectral_distance(chirp, many) < dsp.spectral_distance(chirp, few)


def test_mel_to_linear_is_nonnegative_and_fits_the_mel_bands():
    fb = dsp.mel_filters(SR, 512, 40)
    power = dsp.stft(tone(440.0) + tone(2500.0), 512, 128).abs().pow(2)
    mel = fb @ power
    lin = dsp.mel_to_linear(mel, fb)
    assert bool((lin >= 0).all())
    assert float((fb @ lin - mel).norm() / mel.norm()) < 0.05
    pinv = (torch.linalg.pinv(fb) @ mel).clamp_min(0)  # the refinement only improves on the clipped pseudo-inverse
    assert float((fb @ lin - mel).norm()) <= float((fb @ pinv - mel).norm()) + 1e-6


def test_distances_are_zero_for_equal_signals_and_grow_with_difference():
    a, b = tone(440.0), tone(460.0)
    assert dsp.spectral_distance(a, a) == 0.0
    noise = torch.randn(len(a), generator=torch.Generator().manual_seed(0))
    d = [dsp.spectral_distance(a, a + s * noise) for s in (0.001, 0.01, 0.1)]
    assert 0 < d[0] < d[1] < d[2]
    assert dsp.spectral_distance(a, b) > dsp.spectral_distance(a, a * 0.9)
    la, lb = (dsp.log_mel(s, SR, 512, 128, 40) for s in (a + 0.05 * torch.sin(torch.arange(len(a)) * 0.9), b))
    assert dsp.mcd(la, la) == 0.0 and dsp.mcd(la, lb) > 1.0


def test_resample_length_and_tone():
    y = tone(440.0, 1.0, 22050).numpy()
    r = dsp.resample(y, 22050, 16000)
    assert len(r) == 16000
    spec = np.abs(np.fft.rfft(r))
    assert abs(np.argmax(spec) * 16000 / len(r) - 440.0) <= 1.0
