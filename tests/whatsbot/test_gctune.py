"""The garbage collector's set-up in the long-running processes (`whatsbot.gctune`)."""

import os
import subprocess
import sys
from pathlib import Path

from whatsbot.gctune import THRESHOLDS

ROOT = Path(__file__).resolve().parents[2]

REPORT = "import gc; print(gc.get_freeze_count() > 50_000, gc.get_threshold())"


def run(code: str) -> str:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "whatsbot.settings"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_fresh_process_collects_with_pythons_defaults():
    assert run(f"import django; django.setup()\n{REPORT}") == "False (700, 10, 10)"


def test_the_web_process_freezes_what_it_imported_before_the_fork():
    # gunicorn --preload imports whatsbot.wsgi in the master, then forks.
    assert run(f"import whatsbot.wsgi\n{REPORT}") == f"True {THRESHOLDS}"


def test_a_worker_freezes_what_it_imported_once_ready():
    code = (
        "import django; django.setup()\n"
        "from whatsbot.celery import app\n"
        "from celery.signals import worker_ready\n"
        "worker_ready.send(sender=None)\n"
        "import sys; print('conversations.agent.openai_client' in sys.modules)\n"
        f"{REPORT}"
    )
    assert run(code).splitlines() == ["True", f"True {THRESHOLDS}"]
