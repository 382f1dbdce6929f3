"""`python -m importer.sandbox`: the same command as `meeting-importer sandbox`."""

from importer.sandbox.cli import sandbox_command

sandbox_command()
