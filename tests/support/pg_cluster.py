"""A private PostgreSQL cluster a test owns: it may stop and restart it at will.

The shared server at 127.0.0.1:5432 must never be restarted; a test that needs to show what
happens when the database goes away starts one of these instead:

    with private_cluster() as cluster:
        cluster.create_database("scheduler")
        url = cluster.url("scheduler")
        ...
        cluster.restart()

It uses the Debian server binaries (/usr/lib/postgresql/<version>/bin, the newest, or what
`pg_config --bindir` names). PostgreSQL refuses to run as root, so as root every server
command runs as the `postgres` OS user (runuser), in a folder that user owns. The cluster
listens on its own free port on 127.0.0.1 and keeps its socket in its folder; fsync is off
(its data is thrown away, and a clean shutdown still checkpoints).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg

from tests.support.processes import free_port

SERVER_USER = "postgres"
DEBIAN_ROOT = Path("/usr/lib/postgresql")
START_TIMEOUT = 60  # seconds pg_ctl waits for start and stop


class ClusterUnavailable(Exception):
    """No server binaries here, or no way to run them: the caller skips."""


def find_bin_dir() -> Path:
    """The folder holding initdb and pg_ctl: the newest Debian version, else pg_config's."""
    candidates = sorted(
        (p for p in DEBIAN_ROOT.glob("*/bin") if (p / "pg_ctl").exists()),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)] or [0],
    )
    if candidates:
        return candidates[-1]
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        folder = Path(out.stdout.strip())
        if (folder / "pg_ctl").exists():
            return folder
    raise ClusterUnavailable("no PostgreSQL server binaries (initdb, pg_ctl) found")


def _run_as() -> list[str]:
    """The prefix that runs a server command as a user PostgreSQL accepts."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise ClusterUnavailable("running as root, and no runuser to become postgres")
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise ClusterUnavailable(f"running as root, and no {SERVER_USER} OS user") from None
    return [runuser, "-u", SERVER_USER, "--"]


class PgCluster:
    def __init__(self, root: Path, bin_dir: Path, port: int) -> None:
        self.root = root
        self.bin_dir = bin_dir
        self.port = port
        self.data = root / "data"
        self.log = root / "server.log"
        self.prefix = _run_as()

    # -- server commands -----------------------------------------------------------------

    def _server(self, tool: str, *args: str, timeout: float = START_TIMEOUT + 30) -> None:
        command = [*self.prefix, str(self.bin_dir / tool), *args]
        done = subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{tool} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                f"{self.server_log()[-3000:]}"
            )

    def initdb(self) -> None:
        self._server(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "100",
            "shared_buffers": "64MB",
            "logging_collector": "off",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/support/pg_cluster.py\n")
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def pg_ctl(self, action: str, *args: str) -> None:
        self._server(
            "pg_ctl", action, "-D", str(self.data), "-l", str(self.log),
            "-w", "-t", str(START_TIMEOUT), *args,
        )  # fmt: skip

    def start(self) -> None:
        self.pg_ctl("start")

    def stop(self) -> None:
        """Stop at once (fast: clients are disconnected); quiet if it is not running."""
        if (self.data / "postmaster.pid").exists():
            self.pg_ctl("stop", "-m", "fast")

    def restart(self) -> None:
        """What an operator's restart does: every client connection is cut."""
        self.pg_ctl("restart", "-m", "fast")

    def server_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    # -- clients -------------------------------------------------------------------------

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        """A SQLAlchemy URL (psycopg 3) for the application."""
        return self.dsn(database).replace("postgresql://", "postgresql+psycopg://")

    def admin(self, sql: str) -> None:
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.encode())

    def create_database(self, name: str) -> str:
        self.admin(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _make_root() -> Path:
    # Not under pytest's tmp_path: that tree is private to root, the server user must enter.
    root = Path(tempfile.mkdtemp(prefix="scheduler-pg-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    root.chmod(0o700)
    return root


@contextmanager
def private_cluster(attempts: int = 3) -> Iterator[PgCluster]:
    """A fresh cluster, started; stopped and deleted afterwards whatever happens."""
    bin_dir = find_bin_dir()
    _run_as()  # fail early (ClusterUnavailable) rather than half-way
    root = _make_root()
    cluster: PgCluster | None = None
    try:
        for attempt in range(attempts):
            cluster = PgCluster(root, bin_dir, free_port())
            if attempt == 0:
                cluster.initdb()
            else:  # another process took the port between free_port() and start: a new one
                _set_port(cluster)
            try:
                cluster.start()
                break
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
        assert cluster is not None
        yield cluster
    finally:
        if cluster is not None:
            with suppress(Exception):
                cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def _set_port(cluster: PgCluster) -> None:
    conf = cluster.data / "postgresql.conf"
    text = re.sub(r"(?m)^port = \d+$", f"port = {cluster.port}", conf.read_text())
    conf.write_text(text)
