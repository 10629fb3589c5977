"""A throwaway PostgreSQL server for the tests and benchmarks: Debian's server binaries (the Makefile
installs the `postgresql` package when they are missing), a data folder in a temp dir, loopback only,
on a free port. initdb refuses to run as root (as CI does): then the server runs as the `postgres`
user, through runuser."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

USER = "orchestrator"  # trusted from loopback
SECURED = "secured"  # must give its password (scram-sha-256)
SECURED_PASSWORD = "pg-PASSWORD-do-not-leak-7e1d@:/"


def server_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries: `make install` installs Debian's postgresql "
                           "package (apt-get install postgresql)")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """``start()`` then ``url(dbname)``; ``stop()`` removes everything. ``durable`` keeps fsync on
    (the benchmarks); tests turn it off, as they never power-cut the server."""

    def __init__(self, *, durable: bool = False, socket_only: bool = False) -> None:
        self.durable = durable
        self.socket_only = socket_only  # no TCP at all: reached through the Unix socket in ``dir``
        self.dir = Path(tempfile.mkdtemp(prefix="orchestrator-pg-"))
        self.data = self.dir / "data"
        self.port = 5432 if socket_only else _free_port()  # a socket's name holds the port: libpq's default
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)

    def start(self) -> PgServer:
        bin_dir = server_bin()
        subprocess.run([*self._as, str(bin_dir / "initdb"), "-D", str(self.data), "-U", USER, "-A", "trust",
                        "--no-sync", "-E", "UTF8", "--locale=C"], check=True, capture_output=True)
        (self.data / "pg_hba.conf").write_text(
            f"host all {SECURED} 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\n"
            "local all all trust\n")
        listen = "" if self.socket_only else "127.0.0.1"
        settings = ["-c", f"listen_addresses={listen}", "-c", f"port={self.port}", "-c",
                    f"unix_socket_directories={self.dir}", "-c", "max_connections=200",
                    "-c", "shared_buffers=32MB"]
        if not self.durable:
            settings += ["-c", "fsync=off", "-c", "full_page_writes=off"]
        self.proc = subprocess.Popen([*self._as, str(bin_dir / "postgres"), "-D", str(self.data), *settings],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            host = str(self.dir) if self.socket_only else "127.0.0.1"
            ready = subprocess.run([str(bin_dir / "pg_isready"), "-q", "-h", host, "-p", str(self.port)],
                                   check=False)
            if ready.returncode == 0:
                self.sql(f"CREATE ROLE {SECURED} LOGIN SUPERUSER PASSWORD '{SECURED_PASSWORD}'")
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}")
            subprocess.run(["sleep", "0.05"], check=False)
        raise RuntimeError("postgres did not start")

    def sql(self, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Run one statement as the trusted superuser; its rows, if any."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def url(self, dbname: str = "postgres") -> str:
        """The server's URL; a socket-only one's in libpq's form, ``postgresql://user@/db?host=/folder``."""
        if self.socket_only:
            return f"postgresql://{USER}@/{dbname}?host={self.dir}"
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{dbname}"

    def stop(self) -> None:
        if self.proc is not None:
            try:  # SIGINT to the postmaster itself (runuser may stand between): fast shutdown, which
                # ends the sessions still open instead of waiting for them
                os.kill(int((self.data / "postmaster.pid").read_text().split()[0]), signal.SIGINT)
                self.proc.wait(30)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
