"""Strings (the ``sequences`` kind) and the ``seq-vae`` family: tokenizers, padding kept out of the loss, a run
that reloads with its vocabulary, exact resume, and sample/reconstruct/encode/interpolate from the CLI."""

import itertools
import json

import numpy as np
import pytest
import torch

from cli_helpers import assert_usage_error, run
from vaekit import load, train
from vaekit.data.sequences import PAD, Vocabulary, detokenize, encode, tokenize_smiles
from vaekit.errors import DataError, UsageError
from vaekit.families.seq_vae import SeqVAE, sequence_elbo, token_nll

BASES = ["CCO", "CC(=O)O", "c1ccccc1", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
         "Clc1ccccc1Br", "c1ccc2[nH]ccc2c1", "C[C@@H](O)CC", "CCN(CC)CC", "O=C(O)c1ccccc1O",
         "C1CC2CCC1C2", "CC(C)(C)OC(=O)N", "c1ccncc1", "C1=CC=CN=C1", "CCOC(=O)C", "NCCc1ccc(O)c(O)c1",
         "C%10CCCCC%10", "FC(F)(F)c1ccccc1", "CC#N", "OC1CCCCC1"]
TAILS = ["", "C", "CC", "O", "CCl", "CBr", "CN", "CCO", "F", "CC(C)C"]
SMILES = [b + t for t, b in itertools.product(TAILS, BASES)]  # 200 strings
TINY = dict(family="seq-vae", latent_dim=4, hidden=[32, 32], embedding_dim=16, decoder_layers=1, batch_size=32,
            report=False)


def write_smiles(path, strings=SMILES):
    path.write_text("\n".join(strings) + "\n")
    return path


@pytest.fixture(scope="module")
def seq_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("seq")
    data = write_smiles(d / "mols.smi")
    trained = train(str(data), d / "run", epochs=3, **TINY)
    return d, trained


# -- tokenizers ------------------------------------------------------------------------------------------------
def test_the_smiles_regex_keeps_atoms_ring_bonds_and_brackets_whole():
    s = "Clc1ccc2[nH]cc([C@@H](Br)C%10CC%10)c2c1"
    tokens = tokenize_smiles(s)
    assert tokens == ["Cl", "c", "1", "c", "c", "c", "2", "[nH]", "c", "c", "(", "[C@@H]", "(", "Br", ")", "C",
                      "%10", "C", "C", "%10", ")", "c", "2", "c", "1"]
    assert detokenize(tokens, "smiles") == s
    with pytest.raises(DataError, match=r"character 3 \('&'\)"):
        tokenize_smiles("CC&C")


def test_selfies_tokens_decode_to_the_same_molecule():
    pytest.importorskip("selfies")
    Chem = pytest.importorskip("rdkit.Chem")
    from vaekit.data.sequences import tokenize_selfies

    for s in ["Clc1ccc2[nH]ccc2c1", "C[C@@H](O)C(=O)O", "C1CC2CCC1C2", "C%10CCCCC%10"]:
        tokens = tokenize_selfies(s)
        assert all(t.startswith("[") and t.endswith("]") for t in tokens)
        back = detokenize(tokens, "selfies")
        assert Chem.CanonSmiles(back) == Chem.CanonSmiles(s)


def test_a_selfies_run_samples_only_valid_molecules(tmp_path):
    """SELFIES: every symbol string decodes to a molecule, so every non-empty sample parses (Krenn et al. 2020)."""
    pytest.importorskip("selfies")
    Chem = pytest.importorskip("rdkit.Chem")
    from rdkit import rdBase

    with rdBase.BlockLogs():
        valid = [s for s in SMILES if Chem.MolFromSmiles(s) is not None][:60]
    t = train(str(write_smiles(tmp_path / "m.smi", valid)), None, tokenizer="selfies", epochs=1, **TINY)
    assert all(tok.startswith("[") for tok in t.info["data"]["vocab"][4:])
    samples = t.sample_strings(30, seed=0)
    assert all(Chem.MolFromSmiles(s) is not None for s in samples if s)
    assert sum(bool(s) for s in samples) >= 20


def test_char_tokens_round_trip():
    from vaekit.data.sequences import tokenize

    lines = ["hello world", "a,b;c", "ÆØÅ"]
    voc = Vocabulary.fit([tokenize(s, "char") for s in lines], "char")
    assert voc.strings(encode([tokenize(s, "char") for s in lines], voc)) == lines


# -- padding and the loss ----------------------------------------------------------------------------------------
def test_padding_does_not_enter_the_loss():
    torch.manual_seed(0)
    voc = Vocabulary.fit([tokenize_smiles(s) for s in SMILES[:20]], "smiles")
    x = encode([tokenize_smiles(s) for s in SMILES[:20]], voc)
    model = SeqVAE(len(voc), x.shape[1], 8, 16, 16, 2, 4).eval()
    noise = torch.randn(len(x), 4)
    loss, recon, kl = sequence_elbo(model, x, noise=noise)
    longer = torch.cat([x, torch.full((len(x), 7), PAD)], dim=1)  # more padding columns
    loss2, recon2, kl2 = sequence_elbo(model, longer, noise=noise)
    assert torch.allclose(recon, recon2, atol=1e-5) and torch.allclose(kl, kl2, atol=1e-6)
    # logits at padding positions are never scored
    logits = torch.randn(len(x), x.shape[1] - 1, len(voc))
    changed = logits.clone()
    changed[x[:, 1:] == PAD] = 100.0
    assert torch.equal(token_nll(logits, x[:, 1:]), token_nll(changed, x[:, 1:]))
    assert torch.allclose(token_nll(logits, x[:, 1:]),
                          torch.stack([-(logits[i].log_softmax(1)[torch.arange(n - 1), x[i, 1:n]]).sum()
                                       for i, n in enumerate((x != PAD).sum(1).tolist())]), atol=1e-4)


def test_greedy_generation_follows_the_teacher_forced_decoder():
    """Step-by-step decoding and the teacher-forced pass are the same network: on its own greedy output, the
    teacher-forced logits pick every next token generation picked."""
    torch.manual_seed(1)
    model = SeqVAE(12, 20, 8, 16, 16, 2, 4).eval()
    z = torch.randn(6, 4)
    rows = model.generate(z, 20, temperature=0)
    logits = model.logits(rows[:, :-1], z)
    logits[:, :, :4] = -torch.inf  # pad, bos, unk are never generated; eos (2) is
    logits[:, :, 2] = model.logits(rows[:, :-1], z)[:, :, 2]
    picked = logits.argmax(2)
    live = rows[:, 1:] != PAD
    assert torch.equal(picked[live], rows[:, 1:][live])


# -- a run -------------------------------------------------------------------------------------------------------
def test_a_run_trains_and_reloads_with_its_vocabulary(seq_run):
    d, trained = seq_run
    losses = [r["train_loss"] for r in trained.result.history]
    assert losses[-1] < losses[0] - 1.0  # nats per string
    info = json.loads((d / "run" / "config.json").read_text())["data"]
    assert info["kind"] == "sequences" and info["tokenizer"] == "smiles"
    assert info["vocab"][:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert {"Cl", "Br", "[nH]", "%10"} <= set(info["vocab"])
    assert info["max_length"] == max(len(tokenize_smiles(s)) for s in SMILES) + 2
    res = json.loads((d / "run" / "results.json").read_text())
    assert res["test"]["elbo"] == pytest.approx(res["test"]["recon"] + res["test"]["kl"])
    back = load(d / "run")
    z = back.encode_strings(["CCO", "Clc1ccccc1Br"])
    assert z.shape == (2, 4) and torch.allclose(z, trained.encode_strings(["CCO", "Clc1ccccc1Br"]))
    assert back.decode_latent(z) == trained.decode_latent(z)
    assert back.sample_strings(5, seed=3) == back.sample_strings(5, seed=3)
    assert len(back.sample_strings(7, temperature=0)) == 7
    with pytest.raises(DataError, match=r"'\[Si\]'"):
        back.encode_strings(["CC[Si]C"])


def test_an_interrupted_run_resumes_to_the_uninterrupted_weights(tmp_path):
    data = write_smiles(tmp_path / "m.smi", SMILES[:80])
    settings = dict(TINY, epochs=2, word_dropout=0.2)
    full = train(str(data), tmp_path / "full", **settings)

    def stop_after_one(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(str(data), tmp_path / "cut", on_epoch_end=stop_after_one, **settings)
    resumed = train(out=tmp_path / "cut", resume=True, report=False)
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert json.loads((tmp_path / "cut" / "results.json").read_text()) == \
        json.loads((tmp_path / "full" / "results.json").read_text())


def test_strings_from_a_csv_column_and_refusals(tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text("id,smiles\n" + "".join(f"{i},{s}\n" for i, s in enumerate(SMILES[:60])))
    t = train(str(csv), tmp_path / "r", epochs=1, **TINY)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["data"]["n_train"] == 48
    assert t.config.sequence_column is None and t.config.hidden == [32, 32]
    with pytest.raises(UsageError, match="--sequence-column 'mol' is not a column"):
        train(str(csv), tmp_path / "r2", sequence_column="mol", epochs=1, **TINY)
    with pytest.raises(UsageError, match="--family seq-vae"):
        train(str(write_smiles(tmp_path / "a.smi")), tmp_path / "r3", epochs=1, report=False)
    with pytest.raises(UsageError, match="--hidden for seq-vae is ENCODER,DECODER"):
        train(str(csv), tmp_path / "r4", **{**TINY, "hidden": [32]})
    with pytest.raises(DataError, match=r"a\.smi:3: 'C&C' is not SMILES"):
        train(str(write_smiles(tmp_path / "a.smi", ["CC", "CO", "C&C"])), tmp_path / "r5", epochs=1, **TINY)


def test_seq_vae_defaults_are_the_scaled_moses_settings():
    from vaekit.config import TrainConfig
    from vaekit.families.seq_vae import SeqVAEFamily

    cfg = SeqVAEFamily().defaults(TrainConfig(family="seq-vae", latent_dim=8))
    assert (cfg.hidden, cfg.latent_dim, cfg.batch_size, cfg.lr, cfg.decoder_layers, cfg.grad_clip) == \
        ([128, 256], 8, 64, 2e-3, 2, 50)


# -- the CLI -----------------------------------------------------------------------------------------------------
def test_sample_reconstruct_encode_interpolate_from_the_cli(seq_run):
    d, trained = seq_run
    r = run("sample", d / "run", "-n", 12, "--out", d / "s.smi", "--seed", 1)
    assert r.exit_code == 0, r.output
    lines = (d / "s.smi").read_text().splitlines()
    assert len(lines) == 12 and lines == trained.sample_strings(12, seed=1)
    r = run("reconstruct", d / "run", "--data", d / "mols.smi", "--out", d / "r.csv", "-n", 5)
    assert r.exit_code == 0, r.output
    rows = (d / "r.csv").read_text().splitlines()
    assert rows[0] == "input,reconstruction,exact" and rows[1].startswith("CCO,") and len(rows) == 6
    r = run("encode", d / "run", "--data", d / "mols.smi", "--out", d / "z.npy", "--split", "test")
    assert r.exit_code == 0, r.output
    assert np.load(d / "z.npy").shape == (20, 4)
    r = run("interpolate", d / "run", "--from", "CCO", "--to", "Clc1ccccc1Br", "--steps", 6, "--out", d / "p.smi")
    assert r.exit_code == 0, r.output
    path = (d / "p.smi").read_text().splitlines()
    assert len(path) == len(set(path)) >= 1
    assert_usage_error(run("interpolate", d / "run", "--from", "CCO", "--to", "CC[Si]"), "'[Si]'", "vocabulary")
    (d / "bad.smi").write_text("CCO\nCC[Si](C)C\n")
    assert_usage_error(run("encode", d / "run", "--data", d / "bad.smi", "--out", d / "bad.npy"),
                       "bad.smi:2 has the token '[Si]', which is not in the run's vocabulary")
    assert_usage_error(run("sample", d / "run", "-n", 2, "--out", d / "x.png"), ".smi")
    assert_usage_error(run("traverse", d / "run", "--out", d / "t.png"), "seq-vae run, which this command does not take")
    r = run("evaluate", d / "run", "--split", "validation")
    assert r.exit_code == 0, r.output
    ev = json.loads((d / "run" / "evaluation.json").read_text())
    stored = json.loads((d / "run" / "results.json").read_text())["validation"]
    assert ev["elbo"] == pytest.approx(stored["elbo"]) and ev["strings"] == 20 and ev["same_data_as_training"]
    assert "validation strings of" in r.output and "nats per string" in r.output
    assert_usage_error(run("interpolate", d / "run", "--from", "CCO", "--to", "CC", "--method", "spherical"),
                       "--method")


def test_interpolate_of_an_image_run_still_takes_indices(tmp_path):
    r = run("interpolate", tmp_path / "nope", "--data", "digits", "--from", "a", "--to", "1",
            "--out", tmp_path / "i.npy")
    assert_usage_error(r, "--from takes the index of an example")


# -- latent optimisation ------------------------------------------------------------------------------------------
def test_optimize_moves_molecules_to_a_higher_logp(tmp_path):
    """Two groups of molecules, polar (logP < 0) and greasy (logP > 3): ascent on a logP head fitted on the codes
    takes starts from both groups to decoded molecules whose RDKit logP is higher on average."""
    pytest.importorskip("rdkit")
    low, high = ["OCC(O)CO", "OCCO", "NCC(N)CO"], ["Clc1ccc(Cl)cc1Cl", "CCCCCCCCCC", "Brc1ccccc1Br"]
    data = write_smiles(tmp_path / "two.smi", (low + high) * 10)
    train(str(data), tmp_path / "run", **{**TINY, "latent_dim": 2, "epochs": 12, "batch_size": 16, "lr": 1e-2,
                                          "beta": 0.1, "kl_warmup": 0})
    r = run("optimize", tmp_path / "run", "--property", "logp", "--starts", 10, "--steps", 30, "--lr", 0.2,
            "--out", tmp_path / "best.csv")
    assert r.exit_code == 0, r.output
    from vaekit.tasks.optimize import optimize_property, rdkit_property_values

    res = optimize_property(load(tmp_path / "run"), "logp", starts=10, steps=30, lr=0.2)
    assert res.success_rate >= 0.5 and res.head_r2 > 0.9
    assert res.end_mean > res.start_mean + 1.0  # logP units
    assert res.best[0][1] == pytest.approx(rdkit_property_values("logp", [res.best[0][0]])[0])
    assert res.best[0][1] >= res.training_best[1] - 1.0
    rows = (tmp_path / "best.csv").read_text().splitlines()
    assert rows[0] == "smiles,logp,novel" and rows[1].split(",")[0] == res.best[0][0]
    assert "top 3 found:" in r.output and "decoding success" in r.output
    assert_usage_error(run("optimize", tmp_path / "run", "--property", "tpsa", "--out", tmp_path / "b.smi"),
                       "--property must be one of")


def test_a_text_file_is_read_as_strings_only_for_seq_vae(tmp_path):
    from vaekit.data import load_source

    notes = tmp_path / "notes.txt"
    notes.write_text("hello world\nhi there\n" * 10)
    with pytest.raises(DataError, match="unsupported file type '.txt'"):
        load_source(str(notes))
    t = train(str(notes), None, tokenizer="char", epochs=1, **TINY)
    assert t.info["data"]["vocab"][4] == " " and t.info["data"]["max_length"] == len("hello world") + 2
