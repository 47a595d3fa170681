"""How long `programme-api import ORGANISATION participants.csv --kind participants` takes on SQLite.

Builds a fresh SQLite database in a temporary folder (``db upgrade``), creates an organisation and three
regions with the CLI, writes a CSV of N participants (reference, region, preferred name, email, phone), then
times the CLI import three ways, each as the operator runs it (a new process, wall-clock time):

1. ``--dry-run``: every row validated and matched, nothing written;
2. the import itself: every row created and audited in one transaction;
3. the same file again: every row matched and found unchanged, nothing written.

Run: ``.venv/bin/python benchmarks/import_participants.py [--rows 10000]``. The goal is under 30 s for
10,000 participants; the figures include the command's start-up (about a second). Wall-clock time depends on
what else the machine runs; CPU seconds (user + system of the command's process) do much less.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REGIONS = ("north", "south", "east")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cli(env: dict[str, str], *arguments: str) -> tuple[float, float, str]:
    """Run one CLI command; its wall-clock seconds, its CPU seconds (user + system) and its output."""
    command = [sys.executable, "-c", "from programme_api.cli import main; main()", *arguments]
    started, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=900)
    elapsed, used = time.perf_counter() - started, _children_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"programme-api {' '.join(arguments)} failed:\n{done.stdout}{done.stderr}")
    return elapsed, used, done.stdout


def write_participants(path: Path, rows: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["reference", "region", "preferred_name", "contact_email", "contact_phone"])
        for number in range(rows):
            writer.writerow([f"P{number:06d}", REGIONS[number % len(REGIONS)], f"Person {number}",
                             f"person{number}@example.org", f"+44 7700 {number % 1000000:06d}"])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        env = {
            **os.environ,
            "PROGRAMME_API_DATABASE_URL": f"sqlite+aiosqlite:///{directory / 'bench.db'}",
            "PROGRAMME_API_SECRET_KEY_FILE": str(directory / "keys.json"),
            "PROGRAMME_API_LOG_FORMAT": "console",
        }
        env.pop("PROGRAMME_API_OWNER_DATABASE_URL", None)
        env.pop("PROGRAMME_API_REDIS_URL", None)
        cli(env, "db", "upgrade")
        cli(env, "organisations", "create", "--slug", "bench", "--name", "Bench Peer Support")
        regions = directory / "regions.csv"
        regions.write_text("slug,name\n" + "".join(f"{slug},{slug.title()}\n" for slug in REGIONS))
        cli(env, "import", "bench", str(regions), "--kind", "regions")
        people = directory / "participants.csv"
        write_participants(people, options.rows)
        figures = {}
        for label, extra in (("dry_run", ["--dry-run"]), ("import", []), ("again", [])):
            elapsed, used, output = cli(env, "import", "bench", str(people), "--kind", "participants", "--json", *extra)
            report = json.loads(output)
            figures[label] = {"seconds": round(elapsed, 2), "cpu_seconds": round(used, 2),
                              "created": report["created"], "unchanged": report["unchanged"]}  # fmt: skip
        print(json.dumps({"rows": options.rows, "database": "sqlite", **figures}, indent=2))


if __name__ == "__main__":
    main()
