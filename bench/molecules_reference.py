"""The MOSES metrics' reference statistics of a set of molecules, computed once and kept on disk: on the full
MOSES test set (176,074 molecules) they cost about an hour of one CPU core (ChemNet ≈ 13 ms and RDKit ≈ 8 ms per
molecule), and every model of bench/molecules.py is scored against the same ones.

    python -m bench.molecules_reference [--split test] [--n-test N] [--seed 0]   # fill the cache ahead of time
    python -m bench.molecules_reference --compare-moses     # check them against MOSES's own precomputed ones

``--compare-moses`` reads the statistics MOSES ships for its test sets (``moses/dataset/data/test_stats.npz``
in the molsets wheel, a pickled dict of arrays and counters) with an unpickler that admits numpy arrays and
Counters and nothing else, and prints how far vaekit's are from them: the FCD between the two ChemNet
Gaussians, the cosine similarity of the fragment and scaffold counts, and the SNN fingerprints' agreement.

The cache holds no pickle: ``NAME.npz`` (fingerprints bit-packed, ChemNet's mean and covariance, the property
values; read with ``allow_pickle=False``) and ``NAME.json`` (fragment and scaffold counts), written to temporary
names and renamed. NAME carries a SHA-256 of the molecules themselves, so a different subset never reuses it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from .molecules_data import default_cache, fail, molsets_wheel, read_split, subset

FORMAT = 1


def set_digest(smiles: list[str]) -> str:
    """SHA-256 of the molecules in their order (16 hex digits)."""
    return hashlib.sha256("\n".join(smiles).encode()).hexdigest()[:16]


def _paths(smiles: list[str], cache_dir: Path, fcd: bool, properties: bool) -> tuple[Path, Path]:
    name = f"reference-{len(smiles)}-{set_digest(smiles)}-v{FORMAT}{'-fcd' if fcd else ''}{'-props' if properties else ''}"
    return cache_dir / f"{name}.npz", cache_dir / f"{name}.json"


def _save(stats: dict[str, Any], npz: Path, meta: Path) -> None:
    arrays = {"fps": np.packbits(stats["fps"].astype(bool), axis=1), "n_bits": np.array(stats["fps"].shape[1])}
    if "fcd" in stats:
        arrays.update(fcd_mu=stats["fcd"]["mu"], fcd_sigma=stats["fcd"]["sigma"])
    for key, values in stats.get("properties", {}).items():
        arrays[f"prop_{key}"] = values
    npz.parent.mkdir(parents=True, exist_ok=True)
    tmp = npz.with_name(npz.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, npz)
    tmp = meta.with_name(meta.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"format": FORMAT, "n": len(stats["smiles"]), "frag": dict(stats["frag"]),
                               "scaf": dict(stats["scaf"])}))
    os.replace(tmp, meta)


def _load(smiles: list[str], npz: Path, meta: Path) -> dict[str, Any]:
    with np.load(npz, allow_pickle=False) as z:
        fps = np.unpackbits(z["fps"], axis=1)[:, : int(z["n_bits"])].astype(np.uint8)
        stats: dict[str, Any] = {"smiles": smiles, "fps": fps}
        if "fcd_mu" in z:
            stats["fcd"] = {"mu": z["fcd_mu"], "sigma": z["fcd_sigma"]}
        props = {k[len("prop_"):]: z[k] for k in z.files if k.startswith("prop_")}
        if props:
            stats["properties"] = props
    info = json.loads(meta.read_text())
    stats["frag"], stats["scaf"] = Counter(info["frag"]), Counter(info["scaf"])
    return stats


def cached_reference(smiles: list[str], *, fcd: bool = True, properties: bool = True, n_jobs: int = 1,
                     cache_dir: str | Path | None = None, what: str = "the test set") -> dict[str, Any]:
    """:func:`vaekit.evaluation.molecules.reference_stats` of ``smiles``, read from the cache when it holds
    them (a fingerprint-dtype check guards the round trip), else computed and saved there."""
    from vaekit.evaluation.molecules import reference_stats

    root = Path(cache_dir).expanduser() if cache_dir else default_cache("molsets") / "reference"
    npz, meta = _paths(smiles, root, fcd, properties)
    if npz.is_file() and meta.is_file():
        return _load(smiles, npz, meta)
    stats = reference_stats(smiles, fcd=fcd, properties=properties, n_jobs=n_jobs, what=what)
    _save(stats, npz, meta)
    return stats


_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "Counter"), ("_codecs", "encode")}


def moses_stats(wheel: str | Path, split: str = "test") -> dict[str, Any]:
    """MOSES's precomputed statistics of ``split`` from the molsets wheel (only arrays and Counters load)."""
    import io
    import pickle
    import zipfile

    class ArraysOnly(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if (module, name) not in _ALLOWED:
                raise pickle.UnpicklingError(f"refusing {module}.{name}: only arrays and counters may be loaded")
            return super().find_class(module, name)

    with zipfile.ZipFile(wheel) as z:
        inner = zipfile.ZipFile(io.BytesIO(z.read(f"moses/dataset/data/{split}_stats.npz")))
    f = io.BytesIO(inner.read("stats.npy"))
    version = np.lib.format.read_magic(f)
    (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(f)
    return ArraysOnly(f, encoding="latin1").load().item()


def compare_with_moses(stats: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float]:
    """How far vaekit's reference statistics are from MOSES's (0 FCD and similarities of 1: the same)."""
    from vaekit.evaluation.frechet import frechet_distance
    from vaekit.evaluation.molecules import cosine_similarity

    out = {"FCD(vaekit, MOSES)": frechet_distance(stats["fcd"]["mu"], stats["fcd"]["sigma"],
                                                  theirs["FCD"]["mu"], theirs["FCD"]["sigma"]),
           "Frag cosine": cosine_similarity(stats["frag"], theirs["Frag"]["frag"]),
           "Scaf cosine": cosine_similarity(stats["scaf"], theirs["Scaf"]["scaf"])}
    fps = np.asarray(theirs["SNN"]["fps"])
    if fps.shape == stats["fps"].shape:
        out["fingerprint bits equal"] = float((fps.astype(np.uint8) == stats["fps"]).mean())
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.molecules_reference", description=__doc__.splitlines()[0])
    p.add_argument("--split", default="test", choices=("test", "test_scaffolds"))
    p.add_argument("--n-test", type=int, default=None, help="a random subset (default: the whole split)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-fcd", dest="fcd", action="store_false")
    p.add_argument("--no-properties", dest="properties", action="store_false")
    p.add_argument("--n-jobs", type=int, default=1)
    p.add_argument("--wheel", default=None)
    p.add_argument("--cache-dir", default=None, help="default ~/.cache/vaekit/molsets/reference")
    p.add_argument("--compare-moses", action="store_true", help="compare with MOSES's precomputed statistics "
                                                                "(the whole split only)")
    args = p.parse_args(argv)
    wheel = molsets_wheel(args.wheel)
    smiles = subset(read_split(wheel, args.split), args.n_test, args.seed)
    t0 = time.perf_counter()
    stats = cached_reference(smiles, fcd=args.fcd, properties=args.properties and args.split == "test",
                             n_jobs=args.n_jobs, cache_dir=args.cache_dir, what=f"the {args.split} set")
    print(f"{args.split}: {len(smiles)} molecules, {len(stats['scaf'])} scaffolds, "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    if args.compare_moses:
        if args.n_test is not None:
            fail("--compare-moses compares the whole split: leave --n-test out")
        for key, value in compare_with_moses(stats, moses_stats(wheel, args.split)).items():
            print(f"{key}: {value:.6g}")


if __name__ == "__main__":
    main()
