"""Real recordings for ``python -m bench.audio --corpus real``: Debian's alsa-utils clips and the 30 s
two-speaker sample that ships inside the pyannote.audio wheel, reconstructed by PCA and the VAE.

- ``/usr/share/sounds/alsa/*.wav`` (alsa-utils: a voice saying "front left", ..., and a noise burst; 48 kHz,
  about 1.4 s each): 9 clips; ``Front_Right`` and ``Rear_Left`` are held out.
- ``pyannote/audio/sample/sample.wav`` (16 kHz, 30 s, two speakers in conversation): read straight out of
  the wheel that ``pip download --no-deps pyannote.audio`` saves into a cache folder (no dependency on the
  package, as ``bench/molecules_data.py`` does for molsets), cut into 2 s pieces; every fourth piece (the
  4th, 8th, 12th) is held out.

Both are resampled to 16 kHz by the loader. Scored like the espeak corpus: multi-scale spectral distance and
MCD of each held-out clip's reconstruction (the same overlap-add and Griffin-Lim for every model).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

ALSA = Path("/usr/share/sounds/alsa")
ALSA_HELD_OUT = ("Front_Right", "Rear_Left")
MEMBER = "pyannote/audio/sample/sample.wav"
PIECE_SECONDS = 2.0


def fail(message: str):
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def pyannote_wheel(cache_dir: str | Path | None = None) -> Path:
    """The pyannote.audio wheel: the newest in the cache ($VAEKIT_CACHE/pyannote, else
    ~/.cache/vaekit/pyannote), else downloaded there with ``pip download --no-deps pyannote.audio`` (~1 MB)."""
    root = Path(cache_dir).expanduser() if cache_dir else \
        Path(os.environ.get("VAEKIT_CACHE") or Path.home() / ".cache" / "vaekit") / "pyannote"
    found = sorted(root.glob("pyannote_audio-*.whl"))
    if found:
        return found[-1]
    root.mkdir(parents=True, exist_ok=True)
    print(f"downloading the pyannote.audio wheel into {root} (pip download --no-deps pyannote.audio) …",
          file=sys.stderr)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "pyannote.audio", "-d",
                           str(root)], capture_output=True, text=True)
    found = sorted(root.glob("pyannote_audio-*.whl"))
    if not found:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel was saved"]
        fail(f"pip could not download pyannote.audio ({tail[0]}); download it yourself into {root}")
    return found[-1]


def pyannote_sample(wheel: Path) -> tuple[np.ndarray, int]:
    """(mono float32 samples, rate) of the sample inside the wheel."""
    import soundfile as sf

    try:
        with zipfile.ZipFile(wheel) as z:
            raw = z.read(MEMBER)
    except (zipfile.BadZipFile, KeyError) as err:
        fail(f"{wheel} is not a pyannote.audio wheel with {MEMBER} ({err}); delete it and run again")
    y, rate = sf.read(io.BytesIO(raw), dtype="float32", always_2d=True)
    return y.mean(1), int(rate)


def make_real_corpus(root: Path, cache_dir: str | Path | None = None) -> tuple[Path, Path]:
    """``root/train/*.wav`` and ``root/test/*.wav`` from the alsa-utils clips and the pyannote sample."""
    import soundfile as sf

    alsa = sorted(ALSA.glob("*.wav"))
    if not alsa:
        fail(f"no alsa-utils recordings in {ALSA}; install alsa-utils (apt-get install alsa-utils)")
    for part in ("train", "test"):
        (root / part).mkdir(parents=True, exist_ok=True)
    for f in alsa:
        y, rate = sf.read(str(f), dtype="float32", always_2d=True)
        sf.write(root / ("test" if f.stem in ALSA_HELD_OUT else "train") / f"alsa_{f.stem}.wav", y.mean(1), rate)
    y, rate = pyannote_sample(pyannote_wheel(cache_dir))
    n = int(PIECE_SECONDS * rate)
    for i in range(len(y) // n):
        part = "test" if i % 4 == 3 else "train"
        sf.write(root / part / f"pyannote_{i:02d}.wav", y[i * n: (i + 1) * n], rate)
    return root / "train", root / "test"
