"""The HTML report as a browser shows it: headless Chromium against a live server."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.reports.test_reform_report import REFERENCE_FIGURES

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "reform-report.png"


def chromium(*arguments: str) -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("Chromium is required for this test: apt-get install chromium (.ci/run does)")
    # As root in a container, Chromium's sandbox cannot start; the page is our own.
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


@pytest.mark.usefixtures("kien_thuy")
def test_the_html_report_renders_its_figures_and_charts(live_server: str, tmp_path: Path) -> None:
    url = f"{live_server}/api/v1/reports/reform?unit=313&period=2023-Q3&format=html"
    dom = chromium("--dump-dom", url)
    text = re.sub(r"<[^>]+>", "", dom)
    missing = [figure for figure in REFERENCE_FIGURES if figure not in text]
    assert not missing
    assert dom.count("<svg") == 2
    # Two charts × two quarters with dossiers (Q2 and Q3 of 2023) × two levels. In Q2 only the
    # dossiers carried into Q3 exist, none resolved: 0 % on time, and online 100 % (district) and
    # 0 % (commune); in Q3 all four rates are above 96 %.
    bars = [float(h) for h in re.findall(r'<rect class="bar"[^>]*height="([0-9.]+)"', dom)]
    assert len(bars) == 8
    assert sum(height > 150 for height in bars) == 5 and bars.count(0.0) == 3

    # Taken beside the docs' copy, then moved over it: the two backends' runs may be at once.
    shot = tmp_path / SCREENSHOT.name
    chromium(f"--screenshot={shot}", "--window-size=1280,2200", "--hide-scrollbars", url)
    image = shot.read_bytes()
    assert image.startswith(b"\x89PNG\r\n\x1a\n") and len(image) > 50_000
    staged = SCREENSHOT.with_name(f".{SCREENSHOT.name}.{os.getpid()}")
    shutil.copyfile(shot, staged)
    os.replace(staged, SCREENSHOT)
