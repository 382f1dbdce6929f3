"""The importer's errors, named by what happens next.

    ImporterError                 anything the importer raises on purpose
    ├── StopRun                   the run cannot go on; exit 2, one line on stderr
    │   ├── ConfigError           a config file, environment variable or flag is unusable
    │   ├── InputError            the input file is missing, unreadable, empty or lacks a column
    │   └── AuthError             HubSpot refused the token (401) or its scopes (403)
    └── LockHeld                  another run holds the state lock; exit 3

Problems of a single row are not exceptions: they travel with the row as messages and end up in the
results file, so one bad row never stops the run. Messages are written where the error is raised and
name the file, row, column and value; never the access token.
"""


class ImporterError(Exception):
    """Base of every error the importer raises on purpose."""


class StopRun(ImporterError):
    """The run cannot go on; nothing more is sent."""


class ConfigError(StopRun):
    """A config file, environment variable or flag value is unusable."""


class InputError(StopRun):
    """The input file cannot be read as a meeting sheet."""


class AuthError(StopRun):
    """HubSpot refused the access token or its scopes."""


class LockHeld(ImporterError):
    """Another run holds the lock on the state folder."""
