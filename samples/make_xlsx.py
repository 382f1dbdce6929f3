"""Writes samples/meetings.xlsx: real Excel date-time cells, ids stored as text, a blank row, bad rows.

Run: .venv/bin/python samples/make_xlsx.py (the file is committed; rerun only to change it).
"""

from datetime import datetime
from pathlib import Path

import xlsxwriter

HEADER = [
    "Title", "Start", "End", "Duration minutes", "Timezone", "Owner email", "Contact emails",
    "Company domains", "Deal IDs", "Location", "Location type", "Outcome", "Reminders",
]  # fmt: skip
ROWS: list[list[object]] = [
    ["Kaede Bank quarterly review", datetime(2026, 12, 15, 10, 0), datetime(2026, 12, 15, 11, 0), None,
     "Asia/Tokyo", "yuki.suzuki@example.co.jp", "ren.nakamura@kaede-bank.co.jp", "kaede-bank.co.jp",
     "3100006", "Kaede Bank, Otemachi", "ADDRESS", "SCHEDULED", "1d"],
    ["Northwind demo", datetime(2026, 12, 15, 9, 0), None, 60, "America/New_York",
     "emma.wilson@example.com", "michael.chen@northwind.com", "northwind.com", "3100007", "Zoom",
     "CUSTOM", None, None],
    None,  # a blank row: skipped, row numbers still follow the sheet
    ["Sakura Trading price review", datetime(2026, 12, 16, 14, 0), datetime(2026, 12, 16, 14, 30), None,
     None, "aiko.tanaka@example.co.jp", "hiroshi.yamada@sakura-trading.co.jp", "sakura-trading.co.jp",
     "3100008", None, None, "completed", "30m"],
    ["Globex workshop (two companies share globex.com)", datetime(2026, 12, 17, 13, 0),
     datetime(2026, 12, 17, 15, 0), None, "Europe/Berlin", "emma.wilson@example.com",
     "sophie.martin@globex.com; daniel.lee@globex.com", "globex.com", None, None, None, None, None],
    ["Fuji Robotics site visit (bad outcome)", datetime(2026, 12, 18, 10, 0), datetime(2026, 12, 18, 12, 0),
     None, "Asia/Tokyo", "kenji.sato@example.co.jp", "takeshi.ito@fuji-robotics.jp", "fuji-robotics.jp",
     None, None, None, "MAYBE", None],
    ["Contoso sync (no owner)", datetime(2026, 12, 18, 16, 0), datetime(2026, 12, 18, 16, 30), None,
     "America/Chicago", None, "olivia.garcia@contoso.com", "contoso.com", None, None, None, None, None],
]  # fmt: skip


def main() -> None:
    path = Path(__file__).with_name("meetings.xlsx")
    workbook = xlsxwriter.Workbook(path)
    sheet = workbook.add_worksheet("Meetings")
    when = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    text = workbook.add_format({"num_format": "@"})
    sheet.write_row(0, 0, HEADER)
    for index, row in enumerate(ROWS, start=1):
        for column, value in enumerate(row or []):
            if isinstance(value, datetime):
                sheet.write_datetime(index, column, value, when)
            elif column == 8 and value is not None:
                sheet.write_string(index, column, str(value), text)  # a deal id kept as text
            elif value is not None:
                sheet.write(index, column, value)
    workbook.add_worksheet("Notes").write(
        0, 0, "The importer reads the first sheet unless --sheet says otherwise."
    )
    workbook.close()


if __name__ == "__main__":
    main()
