"""Shared by the CLI tests: run a vaekit command in-process, and check a usage error (exit 2, one line)."""

from typer.testing import CliRunner

from vaekit.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_usage_error(result, *needles):
    assert result.exit_code == 2, (result.exit_code, result.output)
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in result.output
    for n in needles:
        assert n in err, (n, err)
