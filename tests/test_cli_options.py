"""`vaekit train`'s options are generated from TrainConfig: every field is a flag with its help and default,
and what a flag says reaches the run's config under the field's name."""

import json

from typer.testing import CliRunner

from vaekit.cli import app
from vaekit.cli.options import config_parameters, config_settings
from vaekit.config import TrainConfig, flag_name

runner = CliRunner()


def test_every_setting_is_a_flag_with_its_description():
    names = {p.name for p in config_parameters()}
    assert names == set(TrainConfig.model_fields) - {"data"}  # --data is written by hand (its source list)
    out = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "400"}).output
    for name, field in TrainConfig.model_fields.items():
        assert flag_name(name) in out, name
        assert field.description, f"{name} needs a description: it is the flag's help"


def test_flags_are_parsed_into_settings():
    got = config_settings({"hidden": "64,32", "condition_columns": "a, b", "lr": 0.01, "compile": None,
                           "channels": "none", "out": "ignored"})
    assert got == {"hidden": [64, 32], "condition_columns": ["a", "b"], "lr": 0.01, "channels": []}


def test_a_generated_flag_reaches_the_run_config(tmp_path):
    out = tmp_path / "r"
    r = runner.invoke(app, ["train", "--out", str(out), "--family", "m2", "--labeled", "30", "--latent-dim", "2",
                            "--hidden", "8", "--epochs", "1", "--no-compile", "--report-iwae-k", "0", "-q"])
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "config.json").read_text())["config"]
    assert cfg["family"] == "m2" and cfg["semi_supervised"] is True and cfg["hidden"] == [8]
    assert cfg["compile"] is False and cfg["labeled"] == 30
