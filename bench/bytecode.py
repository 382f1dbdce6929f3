"""The importer's modules compiled before a benchmark measures it, as installing the package leaves them."""

from __future__ import annotations

import compileall
from pathlib import Path

IMPORTER = Path(__file__).resolve().parents[1] / "importer"


def compile_importer() -> None:
    """pip compiles a package's modules as it installs it. An editable install (`make`) leaves that to
    the first import, which writes nothing where PYTHONDONTWRITEBYTECODE is set (as on this machine): each
    run would compile every module again, 0.1 to 0.2 s of CPU counted as the importer's start-up."""
    compileall.compile_dir(IMPORTER, quiet=1)
