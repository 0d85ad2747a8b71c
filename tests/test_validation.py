"""Validation of data input (issue 12): every bad file or setting ends in one line, never a wrong result."""

from __future__ import annotations

import numpy as np
import pytest

from cli_helpers import assert_usage_error, run
from vaekit.data import load_source
from vaekit.errors import DataError


def one_line_error(match: str, exc=DataError):
    """pytest.raises(exc, match=...) that also checks the message is one line."""

    class _Ctx:
        def __enter__(self):
            self._cm = pytest.raises(exc, match=match)
            self.info = self._cm.__enter__()
            return self.info

        def __exit__(self, *e):
            handled = self._cm.__exit__(*e)
            if handled:
                assert "\n" not in str(self.info.value), str(self.info.value)
            return handled

    return _Ctx()


# ---------------------------------------------------------------------------------------------
# tables: repeated column names, delimiters, encodings, label columns


def test_repeated_column_names_are_refused_in_csv_parquet_and_npz(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "d.csv").write_text("a,a,b\n1,2,3\n4,5,6\n")
    with one_line_error(r"2 columns named 'a'; rename them"):
        load_source(str(tmp_path / "d.csv"))
    t = pa.Table.from_arrays([pa.array([1.0, 2.0])] * 3, names=["a", "b", "b"])
    pq.write_table(t, tmp_path / "d.parquet")
    with one_line_error(r"2 columns named 'b'; rename them"):
        load_source(str(tmp_path / "d.parquet"))
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 3), np.float32), y=np.random.rand(4, 2).astype(np.float32),
             y_names=np.array(["u", "u"]))
    with one_line_error(r"2 columns named 'u'; rename them"):
        load_source(str(tmp_path / "d.npz"))


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    """A tiny run trained on a 3-column table with missing cells."""
    from vaekit import api

    root = tmp_path_factory.mktemp("tab")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).round(3)
    x[::7, 1] = np.nan
    lines = ["a,b,c"] + [",".join("" if np.isnan(v) else repr(float(v)) for v in row) for row in x]
    (root / "t.csv").write_text("\n".join(lines) + "\n")
    api.train(str(root / "t.csv"), root / "run", missing="mask", latent_dim=2, hidden=[8], epochs=1,
              batch_size=32, report=False)
    return root


def test_impute_and_condition_columns_refuse_a_repeated_header(table_run, tmp_path):
    bad = tmp_path / "dup.csv"
    bad.write_text("a,a,c\n1.0,2.0,\n3.0,,4.0\n")
    out = tmp_path / "filled.csv"
    r = run("impute", table_run / "run", "--data", bad, "--out", out)
    assert_usage_error(r, "2 columns named 'a'", "rename")
    assert not out.exists()
    r = run("train", "--data", bad, "--out", tmp_path / "r", "--condition-columns", "a", "--epochs", "1")
    assert_usage_error(r, "2 columns named 'a'", "rename")


def test_semicolon_and_tab_delimited_csv_are_read_and_imputed_in_their_own_delimiter(table_run, tmp_path):
    good = load_source(str(table_run / "t.csv"), allow_missing=True)
    for delim in (";", "\t"):
        text = (table_run / "t.csv").read_text().replace(",", delim)
        path = tmp_path / f"t{ord(delim)}.csv"
        path.write_text(text)
        ds = load_source(str(path), allow_missing=True)
        assert ds.columns == ["a", "b", "c"]
        assert np.array_equal(np.isnan(ds.x.numpy()), np.isnan(good.x.numpy()))
        assert np.allclose(np.nan_to_num(ds.x.numpy()), np.nan_to_num(good.x.numpy()))
        out = tmp_path / f"out{ord(delim)}.csv"
        r = run("impute", table_run / "run", "--data", path, "--out", out, "--k", "10")
        assert r.exit_code == 0, r.output
        rows = out.read_text().splitlines()
        src = text.splitlines()
        assert rows[0] == f"a{delim}b{delim}c" and len(rows) == len(src)
        for got, want in zip(rows[1:], src[1:]):  # observed cells kept verbatim, missing ones filled
            g, w = got.split(delim), want.split(delim)
            assert all(gv == wv for gv, wv in zip(g, w) if wv) and all(g)


def test_a_comma_csv_with_semicolons_in_a_text_column_stays_comma(tmp_path):
    (tmp_path / "t.csv").write_text("x,note\n1,a;b\n2,c;d\n")
    ds = load_source(str(tmp_path / "t.csv"))
    assert ds.x.shape == (2, 3) and ds.schema[1]["categories"] == ["a;b", "c;d"]


def test_decimal_commas_are_refused_with_a_hint(tmp_path):
    (tmp_path / "t.csv").write_text("x;y\n1,5;2\n2,25;3\n")
    with one_line_error(r"column 'x' holds numbers written with a decimal comma \('1,5'\).*decimal point"):
        load_source(str(tmp_path / "t.csv"))


def test_latin1_csv_is_refused_naming_the_file_and_the_byte(tmp_path):
    (tmp_path / "h.csv").write_bytes("caf\xe9,b\n1,2\n".encode("latin-1"))
    with one_line_error(r"h.csv is not UTF-8 text \(byte 0xe9 on line 1; probably Latin-1.*iconv"):
        load_source(str(tmp_path / "h.csv"))
    (tmp_path / "b.csv").write_bytes("a,b\n1,2\n3,4\n5,caf\xe9\n".encode("latin-1"))
    with one_line_error(r"b.csv is not UTF-8 text \(byte 0xe9 on line 4"):
        load_source(str(tmp_path / "b.csv"))
    (tmp_path / "ok.csv").write_bytes("\ufeffa,caf\xe9\n1,2\n".encode("utf-8"))  # UTF-8 with a BOM is fine
    assert load_source(str(tmp_path / "ok.csv")).columns == ["a", "caf\xe9"]


def test_continuous_label_column_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    rows = "\n".join(f"{v:.6f},{w:.6f}" for v, w in rng.normal(size=(1000, 2)))
    (tmp_path / "t.csv").write_text("x,w\n" + rows + "\n")
    with one_line_error(r"label column 'w' has 1000 distinct values in 1000 rows; a label column must be "
                        r"categorical.*--condition-columns"):
        load_source(str(tmp_path / "t.csv"), label_column="w")
    ids = "\n".join(f"{i},id{i}" for i in range(50))
    (tmp_path / "ids.csv").write_text("x,name\n" + ids + "\n")
    with one_line_error(r"label column 'name' has 50 distinct values in 50 rows"):
        load_source(str(tmp_path / "ids.csv"), label_column="name")
    # a categorical label with many classes, each on a few rows, still loads
    cls = "\n".join(f"{i},{i % 30}.0" for i in range(120))
    (tmp_path / "c.csv").write_text("x,k\n" + cls + "\n")
    assert len(load_source(str(tmp_path / "c.csv"), label_column="k").classes) == 30
