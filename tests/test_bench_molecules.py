"""bench/'s molecule pieces: the MOSES CSV reader (on a fake molsets wheel) and the character n-gram baseline."""

from __future__ import annotations

import gzip
import sys
import zipfile
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, where bench/ lives
from bench.molecules_data import molsets_wheel, read_split, subset  # noqa: E402
from bench.ngram import NGram  # noqa: E402


def fake_wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("moses/dataset/data/train.csv.gz", gzip.compress(b"SMILES,SPLIT\nCCO,train\nc1ccccc1,train\n"))
        z.writestr("moses/dataset/data/test.csv.gz", gzip.compress(b"SMILES\nCCN\n"))
    return path


def test_reads_the_moses_csvs_from_the_wheel(tmp_path, capsys):
    wheel = fake_wheel(tmp_path / "molsets-0.3.1-py3-none-any.whl")
    assert read_split(wheel, "train") == ["CCO", "c1ccccc1"]
    assert read_split(wheel, "test") == ["CCN"]
    assert molsets_wheel(None, tmp_path) == wheel  # found in the cache folder: no download
    assert sorted(subset(["a", "b", "c", "d"], 2, seed=1)) == sorted(subset(["a", "b", "c", "d"], 2, seed=1))
    assert len(set(subset(list("abcdefgh"), 5, seed=0))) == 5 and subset(["a"], 10) == ["a"]
    with pytest.raises(SystemExit) as err:
        read_split(wheel, "test_scaffolds")  # not in this wheel
    assert err.value.code == 2 and "not a molsets wheel" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        molsets_wheel(tmp_path / "missing.whl")


def test_ngram_counts_and_samples():
    train = ["CCO", "CCN", "CCO", "c1ccccc1"]
    model = NGram(order=3, l_smooth=0.0).fit(train)
    # context "\x02C" (start, C) is followed by C three times
    assert model.counts["\x02CC"] == 3 and model.counts["CCO"] == 2 and model.counts["CCN"] == 1
    samples = model.generate(200, seed=0)
    assert samples == model.generate(200, seed=0)  # seeded
    assert "c1cccccc1" in samples  # order 3 loses count of the ring's c's: 5 or 7 come out as well
    # without smoothing, contexts as long as the strings give back exactly the training strings
    counts = Counter(NGram(order=10, l_smooth=0.0).fit(train).generate(200, seed=0))
    assert set(counts) == set(train)
    assert counts["CCO"] > counts["CCN"]  # 2 : 1 in the data
    smooth = NGram(order=10, l_smooth=1.0, max_len=20).fit(train).generate(50, seed=1)
    assert all(set(s) <= set("CON1c") and len(s) <= 19 for s in smooth)


def test_reference_statistics_cache_round_trips(tmp_path):
    """The test set's statistics read back from the cache (no pickle) score a generated set exactly as the
    statistics computed in memory; another set of molecules does not reuse them."""
    pytest.importorskip("rdkit")
    pytest.importorskip("fcd_torch")
    from bench.molecules_reference import cached_reference
    from vaekit.evaluation.molecules import molecule_metrics

    ref = ["CCO", "CCN", "c1ccccc1", "CC(=O)O", "c1ccncc1", "CCOC(=O)c1ccccc1", "O=C1CCCN1", "Cc1ccc(O)cc1",
           "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "c1ccc2ccccc2c1"]
    gen = ["CCO", "CCCO", "c1ccccc1O", "CC(=O)N", "C1CCNCC1", "c1ccoc1"]
    fresh = cached_reference(ref, cache_dir=tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".npz")
    again = cached_reference(ref, cache_dir=tmp_path)  # read back
    assert again["fps"].dtype == fresh["fps"].dtype and (again["fps"] == fresh["fps"]).all()
    assert again["frag"] == fresh["frag"] and again["scaf"] == fresh["scaf"]
    assert molecule_metrics(gen, ref, again) == molecule_metrics(gen, ref, fresh)
    cached_reference(ref[:-1], cache_dir=tmp_path, fcd=False, properties=False)
    assert len(list(tmp_path.iterdir())) == 4  # a different set writes its own files


def test_moses_precomputed_statistics_load_without_running_code(tmp_path):
    """MOSES's test_stats.npz is a pickle: arrays and Counters load, anything else (a callable) is refused."""
    import io
    import pickle

    import numpy as np

    from bench.molecules_reference import compare_with_moses, moses_stats

    def wheel_with(obj, name):
        buf = io.BytesIO()
        np.save(buf, np.array(obj, dtype=object), allow_pickle=True)
        npz = io.BytesIO()
        with zipfile.ZipFile(npz, "w") as z:
            z.writestr("stats.npy", buf.getvalue())
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("moses/dataset/data/test_stats.npz", npz.getvalue())
        return path

    mu, sigma = np.arange(3.0), np.eye(3)
    fps = np.eye(2, 8, dtype=np.uint8)
    theirs = {"FCD": {"mu": mu, "sigma": sigma}, "SNN": {"fps": fps}, "Frag": {"frag": Counter({"C": 2})},
              "Scaf": {"scaf": Counter({"c1ccccc1": 1})}}
    got = moses_stats(wheel_with(theirs, "ok.whl"))
    assert np.array_equal(got["FCD"]["sigma"], sigma) and got["Frag"]["frag"] == Counter({"C": 2})
    mine = {"fcd": {"mu": mu, "sigma": sigma}, "fps": fps, "frag": Counter({"C": 5}), "scaf": Counter({"CC": 1})}
    cmp = compare_with_moses(mine, got)
    assert cmp["FCD(vaekit, MOSES)"] == pytest.approx(0.0, abs=1e-9) and cmp["Frag cosine"] == pytest.approx(1.0)
    assert cmp["Scaf cosine"] == 0.0 and cmp["fingerprint bits equal"] == 1.0
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        moses_stats(wheel_with({"FCD": print}, "bad.whl"))
