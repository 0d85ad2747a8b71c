"""Built-in interaction sources (issue 16): ml-20m (downloaded with a pinned checksum into the cache, atomically)
and netflix:PATH (Netflix Prize format files). Nothing is downloaded: the 'upstream' is a small zip the test
writes, with the same layout, served from a file:// URL."""

import hashlib
import zipfile

import pytest
from cli_helpers import assert_usage_error
from cli_helpers import run as cli
from data_helpers import raises_one_line

from vaekit.data import load_source
from vaekit.data import recsys

RATINGS = "userId,movieId,rating,timestamp\n" + "".join(
    f"{u},{m},{(u + m) % 5 + 1}.0,{1000 + u * 10 + m}\n" for u in range(1, 13) for m in range(1, 11) if (u * m) % 3)


@pytest.fixture
def upstream(tmp_path, monkeypatch):
    """A small ml-20m.zip (ml-20m/ratings.csv and a movies.csv beside it) as the download, with its sha256."""
    src = tmp_path / "upstream" / "ml-20m.zip"
    src.parent.mkdir()
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("ml-20m/ratings.csv", RATINGS)
        zf.writestr("ml-20m/movies.csv", "movieId,title\n1,A\n")
    monkeypatch.setitem(recsys.ML20M, "urls", [(tmp_path / "dead.zip").as_uri(), src.as_uri()])
    monkeypatch.setitem(recsys.ML20M, "sha256", hashlib.sha256(src.read_bytes()).hexdigest())
    return src


def test_ml20m_downloads_verifies_caches_and_reads_ratings(tmp_path, upstream):
    cache = tmp_path / "cache"
    ds = load_source("ml-20m", kind="interactions", cache_dir=cache, min_rating=4)
    rows = [r.split(",") for r in RATINGS.splitlines()[1:]]
    kept = {(u, m) for u, m, r, _ in rows if float(r) >= 4}
    inter = ds.interactions
    got = {(inter.users[u], inter.items[i]) for u, i in zip(*inter.matrix.nonzero())}
    assert got == kept and ds.name == "ml-20m"
    assert sorted(p.name for p in (cache / "ml-20m").iterdir()) == ["ml-20m.zip"]  # no temporary file left
    upstream.unlink()  # the second load reads the cache, downloads nothing
    again = load_source("ml-20m", kind="interactions", cache_dir=cache, download=False, min_rating=4)
    assert again.fingerprint() == ds.fingerprint()


def test_ml20m_checksum_mismatch_leaves_no_file(tmp_path, upstream, monkeypatch):
    monkeypatch.setitem(recsys.ML20M, "sha256", "0" * 64)
    cache = tmp_path / "cache"
    with raises_one_line(r"checksum mismatch for ml-20m\.zip .*expected sha256 0{64}, got [0-9a-f]{64}"):
        load_source("ml-20m", kind="interactions", cache_dir=cache)
    assert list((cache / "ml-20m").iterdir()) == []  # neither the file nor a half of it
    (cache / "ml-20m" / "ml-20m.zip").write_bytes(b"junk")  # a damaged cache copy, downloads off
    with raises_one_line(r"cached .*ml-20m\.zip does not match its checksum"):
        load_source("ml-20m", kind="interactions", cache_dir=cache, download=False)
    with raises_one_line(r"ml-20m is not in the cache .*downloads are off"):
        load_source("ml-20m", kind="interactions", cache_dir=tmp_path / "empty", download=False)


def test_cli_trains_on_ml20m_from_the_cache_and_refuses_it_for_a_vae(tmp_path, upstream, monkeypatch):
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "envcache"))
    r = cli("train", "--data", "ml-20m", "--family", "mult-dae", "--epochs", 1, "--hidden", 8, "--latent-dim", 2,
            "--batch-size", 8, "--out", tmp_path / "run", "-q")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "envcache" / "ml-20m" / "ml-20m.zip").is_file() and "test NDCG@100" in r.stdout
    assert_usage_error(cli("train", "--data", "ml-20m", "--out", tmp_path / "v"), "--family mult-vae")


def write_netflix(folder):
    folder.mkdir()
    (folder / "combined_data_1.txt").write_text("1:\n10,5,2005-01-01\n11,3,2005-01-02\n2:\n10,4,2005-02-01\n"
                                                "12,1,2005-01-03\n")
    (folder / "combined_data_2.txt").write_text("3:\n11,5,2005-01-01\n\n")
    (folder / "README").write_text("not data")
    return folder


def test_netflix_format_files_and_folders(tmp_path):
    folder = write_netflix(tmp_path / "nf")
    inter = load_source(f"netflix:{folder}", kind="interactions").interactions
    assert inter.users == ["10", "11", "12"] and inter.items == ["1", "2", "3"]
    assert inter.matrix.toarray().tolist() == [[1, 1, 0], [1, 0, 1], [0, 1, 0]]
    one = load_source(f"netflix:{folder / 'combined_data_1.txt'}", kind="interactions", min_rating=4).interactions
    assert one.users == ["10"] and one.items == ["1", "2"]
    bad = tmp_path / "bad.txt"
    bad.write_text("10,5,2005-01-01\n")
    with raises_one_line(r"line 1 is '10,5,2005-01-01', not a 'MovieID:' line"):
        load_source(f"netflix:{bad}", kind="interactions")
    bad.write_text("1:\n10,5,2005-01-01\n11,5\n")
    with raises_one_line(r"line 3 is '11,5', not 'CustomerID,Rating,Date'"):
        load_source(f"netflix:{bad}", kind="interactions")
    with raises_one_line(r"no such file or folder: .*missing"):
        load_source(f"netflix:{tmp_path / 'missing'}", kind="interactions")
