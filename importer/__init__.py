"""Bulk-import meetings from CSV and Excel sheets into HubSpot, exactly once, inside its rate limits."""

import os

__version__ = "0.1.0"

# pydantic looks for plugins in every installed package's metadata when it builds its first model: 30 ms
# of each run's start-up, for plugins the importer does not use. A user who sets the variable decides.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
