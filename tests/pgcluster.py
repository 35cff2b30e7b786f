"""Throwaway PostgreSQL clusters for the test suite.

Usage::

    with PostgresCluster() as cluster:
        url = cluster.create_database("herald_test")
        ...  # connect to ``url``
        cluster.drop_database("herald_test")

The cluster is created with the machine's ``initdb``/``pg_ctl`` (looked up on
``PATH`` first, then under ``/usr/lib/postgresql/*/bin``) in a fresh temporary
directory, listens on 127.0.0.1 on a free port, and is tuned for speed rather
than durability.  PostgreSQL refuses to run as root, so when this process is
root the server binaries are run as the ``postgres`` system user (or a
``herald-pg`` system user created on demand) via ``runuser``/``su``.

Run ``python tests/pgcluster.py`` for a smoke test.
"""

from __future__ import annotations

import asyncio
import atexit
import glob
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Coroutine, TypeVar

__all__ = ["PostgresCluster", "find_pg_binaries"]

SUPERUSER = "postgres"
FALLBACK_SYSTEM_USER = "herald-pg"
PG_GLOB = "/usr/lib/postgresql/*/bin"

_T = TypeVar("_T")


# --------------------------------------------------------------------------
# Binary discovery
# --------------------------------------------------------------------------


def _version_key(path: str) -> tuple[int, ...]:
    """Sort key for ``/usr/lib/postgresql/<version>/bin`` (newest first)."""
    version = Path(path).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (0,)


def _candidate_dirs() -> list[str]:
    return sorted(glob.glob(PG_GLOB), key=_version_key, reverse=True)


def find_pg_binaries() -> tuple[str, str]:
    """Return ``(initdb, pg_ctl)`` paths, raising RuntimeError if missing.

    ``pg_ctl`` is preferably taken from the same directory as ``initdb`` so
    that both come from the same PostgreSQL version.
    """
    looked_for: list[str] = []

    initdb = shutil.which("initdb")
    looked_for.append("initdb on PATH")
    if initdb is None:
        for directory in _candidate_dirs():
            candidate = os.path.join(directory, "initdb")
            looked_for.append(candidate)
            if os.access(candidate, os.X_OK):
                initdb = candidate
                break
    if initdb is None:
        raise RuntimeError(
            "Cannot start a test PostgreSQL cluster: 'initdb' was not found "
            f"(looked for: {', '.join(looked_for)}; also globbed {PG_GLOB}/initdb). "
            "Install the PostgreSQL server package (e.g. apt-get install postgresql)."
        )

    pg_ctl_candidates = [
        os.path.join(os.path.dirname(initdb), "pg_ctl"),
        # initdb may be a symlink into the real bin directory
        os.path.join(os.path.dirname(os.path.realpath(initdb)), "pg_ctl"),
    ]
    pg_ctl = next((c for c in pg_ctl_candidates if os.access(c, os.X_OK)), None)
    if pg_ctl is None:
        pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is None:
        for directory in _candidate_dirs():
            candidate = os.path.join(directory, "pg_ctl")
            pg_ctl_candidates.append(candidate)
            if os.access(candidate, os.X_OK):
                pg_ctl = candidate
                break
    if pg_ctl is None:
        raise RuntimeError(
            f"Cannot start a test PostgreSQL cluster: found initdb at {initdb} but "
            f"no 'pg_ctl' (looked for: {', '.join(pg_ctl_candidates)}, pg_ctl on PATH, "
            f"{PG_GLOB}/pg_ctl)."
        )
    return initdb, pg_ctl


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _quote_ident(name: str) -> str:
    if not name or "\x00" in name:
        raise ValueError(f"invalid database name: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _ensure_system_user() -> str:
    """Pick (or create) the unprivileged user that runs the server as root."""
    if _user_exists("postgres"):
        return "postgres"
    if not _user_exists(FALLBACK_SYSTEM_USER):
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        proc = subprocess.run(
            [useradd, "--system", "--no-create-home", FALLBACK_SYSTEM_USER],
            capture_output=True,
            text=True,
        )
        # exit status 9 == "username already in use" (lost a race); fine.
        if proc.returncode not in (0, 9) or not _user_exists(FALLBACK_SYSTEM_USER):
            raise RuntimeError(
                "Running as root and no 'postgres' user exists; creating system "
                f"user {FALLBACK_SYSTEM_USER!r} failed (exit {proc.returncode}): "
                f"{proc.stderr.strip() or proc.stdout.strip()}"
            )
    return FALLBACK_SYSTEM_USER


def _run_in_thread(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion on a private event loop in a new thread.

    Works whether or not the calling thread already has a running loop.
    """
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised in caller
            result["error"] = exc

    thread = threading.Thread(target=target, name="pgcluster-admin", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


# --------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------


class PostgresCluster:
    """A disposable PostgreSQL cluster living in a temporary directory."""

    START_ATTEMPTS = 5
    PG_CTL_TIMEOUT = 60  # seconds

    def __init__(self) -> None:
        self.initdb, self.pg_ctl = find_pg_binaries()
        self.port: int | None = None
        self.base_dir: str | None = None
        self.data_dir: str | None = None
        self.socket_dir: str | None = None
        self.log_file: str | None = None
        self._run_as: str | None = None
        self._running = False
        if os.geteuid() == 0:
            self._run_as = _ensure_system_user()

    # -- command execution -------------------------------------------------

    def _wrap(self, cmd: list[str]) -> list[str]:
        if self._run_as is None:
            return cmd
        runuser = shutil.which("runuser") or (
            "/usr/sbin/runuser" if os.access("/usr/sbin/runuser", os.X_OK) else None
        )
        if runuser:
            return [runuser, "-u", self._run_as, "--", *cmd]
        su = shutil.which("su") or "/bin/su"
        return [su, self._run_as, "-s", "/bin/sh", "-c", shlex.join(cmd)]

    def _run(self, cmd: list[str], *, check: bool = True, what: str = "") -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        env.pop("LANG", None)
        try:
            proc = subprocess.run(
                self._wrap(cmd),
                cwd=self.base_dir or "/",  # the server user may not be able to read our cwd
                env=env,
                capture_output=True,
                text=True,
                timeout=self.PG_CTL_TIMEOUT + 30,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"{what or cmd[0]} timed out: {shlex.join(cmd)}") from exc
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"{what or os.path.basename(cmd[0])} failed (exit {proc.returncode})"
                f"{' as user ' + self._run_as if self._run_as else ''}: {shlex.join(cmd)}\n"
                f"stdout:\n{proc.stdout.strip()}\nstderr:\n{proc.stderr.strip()}"
            )
        return proc

    def _log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_file or "", encoding="utf-8", errors="replace") as fh:
                return "".join(fh.readlines()[-lines:]).strip()
        except OSError:
            return "(no server log)"

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        if self._running:
            raise RuntimeError("cluster is already running")
        self.base_dir = tempfile.mkdtemp(prefix="herald-pg-")
        try:
            self._prepare_dirs()
            self._initdb()
            self._start_server()
        except BaseException:
            self._cleanup_dir()
            raise
        self._running = True
        atexit.register(self.stop)

    def _prepare_dirs(self) -> None:
        assert self.base_dir is not None
        self.data_dir = os.path.join(self.base_dir, "data")
        self.socket_dir = os.path.join(self.base_dir, "sock")
        self.log_file = os.path.join(self.base_dir, "server.log")
        os.mkdir(self.socket_dir, 0o700)
        if self._run_as is not None:
            pw = pwd.getpwnam(self._run_as)
            for path in (self.base_dir, self.socket_dir):
                os.chown(path, pw.pw_uid, pw.pw_gid)
            probe = self._run(["/bin/sh", "-c", 'test -w "$0"', self.base_dir], check=False)
            if probe.returncode != 0:
                raise RuntimeError(
                    f"User {self._run_as!r} cannot access the cluster directory "
                    f"{self.base_dir}; make sure its parent directories are traversable "
                    f"(set TMPDIR to something like /tmp). {probe.stderr.strip()}"
                )

    def _initdb(self) -> None:
        assert self.data_dir is not None
        self._run(
            [
                self.initdb,
                "-D", self.data_dir,
                "-A", "trust",
                "-U", SUPERUSER,
                "-E", "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            what="initdb",
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": "'" + (self.socket_dir or "").replace("'", "''") + "'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
        }
        # Appending keeps the file's ownership (it belongs to the server user).
        with open(os.path.join(self.data_dir, "postgresql.conf"), "a", encoding="utf-8") as fh:
            fh.write("\n# herald test cluster settings\n")
            for key, value in settings.items():
                fh.write(f"{key} = {value}\n")

    def _start_server(self) -> None:
        assert self.data_dir is not None and self.log_file is not None
        last_error = ""
        for _ in range(self.START_ATTEMPTS):
            port = _free_port()
            proc = self._run(
                [
                    self.pg_ctl,
                    "-D", self.data_dir,
                    "-l", self.log_file,
                    "-o", f"-p {port}",
                    "-w",
                    "-t", str(self.PG_CTL_TIMEOUT),
                    "start",
                ],
                check=False,
            )
            if proc.returncode == 0:
                self.port = port
                return
            log = self._log_tail()
            last_error = (
                f"pg_ctl start failed (exit {proc.returncode}) on port {port}:\n"
                f"{proc.stdout.strip()}\n{proc.stderr.strip()}\nserver log:\n{log}"
            )
            # Make sure nothing half-started is left before retrying.
            self._run([self.pg_ctl, "-D", self.data_dir, "-m", "immediate", "-w", "stop"], check=False)
            self._kill_postmaster()
            if "Address already in use" not in log and "could not bind" not in log:
                break
        raise RuntimeError(last_error)

    def stop(self) -> None:
        atexit.unregister(self.stop)
        if self.base_dir is None:
            return
        if self._running and self.data_dir is not None:
            proc = self._run(
                [self.pg_ctl, "-D", self.data_dir, "-m", "immediate", "-w",
                 "-t", str(self.PG_CTL_TIMEOUT), "stop"],
                check=False,
            )
            if proc.returncode != 0:
                self._kill_postmaster()
        self._running = False
        self.port = None
        self._cleanup_dir()

    def _kill_postmaster(self) -> None:
        """Last resort: SIGQUIT (immediate shutdown) the postmaster we started."""
        if self.data_dir is None:
            return
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid"), encoding="utf-8") as fh:
                pid = int(fh.readline().strip())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGQUIT)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _cleanup_dir(self) -> None:
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        self.base_dir = self.data_dir = self.socket_dir = self.log_file = None

    def __enter__(self) -> "PostgresCluster":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- databases ------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        if self.port is None:
            raise RuntimeError("cluster is not running; call start() first")
        return f"postgres://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _execute(self, sql: str) -> None:
        try:
            import asyncpg
        except ImportError as exc:  # pragma: no cover - depends on environment
            raise RuntimeError("PostgresCluster needs asyncpg to manage databases") from exc
        dsn = self.url("postgres")

        async def run() -> None:
            conn = await asyncpg.connect(dsn, timeout=30)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        _run_in_thread(run())

    def create_database(self, name: str, template: str | None = None) -> str:
        sql = f"CREATE DATABASE {_quote_ident(name)}"
        if template is not None:
            sql += f" TEMPLATE {_quote_ident(template)}"
        self._execute(sql)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")


# --------------------------------------------------------------------------
# Smoke test
# --------------------------------------------------------------------------


def _main() -> int:
    import asyncpg

    with PostgresCluster() as cluster:
        print(f"cluster running: {cluster.url()}  (dir {cluster.base_dir})")
        url = cluster.create_database("herald_smoke")
        print(f"created database: {url}")

        async def check() -> str:
            conn = await asyncpg.connect(url)
            try:
                await conn.execute("CREATE TABLE t (x int); INSERT INTO t VALUES (42)")
                return await conn.fetchval("SELECT current_database() || ':' || (SELECT x FROM t)")
            finally:
                await conn.close()

        print(f"query result: {asyncio.run(check())}")
        copy_url = cluster.create_database("herald_smoke_copy", template="herald_smoke")
        print(f"created from template: {copy_url}")

        async def hold_and_drop() -> None:
            # drop_database must work even with an open connection and a running loop
            conn = await asyncpg.connect(copy_url)
            cluster.drop_database("herald_smoke_copy")
            conn.terminate()

        asyncio.run(hold_and_drop())
        cluster.drop_database("herald_smoke")
        print("dropped databases")
    print("cluster stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
