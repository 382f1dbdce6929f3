"""Row problem codes: every code is produced where its problem is found, with its message in English and
Japanese; the Japanese catalog and the README's table cover every code and every message in the code."""

from __future__ import annotations

import gettext
import io
import re
import string
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from importer import messages
from importer import problems as codes
from importer.cells import parse_cells
from importer.changes import Change
from importer.mapper import map_meeting
from importer.messages import LANGUAGES, Language
from importer.models import FIELDS, RowResult, RowStatus
from importer.reader import _malformed
from importer.sender import update_notes
from importer.stages import twin_outcome
from tests.test_mapper import DIRECTORY, meeting

REPO = Path(__file__).resolve().parents[1]
PO = REPO / "importer" / "locale" / "ja" / "LC_MESSAGES" / "meeting_importer.po"
POT = REPO / "importer" / "locale" / "meeting_importer.pot"
JA_HEADERS = {
    "title": "件名",
    "start": "開始日時",
    "end": "終了日時",
    "duration_minutes": "所要時間（分）",
    "timezone": "タイムゾーン",
    "owner_email": "担当者メール",
    "contact_emails": "コンタクト",
    "company_domains": "会社ドメイン",
    "deal_ids": "取引ID",
    "outcome": "結果",
    "location_type": "場所の種類",
    "reminders": "リマインダー",
}
GOOD = {
    "title": "定例",
    "start": "2026/12/01 10:00",
    "end": "2026/12/01 11:00",
    "owner_email": "a@example.com",
}
Produced = tuple[str | None, str | None]
"""A produced row's (message, code): the `error` and `error_code` cells, or `warning` and `warning_code`."""


def from_cells(warning: bool = False, **cells: str | None) -> Callable[[], Produced]:
    """A row of GOOD with `cells` changed, through the column checks, with the sheet's Japanese headers."""

    def produce() -> Produced:
        row = {**GOOD, **cells}
        names = [f for f in FIELDS if f in row]
        frame = pl.DataFrame([[row[f] for f in names]], schema={n: pl.String for n in names}, orient="row")
        headers = {f: JA_HEADERS.get(f, f) for f in names}
        out, _ = parse_cells(
            frame,
            headers,
            default_timezone="Asia/Tokyo",
            default_outcome="SCHEDULED",
            default_reminders="30m",
        )
        first = out.row(0, named=True)
        if warning:
            return first["_warnings"], first["_warning_codes"]
        return first["_problems"], first["_error_codes"]

    return produce


def from_mapper(**changes: object) -> Callable[[], Produced]:
    def produce() -> Produced:
        result = map_meeting(
            meeting(**changes),
            DIRECTORY,
            on_missing_association="fail",
            ambiguous_company_domain="fail",
            include_invite_description=False,
        )
        return codes.describe(result.problems)

    return produce


def skipped_association() -> Produced:
    result = map_meeting(
        meeting(deal_ids=("799",)),
        DIRECTORY,
        on_missing_association="skip",
        ambiguous_company_domain="fail",
        include_invite_description=False,
    )
    assert result.request is not None
    return codes.describe(result.request.notes)


def from_line(line: str, cells: list[str] | None) -> Callable[[], Produced]:
    return lambda: codes.describe([_malformed(7, line, "\t", 3, cells)])


def twin() -> Produced:
    """A row that repeats row 4, whose owner HubSpot lacks."""
    first = codes.outcome(
        RowStatus.FAILED, codes.Problem(codes.COULD_NOT_FIND_OWNER, "担当者メール", "x@example.com")
    )
    outcome = twin_outcome(RowResult(4, None, first))
    return outcome.error, outcome.error_code


def notes(change: Change, index: int) -> Callable[[], Produced]:
    return lambda: codes.describe([update_notes(change)[index]])


PRODUCERS: dict[str, Callable[[], Produced]] = {
    "MISSING_REQUIRED_PROPERTY": from_cells(title=None),
    "COLUMN_TOO_LARGE": from_cells(title="x" * 1001),
    "COULD_NOT_PARSE_DATE": from_cells(start="2026/13/01 10:00"),
    "DATE_ORDER_NEEDED": from_cells(start="01/02/2027 10:00"),
    "MISSING_TIME_OF_DAY": from_cells(start="2026/12/01"),
    "MISSING_DATE": from_cells(start="10:00"),
    "DATE_OUTSIDE_ERA": from_cells(start="平成32年1月5日 10:00"),
    "TIME_IN_DST_GAP": from_cells(
        start="2027-03-14 02:30", end="2027-03-14 04:00", timezone="America/New_York"
    ),
    "OUTSIDE_VALID_TIME_RANGE": from_cells(start="1800-01-01 10:00", end="1800-01-01 11:00"),
    "MISSING_END_TIME": from_cells(end=None),
    "END_BEFORE_START": from_cells(end="2026/12/01 09:00"),
    "AMBIGUOUS_LOCAL_TIME": from_cells(
        warning=True, start="2027-11-07 01:30", end="2027-11-07 03:00", timezone="America/New_York"
    ),
    "COULD_NOT_PARSE_NUMBER": from_cells(end=None, duration_minutes="半時間"),
    "INVALID_NUMBER_SIZE": from_cells(end=None, duration_minutes="0"),
    "UNKNOWN_TIME_ZONE": from_cells(timezone="東京"),
    "INVALID_EMAIL": from_cells(owner_email="tanaka@example"),
    "INVALID_DOMAIN": from_cells(company_domains="sakura"),
    "INVALID_RECORD_ID": from_cells(deal_ids="D-1"),
    "INVALID_ENUMERATION_OPTION": from_cells(outcome="たぶん"),
    "INVALID_REMINDER": from_cells(reminders="1日; 明日"),
    "UNTERMINATED_QUOTE": from_line('"定例,2026/12/01\n', None),
    "COULD_NOT_PARSE_ROW": from_line('"定例"x,2026/12/01\n', None),
    "INCORRECT_NUMBER_OF_COLUMNS": from_line("a\tb\tc\td\n", ["a", "b", "c", "d"]),
    "COULD_NOT_FIND_OWNER": from_mapper(owner_email="nobody@example.com"),
    "ARCHIVED_OWNER": from_mapper(owner_email="olivia.old@example.com"),
    "OWNER_WITHOUT_USER": from_mapper(owner_email="noah.nouser@example.com"),
    "ATTENDEE_NOT_AN_OWNER": from_mapper(attendee_emails=("stranger@example.com",)),
    "ASSOCIATION_RECORD_NOT_FOUND": from_mapper(contact_emails=("nobody@x.com",)),
    "UNKNOWN_ASSOCIATION_RECORD_ID": from_mapper(deal_ids=("799",)),
    "ASSOCIATION_SKIPPED": skipped_association,
    "MULTIPLE_COMPANIES_WITH_THIS_DOMAIN": from_mapper(company_domains=("contoso.com",)),
    "DUPLICATE_ROW_CONTENT": twin,
    "CHANGED_COLUMNS": notes(Change({"hs_meeting_title": "x"}, [], [], ["title"], ["reminders"]), 0),
    "NOT_UPDATABLE": notes(Change({"hs_meeting_title": "x"}, [], [], ["title"], ["reminders"]), 1),
}
"""How each code is produced where its problem is found. Codes of the stages that need HubSpot and the
ledger are produced in tests/test_sender.py and tests/integration/ (test_codes.py in both languages);
`REPRESENTATIVE` renders those."""


def failed_validation() -> Produced:
    from pydantic import ValidationError

    from importer.models import Meeting
    from importer.reader import _describe

    try:
        Meeting.model_validate({"title": ""})
    except ValidationError as exc:
        first = _describe(exc, JA_HEADERS)[0]
        return codes.describe([first])
    raise AssertionError("the model took an empty title")


PRODUCERS["FAILED_VALIDATION"] = failed_validation

REPRESENTATIVE: dict[str, codes.Problem] = {
    p.code.name: p
    for p in [
        codes.Problem(codes.RESULTS_MEETING_DELETED, params={"meeting_id": "71000001"}),
        codes.Problem(codes.MULTIPLE_EXISTING_MEETINGS, params={"count": 2, "ids": "71000001, 71000002"}),
        codes.Problem(codes.MEETING_MATCHES_SEVERAL_ROWS, params={"meeting_id": "71000001", "rows": "2, 5"}),
        codes.Problem(codes.ALREADY_IN_HUBSPOT, params={"meeting_id": "71000001"}),
        codes.Problem(codes.SIMILAR_MEETING_EXISTS, params={"ids": "71000001"}),
        codes.Problem(codes.CREATED_EARLIER),
        codes.Problem(codes.CHANGE_NOT_SENT),
        codes.Problem(codes.ONLY_NOT_UPDATABLE, params={"fields": "reminders"}),
        codes.Problem(
            codes.HUBSPOT_REFUSED, params={"detail": "HubSpot 400 VALIDATION_ERROR: Invalid input"}
        ),
        codes.Problem(codes.HUBSPOT_UNAVAILABLE, params={"detail": "HubSpot 423: Locked"}),
        codes.Problem(codes.MEETING_DELETED, params={"meeting_id": "71000001"}),
        codes.Problem(
            codes.OUTCOME_UNKNOWN,
            params={"why": codes.Text("HubSpot's answer was lost ({detail})", {"detail": "ReadTimeout"})},
        ),
        codes.Problem(codes.FOUND_AFTER_LOST_ANSWER),
        codes.Problem(
            codes.RUN_STOPPED, params={"reason": codes.Text("stopped by {signal}", {"signal": "SIGTERM"})}
        ),
    ]
}
"""Codes found where HubSpot and the ledger are needed, as those places build them (tests/test_sender.py
and tests/integration/ produce them there)."""


EXPECTED: dict[str, tuple[str, str]] = {
    "MISSING_REQUIRED_PROPERTY": ("件名: is required", "件名: 入力が必要です"),
    "COLUMN_TOO_LARGE": ("件名: is longer than 1000 characters", "件名: 1000文字を超えています"),
    "COULD_NOT_PARSE_DATE": (
        "開始日時: cannot read '2026/13/01 10:00' as a date and time (write e.g. 2026/12/01 14:00, 2026年12月1日 午後2時, 令和8年12月1日 14:00 or 2026-12-01T14:00:00+09:00)",
        "開始日時: 「2026/13/01 10:00」を日時として読めません（例: 2026/12/01 14:00、2026年12月1日 午後2時、令和8年12月1日 14:00、2026-12-01T14:00:00+09:00）",
    ),
    "DATE_ORDER_NEEDED": (
        "開始日時: '01/02/2027 10:00' puts the year last, which reads two ways (1/2 is 2 January or 1 February): set date_order to MDY (2/13/2027) or DMY (13/02/2027), or write e.g. 2026/12/01 14:00",
        "開始日時: 「01/02/2027 10:00」は年が最後にあり、2通りに読めます（1/2 は1月2日とも2月1日とも読めます）。date_order を MDY（2/13/2027）か DMY（13/02/2027）にするか、2026/12/01 14:00 のように書いてください",
    ),
    "MISSING_TIME_OF_DAY": (
        "開始日時: '2026/12/01' has a date but no time of day (write e.g. 2026/12/01 14:00, or give the time in a start_time column)",
        "開始日時: 「2026/12/01」には日付だけで時刻がありません（例: 2026/12/01 14:00。または時刻を start_time 列に書いてください）",
    ),
    "MISSING_DATE": (
        "開始日時: '10:00' has a time of day but no date (write e.g. 2026/12/01 14:00, or give the date in a date column)",
        "開始日時: 「10:00」には時刻だけで日付がありません（例: 2026/12/01 14:00。または日付を date 列に書いてください）",
    ),
    "DATE_OUTSIDE_ERA": (
        "開始日時: '平成32年1月5日 10:00' is not a date of the 平成 era (1989-01-08 to 2019-04-30)",
        "開始日時: 「平成32年1月5日 10:00」は平成の期間（1989-01-08～2019-04-30）の日付ではありません",
    ),
    "TIME_IN_DST_GAP": (
        "開始日時: '2027-03-14 02:30' does not exist in America/New_York (the clocks skip it when daylight saving time starts)",
        "開始日時: 「2027-03-14 02:30」はAmerica/New_Yorkには存在しない時刻です（夏時間の開始で時計が飛ばします）",
    ),
    "OUTSIDE_VALID_TIME_RANGE": (
        "開始日時: is outside the years 1900 to 2199; 終了日時: is outside the years 1900 to 2199",
        "開始日時: 1900年から2199年の範囲外です; 終了日時: 1900年から2199年の範囲外です",
    ),
    "MISSING_END_TIME": (
        "終了日時: needs an end time or duration_minutes",
        "終了日時: 終了日時か所要時間（duration_minutes）が必要です",
    ),
    "END_BEFORE_START": ("終了日時: must be after start", "終了日時: 開始より後の日時にしてください"),
    "AMBIGUOUS_LOCAL_TIME": (
        "開始日時: '2027-11-07 01:30' occurs twice in America/New_York (daylight saving time ends); took the first, 2027-11-07 05:30Z",
        "開始日時: 「2027-11-07 01:30」はAmerica/New_Yorkでは2回あります（夏時間の終了）。1回目の 2027-11-07 05:30Z としました",
    ),
    "COULD_NOT_PARSE_NUMBER": (
        "所要時間（分）: '半時間' is not a number",
        "所要時間（分）: 「半時間」は数値ではありません（例: 30）",
    ),
    "INVALID_NUMBER_SIZE": (
        "所要時間（分）: '0' must be more than 0 and at most 44640 minutes",
        "所要時間（分）: 「0」は0より大きく44640分以下にしてください",
    ),
    "UNKNOWN_TIME_ZONE": (
        "タイムゾーン: unknown time zone '東京' (use an IANA name such as Asia/Tokyo)",
        "タイムゾーン: 「東京」はタイムゾーンとして読めません（例: Asia/Tokyo、JST）",
    ),
    "INVALID_EMAIL": (
        "担当者メール: 'tanaka@example' is not an e-mail address",
        "担当者メール: 「tanaka@example」はメールアドレスではありません（例: taro.yamada@example.co.jp）",
    ),
    "INVALID_DOMAIN": (
        "会社ドメイン: 'sakura' is not a domain name",
        "会社ドメイン: 「sakura」はドメイン名ではありません（例: example.co.jp）",
    ),
    "INVALID_RECORD_ID": (
        "取引ID: 'D-1' is not a HubSpot record id (digits only)",
        "取引ID: 「D-1」はHubSpotのレコードIDではありません（数字のみ）",
    ),
    "INVALID_ENUMERATION_OPTION": (
        "結果: 'たぶん' is not one of SCHEDULED/予定, COMPLETED/完了, RESCHEDULED/日程変更, NO_SHOW/無断欠席, CANCELED/キャンセル (any case)",
        "結果: 「たぶん」は使えません。次のいずれかを書いてください: SCHEDULED/予定, COMPLETED/完了, RESCHEDULED/日程変更, NO_SHOW/無断欠席, CANCELED/キャンセル（大文字・小文字は問いません）",
    ),
    "INVALID_REMINDER": (
        "リマインダー: '明日' is not a reminder like 30m, 2h, 1d or 1w",
        "リマインダー: 「明日」はリマインダーとして読めません（例: 30m、2h、1d、1w、1日）",
    ),
    "UNTERMINATED_QUOTE": (
        'line 7: unterminated quote (a " opens a cell that is never closed)',
        '7行目: 引用符が閉じていません（" で始まるセルが閉じられていません）',
    ),
    "COULD_NOT_PARSE_ROW": (
        'line 7: text after a closing quote (in a quoted cell, write " as "")',
        '7行目: 閉じる引用符の後に文字があります（引用符で囲んだセルの中の " は "" と書いてください）',
    ),
    "INCORRECT_NUMBER_OF_COLUMNS": (
        "line 7: 4 cells where the header has 3 (put quotes around a cell with a tab in it)",
        "7行目: 見出しは3列ですが、4個のセルがあります（タブを含むセルは引用符で囲んでください）",
    ),
    "COULD_NOT_FIND_OWNER": (
        "owner not found: no HubSpot owner has the e-mail nobody@example.com",
        "owner_email: 「nobody@example.com」のHubSpot担当者が見つかりません（HubSpotにログインするメールアドレスを書いてください）",
    ),
    "ARCHIVED_OWNER": (
        "owner is archived in HubSpot: olivia.old@example.com",
        "owner_email: 「olivia.old@example.com」の担当者はHubSpotでアーカイブされています。有効な担当者にしてください",
    ),
    "OWNER_WITHOUT_USER": (
        "owner has no HubSpot user (deactivated?) and cannot organise meetings: noah.nouser@example.com",
        "owner_email: 「noah.nouser@example.com」の担当者にはHubSpotのユーザーがない（無効化された？）ため、ミーティングを主催できません。有効な担当者にしてください",
    ),
    "ATTENDEE_NOT_AN_OWNER": (
        "attendee is not an active HubSpot owner: stranger@example.com",
        "attendee_emails: 「stranger@example.com」は有効なHubSpot担当者のメールアドレスではありません",
    ),
    "ASSOCIATION_RECORD_NOT_FOUND": (
        "contact not found: nobody@x.com",
        'contact_emails: コンタクトが見つかりません: 「nobody@x.com」（HubSpotで作成するか値を直すか、on_missing_association = "skip" にしてください）',
    ),
    "UNKNOWN_ASSOCIATION_RECORD_ID": (
        "deal not found: 799",
        "deal_ids: 取引が見つかりません: 「799」（HubSpotのレコードIDを確かめてください）",
    ),
    "ASSOCIATION_SKIPPED": (
        "deal not found (association skipped): 799",
        "deal_ids: 取引が見つかりません（関連付けを省略）: 「799」",
    ),
    "MULTIPLE_COMPANIES_WITH_THIS_DOMAIN": (
        "company domain is ambiguous: contoso.com belongs to companies 602, 603",
        'company_domains: 「contoso.com」は複数の会社（602, 603）のドメインです。HubSpotで会社を統合するか、ambiguous_company_domain = "all" にしてください',
    ),
    "DUPLICATE_ROW_CONTENT": (
        "same meeting as row 4; owner not found: no HubSpot owner has the e-mail x@example.com",
        "4行目と同じミーティングです; 担当者メール: 「x@example.com」のHubSpot担当者が見つかりません（HubSpotにログインするメールアドレスを書いてください）",
    ),
    "CHANGED_COLUMNS": ("changed: title", "変更: title"),
    "NOT_UPDATABLE": (
        "not changed in HubSpot (a CRM update cannot): reminders",
        "HubSpotでは変更していません（CRMの更新では変えられません）: reminders",
    ),
    "FAILED_VALIDATION": (
        "件名: String should have at least 1 character (got '')",
        "件名: 値を受け付けられません: String should have at least 1 character（値: ''）",
    ),
    "RESULTS_MEETING_DELETED": (
        "meeting 71000001, which the results file names, is not in HubSpot (deleted?); clear its meeting_id and status cells to create it again",
        "結果ファイルにあるミーティング 71000001 がHubSpotにありません（削除された？）。作り直すには meeting_id と status のセルを空にしてください",
    ),
    "MULTIPLE_EXISTING_MEETINGS": (
        "HubSpot already has 2 meetings like this row: 71000001, 71000002; not created, not guessed",
        "HubSpotにこの行と同じ内容のミーティングが2件あります: 71000001, 71000002。どれか一つに決められないため、作成していません",
    ),
    "MEETING_MATCHES_SEVERAL_ROWS": (
        "HubSpot's meeting 71000001 matches rows 2, 5 alike; none adopted, none created",
        "HubSpotのミーティング 71000001 が行 2, 5 のどれにも一致します。どの行にも割り当てず、作成もしていません",
    ),
    "ALREADY_IN_HUBSPOT": (
        "already in HubSpot (meeting 71000001): not created again",
        "HubSpotに登録済みです（ミーティング 71000001）。再作成していません",
    ),
    "SIMILAR_MEETING_EXISTS": (
        "HubSpot's meeting 71000001 has this owner, start and title but differs; created a new one",
        "HubSpotのミーティング 71000001 は担当者・開始日時・件名が同じですが内容が異なるため、新しく作成しました",
    ),
    "CREATED_EARLIER": ("created earlier (results file)", "以前に作成済み（結果ファイルより）"),
    "CHANGE_NOT_SENT": (
        "changed in the sheet since it was sent; HubSpot not updated (on_change = skip)",
        "送信後にシートで変更されましたが、HubSpotは更新していません（on_change = skip）",
    ),
    "ONLY_NOT_UPDATABLE": (
        "changed only in what a CRM update cannot change: reminders",
        "変更はCRMの更新では変えられない項目だけです: reminders",
    ),
    "HUBSPOT_REFUSED": (
        "HubSpot 400 VALIDATION_ERROR: Invalid input",
        "HubSpotが受け付けませんでした: HubSpot 400 VALIDATION_ERROR: Invalid input",
    ),
    "HUBSPOT_UNAVAILABLE": (
        "HubSpot 423: Locked",
        "再試行してもHubSpotが受け付けませんでした（作成はされていません）: HubSpot 423: Locked",
    ),
    "MEETING_DELETED": (
        "meeting 71000001 is no longer in HubSpot (deleted?); not created again (pass --recreate-missing to create it anew)",
        "ミーティング 71000001 はHubSpotにもうありません（削除された？）。再作成していません（作り直すには --recreate-missing を指定）",
    ),
    "OUTCOME_UNKNOWN": (
        "outcome unknown: HubSpot's answer was lost (ReadTimeout); the next run searches HubSpot before sending this row again",
        "結果不明: HubSpotの応答が届きませんでした（ReadTimeout）。次回の実行では、この行を再送する前にHubSpotを検索します",
    ),
    "FOUND_AFTER_LOST_ANSWER": (
        "found in HubSpot after an earlier attempt lost its answer",
        "応答が届かなかった送信のミーティングをHubSpotで見つけました",
    ),
    "RUN_STOPPED": (
        "stopped by SIGTERM",
        "SIGTERMで停止しました（この行は未送信です。次回の実行で送信します）",
    ),
}
"""Each code's message as produced above, in English and in Japanese."""


def test_every_code_is_produced_or_represented() -> None:
    names = [code.name for code in codes.codes()]
    assert len(set(names)) == len(names)
    assert sorted(PRODUCERS.keys() | REPRESENTATIVE.keys()) == sorted(names) == sorted(EXPECTED)
    assert not PRODUCERS.keys() & REPRESENTATIVE.keys()


@pytest.mark.parametrize("name", list(PRODUCERS))
def test_each_code_where_its_problem_is_found(name: str) -> None:
    for index, language in enumerate(LANGUAGES):
        with messages.using(language):
            message, found = PRODUCERS[name]()
        assert message == EXPECTED[name][index]
        assert found is not None and found.split(codes.CODE_SEPARATOR)[0] == name


@pytest.mark.parametrize("name", list(REPRESENTATIVE))
def test_each_code_of_the_hubspot_stages(name: str) -> None:
    problem = REPRESENTATIVE[name]
    assert (problem.render("en"), problem.render("ja")) == EXPECTED[name]
    with messages.using("ja"):
        assert codes.describe([problem]) == (EXPECTED[name][1], name)


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_code_has_a_japanese_message_with_the_same_parts() -> None:
    """Fields of the message may be added (the column, the value), never dropped or misnamed."""
    catalog = read_po(PO.open("rb"))
    for code in codes.codes():
        message = catalog.get(code.template, context=code.name)
        assert message is not None and message.string, f"{code.name} has no Japanese message"
        assert isinstance(message.string, str) and not message.fuzzy
        english = _fields(code.template)
        assert english <= _fields(message.string) <= english | {"column", "value"}, code.name


def test_the_catalog_holds_every_message_of_the_code_translated() -> None:
    """`make messages` was run after the last change of a message, and every one is translated."""
    sources = [p for p in sorted((REPO / "importer").rglob("*.py")) if "sandbox" not in p.parts]
    found = {
        (ctx, msg)
        for path in sources
        for _, msg, _, ctx in extract_from_file("python", path, messages.EXTRACT_KEYWORDS)
    }
    template = {(m.context, m.id) for m in read_po(POT.open("rb")) if m.id}
    assert found == template
    catalog = read_po(PO.open("rb"))
    untranslated = [
        key
        for key in template
        if not (m := catalog.get(key[1], context=key[0])) or not all(_strings(m.string))
    ]
    assert untranslated == []


def _strings(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value or ("",))


def test_the_readme_has_a_row_for_every_code_and_no_other() -> None:
    readme = (REPO / "README.md").read_text()
    listed = re.findall(r"^\| `([A-Z_]+)` \|", readme, re.MULTILINE)
    assert sorted(set(listed)) == sorted(code.name for code in codes.codes())


def test_the_catalog_compiles_from_the_po_alone() -> None:
    """A fresh clone has no .mo: the .po compiles (with Babel) to a catalog gettext reads."""
    compiled = messages.compile_catalog(PO)
    catalog = gettext.GNUTranslations(io.BytesIO(compiled))
    code = codes.MISSING_REQUIRED_PROPERTY
    assert catalog.pgettext(code.name, code.template) == "{column}: 入力が必要です"


def test_languages() -> None:
    language: Language = "ja"
    assert language in LANGUAGES == ("en", "ja")
