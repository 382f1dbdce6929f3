"""A local HubSpot stand-in: the API subset the importer uses, with HubSpot's limits, validation and faults.

It shares no code with the rest of `importer`, so it checks the client instead of agreeing with it.
"""

from importer.sandbox.app import create_app
from importer.sandbox.config import SandboxConfig
from importer.sandbox.faults import Faults
from importer.sandbox.server import serve

__all__ = ["Faults", "SandboxConfig", "create_app", "serve"]
