"""The dossier fixtures (units, procedures, the portal client) for the statistics tests here."""

from tests.dossiers.conftest import portal, world  # noqa: F401
