"""Writes the Japanese sheets in tests/data/ as sales ops keep them: CP932, UTF-16 "Unicode テキスト",
title rows above the header, date and times in separate columns, hidden lookup sheets, malformed lines.

Run: .venv/bin/python tests/data/make_japanese.py (the files are committed; rerun only to change them).
Each CSV's bytes are written exactly as below, so a malformed line stays malformed.
"""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import xlsxwriter

HERE = Path(__file__).resolve().parent
OWNER = "aiko.tanaka@example.co.jp"
# A fixed creation time, so rerunning the script writes the same workbook bytes.
CREATED = datetime(2027, 1, 4, 9, 0)

# 件名 is the case's name: the tests look rows up by it.
TIMES = [
    ("era", "令和9年1月5日 14:00"),
    ("era-letter-dots", "R9.1.5 14:00"),
    ("era-letter-slashes", "R9/1/5 14:00"),
    ("era-lower-case", "r9.1.5 14:00"),
    ("era-weekday-pm", "令和9年1月5日（火）午後2時30分"),
    ("full-width", "２０２７/０１/０５　１４：００"),
    ("pm-colon", "2027/1/5 午後2:00"),
    ("pm-hour", "2027/1/5 午後2時"),
    ("am-twelve", "2027/1/5 午前12:30"),
    ("pm-zero", "2027/1/5 午後0:30"),
    ("hour-kanji", "2027年1月5日 14時"),
    ("half-past", "2027年1月5日 14時半"),
    ("jst", "2027/1/5 14:00 JST"),
    ("offset", "2027/1/5 14:00 +09:00"),
    ("offset-utc", "2027-01-05T05:00:00Z"),
    ("no-zone", "2027/1/5 14:00"),
    ("reiwa-first-day", "令和元年5月1日 10:00"),
    ("heisei-last-day", "平成31年4月30日 10:00"),
    ("heisei-square", "㍻31年4月30日 10:00"),
    ("heisei-letter", "H31.4.30 10:00"),
    ("heisei-first-day", "平成元年1月8日 9:00"),
    ("showa-last-day", "昭和64年1月7日 9:00"),
    ("after-heisei", "平成31年5月1日 10:00"),
    ("before-reiwa", "令和1年4月30日 10:00"),
    ("date-only", "2027/1/5"),
    ("pm-fourteen", "2027/1/5 午後14:00"),
]


def main() -> None:
    write_csv(
        "ja_times.csv",
        "cp932",
        ["件名,開始日時,所要時間（分）,担当者メール"] + [f"{t},{s},60,{OWNER}" for t, s in TIMES],
    )
    write_csv(
        "ja_separate_columns.csv",
        "cp932",
        [
            "2027年1月 商談予定一覧（営業部）,,,,",
            "作成: 営業企画部,,,,",
            "",
            "日付,開始時刻,終了時刻,件名,担当者メール",
            f"2027/1/5,14:00,15:00,さくら商事 定例,{OWNER}",
            f"令和9年1月6日,午後2時,午後3時半,富士ロボティクス デモ,{OWNER}",
            f"２０２７/０１/０７,１０：００,１１：００,かえで銀行 契約更新,{OWNER}",
            f"2027/1/8,,,時刻なし,{OWNER}",
            f",14:00,15:00,日付なし,{OWNER}",
        ],
    )
    write_csv(
        "ja_headers.csv",
        "utf-8-sig",
        [
            "件名,開始日時,所要時間(分),担当者メール,取引ＩＤ,取引先担当者メールアドレス,備考",
            f"定例,2027/1/5 14:00,30,{OWNER},3100004,hiroshi.yamada@sakura-trading.co.jp,要確認",
        ],
    )
    write_csv(
        "ja_two_starts.csv",
        "utf-8",
        ["件名,開始日時,所要時間（分）,担当者メール,開始日時", f"定例,,30,{OWNER},2027/1/5 14:00"],
    )
    write_csv(
        "ja_lists.csv",
        "cp932",
        [
            "件名,開始日時,所要時間（分）,担当者メール,取引先担当者メール,取引ID,結果,場所の種類,リマインダー",
            "定例,2027/1/5 14:00,30,ａｉｋｏ．ｔａｎａｋａ＠ｅｘａｍｐｌｅ．ｃｏ．ｊｐ,"
            "a@sakura.co.jp、b@sakura.co.jp；c@sakura.co.jp,３１０００１、３１０００２,完了,電話,１日、３０分",
            f"保留の商談,2027/1/5 15:00,30,{OWNER},,,保留,オンライン,",
        ],
    )
    write_csv(
        "ja_malformed.csv",
        "cp932",
        [
            "件名,開始日時,所要時間（分）,担当者メール,場所",
            f"商談A,2027/1/5 10:00,30,{OWNER},本社",
            f"商談B,2027/1/5 11:00,30,{OWNER},東京都千代田区丸の内1-1-1, ㈱さくら商事",
            f"商談C,2027/1/5 12:00,30,{OWNER},本社",
            f'"商談D,2027/1/5 13:00,30,{OWNER},本社',
            f'商談E,"2027/1/5 14:00",30,{OWNER},"会議室①"',
        ],
    )
    stray = [f"商談{n},2027/1/{n} 10:00,30,{OWNER}" for n in range(1, 6)]
    stray_bytes = ("件名,開始日時,所要時間（分）,担当者メール\r\n" + "\r\n".join(stray[:3]) + "\r\n").encode()
    stray_bytes += f"髙橋様と打合せ,2027/1/9 10:00,30,{OWNER}\r\n".encode("cp932")
    stray_bytes += ("\r\n".join(stray[3:]) + "\r\n").encode()
    (HERE / "ja_stray_cp932.csv").write_bytes(stray_bytes)
    write_csv(
        "ja_unicode_text.txt",
        "utf-16",
        [
            "件名\t開始日時\t終了日時\t担当者メール\t内容",
            f"さくら商事 定例\t2027/01/05 14:00\t2027/01/05 15:00\t{OWNER}\t議題：①来期予算",
            f'富士ロボティクス デモ\t令和9年1月6日 10:30\t令和9年1月6日 12:00\t{OWNER}\t"デモ\r\n質疑応答"',
        ],
    )
    write_title_workbook()
    write_cell_types("ja_excel_cells.xlsx", date_1904=False)
    write_cell_types("ja_excel_cells_1904.xlsx", date_1904=True)


def write_csv(name: str, encoding: str, lines: list[str]) -> None:
    """Lines joined by CRLF, as Excel writes them; UTF-16 gets its BOM from the codec."""
    (HERE / name).write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))


def workbook(name: str, **options: Any) -> Any:
    book = xlsxwriter.Workbook(str(HERE / name), options)
    book.set_properties({"created": CREATED})
    return book


def write_title_workbook() -> None:
    """A hidden lookup sheet first, then the meetings under a merged title, then a visible notes sheet."""
    book = workbook("ja_title_rows.xlsx")
    lookup = book.add_worksheet("マスタ")
    lookup.write_row(0, 0, ["担当者", "メール"])
    lookup.write_row(1, 0, ["田中", OWNER])
    lookup.hide()
    sheet = book.add_worksheet("商談予定")
    sheet.activate()
    day = book.add_format({"num_format": "yyyy/mm/dd"})
    clock = book.add_format({"num_format": "hh:mm"})
    sheet.merge_range(0, 0, 0, 5, "2027年1月 商談予定一覧（営業部）", book.add_format({"bold": True}))
    sheet.write_row(3, 0, ["日付", "開始時刻", "終了時刻", "件名", "担当者メール", "取引ＩＤ"])
    rows: list[list[object]] = [
        [date(2027, 1, 5), time(14, 0), time(15, 0), "さくら商事 定例", OWNER, "3100004"],
        [date(2027, 1, 6), time(10, 30), time(12, 0), "富士ロボティクス デモ", OWNER, None],
        [date(2027, 1, 7), "午後2時", "午後3時", "かえで銀行 契約更新", OWNER, None],
    ]
    for index, row in enumerate(rows, start=4):
        for column, value in enumerate(row):
            if isinstance(value, date):
                sheet.write_datetime(index, column, datetime.combine(value, time()), day)
            elif isinstance(value, time):
                sheet.write_datetime(index, column, value, clock)
            elif value is not None:
                sheet.write_string(index, column, str(value))
    book.add_worksheet("メモ").write(0, 0, "3行目までは見出しです")
    book.close()


def write_cell_types(name: str, *, date_1904: bool) -> None:
    """Start cells typed as Excel stores them: a date-time, a date alone, a time alone; and a duration
    typed as a time, formatted [h]:mm."""
    book = workbook(name, date_1904=date_1904)
    sheet = book.add_worksheet("商談")
    formats = {f: book.add_format({"num_format": f}) for f in ("yyyy/mm/dd hh:mm", "yyyy/mm/dd", "hh:mm")}
    sheet.write_row(0, 0, ["件名", "開始日時", "所要時間（分）", "担当者メール"])
    cells: list[tuple[str, datetime | time, str]] = [
        ("date-time", datetime(2027, 1, 5, 14, 0), "yyyy/mm/dd hh:mm"),
        ("date-only", datetime(2027, 1, 5), "yyyy/mm/dd"),
        ("time-only", time(14, 0), "hh:mm"),
    ]
    for index, (title, value, number_format) in enumerate(cells, start=1):
        sheet.write_string(index, 0, title)
        sheet.write_datetime(index, 1, value, formats[number_format])
        sheet.write_number(index, 2, 60)
        sheet.write_string(index, 3, OWNER)
    sheet.write_string(4, 0, "duration-clock")
    sheet.write_datetime(4, 1, datetime(2027, 1, 5, 14, 0), formats["yyyy/mm/dd hh:mm"])
    sheet.write_datetime(4, 2, time(1, 30), book.add_format({"num_format": "[h]:mm"}))
    sheet.write_string(4, 3, OWNER)
    book.close()


if __name__ == "__main__":
    main()
