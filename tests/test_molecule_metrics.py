"""The MOSES metrics (vaekit.evaluation.molecules), the Fréchet distance and molecular properties: values
computed by hand on tiny sets, or by an independent route (RDKit's own Tanimoto, fcd_torch's own FCD)."""

from __future__ import annotations

import math
import pickle
import sys

import numpy as np
import pytest

from vaekit.errors import UsageError
from vaekit.evaluation.frechet import frechet_distance

pytest.importorskip("rdkit")
from vaekit.evaluation import molecules as M  # noqa: E402
from vaekit.molecules import properties as P  # noqa: E402
from vaekit.molecules.chem import canonical, require  # noqa: E402

# 6 generated strings: one invalid (unclosed ring), one duplicate (OCC = CCO), one in the training set
# (acetic acid, written differently there)
GEN = ["CCO", "c1ccccc1", "OCC", "c1ccncc1", "CC(=O)O", "C1CC"]
TRAIN = ["CC(O)=O", "CCCC"]


# -- the Fréchet distance ----------------------------------------------------------------------------------
def test_frechet_equal_gaussians_is_zero():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 4))
    cov = np.cov(a.T)
    assert frechet_distance(a.mean(0), cov, a.mean(0), cov) == pytest.approx(0.0, abs=1e-8)


def test_frechet_means_only_is_squared_distance():
    cov = np.array([[2.0, 0.3], [0.3, 1.0]])
    assert frechet_distance([0.0, 0.0], cov, [3.0, 4.0], cov) == pytest.approx(25.0, abs=1e-9)


def test_frechet_diagonal_closed_form():
    # ||Δμ||² + Σ (σ1 − σ2)² for diagonal covariances σ1², σ2²
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    mu1, mu2 = np.array([1.0, 0.0, -1.0]), np.array([0.0, 0.0, 1.0])
    expected = 1.0 + 4.0 + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()  # 5 + (1 + 1 + 6.25)
    assert expected == pytest.approx(13.25)
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-9)


def test_frechet_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


# -- validity, uniqueness, novelty -------------------------------------------------------------------------
def test_validity_uniqueness_novelty_by_hand():
    valid = M.canonical_valid(GEN)
    assert valid == ["CCO", "c1ccccc1", "CCO", "c1ccncc1", "CC(=O)O"]
    assert M.fraction_valid(GEN) == pytest.approx(5 / 6)
    assert M.fraction_valid(["", "CCO"]) == 0.5  # the empty string is not a molecule
    assert M.fraction_unique(valid, 3) == pytest.approx(2 / 3)  # CCO, benzene, CCO
    with pytest.warns(UserWarning, match="unique@1000 computed over the 5 valid molecules"):
        assert M.fraction_unique(valid, 1000) == pytest.approx(4 / 5)  # fewer than k: all of them (MOSES)
    # distinct: CCO, benzene, pyridine, acetic acid; acetic acid is in TRAIN (as CC(O)=O)
    assert M.novelty(valid, TRAIN) == pytest.approx(3 / 4)
    assert M.novelty(valid, TRAIN, train_is_canonical=True) == pytest.approx(1.0)  # not canonicalised: no match


def test_similarities_match_rdkit_tanimoto():
    from rdkit import DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    gen = ["CCO", "c1ccccc1", "CCO", "c1ccncc1", "CC(=O)O"]
    ref = ["CCN", "Cc1ccccc1", "CC(=O)OC"]
    morgan = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    gbits = [morgan.GetFingerprint(M.to_mol(s)) for s in gen]
    rbits = [morgan.GetFingerprint(M.to_mol(s)) for s in ref]
    cross = np.array([DataStructs.BulkTanimotoSimilarity(g, rbits) for g in gbits])
    within = np.array([DataStructs.BulkTanimotoSimilarity(g, gbits) for g in gbits])
    gfp = np.stack([M.fingerprint(s) for s in gen])
    rfp = np.stack([M.fingerprint(s) for s in ref])
    assert gfp.shape == (5, 1024) and set(np.unique(gfp)) <= {0, 1}
    np.testing.assert_allclose(M.tanimoto(gfp, rfp), cross, rtol=1e-6)
    assert M.snn(gfp, rfp) == pytest.approx(cross.max(1).mean(), rel=1e-6)
    assert M.internal_diversity(gfp) == pytest.approx(1 - within.mean(), rel=1e-6)
    assert M.internal_diversity(gfp, p=2) == pytest.approx(1 - np.sqrt((within**2).mean(1)).mean(), rel=1e-6)
    # two empty fingerprints count as identical (MOSES: 0/0 → 1)
    assert M.tanimoto(np.zeros((1, 8)), np.zeros((1, 8)))[0, 0] == 1.0


def test_scaffolds_and_fragments():
    assert M.scaffold("c1ccccc1", min_rings=1) == "c1ccccc1"
    assert M.scaffold("Cc1ccncc1", min_rings=1) == "c1ccncc1"
    assert M.scaffold("c1ccccc1") is None  # MOSES counts scaffolds of 2+ rings only
    assert M.scaffold("CCO", min_rings=0) is None  # acyclic: empty scaffold
    assert M.scaffold("CCc1ccc2ccccc2c1") == "c1ccc2ccccc2c1"
    assert M.scaffold("OCc1ccc(-c2ccccc2)cc1") == "c1ccc(-c2ccccc2)cc1"
    # ethyl benzoate: BRICS cuts ethyl–O, O–C(=O) and C(=O)–ring (dummy atoms carry the BRICS bond types)
    assert sorted(M.fragments("CCOC(=O)c1ccccc1")) == ["[1*]C([6*])=O", "[16*]c1ccccc1", "[3*]O[3*]", "[4*]CC"]
    assert M.fragments("c1ccccc1") == ["c1ccccc1"]
    # fragment similarity by hand: {benzene: 2, CCO: 1} against {benzene: 1, pyridine: 1} → 2 / (√5 · √2)
    frag_a = M.describe_set(["c1ccccc1", "c1ccccc1", "CCO"])["frag"]
    frag_b = M.describe_set(["c1ccccc1", "c1ccncc1"])["frag"]
    assert M.cosine_similarity(frag_a, frag_b) == pytest.approx(2 / math.sqrt(10))
    # scaffold similarity by hand: reference {naphthalene: 2, biphenyl: 1}, generated {naphthalene: 1}
    ref = M.describe_set(["Cc1ccc2ccccc2c1", "CCc1ccc2ccccc2c1", "c1ccc(-c2ccccc2)cc1", "CCO"])
    gen = M.describe_set(["Oc1ccc2ccccc2c1"])
    assert ref["scaf"] == {"c1ccc2ccccc2c1": 2, "c1ccc(-c2ccccc2)cc1": 1}
    assert M.cosine_similarity(ref["scaf"], gen["scaf"]) == pytest.approx(2 / math.sqrt(5))
    assert math.isnan(M.cosine_similarity(ref["scaf"], M.describe_set(["CCO"])["scaf"]))


def test_molecule_metrics_keys_and_values():
    test = ["Cc1ccccc1", "CCN", "c1ccc2ccccc2c1", "OCCO"]
    out = M.molecule_metrics(GEN, TRAIN, test, fcd=False)
    assert list(out) == ["valid", "unique@1000", "unique@10000", "SNN/Test", "Frag/Test", "Scaf/Test", "IntDiv",
                         "IntDiv2", "logP", "SA", "QED", "weight", "Novelty"]
    assert out["valid"] == pytest.approx(5 / 6)
    assert out["unique@1000"] == out["unique@10000"] == pytest.approx(4 / 5)  # fewer than k: over all, as MOSES
    assert out["Novelty"] == pytest.approx(3 / 4)
    valid = M.canonical_valid(GEN)
    gfp = np.stack([M.fingerprint(s) for s in valid])
    tfp = np.stack([M.fingerprint(s) for s in test])
    assert out["SNN/Test"] == pytest.approx(M.snn(gfp, tfp))
    assert out["IntDiv"] == pytest.approx(M.internal_diversity(gfp))
    assert math.isnan(out["Scaf/Test"])  # no generated molecule has a 2-ring scaffold
    assert out["logP"] == pytest.approx(M.wasserstein_1d([P.logp(s) for s in test], [P.logp(s) for s in valid]))


def test_wasserstein_1d_by_hand():
    assert M.wasserstein_1d([0.0, 1.0, 2.0], [5.0, 6.0, 7.0]) == pytest.approx(5.0)  # a shift moves every unit 5
    assert M.wasserstein_1d([0.0, 1.0], [0.0, 3.0]) == pytest.approx(1.0)  # half the mass moves from 1 to 3
    assert M.wasserstein_1d([0.0], [0.0, 2.0, 4.0]) == pytest.approx(2.0)  # (0 + 2 + 4) / 3
    assert M.wasserstein_1d([0.0, math.nan], [1.0]) == pytest.approx(1.0)  # a molecule RDKit could not score


def test_user_mistakes_are_one_line_errors(monkeypatch):
    with pytest.raises(UsageError, match="no generated molecules"):
        M.molecule_metrics([], None, ["CCO"], fcd=False)
    with pytest.raises(UsageError, match=r"the Test set: entry 2 \('C1CC'\) is not a valid molecule"):
        M.molecule_metrics(["CCO"], None, ["CCO", "C1CC"], fcd=False, properties=False)
    with pytest.raises(UsageError, match="not a valid molecule"):
        P.qed("C1CC")
    monkeypatch.setitem(sys.modules, "rdkit", None)  # as if RDKit were not installed
    with pytest.raises(UsageError, match=r"pip install 'vaekit\[molecules\]'") as err:
        require("rdkit")
    assert "\n" not in str(err.value)
    with pytest.raises(UsageError, match=r"needs the rdkit package.*vaekit\[molecules\]"):
        M.molecule_metrics(["CCO"], None, ["CCO"])


# -- FCD ---------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fcd_torch.FCD's own np.row_stack, sqrtm(disp=)
def test_fcd_of_a_set_with_itself_is_zero_and_matches_fcd_torch():
    fcd_torch = pytest.importorskip("fcd_torch")
    a = ["CCO", "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "c1ccncc1", "CCN(CC)CC", "O=C(O)CCC(=O)O"]
    b = ["CCCO", "Cc1ccccc1", "CC(=O)Nc1ccc(O)cc1", "c1ccoc1", "CCOCC", "NCCO"]
    assert M.fcd(a, a) == pytest.approx(0.0, abs=1e-3)
    assert M.fcd(b, a) == pytest.approx(fcd_torch.FCD(device="cpu", n_jobs=1)(gen=b, ref=a), rel=1e-4)
    assert M.fcd(b, a) > 1.0
    with pytest.raises(UsageError, match=r"FCD: entry 2 \('C1CC'\) is not a valid molecule"):
        M.fcd(["CCO", "C1CC"], a)


# -- properties --------------------------------------------------------------------------------------------
def test_properties_of_known_molecules():
    aspirin = "CC(=O)Oc1ccccc1C(=O)O"
    assert P.qed(aspirin) == pytest.approx(0.550, abs=0.001)
    assert P.logp(aspirin) == pytest.approx(1.3101, abs=1e-4)  # Wildman-Crippen
    assert P.logp("c1ccccc1") == pytest.approx(1.6866, abs=1e-4)
    assert P.weight(aspirin) == pytest.approx(180.159, abs=0.01)
    assert P.sa(aspirin) == pytest.approx(1.580, abs=0.001)
    assert P.sa("c1ccccc1") == 1.0  # clipped at the easy end
    assert P.ring_penalty("C1CCCCCCC1") == 2 and P.ring_penalty("CCO") == 0
    for s in (aspirin, "C1CCCCCCC1"):
        assert P.penalized_logp(s) == pytest.approx(P.logp(s) - P.sa(s) - P.ring_penalty(s))
    vals = P.compute("qed", [aspirin, "C1CC"])
    assert vals[0] == pytest.approx(0.550, abs=0.001) and math.isnan(vals[1])
    with pytest.raises(UsageError, match="unknown molecular property 'tpsa'"):
        P.property_function("tpsa")


def test_sa_table_is_read_without_unpickling_code():
    import os

    assert len(P._sascorer()._fscores) > 100_000
    evil = pickle.dumps(os.getcwd)  # a pickle that names a global: refused
    with pytest.raises(pickle.UnpicklingError, match="only plain data"):
        import io

        P._PlainDataUnpickler(io.BytesIO(evil)).load()
    assert canonical("OCC") == "CCO"


def test_worker_processes_give_the_same_description():
    smiles = ["CCO", "c1ccccc1", "CCc1ccc2ccccc2c1", "CC(=O)Oc1ccccc1C(=O)O", "c1ccncc1", "OCCO"]
    one, two = M.describe_set(smiles), M.describe_set(smiles, n_jobs=2)
    np.testing.assert_array_equal(one["fps"], two["fps"])
    assert one["frag"] == two["frag"] and one["scaf"] == two["scaf"]
    assert M.canonical_valid(GEN, n_jobs=2) == M.canonical_valid(GEN)


# -- figures -----------------------------------------------------------------------------------------------
def test_molecule_figures_are_pngs():
    import io

    from PIL import Image

    from vaekit.evaluation.molecule_figures import molecule_grid_png, property_histograms_png

    png = molecule_grid_png(GEN, ncol=3, tile=100)  # 5 valid of 6: 3 per row → 2 rows
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(io.BytesIO(png)).size == (300, 200)
    with pytest.raises(UsageError, match="no valid molecule to draw"):
        molecule_grid_png(["C1CC", ""])
    png = property_histograms_png(GEN, ["CCCC", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1"], names=("qed", "logp"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and Image.open(io.BytesIO(png)).size[0] > 400
    with pytest.raises(UsageError, match="unknown molecular property"):
        property_histograms_png(GEN, GEN, names=("tpsa",))


def test_chemnet_activations_do_not_keep_chemnets_whole_output(monkeypatch):
    """ChemNet returns its last step as a view of the LSTM's whole output sequence; kept as is, every batch's
    sequence stayed alive until the end (a 176k-molecule reference set was OOM-killed at 22 GB). Each batch's
    activations must be copied out, so earlier batches' sequences are freed while later ones run."""
    pytest.importorskip("fcd_torch")
    import torch
    from torch.multiprocessing.reductions import StorageWeakRef

    from vaekit.evaluation import molecules as M

    made: list = []
    alive_at_call: list[int] = []

    class FakeChemNet:
        def __call__(self, x):
            alive_at_call.append(sum(not r.expired() for r in made))
            seq = torch.randn(len(x), 50, 512)  # [B, T, 512]: the whole sequence; the last step is returned
            made.append(StorageWeakRef(seq.untyped_storage()))
            return seq[:, -1]

    monkeypatch.setattr(M, "_chemnet", lambda: FakeChemNet())
    acts = M.chemnet_activations(["CCO", "CCN", "c1ccccc1", "CC(=O)O"], batch_size=1)
    assert acts.shape == (4, 512)
    assert alive_at_call == [0, 0, 0, 0]  # without the copy: [0, 1, 2, 3]
