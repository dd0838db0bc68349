"""Shared by the CLI tests: the command line run through typer's test runner, in a fresh folder,
rendered at a fixed width without colour."""

import pytest
from typer.testing import CliRunner

from pipenaut.cli import app

ENV = {"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}


@pytest.fixture
def invoke(tmp_path, monkeypatch):
    """``invoke("run", "--json")`` runs ``pipenaut run --json`` inside ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    return lambda *args: CliRunner().invoke(app, list(args), env=ENV)
