"""Audio runs: the data kind (folders of recordings → log-mel patches), training, sound out, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

sf = pytest.importorskip("soundfile")

from audio_helpers import SR, TINY, voice, write_speakers  # noqa: E402
from cli_helpers import assert_usage_error, run  # noqa: E402

from vaekit.data import load_source  # noqa: E402
from vaekit.data.audio import patch_starts  # noqa: E402

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


def test_splits_hold_out_whole_recordings(tmp_path):
    from vaekit.config import TrainConfig
    from vaekit.data.kinds import kind_of

    root = write_speakers(tmp_path / "sp", clips=5)
    ds = load_source(str(root), audio=OPTS)
    assert ds.audio["split"] == "clips" and ds.clips.unique().tolist() == list(range(10))
    for seed in range(4):
        cfg = TrainConfig(val_fraction=0.2, test_fraction=0.2, seed=seed)
        parts = kind_of("audio").split(ds, cfg)
        # which recording each split's patches came from: rows are matched back to ds.x exactly
        ids = [{int(ds.clips[(ds.x == row).flatten(1).all(1)][0]) for row in p.x} for p in parts]
        assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
        assert sorted(ids[0] | ids[1] | ids[2]) == list(range(10))
        assert [len(i) for i in ids] == [6, 2, 2] and sum(len(p) for p in parts) == len(ds)
        assert set(parts[0].y.tolist()) == {0, 1}  # every class keeps training recordings
    again = kind_of("audio").split(ds, TrainConfig(val_fraction=0.2, test_fraction=0.2, seed=3))
    assert all(torch.equal(a.x, b.x) for a, b in zip(parts, again))  # seeded


def test_patch_hop_sets_how_many_training_patches_a_clip_gives(tmp_path):
    sf.write(tmp_path / "a.wav", voice("low", 1.0, 0), SR)
    half = load_source(str(tmp_path / "a.wav"), audio=OPTS)
    dense = load_source(str(tmp_path / "a.wav"), audio={**OPTS, "patch_hop": 1})
    frames = int(1.0 * SR) // 64 + 1
    assert half.audio["patch_hop"] == 4 and dense.audio["patch_hop"] == 1
    assert len(dense) == frames - 8 + 1 and len(half) == len(patch_starts(frames, 8, 4))
    assert torch.equal(dense.x[4], half.x[1])  # the same patch, cut from the same frames


def test_too_few_recordings_and_older_runs_split_patches(tmp_path):
    from vaekit.config import TrainConfig
    from vaekit.data.kinds import kind_of

    kind = kind_of("audio")
    sf.write(tmp_path / "one.wav", voice("low", 1.0, 0), SR)  # one recording: its patches are split (documented)
    ds = load_source(str(tmp_path / "one.wav"), audio=OPTS)
    parts = kind.split(ds, TrainConfig())
    assert all(len(p) > 0 for p in parts) and sum(len(p) for p in parts) == len(ds)
    for name in ("a", "b", "c"):  # one recording per class: none can be held out, so patches are split
        (tmp_path / "cls" / name).mkdir(parents=True)
        sf.write(tmp_path / "cls" / name / "x.wav", voice("low", 1.0, 0), SR)
    parts = kind.split(load_source(str(tmp_path / "cls"), audio=OPTS), TrainConfig())
    assert all(len(p) > 0 for p in parts)
    # a run saved before recordings were held out has no "split" in its settings: it keeps the split of patches
    saved = {"data": {"audio": {**OPTS, "mel_scale": "slaney"}}}
    assert kind.load_options(TrainConfig(), saved)["audio"]["split"] == "patches"
    new = {"data": {"audio": {**OPTS, "split": "clips"}}}
    assert kind.load_options(TrainConfig(), new)["audio"]["split"] == "clips"


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory):
    """A label-conditional conv VAE on two synthetic speakers (2 epochs, latent 3)."""
    root = tmp_path_factory.mktemp("audio")
    data = write_speakers(root / "speakers")
    r = run("train", "--data", data, "--out", root / "run", *TINY, "--model", "conv", "--channels", "8,16",
            "--latent-dim", "3", "--epochs", "2", "--batch-size", "32", "--conditional", "--griffin-lim-iters", "8",
            "--report-iwae-k", "0", "-q")
    assert r.exit_code == 0, r.output
    return root


def test_audio_run_saves_its_spectrogram_settings_and_reuses_the_vae_family(audio_run):
    info = json.loads((audio_run / "run" / "config.json").read_text())
    assert info["config"]["family"] in (None, "vae") and info["config"]["conditional"]
    assert info["data"]["kind"] == "audio" and info["data"]["shape"] == [1, 16, 8]
    assert {k: info["data"]["audio"][k] for k in ("sample_rate", "n_mels", "n_fft", "hop", "patch_frames")} == \
        dict(sample_rate=8000, n_mels=16, n_fft=256, hop=64, patch_frames=8)
    assert info["config"]["likelihood"] == "gaussian"


def test_reconstruct_sample_interpolate_convert_write_wavs_of_the_right_length_and_rate(audio_run, tmp_path):
    rundir, sp = audio_run / "run", audio_run / "speakers"
    clip16k = tmp_path / "clip16k.wav"  # another rate than the run's: resampled on the way in
    sf.write(clip16k, voice("low", 0.7, 7, sr=16000), 16000)
    r = run("reconstruct", rundir, "--data", clip16k, "--out", tmp_path / "rec.wav")
    assert r.exit_code == 0, r.output
    info = sf.info(str(tmp_path / "rec.wav"))
    assert (info.samplerate, info.frames, info.channels) == (8000, int(0.7 * 8000), 1)
    r = run("sample", rundir, "-n", "2", "--seconds", "0.5", "--label", "high", "--out", tmp_path / "samples")
    assert r.exit_code == 0, r.output
    wavs = sorted((tmp_path / "samples").glob("*.wav"))
    assert [sf.info(str(w)).frames for w in wavs] == [4000, 4000]
    r = run("interpolate", rundir, "--from", sp / "low" / "low0.wav", "--to", sp / "high" / "high1.wav",
            "--out", tmp_path / "morph.wav")
    assert r.exit_code == 0, r.output
    assert sf.info(str(tmp_path / "morph.wav")).frames == int(0.6 * SR)
    r = run("convert", rundir, "--data", sp / "low" / "low1.wav", "--label", "high", "--out", tmp_path / "conv.wav")
    assert r.exit_code == 0, r.output
    conv, rate = sf.read(str(tmp_path / "conv.wav"))
    assert rate == SR and len(conv) == int(0.6 * SR) and np.isfinite(conv).all() and np.abs(conv).max() > 0.01


def test_audio_commands_refuse_bad_input_in_one_line(audio_run, tmp_path):
    rundir, sp = audio_run / "run", audio_run / "speakers"
    assert_usage_error(run("convert", rundir, "--data", sp / "low" / "low0.wav", "--label", "nobody",
                           "--out", tmp_path / "c.wav"), "unknown label 'nobody'", "high, low")
    sf.write(tmp_path / "short.wav", voice("low", 0.03, 0), SR)
    assert_usage_error(run("reconstruct", rundir, "--data", tmp_path / "short.wav", "--out", tmp_path / "r.wav"),
                       "shorter than one patch")
    (tmp_path / "bad.wav").write_bytes(b"\x00" * 100)
    assert_usage_error(run("reconstruct", rundir, "--data", tmp_path / "bad.wav", "--out", tmp_path / "r.wav"),
                       "cannot read audio")
    assert_usage_error(run("reconstruct", rundir, "--data", sp / "low" / "low0.wav", "--out", tmp_path / "r.png"),
                       ".wav")
    assert not (tmp_path / "r.wav").exists() and not (tmp_path / "c.wav").exists()


def test_report_has_players_spectrograms_and_audio_metrics(audio_run):
    import re

    rundir = audio_run / "run"
    page = (rundir / "report.html").read_text()
    sources = re.findall(r'<audio controls preload="none" src="([^"]+)"', page)
    assert "report_assets/clip0_input.wav" in sources and "report_assets/clip0_recon.wav" in sources
    assert any("_as_" in s for s in sources)  # conversion to the other speaker
    for rel in sources:  # relative links to files written into the run folder, at the run's rate
        assert sf.info(str(rundir / rel)).samplerate == SR
    assert 'id="fig-audio-0"' in page and "data:image/png;base64," in page
    audio = json.loads((rundir / "evaluation.json").read_text())["audio"]
    # the report's clips are the run's test recordings (held out from training)
    from vaekit.data.audio import clip_split

    test = clip_split([0, 0, 0, 1, 1, 1], 0.1, 0.1, 0)[2]
    assert audio["held_out"] and [c["clip"] for c in audio["clips"]] == \
        [["high0.wav", "high1.wav", "high2.wav", "low0.wav", "low1.wav", "low2.wav"][i] for i in test]
    assert "Held-out clips" in page
    for key in ("spectral_distance", "mcd_db", "real_time_factor"):
        assert np.isfinite(audio["mean"][key]) and audio["mean"][key] > 0
    # --overwrite removes the assets with the run's other files
    import vaekit

    vaekit.train(str(audio_run / "speakers"), rundir, overwrite=True, report=False, epochs=1, latent_dim=2,
                 hidden=[16], **OPTS)  # (the last test of this module's run)
    assert not (rundir / "report_assets").exists()
