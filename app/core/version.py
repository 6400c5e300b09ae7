"""The service's version, one source for `tthc --version` and the OpenAPI document. Standard
library only: the CLI reads it without importing the application."""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def package_version() -> str:
    """The installed distribution's version; from pyproject.toml in a source tree never installed
    (the container runs the source tree)."""
    try:
        return version("tthc")
    except PackageNotFoundError:
        import tomllib

        try:
            pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
        except OSError:
            return "unknown"
        return str(pyproject["project"]["version"])
