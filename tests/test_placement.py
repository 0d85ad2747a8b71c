"""Where the training data lives (issue 20, item 4): on the device when it fits, else in (pinned) host memory
with each batch copied over; both give the same training (checked here on the CPU, where the copy is a no-op
path but the batches take the host route: the perm, the batch source and parts.to_device)."""

import torch

import vaekit.training.trainer as trainer_module
from vaekit.config import make_config
from vaekit.core.vae import build_model
from vaekit.data.batch import Batch
from vaekit.training import Trainer
from vaekit.training.parts import fits_on_device, tensor_bytes, to_device


def _fit(seed=0):
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(300, 12, generator=g) > 0.5).float()
    cfg = make_config(None, latent_dim=2, hidden=[16], batch_size=32, epochs=2, seed=seed, likelihood="bernoulli")
    torch.manual_seed(seed)
    t = Trainer(build_model(cfg, (12,), 0), cfg, torch.device("cpu"), progress=False)
    t.fit(x[:240], x[240:])
    return t


def test_a_split_that_does_not_fit_trains_from_host_memory_the_same_way(monkeypatch):
    resident = _fit()
    assert not resident._host_train
    monkeypatch.setattr(trainer_module, "fits_on_device", lambda nbytes, device: False)
    moved = []
    monkeypatch.setattr(trainer_module, "to_device", lambda b, d: moved.append(len(b)) or to_device(b, d))
    host = _fit()
    assert host._host_train and sum(moved) == 2 * 240  # every batch of both epochs went through the copy
    assert [r["train_loss"] for r in host.history] == [r["train_loss"] for r in resident.history]
    for a, b in zip(resident.model.state_dict().values(), host.model.state_dict().values()):
        assert torch.equal(a, b)


def test_fits_and_moves():
    assert fits_on_device(10 ** 15, torch.device("cpu"))  # the CPU holds whatever the host holds
    assert tensor_bytes(torch.zeros(4, 3), None, torch.zeros(2, dtype=torch.uint8)) == 4 * 3 * 4 + 2
    a, b = to_device((Batch(torch.ones(2, 3), labels=torch.arange(2)), torch.zeros(1)), torch.device("cpu"))
    assert isinstance(a, Batch) and a.labels.tolist() == [0, 1] and b.shape == (1,)
