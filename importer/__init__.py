"""Bulk-import meetings from CSV and Excel sheets into HubSpot, exactly once, inside its rate limits."""

__version__ = "0.1.0"
