"""A private PostgreSQL cluster for one benchmark run, with ``pg_stat_statements`` loaded (and, for the tests
of read replicas, a streaming standby of such a cluster).

Why: statements per request are counted in PostgreSQL itself (``pg_stat_statements``), not by a client-side
logger that misses statements sent on some driver paths, and the extension must be preloaded when the server
starts. A cluster of the run's own (``initdb`` into a temporary folder, a free loopback port) gives that
without touching the machine's server, and its processes are the run's alone, so their CPU time is the
database's share of each request. Debian's PostgreSQL binaries are used; as root the cluster runs as the
``postgres`` user (the server refuses to run as root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
SETTINGS = {
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "all",
    "pg_stat_statements.track_utility": "off",  # BEGIN, COMMIT, SET: not statements a read is judged by
    "max_connections": "200",
    "shared_buffers": "512MB",
    "listen_addresses": HOST,
}


@dataclass(frozen=True)
class Cluster:
    admin_dsn: str
    postmaster_pid: int
    port: int

    def stop(self, timeout: float = 30) -> None:
        """Stop the server now (a fast shutdown: sessions are ended), as a crashed or stopped host would look."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.postmaster_pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while _running(self.postmaster_pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def _running(pid: int) -> bool:
    """Whether the process exists and has not exited (an exited child not yet reaped is a zombie, state Z)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def binaries() -> Path:
    """The newest Debian PostgreSQL ``bin`` folder (``/usr/lib/postgresql/<major>/bin``)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda path: int(path.parent.parent.name))
    if not found:
        raise SystemExit("no PostgreSQL server binaries found (apt-get install postgresql)")
    return found[-1].parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _run_as_server_user(command: list[str]) -> None:
    subprocess.run(_as_server_user(command), check=True, capture_output=True, timeout=120)


@contextlib.contextmanager
def _server_folder(prefix: str) -> Iterator[Path]:
    """A temporary folder the server's user owns, deleted afterwards."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def private_cluster(
    log: Path, settings: Mapping[str, str] = SETTINGS, prefix: str = "programme-bench-pg-"
) -> Iterator[Cluster]:
    """Start a throw-away cluster, yield its admin DSN, and always stop it and delete its files."""
    with _server_folder(prefix) as folder:
        data = folder / "data"
        initdb = str(binaries() / "initdb")
        _run_as_server_user([initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
        with _postmaster(folder, settings, log) as cluster:
            yield cluster


@contextlib.contextmanager
def standby(primary: Cluster, log: Path, settings: Mapping[str, str] = SETTINGS) -> Iterator[Cluster]:
    """A hot standby of ``primary`` streaming its WAL (``pg_basebackup -R``: a base backup that starts as a
    standby), on a port of its own; stopped and deleted afterwards. The primary's ``initdb`` trust rules already
    admit replication connections from the loopback."""
    with _server_folder("programme-standby-pg-") as folder:
        source = ["-h", HOST, "-p", str(primary.port), "-U", "postgres"]
        _run_as_server_user([str(binaries() / "pg_basebackup"), "-D", str(folder / "data"), *source,
                             "-R", "-X", "stream", "--checkpoint=fast", "--no-sync"])  # fmt: skip
        with _postmaster(folder, {**settings, "hot_standby": "on"}, log) as cluster:
            yield cluster


@contextlib.contextmanager
def _postmaster(folder: Path, settings: Mapping[str, str], log: Path) -> Iterator[Cluster]:
    """Run the server of ``folder/data`` on a free loopback port until the block ends."""
    data = folder / "data"
    port = free_port()
    options = [f"-c{key}={value}" for key, value in settings.items()]
    command = [str(binaries() / "postgres"), "-D", str(data), "-p", str(port), "-k", str(folder), *options]
    with log.open("wb") as handle:
        server = subprocess.Popen(_as_server_user(command), stdout=handle, stderr=subprocess.STDOUT,
                                  start_new_session=True)  # fmt: skip
        try:
            _wait_accepting(port, server, log)
            postmaster = int((data / "postmaster.pid").read_text().splitlines()[0])
            yield Cluster(f"postgresql://postgres@{HOST}:{port}/postgres", postmaster, port)
        finally:
            with contextlib.suppress(ProcessLookupError):
                server.terminate()  # runuser passes SIGTERM on: a smart shutdown
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _wait_accepting(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the private PostgreSQL exited at start; see {log}")
        with socket.socket() as probe:
            if probe.connect_ex((HOST, port)) == 0:
                time.sleep(0.3)  # the socket opens a moment before the server accepts logins
                return
        time.sleep(0.2)
    raise SystemExit(f"the private PostgreSQL did not start within 60 s; see {log}")


def process_cpu_seconds(pids: set[int]) -> float:
    """User + system CPU of the given processes so far, including their exited and reaped children (a
    PostgreSQL backend that ended: the postmaster's ``cutime``), so the total never goes backwards."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime (stat's 14-17)
    return total / ticks


def descendants(root: int) -> set[int]:
    """``root`` and every process below it (PostgreSQL backends, a server's worker, node under npx)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    found, stack = set(), [root]
    while stack:
        pid = stack.pop()
        found.add(pid)
        stack.extend(children.get(pid, []))
    return found
