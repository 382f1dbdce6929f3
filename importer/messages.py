"""Messages in the user's language: gettext catalogs, chosen once at start, compiled on first use.

English is the source language: every message is written in English in the code, marked with `_()` (to
translate now) or `N_()` (a template translated where it is rendered), and that English text is the
gettext msgid. `importer/locale/meeting_importer.pot` is extracted from the code with Babel
(`pybabel extract`, see the README); `importer/locale/ja/LC_MESSAGES/meeting_importer.po` holds the
Japanese. The `.po` is what the repository keeps: its `.mo` is compiled with Babel the first time the
language is used (and again whenever the `.po` is newer), beside it when the folder is writable, else in
memory, so a fresh clone or an installed wheel needs no build step.
"""

from __future__ import annotations

import gettext
import io
import os
import string
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Literal, get_args

Language = Literal["en", "ja"]
EXTRACT_KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2), "_code": ((1, "c"), 2)}
"""What Babel extracts: `_code(name, template, ...)` gives a row problem's template, its code the msgctxt."""
LANGUAGES: tuple[Language, ...] = get_args(Language)
DOMAIN = "meeting_importer"
LOCALE_DIR = Path(__file__).with_name("locale")

_active: Language = "en"


def use(language: Language) -> None:
    """Make `language` the one every message is rendered in from now on (decided once at start)."""
    global _active
    _active = language


def active() -> Language:
    return _active


def language_from(environ: Mapping[str, str]) -> Language:
    """The locale's language, as POSIX orders the variables (the first one set wins): Japanese when it
    starts with `ja` (`ja_JP.UTF-8`), else English."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        if environ.get(name):
            return "ja" if environ[name].lower().startswith("ja") else "en"
    return "en"


@contextmanager
def using(language: Language) -> Iterator[None]:
    """`language` inside the block, the earlier one after it (tests render both languages)."""
    earlier = _active
    use(language)
    try:
        yield
    finally:
        use(earlier)


def _(message: str) -> str:
    """`message` in the active language."""
    return translations(_active).gettext(message)


def N_(message: str) -> str:
    """Marks a template for extraction; it is translated where it is rendered (gettext_noop)."""
    return message


def ngettext(singular: str, plural: str, count: int) -> str:
    return translations(_active).ngettext(singular, plural, count)


def translate(message: str, language: Language | None = None, context: str | None = None) -> str:
    """`message` (a msgid, with its msgctxt when given) in `language`, by default the active one."""
    catalog = translations(language or _active)
    return catalog.pgettext(context, message) if context else catalog.gettext(message)


def template_parts(
    template: str, language: Language | None = None, context: str | None = None
) -> list[tuple[str, str | None]]:
    """The translated `template` as (literal text, name of the field after it or None) pairs, for code
    that fills the fields itself (a polars expression per field, in whatever order the language needs)."""
    text = translate(template, language, context)
    return [(literal, name) for literal, name, _, _ in string.Formatter().parse(text)]


@cache
def translations(language: Language) -> gettext.NullTranslations:
    """The catalog of `language`; English needs none (the msgids are English)."""
    if language == "en":
        return gettext.NullTranslations()
    po = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    mo = po.with_suffix(".mo")
    if mo.is_file() and mo.stat().st_mtime >= po.stat().st_mtime:
        with mo.open("rb") as handle:
            return gettext.GNUTranslations(handle)
    compiled = compile_catalog(po)
    _write_quietly(mo, compiled)
    return gettext.GNUTranslations(io.BytesIO(compiled))


def compile_catalog(po: Path) -> bytes:
    """The `.mo` bytes of a `.po` file, by Babel (imported here only: most runs find the `.mo` made)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as handle:
        catalog = read_po(handle)
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def _write_quietly(path: Path, data: bytes) -> None:
    """Cache the compiled catalog; an installed package's folder may be read-only, and then the catalog
    is compiled again next time (a few milliseconds). Written aside and renamed: runs may start at once."""
    try:
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temp, path)
    except OSError:
        Path(temp).unlink(missing_ok=True)
