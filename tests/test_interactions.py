"""Interactions data (issue 16): a user,item file as a sparse matrix, its id maps and the strong-generalization
split of Liang et al. (2018)."""

import numpy as np
import pytest
from data_helpers import raises_one_line

from vaekit.config import make_config
from vaekit.data import load_source
from vaekit.data.interactions import split_interactions
from vaekit.preparation import prepare


def write_interactions(path, n_users=40, n_items=30, per_user=8, seed=0, header="user,item,rating"):
    """A file of ``n_users`` users, each with ``per_user`` distinct items and a rating 1-5."""
    rng = np.random.default_rng(seed)
    lines = [header]
    for u in range(n_users):
        for i in rng.choice(n_items, size=per_user, replace=False):
            lines.append(f"u{u},i{i},{int(rng.integers(1, 6))}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_interactions_load_as_a_sparse_matrix_with_id_maps(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("user,item,rating\nbob,b,5\nann,a,1\nann,c,4\n")
    ds = load_source(str(p), kind="interactions")
    inter = ds.interactions
    assert ds.kind == "interactions" and inter.users == ["ann", "bob"] and inter.items == ["a", "b", "c"]
    assert inter.matrix.toarray().tolist() == [[1, 0, 1], [0, 1, 0]]
    assert ds.x.layout.__repr__().endswith("sparse_csr") and tuple(ds.x.shape) == (2, 3)
    kept = load_source(str(p), kind="interactions", min_rating=4).interactions
    assert kept.users == ["ann", "bob"] and kept.items == ["b", "c"]  # ann's "a" (rated 1) is dropped
    assert kept.matrix.toarray().tolist() == [[0, 1], [1, 0]]
    assert load_source(str(p), kind="interactions", min_user_items=2).interactions.users == ["ann"]
    # the same file without kind= is still a table (the kind never claims a file by itself)
    assert load_source(str(p)).kind == "table"


def test_interactions_bad_files_are_one_line_errors(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("user,item\na,x\na,x\n")
    with raises_one_line("repeated \\(user, item\\) row"):
        load_source(str(p), kind="interactions")
    p.write_text("who,what\na,x\n")
    with raises_one_line("no column 'user'.*--user-column"):
        load_source(str(p), kind="interactions")
    assert load_source(str(p), kind="interactions", user_column="who", item_column="what").interactions.items == ["x"]
    p.write_text("user,item,rating\na,x,1\n")
    with raises_one_line("no interactions rated >= 4"):
        load_source(str(p), kind="interactions", min_rating=4)
    with raises_one_line("no user .* has 3 or more items"):
        load_source(str(p), kind="interactions", min_user_items=3)


def test_split_holds_out_whole_users_and_twenty_percent_of_their_items(tmp_path):
    ds = load_source(str(write_interactions(tmp_path / "r.csv", per_user=10)), kind="interactions")
    tr, va, te = split_interactions(ds.interactions, 0.1, 0.1, seed=3)
    assert (len(tr), len(va), len(te)) == (32, 4, 4)
    users = np.concatenate([tr.user_index, va.user_index, te.user_index])
    assert sorted(users.tolist()) == list(range(40))  # each user in exactly one split
    full = ds.interactions.matrix
    for s in (va, te):
        assert s.heldout.getnnz(1).tolist() == [2] * 4 and s.fold.getnnz(1).tolist() == [8] * 4
        assert (s.fold + s.heldout - full[s.user_index]).nnz == 0  # fold-in + held-out = the user's items
        assert s.fold.multiply(s.heldout).nnz == 0
    again = split_interactions(ds.interactions, 0.1, 0.1, seed=3)
    assert (again[1].heldout != va.heldout).nnz == 0  # seeded


def test_prepare_keeps_interactions_sparse_and_records_the_id_maps(tmp_path):
    p = write_interactions(tmp_path / "r.csv")
    cfg = make_config(data=str(p), family="mult-vae")
    prep = prepare(cfg, load_source(str(p), kind="interactions"))
    info = prep.data_info()
    assert prep.cfg.likelihood == "multinomial" and prep.shape == (len(info["items"]),)
    assert info["kind"] == "interactions" and len(info["users"]) == 40 and info["items"][0] == "i0"
    assert prep.splits[0].x.layout.__repr__().endswith("sparse_csr")


def test_sparse_matrix_files_npz_and_mtx(tmp_path):
    import scipy.io
    import scipy.sparse as sp

    dense = np.array([[5, 0, 3, 0], [0, 0, 0, 0], [1, 4, 0, 0]], dtype=np.float32)  # user 1, item 3: empty
    sp.save_npz(tmp_path / "m.npz", sp.csr_matrix(dense))
    scipy.io.mmwrite(str(tmp_path / "m.mtx"), sp.coo_matrix(dense))
    for name in ("m.npz", "m.mtx"):
        inter = load_source(str(tmp_path / name), kind="interactions").interactions
        assert inter.users == ["0", "2"] and inter.items == ["0", "1", "2"]  # named by row / column number
        assert inter.matrix.toarray().tolist() == [[1, 0, 1], [1, 1, 0]]
        rated = load_source(str(tmp_path / name), kind="interactions", min_rating=4).interactions
        assert rated.users == ["0", "2"] and rated.items == ["0", "1"] and rated.matrix.nnz == 2
    np.savez(tmp_path / "dense.npz", x=dense)
    with raises_one_line("cannot read .* as a sparse users x items matrix .*scipy.sparse.save_npz"):
        load_source(str(tmp_path / "dense.npz"), kind="interactions")
    np.savez(tmp_path / "obj.npz", format=np.array(["csr"], dtype=object), shape=np.array([1, 1]))
    with raises_one_line("cannot read .* as a sparse"):
        load_source(str(tmp_path / "obj.npz"), kind="interactions")
