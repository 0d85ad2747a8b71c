"""The audio part of an audio run's report: clips you can listen to, their spectrograms and their numbers.

For up to three clips of the run's test split (whole recordings held out from training; the first of each
class, else the first three files; at most
``MAX_SECONDS`` of each), the input at the run's rate and its reconstruction are written to
``RUN/report_assets/*.wav`` and shown as ``<audio>`` players (relative links, so the folder can be moved
whole), with a spectrogram figure (input above reconstruction). A label-conditional run adds the first clip
converted to every other label, every run a 2 s sample. The numbers (multi-scale spectral distance, MCD and
the real-time factor of encode + decode + Griffin-Lim, per clip and their mean) go into
``evaluation.json["audio"]``. A run with fewer than 3 recordings, or one saved before splits held out
recordings, splits patches: its clips are then the training data's, and the report says so.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.audio import list_audio, read_audio
from .audio import Clip, clip_metrics, read_clip, reconstruct_clip, sample_clip, settings_of, write_wav

ASSETS = "report_assets"
MAX_SECONDS = 8.0
MAX_CLIPS = 3


def pick_clips(source: Path, trained=None) -> tuple[list[Path], bool]:
    """(the first clip of each class, or the first files, at most :data:`MAX_CLIPS`; whether they are held out):
    of the run's test recordings when its split holds out recordings, else of all of them."""
    from ..data.audio import clip_split

    files, labels, _ = list_audio(source)
    parts = None
    if trained is not None and settings_of(trained).get("split", "patches") == "clips":
        cfg = trained.config
        parts = clip_split(labels or [None] * len(files), cfg.val_fraction, cfg.test_fraction, cfg.seed)
    if parts is not None:
        files, labels = [files[i] for i in parts[2]], None if labels is None else [labels[i] for i in parts[2]]
    if labels is None:
        return files[:MAX_CLIPS], parts is not None
    firsts: dict[int, Path] = {}
    for f, label in zip(files, labels):
        firsts.setdefault(label, f)
    return list(firsts.values())[:MAX_CLIPS], parts is not None


def _cropped(trained, path: Path) -> Clip:
    """``path`` as the run sees it, cut to its first :data:`MAX_SECONDS` (a crop written next to the assets)."""
    y, rate = read_audio(path)
    if len(y) <= MAX_SECONDS * rate:
        return read_clip(trained, path)
    crop = trained.run_dir / ASSETS / f".crop_{path.stem}.wav"
    write_wav(crop, y[: int(MAX_SECONDS * rate)], rate)
    try:
        clip = read_clip(trained, crop)
    finally:
        crop.unlink(missing_ok=True)
    clip.path = path
    return clip


def spectrogram_png(rows: list[tuple[str, torch.Tensor]], s: dict) -> bytes:
    """Log-mel spectrograms (normalised units) stacked vertically, time in seconds, one shared colour scale."""
    from ..evaluation.report import fig_png, pyplot

    plt = pyplot()
    fig, axes = plt.subplots(len(rows), 1, figsize=(8, 1.9 * len(rows)), squeeze=False)
    seconds = s["hop"] / s["sample_rate"]
    for ax, (title, lm) in zip(axes[:, 0], rows):
        ax.imshow(lm.numpy(), origin="lower", aspect="auto", vmin=-2, vmax=2, cmap="magma",
                  extent=(0, lm.shape[1] * seconds, 0, lm.shape[0]))
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("mel band")
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    return fig_png(fig)


def _player(rel: str, caption: str) -> str:
    return (f'<figure><figcaption>{html.escape(caption)}</figcaption><audio controls preload="none" '
            f'src="{html.escape(rel)}"></audio></figure>')


def audio_report(trained) -> tuple[dict[str, Any], str]:
    """(``evaluation.json["audio"]``, the report's HTML sections) of an audio run; writes the clips."""
    from ..evaluation.report import _figure

    s = settings_of(trained)
    rate = s["sample_rate"]
    source = Path(trained.info["data"].get("source") or "")
    held_out = False
    try:
        picked, held_out = pick_clips(source, trained) if source.exists() else ([], False)
        clips = [_cropped(trained, f) for f in picked]
    except Exception as exc:  # noqa: BLE001 - the report says why, training is not failed by it
        return {"note": f"clips not read: {exc}"}, (f"<h2 id='audio'>Audio</h2><p>the recordings of "
                                                     f"{html.escape(str(source))} could not be read "
                                                     f"({html.escape(str(exc))})</p>")
    if not clips:
        return {"note": f"{source} not found"}, f"<h2 id='audio'>Audio</h2><p>{html.escape(str(source))} not found</p>"
    assets = trained.run_dir / ASSETS
    assets.mkdir(exist_ok=True)
    whose = ("Held-out clips (test recordings, unseen in training)" if held_out else
             "Clips of the training data (not held out: fewer than 3 recordings, or a run from before recordings "
             "were held out)")
    parts = [f"<h2 id='audio'>Audio</h2><p>{whose}, at "
             f"{rate} Hz, at most {MAX_SECONDS:g} s each; sound from the decoded spectrogram by "
             f"{trained.config.griffin_lim_iters} Griffin-Lim iterations.</p>"]
    rows: list[dict] = []
    for i, clip in enumerate(clips):
        m = clip_metrics(trained, clip, seed=i)
        y, rate_in = read_audio(clip.path)
        from ..audio.dsp import resample

        write_wav(assets / f"clip{i}_input.wav", resample(y, rate_in, rate)[: clip.samples], rate)
        rec, lm = reconstruct_clip(trained, clip, seed=i)
        write_wav(assets / f"clip{i}_recon.wav", rec, rate)
        rows.append({"clip": clip.path.name, **m})
        parts.append(f"<h3>{html.escape(clip.path.name)}</h3>"
                     + _player(f"{ASSETS}/clip{i}_input.wav", "input")
                     + _player(f"{ASSETS}/clip{i}_recon.wav", "reconstruction")
                     + _figure(spectrogram_png([("input", clip.lm), ("reconstruction", lm)], s),
                               f"log-mel of {clip.path.name}: input above reconstruction", f"fig-audio-{i}"))
    cond = trained.conditioning
    if cond is not None and cond.kind == "label" and clips:
        for label in cond.classes or []:
            if label == clips[0].path.parent.name:
                continue
            conv, _ = reconstruct_clip(trained, clips[0], label=label)
            name = f"clip0_as_{''.join(ch if ch.isalnum() else '_' for ch in label)}.wav"
            write_wav(assets / name, conv, rate)
            parts.append(_player(f"{ASSETS}/{name}", f"{clips[0].path.name} converted to {label}"))
    first_label = None if cond is None else cond.labels([(cond.classes or [""])[0]])
    sample, slm = sample_clip(trained, 2.0, first_label, seed=0)
    write_wav(assets / "sample0.wav", sample, rate)
    parts.append("<h3>Sample</h3>" + _player(f"{ASSETS}/sample0.wav", "2 s from the prior"
                                              + (f" (label {cond.classes[0]})" if cond is not None else ""))
                 + _figure(spectrogram_png([("sample", slm)], s), "log-mel of the sample", "fig-audio-sample"))
    keys = ("spectral_distance", "mcd_db", "real_time_factor")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    table = "".join(f"<tr><td>{html.escape(r['clip'])}</td>" + "".join(f"<td class=num>{r[k]:.3f}</td>" for k in keys)
                    + "</tr>" for r in rows)
    parts.insert(1, "<table><tr><th>clip</th><th>spectral distance</th><th>MCD (dB)</th><th>real-time factor</th>"
                 f"</tr>{table}</table><p>spectral distance: multi-scale (STFT 64-2048) spectral convergence + log-"
                 "magnitude L1; MCD: mel-cepstral distortion of 12 coefficients (c0 left out) over the input's frames "
                 "within 40 dB of its loudest; real-time factor: "
                 "seconds of encode + decode + Griffin-Lim per second of audio (below 1: faster than real time).</p>")
    return {"clips": rows, "mean": mean, "sample_rate": rate, "griffin_lim_iters": trained.config.griffin_lim_iters,
            "held_out": held_out,
            "note": "test recordings, held out from training" if held_out else
            "clips of the training data (patches of every clip are in all splits)"}, "".join(parts)
