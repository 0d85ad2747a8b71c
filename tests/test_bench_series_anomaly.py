"""bench/series_anomaly.py's pieces: sktime's CSVs read from a fake wheel, and the two baselines' scores on a
series with planted anomalies (higher = more anomalous), by the same point-wise AUROC as vaekit score."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, where bench/ lives
from bench.molecules_data import package_wheel  # noqa: E402
from bench.series_anomaly import nearest_window, read_set, rolling_median_z  # noqa: E402


def test_reads_sktime_series_from_the_wheel(tmp_path, capsys):
    wheel = tmp_path / "sktime-1.2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("sktime/datasets/data/yahoo/yahoo.csv", "data,label\n-46.39,0\n311.3,1\n543.2,0\n")
    x, y = read_set(wheel, "yahoo")
    assert x.tolist() == [-46.39, 311.3, 543.2] and y.tolist() == [0, 1, 0]
    assert package_wheel("sktime", None, tmp_path) == wheel  # found in the cache folder: no download
    with pytest.raises(SystemExit) as err:
        read_set(wheel, "mitdb")  # not in this wheel
    assert err.value.code == 2 and "not an sktime wheel with the mitdb data" in capsys.readouterr().err


def test_baselines_rank_planted_anomalies_first():
    from vaekit.tasks.anomaly import ranking_metrics

    rng = np.random.default_rng(0)
    t = np.arange(600)
    x = np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.05, len(t))
    y = np.zeros(len(t), int)
    x[300], y[300] = x[300] + 3.0, 1  # a spike
    x[450:460], y[450:460] = 0.0, 1  # a flat stretch where the sine should be
    z = rolling_median_z(x, 24)
    assert z.shape == x.shape and np.argmax(z) == 300
    d = nearest_window(x, 24)
    assert d.shape == x.shape and set(np.argsort(d)[-5:]) <= set(range(277, 484))
    assert ranking_metrics(-d, y == 1)["auroc"] > 0.95
    # a window's nearest neighbour never overlaps it: on a pure repeat every distance is ~0
    assert nearest_window(np.tile(np.arange(6.0), 20), 6).max() < 1e-6
