"""The deployment files name only commands, options and settings that exist (they are not run here)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from typer.testing import CliRunner

from programme_api.cli import app
from programme_api.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def serve_options() -> set[str]:
    help_text = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}).stdout
    return set(re.findall(r"--[a-z-]+", help_text))


def used_options(command: str) -> set[str]:
    return {word.split("=")[0] for word in shlex.split(command) if word.startswith("--")}


def test_systemd_unit_runs_real_commands() -> None:
    unit = (DEPLOY / "programme-api.service").read_text()
    start = re.search(r"^ExecStart=(.*)$", unit, re.MULTILINE)
    assert start is not None
    assert " serve " in start[1]
    assert used_options(start[1]) <= serve_options()
    assert re.search(r"^ExecStartPre=\S+ db upgrade$", unit, re.MULTILINE)


def test_dockerfile_runs_real_commands() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    command = re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert command is not None
    words = [word.strip(' "') for word in command[1].strip("[]").split(",")]
    assert words[:2] == ["programme-api", "serve"]
    assert used_options(" ".join(words)) <= serve_options()


def test_example_settings_are_settings() -> None:
    known = {f"PROGRAMME_API_{name.upper()}" for name in Settings.model_fields}
    lines = [line for line in (DEPLOY / "env.example").read_text().splitlines() if line and not line.startswith("#")]
    named = {line.split("=", 1)[0] for line in lines}
    assert named - known == set()
    assert "PROGRAMME_API_STATEMENT_CACHE_SIZE" in named
