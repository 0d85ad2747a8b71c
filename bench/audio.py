"""Audio: a VAE and a label-conditional VAE on log-mel patches of an espeak-ng speech corpus, against PCA at
the same latent size; reconstruction of held-out sentences and voice conversion read by a speaker classifier.

    python -m bench.audio [--epochs 30] [--sentences 24] [--held-out 6] [--latent 16] [--gl-iters 32]
                          [--patch-hop 4] [--corpus espeak|real]

The corpus: Debian's ``espeak-ng`` says every sentence in each of three voices (different voice, pitch and
speed: the "speakers"); its 22.05 kHz output is resampled to 16 kHz (n_fft 1024, hop 256, 64 mel bands,
32-frame patches = 0.5 s). The first sentences are training data, the last ``--held-out`` ones are the test
clips of every speaker. Each model reconstructs a test clip patch by patch (the same overlap-add and
Griffin-Lim for all), scored by the multi-scale spectral distance and the mel-cepstral distortion against the
clip; "copy synthesis" is the clip's own mel spectrogram through the same phase reconstruction (the floor
that phase reconstruction leaves). Conversion: each test clip of the conditional VAE decoded under each other
speaker, read by a speaker classifier (logistic regression on MFCC means and deviations) trained on the real
training clips; the same classifier's accuracy on the real and reconstructed test clips is the control.
The real-time factor is encode + decode + Griffin-Lim seconds per second of audio, ``--threads`` torch threads.
PCA is fitted on the VAE run's own training split (the run holds out some training clips for validation and
test). ``--corpus real``: alsa-utils clips and the pyannote.audio sample instead (:mod:`bench.audio_real`),
reconstruction only.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from . import common as C

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.", "Please call Stella and ask her to bring these things.",
    "She sells sea shells by the sea shore.", "A rainbow is a division of white light into many beautiful colors.",
    "The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.", "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.", "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.", "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.", "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.", "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.", "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.", "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.", "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.", "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.", "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.", "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.", "Two blue fish swam in the tank.",
]
#: speaker → (espeak-ng voice+variant, pitch 0-99, words per minute)
SPEAKERS = {"anna": ("en-us+f3", 75, 165), "bert": ("en-us+m3", 30, 145), "cora": ("en-gb-scotland+f2", 55, 185)}
SETTINGS = dict(sample_rate=16000, n_mels=64, n_fft=1024, hop=256, patch_frames=32)


def make_corpus(root: Path, sentences: int, held_out: int) -> tuple[Path, Path]:
    """``root/train/SPEAKER/sNN.wav`` (the first sentences) and ``root/test/SPEAKER/sNN.wav`` (the rest)."""
    for spk, (voice, pitch, speed) in SPEAKERS.items():
        for i, text in enumerate(SENTENCES[:sentences]):
            part = "test" if i >= sentences - held_out else "train"
            (root / part / spk).mkdir(parents=True, exist_ok=True)
            subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w",
                            str(root / part / spk / f"s{i:02d}.wav"), text], check=True, capture_output=True)
    return root / "train", root / "test"


def mfcc_features(y: np.ndarray) -> np.ndarray:
    """Speaker features of a 16 kHz clip: means and standard deviations of 20 MFCCs over its voiced frames."""
    import torch

    from vaekit.audio import dsp

    lm = dsp.log_mel(torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)), 16000, 1024, 256, 64)
    energy = lm.logsumexp(0)
    voiced = lm[:, energy > energy.max() - 8]  # frames within ~35 dB of the loudest
    c = dsp.mel_cepstrum(voiced, 20)[1:]
    return np.concatenate([c.mean(1).numpy(), c.std(1).numpy()])


class PCA:
    """PCA of flattened patches (normalised log-mel), k components: the linear baseline at the same latent size."""

    def __init__(self, x, k: int):
        import torch

        flat = x.reshape(len(x), -1).double()
        self.mean = flat.mean(0)
        _, _, vh = torch.linalg.svd(flat - self.mean, full_matrices=False)
        self.components = vh[:k]

    def reconstruct(self, x):
        flat = x.reshape(len(x), -1).double() - self.mean
        return ((flat @ self.components.T) @ self.components + self.mean).float().reshape(x.shape)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.audio", description=__doc__.splitlines()[0])
    p.add_argument("--corpus", choices=("espeak", "real"), default="espeak",
                   help="espeak: the espeak-ng speakers; real: alsa-utils clips + the pyannote.audio sample "
                        "(bench/audio_real.py; reconstruction only: no labels, no conversion)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--sentences", type=int, default=24, help=f"sentences per speaker (at most {len(SENTENCES)})")
    p.add_argument("--held-out", type=int, default=6, help="of which the last N are test clips")
    p.add_argument("--latent", type=int, default=16)
    p.add_argument("--gl-iters", type=int, default=32, help="Griffin-Lim iterations")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", default="conv", help="conv (channels 16,32,64, hidden 256) or mlp (hidden 512)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--gaussian-std", type=float, default=None,
                   help="fixed std of the Gaussian likelihood (normalised log-mel units); unset: learned")
    p.add_argument("--patch-hop", type=int, default=4,
                   help="frames between training patches (vaekit's default: half a patch, 16)")
    p.add_argument("--beta", type=float, default=1.0, help="weight of the KL term")
    p.add_argument("--cvae-beta", type=float, default=None,
                   help="the conditional VAE's KL weight (unset: --beta); larger pushes the speaker out of z "
                        "into the label")
    p.add_argument("--kl-warmup", type=int, default=0, help="epochs over which beta ramps up from 0")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--figure", type=Path, default=None, help="write two test clips' spectrograms to this PNG")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    import vaekit
    from vaekit.audio import dsp
    from vaekit.data import load_source
    from vaekit.data.audio import list_audio, read_audio
    from vaekit.tasks.audio import overlap_add, read_clip, reconstruct_clip, to_sound

    t_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp())
    real = args.corpus == "real"
    if real:
        from .audio_real import make_real_corpus

        train_dir, test_dir = make_real_corpus(tmp / "corpus")
    else:
        train_dir, test_dir = make_corpus(tmp / "corpus", min(args.sentences, len(SENTENCES)), args.held_out)
    corpus_seconds = time.perf_counter() - t_start
    print(f"corpus: {corpus_seconds:.1f} s", flush=True)
    arch = dict(model="conv", channels=[16, 32, 64], hidden=[256]) if args.model == "conv" else \
        dict(model="mlp", hidden=[512])
    common = dict(**SETTINGS, **arch, lr=args.lr, gaussian_std=args.gaussian_std, latent_dim=args.latent,
                  epochs=args.epochs,
                  beta=args.beta, kl_warmup=args.kl_warmup, patch_hop=args.patch_hop,
                  patience=None, batch_size=32, griffin_lim_iters=args.gl_iters, seed=args.seed, report=False,
                  threads=args.threads)
    seconds = {}
    t0 = time.perf_counter()
    vae = vaekit.train(str(train_dir), tmp / "vae", **common)
    seconds["vae"] = time.perf_counter() - t0
    print(f"VAE trained: {seconds['vae']:.1f} s", flush=True)
    t0 = time.perf_counter()
    cvae_opts = {**common, **({"beta": args.cvae_beta} if args.cvae_beta is not None else {})}
    cvae = None if real else vaekit.train(str(train_dir), tmp / "cvae", conditional=True, **cvae_opts)
    seconds["cvae"] = time.perf_counter() - t0
    from vaekit.data.kinds import kind_of

    # PCA is fitted on the VAE's own training split (the run holds out some training recordings for
    # validation and test): the same patches
    train_ds = load_source(str(train_dir), audio=vae.info["data"]["audio"])
    pca = PCA(kind_of("audio").split(train_ds, vae.config)[0].x, args.latent)

    test_files, test_labels, names = list_audio(test_dir)
    train_files, train_labels, _ = list_audio(train_dir)
    s = vae.info["data"]["audio"]

    def at16k(f: Path) -> np.ndarray:
        y, r = read_audio(f)
        return dsp.resample(y, r, 16000)

    def scores(ref: np.ndarray, out: np.ndarray) -> tuple[float, float]:
        ref_t, out_t = torch.from_numpy(np.ascontiguousarray(ref)), torch.from_numpy(out)
        lm = lambda y: dsp.log_mel(y, 16000, 1024, 256, 64)  # noqa: E731
        return dsp.spectral_distance(ref_t, out_t), dsp.mcd(lm(ref_t), lm(out_t))

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    if not real:
        clf.fit(np.stack([mfcc_features(at16k(f)) for f in train_files]), train_labels)
    else:
        test_labels = [None] * len(test_files)

    rows = {m: {"spectral_distance": [], "mcd_db": []}
            for m in ("copy synthesis", "PCA", "VAE") + (() if real else ("conditional VAE",))}
    heard = {"real": [], "VAE": [], "conditional VAE": []}
    conversions, rtf, examples = [], [], []
    for f, label in zip(test_files, test_labels):
        ref = at16k(f)
        clip = read_clip(vae, f)
        outs = {"copy synthesis": to_sound(vae, clip.lm, clip.samples)}
        lm_pca = overlap_add(pca.reconstruct(clip.patches), clip.starts, clip.lm.shape[1])
        outs["PCA"] = to_sound(vae, lm_pca, clip.samples)
        t0 = time.perf_counter()
        outs["VAE"], lm_vae = reconstruct_clip(vae, clip)
        rtf.append((time.perf_counter() - t0) / (clip.samples / 16000))
        if not real:
            outs["conditional VAE"], lm_cvae = reconstruct_clip(cvae, clip)
        for m, y in outs.items():
            sd, mcd = scores(ref, y)
            rows[m]["spectral_distance"].append(sd)
            rows[m]["mcd_db"].append(mcd)
        print(f"{f.parent.name}/{f.name}: {time.perf_counter() - t_start:.0f} s", flush=True)
        if real:
            if len(examples) < 2 and (not examples or examples[-1][0].name[:4] != f.name[:4]):
                examples.append((f, [("input", clip.lm), ("PCA", lm_pca), ("VAE", lm_vae)], None))
            continue
        heard["real"].append(int(clf.predict(mfcc_features(ref)[None])[0]) == label)
        for m in ("VAE", "conditional VAE"):
            heard[m].append(int(clf.predict(mfcc_features(outs[m])[None])[0]) == label)
        for target, name in enumerate(names):
            if target != label:
                y, _ = reconstruct_clip(cvae, clip, label=name)
                conversions.append(int(clf.predict(mfcc_features(y)[None])[0]) == target)
        if len(examples) < 2 and (not examples or examples[-1][2] != label):
            examples.append((f, [("input", clip.lm), ("PCA", lm_pca), ("VAE", lm_vae), ("conditional VAE", lm_cvae)],
                             label))
    table = [(m, float(np.mean(v["spectral_distance"])), float(np.mean(v["mcd_db"]))) for m, v in rows.items()]
    speaker = {m: float(np.mean(v)) if v else None for m, v in heard.items()}
    result = {"settings": SETTINGS, "model": arch, "lr": args.lr, "gaussian_std": args.gaussian_std,
              "beta": args.beta, "cvae_beta": args.cvae_beta, "kl_warmup": args.kl_warmup,
              "patch_hop": args.patch_hop, "corpus": args.corpus,
              "speakers": None if real else SPEAKERS, "epochs": args.epochs,
              "latent": args.latent,
              "gl_iters": args.gl_iters, "threads": args.threads, "train_clips": len(train_files),
              "test_clips": len(test_files), "train_patches": len(kind_of("audio").split(train_ds, vae.config)[0]),
              "reconstruction": {m: {"spectral_distance": sd, "mcd_db": mcd} for m, sd, mcd in table},
              "speaker_accuracy": speaker, "conversion_to_target": float(np.mean(conversions)) if conversions else None,
              "conversions": len(conversions), "real_time_factor_vae": float(np.mean(rtf)),
              "train_seconds": seconds, "corpus_seconds": corpus_seconds,
              "total_seconds": time.perf_counter() - t_start}
    C.print_table(f"held-out {'clips' if real else 'sentences'} ({len(test_files)} clips, latent {args.latent}, "
                  f"{args.epochs} epochs): lower is "
                  "better", [(m, f"{sd:.3f}", f"{mcd:.2f}") for m, sd, mcd in table],
                  ("model", "spectral distance", "MCD (dB)"))
    if not real:
        C.print_table("speaker classifier (MFCC + logistic regression, trained on real training clips)",
                      [("real test clips, own speaker", f"{speaker['real']:.2f}"),
                       ("VAE reconstructions, own speaker", f"{speaker['VAE']:.2f}"),
                       ("conditional VAE reconstructions, own speaker", f"{speaker['conditional VAE']:.2f}"),
                       (f"conversions read as the target ({len(conversions)})",
                        f"{result['conversion_to_target']:.2f}")],
                      ("clips", "accuracy"))
    print(f"real-time factor (encode + decode + {args.gl_iters} Griffin-Lim iterations, {args.threads} threads): "
          f"{result['real_time_factor_vae']:.3f}; training {seconds['vae']:.0f} s + {seconds['cvae']:.0f} s; "
          f"total {result['total_seconds']:.0f} s")
    if args.figure is not None:
        from vaekit.tasks.audio_report import spectrogram_png

        rows_png = [(f"{f.parent.name}/{f.name}: {title}", lm) for f, lms, _ in examples for title, lm in lms]
        args.figure.write_bytes(spectrogram_png(rows_png, s))
        result["figure"] = str(args.figure)
    C.write_result("audio" if not real else "audio_real", result)
    return result


if __name__ == "__main__":
    main()
