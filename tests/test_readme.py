"""README's two commands are the ones people type; CI must run the very same test command."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_opens_with_a_run_command_and_a_test_command() -> None:
    run, test = readme_commands()
    assert "programme-api demo load" in run
    assert run.endswith("programme-api serve")
    assert test.endswith(".venv/bin/pytest")
    assert (ROOT / "README.md").read_text().index("```sh") < 40


def test_ci_runs_the_readme_test_command_word_for_word() -> None:
    _, test = readme_commands()
    assert test in (ROOT / ".ci" / "run").read_text().splitlines()
