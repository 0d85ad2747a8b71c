import os
import tempfile

import pytest
import torch

# Two cores: keep intra-op threads from fighting pytest-xdist workers.
torch.set_num_threads(1)
# an empty cache of the tests' own (vaekit evaluate caches its sample-quality classifier there: never the tree)
os.environ.setdefault("VAEKIT_CACHE", tempfile.mkdtemp(prefix="vaekit-test-cache-"))


@pytest.fixture
def tiny(tmp_path):
    """Settings for a fast training run on digits."""
    return dict(data="digits", latent_dim=4, hidden=[32], batch_size=64, epochs=3, seed=0)
