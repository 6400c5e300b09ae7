"""`.env.example` lists every setting, each with a comment and its default."""

import os
import re
from pathlib import Path

import pytest

from app.core.config import Settings

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
# Settings are shown commented out, so that a copy of the file as .env changes nothing.
ASSIGNMENT = re.compile(r"#\s*TTHC_(?P<name>[A-Z0-9_]+)=(?P<value>.*)")


def shown_settings() -> dict[str, str]:
    """The settings the file shows, by field name, with the value shown."""
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    shown: dict[str, str] = {}
    for number, line in enumerate(lines):
        if (match := ASSIGNMENT.fullmatch(line)) is None:
            continue
        name = match["name"].lower()
        assert name not in shown, f"TTHC_{match['name']} is shown twice"
        above = lines[number - 1] if number else ""
        assert above.startswith("# ") and not ASSIGNMENT.fullmatch(above), f"TTHC_{match['name']}: no comment"
        shown[name] = match["value"]
    return shown


def test_every_setting_is_shown_and_nothing_else() -> None:
    shown = set(shown_settings())
    assert sorted(set(Settings.model_fields) - shown) == [], "settings missing from .env.example"
    assert sorted(shown - set(Settings.model_fields)) == [], "settings .env.example shows that do not exist"


def test_the_values_shown_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in os.environ:
        if variable.startswith("TTHC_"):
            monkeypatch.delenv(variable)
    defaults = Settings(_env_file=None).model_dump()
    # An empty value stands for a setting unset (None) or an empty list.
    for name, value in shown_settings().items():
        if value:
            monkeypatch.setenv(f"TTHC_{name.upper()}", value)
    assert Settings(_env_file=None).model_dump() == defaults
