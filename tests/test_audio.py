"""Audio runs: the data kind (folders of recordings → log-mel patches), training, sound out, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

sf = pytest.importorskip("soundfile")

from audio_helpers import SR, TINY, voice, write_speakers  # noqa: E402
from cli_helpers import assert_usage_error, run  # noqa: E402

from vaekit.data import load_source  # noqa: E402

OPTS = dict(sample_rate=8000, n_mels=16, n_fft=256, hop=64, patch_frames=8)


def test_folder_of_speakers_loads_as_labelled_log_mel_patches(tmp_path):
    root = write_speakers(tmp_path / "sp")
    ds = load_source(str(root), audio=OPTS)
    assert ds.kind == "audio" and ds.classes == ["high", "low"]
    frames = int(0.6 * SR) // 64 + 1  # centred STFT frames of one 0.6 s clip
    per_clip = len(range(0, frames - 8 + 1, 4)) + (1 if (frames - 8) % 4 else 0)
    assert ds.x.shape == (6 * per_clip, 1, 16, 8)
    assert ds.y.bincount().tolist() == [3 * per_clip, 3 * per_clip]
    assert ds.audio["sample_rate"] == 8000 and ds.audio["mel_scale"] == "slaney"
    # a high chirp's energy sits in the upper mel bands, the low voice's in the lower ones
    high, low = ds.x[ds.y == 0].mean((0, 1, 3)), ds.x[ds.y == 1].mean((0, 1, 3))
    assert int(high.argmax()) > 8 > int(low.argmax())


def test_stereo_is_mixed_to_mono_and_resampled(tmp_path):
    y = voice("low", 0.5, 0, sr=16000)
    sf.write(tmp_path / "st.wav", np.stack([y, y], 1), 16000)
    sf.write(tmp_path / "mono.flac", y, 16000)
    a = load_source(str(tmp_path / "st.wav"), audio=OPTS)
    b = load_source(str(tmp_path / "mono.flac"), audio=OPTS)
    assert a.x.shape == b.x.shape and float((a.x - b.x).abs().max()) < 1e-2  # FLAC stores 16-bit samples
    assert a.audio["sample_rate"] == 8000


def test_bad_audio_inputs_are_one_line_errors(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.wav").write_bytes(b"RIFF not really a wave file")
    assert_usage_error(run("train", "--data", tmp_path / "broken", "--out", tmp_path / "r1", *TINY),
                       "cannot read audio", "x.wav")
    (tmp_path / "empty").mkdir()
    sf.write(tmp_path / "empty" / "e.wav", np.zeros(0, np.float32), SR)
    assert_usage_error(run("train", "--data", tmp_path / "empty", "--out", tmp_path / "r2", *TINY), "is empty")
    (tmp_path / "short").mkdir()
    sf.write(tmp_path / "short" / "s.wav", voice("low", 0.05, 0), SR)
    assert_usage_error(run("train", "--data", tmp_path / "short", "--out", tmp_path / "r3", *TINY),
                       "shorter than one patch", "--patch-frames")
    (tmp_path / "mixed").mkdir()
    sf.write(tmp_path / "mixed" / "a.wav", voice("low", 0.5, 0), SR)
    sf.write(tmp_path / "mixed" / "b.wav", voice("low", 0.5, 0, sr=11025), 11025)
    no_rate = [a for i, a in enumerate(TINY) if i not in (0, 1)]
    assert_usage_error(run("train", "--data", tmp_path / "mixed", "--out", tmp_path / "r4", *no_rate),
                       "different sample rates", "--sample-rate")
    assert not any((tmp_path / f"r{i}").exists() for i in range(1, 5))
