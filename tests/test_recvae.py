"""The recvae family (Shenbin et al. 2020): composite prior, user-specific β, alternating encoder/decoder updates
with one optimizer each through the one Trainer, exact resume, and recommendations from its runs."""

import json
import math

import numpy as np
import pytest
import torch
from test_interactions import write_interactions

import vaekit
from vaekit.api import train
from vaekit.families.recvae import composite_log_prior

TINY = dict(hidden=[16, 16], latent_dim=4, epochs=3, batch_size=16, patience=None)


def write_clustered(path, n_users=90, n_items=30, per_user=8, seed=0):
    """Users in three taste groups, each clicking mostly the items of its own block of ten: learnable."""
    rng = np.random.default_rng(seed)
    lines = ["user,item"]
    for u in range(n_users):
        block = np.arange(10) + 10 * (u % 3)
        for i in rng.choice(block, size=per_user, replace=False):
            lines.append(f"u{u},i{i}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_composite_prior_log_density_matches_a_hand_computation():
    z = torch.tensor([[0.5, -1.0]])
    old_mu, old_logvar = torch.tensor([[0.0, -1.0]]), torch.tensor([[math.log(4.0), 0.0]])

    def normal(x, mu, var):
        return math.exp(-(x - mu) ** 2 / (2 * var)) / math.sqrt(2 * math.pi * var)

    want = 0.0
    for x, m, v in ((0.5, 0.0, 4.0), (-1.0, -1.0, 1.0)):  # per dimension: 3/20 N(0,1) + 3/4 q_old + 1/10 N(0,e^10)
        want += math.log(3 / 20 * normal(x, 0, 1) + 3 / 4 * normal(x, m, v) + 1 / 10 * normal(x, 0, math.exp(10)))
    assert composite_log_prior(z, old_mu, old_logvar).item() == pytest.approx(want, rel=1e-6)


def test_recvae_trains_beyond_its_untrained_ndcg_with_the_papers_settings(tmp_path):
    from vaekit.families import FAMILIES
    from vaekit.recommend_api import evaluate_recommender

    data = write_clustered(tmp_path / "r.csv")
    trained = train(str(data), tmp_path / "run", family="recvae", report=False,
                    **{**TINY, "epochs": 4, "lr": 1e-2, "min_user_items": 2})
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert cfg["family"] == "recvae" and (cfg["gamma"], cfg["n_enc_epochs"], cfg["n_dec_epochs"]) == (0.005, 3, 1)
    assert cfg["dropout"] == 0.5 and cfg["lr"] == 1e-2  # unset: the paper's; set: kept
    rows = trained.result.history
    assert len(rows) == 4 and all(r["train_kl"] > 0 and r["train_dec_recon"] > 0 for r in rows)
    after = evaluate_recommender(trained, split="validation")["ndcg@100"]
    torch.manual_seed(trained.config.seed)
    trained.model.load_state_dict(FAMILIES["recvae"]().build(trained.config, (30,)).state_dict())
    before = evaluate_recommender(trained, split="validation")["ndcg@100"]
    assert after > before + 0.1, (before, after)
    # the old encoder is the encoder as it was after the last encoder phase (decoder steps leave the encoder)
    loaded = vaekit.load(tmp_path / "run").model
    assert all(torch.equal(a, b) for a, b in zip(loaded.old_encoder.parameters(), loaded.encoder.parameters()))


def test_each_phase_steps_only_its_own_parameters():
    from vaekit.config import make_config
    from vaekit.families.recvae import PhaseBatch, RecVAEFamily, RecVAEObjective

    fam = RecVAEFamily()
    cfg = fam.defaults(make_config(data="x", family="recvae", hidden=[8], latent_dim=2))
    model = fam.build(cfg, (12,))
    x = (torch.rand(5, 12) < 0.4).float()
    x[:, 0] = 1
    obj = RecVAEObjective(0.005)
    enc_before = [p.clone() for p in model.encoder.parameters()]
    out = obj.step(model, PhaseBatch(x, phase="dec", refresh=True), 1.0)
    out.loss.backward()
    assert all(p.grad is None for p in model.encoder.parameters())  # the decoder phase does not touch the encoder
    assert all(torch.equal(a, b) for a, b in zip(model.old_encoder.parameters(), enc_before))  # refreshed
    model.zero_grad()
    obj.step(model, PhaseBatch(x, phase="enc"), 1.0).loss.backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert all(p.grad is None for p in model.old_encoder.parameters())
    assert set(fam.param_groups(model)) == {"enc", "dec"}


def test_an_interrupted_recvae_run_resumes_to_the_uninterrupted_weights(tmp_path):
    data = write_interactions(tmp_path / "r.csv", n_users=40, n_items=20, per_user=6)
    settings = dict(TINY, epochs=3, min_user_items=2, n_enc_epochs=2)
    full = train(str(data), tmp_path / "full", family="recvae", report=False, **settings)

    def stop_after_one(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(str(data), tmp_path / "cut", family="recvae", report=False, on_epoch_end=stop_after_one, **settings)
    state = json.loads((tmp_path / "cut" / "trainer_state.json").read_text())
    resumed = train(out=tmp_path / "cut", resume=True, report=False)
    sd = resumed.model.state_dict()
    assert any(k.startswith("old_encoder.") for k in sd)
    for (k, a), b in zip(full.model.state_dict().items(), sd.values()):
        assert torch.equal(a, b), k
    assert [r["val_ndcg@100"] for r in resumed.result.history] == [r["val_ndcg@100"] for r in full.result.history]
    assert json.loads((tmp_path / "cut" / "results.json").read_text())["test"] == \
        json.loads((tmp_path / "full" / "results.json").read_text())["test"]
    assert set(state["optimizers"]) == {"enc", "dec"} and state["optimizer"] is None  # each phase's Adam


def test_recommend_works_for_a_recvae_run_and_bad_settings_are_refused(tmp_path):
    data = write_clustered(tmp_path / "r.csv", n_users=45)
    train(str(data), tmp_path / "run", family="recvae", report=False, **{**TINY, "epochs": 1})
    trained = vaekit.load(tmp_path / "run")
    items = trained.info["data"]["items"]
    recs = trained.recommend({"u0": items[:3], "new": [items[12]]}, k=5)
    for user, seen in (("u0", items[:3]), ("new", [items[12]])):
        got = [i for i, _ in recs[user]]
        assert len(got) == 5 and not set(got) & set(seen)
    with pytest.raises(vaekit.errors.UsageError, match="--beta is not supported by the recvae family"):
        train(str(data), family="recvae", beta=0.2, report=False, **TINY)
    with pytest.raises(vaekit.errors.UsageError, match="need one width"):
        train(str(data), family="recvae", report=False, **{**TINY, "hidden": [16, 8]})


def test_cli_trains_recvae_with_its_flags_and_recommends(tmp_path):
    from cli_helpers import run as cli

    data = write_clustered(tmp_path / "r.csv", n_users=45)
    r = cli("train", "--data", data, "--family", "recvae", "--epochs", 1, "--hidden", "8,8", "--latent-dim", 2,
            "--gamma", 0.01, "--n-enc-epochs", 1, "--n-dec-epochs", 2, "--out", tmp_path / "run", "-q")
    assert r.exit_code == 0, r.output
    assert "test NDCG@100" in r.stdout
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert (cfg["gamma"], cfg["n_enc_epochs"], cfg["n_dec_epochs"], cfg["batch_size"]) == (0.01, 1, 2, 500)
    hist = tmp_path / "h.csv"
    hist.write_text("user,item\nann,i1\nann,i2\n")
    r = cli("recommend", tmp_path / "run", "--data", hist, "--k", 3, "--out", tmp_path / "recs.csv")
    assert r.exit_code == 0, r.output
    rows = (tmp_path / "recs.csv").read_text().splitlines()
    assert len(rows) == 4 and not {"i1", "i2"} & {line.split(",")[1] for line in rows[1:]}
