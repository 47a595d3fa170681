"""A PgBouncer in transaction mode for the tests (Debian's ``pgbouncer`` package), in front of the test server.

Started once per test session (conftest's ``pgbouncer_port``) on a free port with a generated configuration:
every database of the test server (``*``), trust authentication for the users the tests log in as, a small
server pool, all of it open and used in turn (round robin, not the most recently used first) so that even
consecutive transactions of one client land on different server connections — the situation that breaks
session state (prepared statements, ``SET`` without ``LOCAL``, ``LISTEN``) if the service relied on any.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from .api import free_port

BINARY = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@contextmanager
def pgbouncer(server_url: str, users: Iterable[str], *, required: bool, pool_size: int = 2) -> Iterator[int]:
    """Run PgBouncer in front of ``server_url``'s server until the block ends; yields its port. Without the
    binary the caller's tests are skipped, or fail when ``required`` (CI). Its files live in a folder of their
    own under the system's temporary folder: PgBouncer drops root for the postgres user, who cannot enter
    pytest's."""
    if not Path(BINARY).exists():
        message = "pgbouncer is not installed (apt-get install pgbouncer)"
        if required:
            pytest.fail(message + "; CI installs it")
        pytest.skip(message)
    server = make_url(server_url)
    port = free_port()
    directory = Path(tempfile.mkdtemp(prefix="programme-pgbouncer-"))
    directory.chmod(0o777)
    userlist = directory / "userlist.txt"
    userlist.write_text("".join(f'"{user}" ""\n' for user in users))
    config = directory / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"* = host={server.host or '127.0.0.1'} port={server.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {userlist}\n"
        f"pool_mode = transaction\ndefault_pool_size = {pool_size}\nmin_pool_size = {pool_size}\nmax_client_conn = 200\n"
        "server_reset_query =\nserver_round_robin = 1\nignore_startup_parameters = extra_float_digits\n"
        f"logfile = {directory / 'pgbouncer.log'}\npidfile = {directory / 'pgbouncer.pid'}\n"
    )
    for path in (userlist, config):
        path.chmod(0o644)
    command = [BINARY, str(config)]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "postgres"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, process, directory)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(directory, ignore_errors=True)


def _wait_listening(port: int, process: subprocess.Popen[bytes], directory: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = directory / "pgbouncer.log"
            output = process.stdout.read().decode() if process.stdout else ""
            pytest.fail(f"pgbouncer exited: {output} {log.read_text() if log.exists() else ''}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail("pgbouncer did not start listening")


def through(port: int, url: str, username: str | None = None) -> str:
    """``url`` (a database of the test server) reached through PgBouncer, optionally as another user."""
    routed = make_url(url).set(host="127.0.0.1", port=port)
    if username is not None:
        routed = routed.set(username=username, password=None)
    return routed.render_as_string(hide_password=False)
