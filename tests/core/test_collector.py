"""The collector settled in a serving process (app.core.collector): the start-up's objects frozen,
collections rarer. In a process of its own: freezing is for good, and the tests build many apps."""

import subprocess
import sys
from pathlib import Path

from app.core.collector import YOUNGEST

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import gc
from app.main import served_app
before = gc.get_freeze_count()
served_app()
print(before, gc.get_freeze_count(), *gc.get_threshold())
"""


def test_a_served_app_freezes_its_start_up_and_collects_less_often() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    before, frozen, youngest, middle, oldest = map(int, done.stdout.split())
    # The modules, the ORM's metadata and the app's routes: many thousands of objects.
    assert before == 0 and frozen > 50_000
    assert (youngest, middle, oldest) == (YOUNGEST, 10, 10)
