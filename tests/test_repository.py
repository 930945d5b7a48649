"""The repository stands alone: every third-party fixture is listed with its source and
licence, and what the processes write at run time stays out of git."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def sources_rows() -> dict[str, list[str]]:
    """SOURCES.md's table: the cells after the path, by the path (written `like/this.json`)."""
    rows = {}
    for line in (FIXTURES / "SOURCES.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].startswith("`") and cells[0].endswith("`"):
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_every_fixture_file_is_listed_in_sources_md_with_what_it_is_its_source_and_licence():
    files = sorted(
        path.relative_to(FIXTURES).as_posix() for path in FIXTURES.rglob("*") if path.is_file() and path.name != "SOURCES.md"
    )
    rows = sources_rows()

    assert files, "no fixtures found"
    assert [name for name in files if name not in rows] == []
    assert {name: rows[name] for name in files if len(rows[name]) != 3 or not all(rows[name])} == {}


def ignored(path: str) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0


def test_the_beat_schedule_files_are_ignored_by_git():
    if shutil.which("git") is None or subprocess.run(["git", "rev-parse"], cwd=ROOT, capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    from whatsbot.celery import app

    # `celery beat` as the Procfile runs it writes its schedule (a shelve: one file or several,
    # by dbm backend) in the working directory; scripts/run-all writes it under var/.
    default = app.conf.beat_schedule_filename
    names = [default, f"{default}.db", f"{default}.dat", f"{default}.dir", f"{default}.bak", f"var/{default}"]

    # One path per call: with several, check-ignore succeeds when any one is ignored.
    assert [name for name in names if not ignored(name)] == []
