"""The catalogs: every Japanese message keeps the English one's fields."""

from __future__ import annotations

import string
from pathlib import Path

from babel.messages.pofile import read_po

from importer import messages

PO = Path(messages.LOCALE_DIR) / "ja" / "LC_MESSAGES" / f"{messages.DOMAIN}.po"


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_message_other_than_a_codes_keeps_exactly_its_fields() -> None:
    """A stop line, a summary line or a help text filled with `.format()` has the same fields in both
    languages: one field more fails the run with a KeyError, one less loses the file or the value.
    (Row problems may add their column and value; tests/test_problems.py checks those.)"""
    catalog = read_po(PO.open("rb"))
    for message in catalog:
        if not message.id or message.context:
            continue
        english = message.id if isinstance(message.id, str) else message.id[0]
        strings = (message.string,) if isinstance(message.string, str) else tuple(message.string or ())
        for text in strings:
            assert text and _fields(text) == _fields(english), english
