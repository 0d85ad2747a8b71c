"""A seq-vae run of molecules wired to the MOSES metrics: `vaekit evaluate` prints and saves them, `vaekit report`
writes report.html and the model card, the VAE methods of TrainedVAE name the string methods, `vaekit optimize`
marks novelty on canonical SMILES."""

import itertools
import json

import pytest
import torch

from cli_helpers import assert_usage_error, run
from vaekit import train

BASES = ["CCO", "CC(=O)O", "c1ccccc1", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "Clc1ccccc1Br", "c1ccc2[nH]ccc2c1",
         "CCN(CC)CC", "O=C(O)c1ccccc1O", "c1ccncc1", "NCCc1ccc(O)c(O)c1"]
TAILS = ["", "C", "CC", "O", "CCl", "CBr", "CN", "CCO", "F", "CC(C)C"]
SMILES = [b + t for t, b in itertools.product(TAILS, BASES)]  # 100 strings
TINY = dict(family="seq-vae", latent_dim=4, hidden=[16, 16], embedding_dim=8, decoder_layers=1, batch_size=32,
            epochs=1, report=False)


@pytest.fixture(scope="module")
def mol_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("mol")
    (d / "mols.smi").write_text("\n".join(SMILES) + "\n")
    trained = train(str(d / "mols.smi"), d / "run", **TINY)
    return d, trained


def test_evaluate_prints_and_saves_the_moses_metrics_of_samples(mol_run):
    pytest.importorskip("rdkit")
    d, trained = mol_run
    r = run("evaluate", d / "run", "--samples", 60, "--no-fcd", "--seed", 3)
    assert r.exit_code == 0, r.output
    assert "nats per string" in r.output and "MOSES metrics of 60 samples" in r.output and "valid " in r.output
    ev = json.loads((d / "run" / "evaluation.json").read_text())
    assert "elbo" in ev and "reconstructed_exactly" in ev  # today's numbers stay
    mol = ev["molecules"]
    m = mol["metrics"]
    assert mol["samples"] == 60 and "FCD/Test" not in m and "SNN/Test" in m and "Novelty" in m
    assert 0 <= m["valid"] <= 1
    # the same numbers as the metric functions on the same samples (seeded), test and training splits
    from vaekit.evaluation.molecules import canonical_valid, molecule_metrics
    from vaekit.tasks.molecule_eval import split_strings

    gen = trained.sample_strings(60, 1.0, 3)
    tr, te = split_strings(trained)
    assert len(tr) == 80 and len(te) == 10 and set(te) <= set(SMILES)
    from vaekit.molecules.chem import to_mol

    ref = molecule_metrics(gen, tr, [s for s in te if to_mol(s) is not None], fcd=False)
    assert m["valid"] == pytest.approx(ref["valid"]) == pytest.approx(len(canonical_valid(gen)) / 60)
    for k in ("Novelty", "SNN/Test", "IntDiv"):
        assert (m[k] is None) == (ref[k] != ref[k]) and (m[k] is None or m[k] == pytest.approx(ref[k]))
    r = run("evaluate", d / "run", "--samples", 0)
    assert r.exit_code == 0 and "MOSES" not in r.output
    assert "molecules" not in json.loads((d / "run" / "evaluation.json").read_text())


def test_evaluate_without_rdkit_keeps_the_elbo_and_names_the_extra(mol_run, monkeypatch):
    import vaekit.molecules.chem as chem

    real = chem.importlib.import_module

    def no_rdkit(name, *a):
        if name.split(".")[0] == "rdkit":
            raise ImportError("No module named 'rdkit'")
        return real(name, *a)

    monkeypatch.setattr(chem.importlib, "import_module", no_rdkit)
    d, _ = mol_run
    r = run("evaluate", d / "run", "--samples", 10)
    assert r.exit_code == 0, r.output
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "MOSES metrics skipped" in err[0] and "vaekit[molecules]" in err[0]
    assert "nats per string" in r.stdout


def test_a_char_run_keeps_todays_evaluate_output(tmp_path):
    (tmp_path / "w.txt").write_text("\n".join(["abc", "abd", "bca", "cab", "dab", "bad"] * 5) + "\n")
    train(str(tmp_path / "w.txt"), tmp_path / "run", **{**TINY, "tokenizer": "char", "report": True})
    page = (tmp_path / "run" / "report.html").read_text()  # training wrote the report and the card
    assert "Sampled strings" in page and "Interpolation" in page and "Sampled molecules" not in page
    card = (tmp_path / "run" / "README.md").read_text()
    assert "`char`" in card and "MOSES" not in card and "sample_strings" in card
    r = run("evaluate", tmp_path / "run")
    assert r.exit_code == 0, r.output
    assert "nats per string" in r.output and "MOSES" not in r.output
    assert "molecules" not in json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert_usage_error(run("evaluate", tmp_path / "run", "--samples", -1), "--samples")


def test_tensor_methods_of_a_string_run_name_the_string_methods(mol_run):
    from vaekit.errors import UsageError

    _, trained = mol_run
    with pytest.raises(UsageError, match=r"sample_strings\(n, temperature, seed\)"):
        trained.sample(5)
    with pytest.raises(UsageError, match=r"decode_latent\(encode_strings\(strings\)\)"):
        trained.reconstruct(["CCO"])
    with pytest.raises(UsageError, match=r"decode_latent\(z\)"):
        trained.decode([[0.0] * 4])
    with pytest.raises(UsageError, match="encode_strings"):
        trained.encode([[1, 2, 3]])
    z = trained.encode(["CCO", "c1ccccc1"])  # strings: the same as encode_strings
    assert z.shape == (2, 4) and torch.equal(z, trained.encode_strings(["CCO", "c1ccccc1"]))
    assert torch.equal(trained.encode("CCO"), trained.encode_strings(["CCO"]))


def test_optimize_marks_a_training_molecule_spelled_anew_as_not_novel(mol_run):
    """The decoder writes ethanol as 'OCC'; the training split has it as 'CCO': the same molecule, not novel."""
    pytest.importorskip("rdkit")
    from vaekit.tasks import optimize as opt
    from vaekit.tasks.sequences import encode_rows, vocabulary

    _, trained = mol_run
    from vaekit.tasks.molecule_eval import split_strings

    assert "CCO" in split_strings(trained)[0]

    def fake_decode(_trained, z):
        return ["OCC", "CCCCCCCCCCCCOCCCCCCCC"] * (len(z) // 2) + ["OCC"] * (len(z) % 2)

    res = opt._optimize(trained, "logp", 4, 2, 0.1, 100, 0, vocabulary, encode_rows, fake_decode)
    novel = dict(zip([s for s, _ in res.best], res.novel))
    assert novel == {"CCCCCCCCCCCCOCCCCCCCC": True, "OCC": False}


def test_optimize_ranks_each_molecule_once_whatever_its_spelling():
    """'CCO' and 'OCC' are one molecule: ranked once, under the first spelling; unreadable strings drop out."""
    pytest.importorskip("rdkit")
    from vaekit.tasks.optimize import rank_molecules

    ranked = rank_molecules(["CCO", "OCC", "c1ccccc1", "C(", "C1=CC=CC=C1"], [0.5, 0.5, 2.0, float("nan"), 2.0])
    assert ranked == [("c1ccccc1", 2.0), ("CCO", 0.5)]


def test_report_of_a_molecule_run_has_drawings_properties_path_and_card(mol_run):
    pytest.importorskip("rdkit")
    d, _ = mol_run
    r = run("report", d / "run")
    assert r.exit_code == 0, r.output
    page = (d / "run" / "report.html").read_text()
    for part in ("Training curve", "Sampled molecules", "Property distributions", "Interpolation between two test",
                 "SNN/Test", "Novelty", "exact reconstruction"):
        assert part in page, part
    assert page.count("data:image/png;base64,") == 3  # curve, molecule grid, property histograms
    ev = json.loads((d / "run" / "evaluation.json").read_text())
    assert ev["molecules"]["samples"] == 1000 and "FCD/Test" not in ev["molecules"]["metrics"]
    card = (d / "run" / "README.md").read_text()
    for part in ("`smiles`", "vocabulary", "maximum length", "## Metrics", "Novelty", "fraction of the distinct valid",
                 "## Intended use and limits", "model.sample_strings(100"):
        assert part in card, part


def test_the_card_warns_of_posterior_collapse_when_kl_is_near_zero():
    from vaekit.evaluation.sequence_card import sequence_card

    info = {"config": {"latent_dim": 4, "hidden": [16, 16]}, "data": {"kind": "sequences", "tokenizer": "smiles",
                                                                       "vocab": ["<pad>"] * 9, "max_length": 12}}
    low = {"test": {"elbo": 30.0, "recon": 29.99, "kl": 0.01}, "epochs_run": 1, "best_epoch": 1}
    assert "posterior collapse" in sequence_card("r", info, low, None)
    high = {"test": {"elbo": 30.0, "recon": 25.0, "kl": 5.0}, "epochs_run": 1, "best_epoch": 1}
    assert "posterior collapse" not in sequence_card("r", info, high, None)


def test_tune_searches_a_seq_vae_by_its_validation_elbo(mol_run, tmp_path):
    from vaekit.tuning import tune
    from vaekit.tuning.space import SEQUENCE_SPACE_YAML, parse_space
    from vaekit.config import load_yaml

    d, _ = mol_run
    default = parse_space(load_yaml(SEQUENCE_SPACE_YAML), "default")
    assert {p.name for p in default.params} == {"lr", "latent_dim", "hidden", "word_dropout", "kl_warmup"}
    space = {"lr": {"kind": "log-float", "low": 1e-3, "high": 1e-2}, "word_dropout": {"kind": "float", "low": 0.0,
             "high": 0.2, "step": 0.1}, "hidden": [16, 16], "latent_dim": 4, "epochs": 1}
    res = tune(str(d / "mols.smi"), tmp_path / "tune", space=space, trials=2, sampler="random", seed=0, quiet=True,
               report=False, config={"family": "seq-vae", "embedding_dim": 8, "decoder_layers": 1, "batch_size": 32})
    assert res.metric == "val_elbo" and res.finished == 2
    best = json.loads((res.best_run / "results.json").read_text())
    assert res.best_value == best["validation"]["elbo"]
    r = run("tune", "--data", d / "mols.smi", "--family", "seq-vae", "--trials", 1, "--out", tmp_path / "t2",
            "--metric", "val_iwae")
    assert_usage_error(r, "watches the validation −ELBO per string")
