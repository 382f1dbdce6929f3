"""Row codes end to end, in English and Japanese: the real CLI against the real sandbox on a sheet whose
rows meet what only the HubSpot-side stages find (tests/data/hubspot_codes.csv, Japanese headers through
config/japanese.toml): owners and associations HubSpot lacks, creates HubSpot refuses, meetings already in
HubSpot, a results file read back, a row in doubt and rows a stop left unsent; and on small sheets of their
own, edited rows (updated, only reminders changed, their meeting deleted, left alone under --on-change skip)
and creates HubSpot turns away or whose answer is lost. Each row's `error_code`, `warning_code` and message
are checked in both languages; tests/test_problems.py renders the rest."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from tests.integration.conftest import (
    OWNER_IDS,
    Sandbox,
    importer_env,
    read_results,
    run_cli,
    write_meetings,
)

REPO = Path(__file__).resolve().parents[2]
SHEET = REPO / "tests" / "data" / "hubspot_codes.csv"
CONFIG = REPO / "config" / "japanese.toml"
LANGUAGES = ["en", "ja"]
Expected = dict[int, tuple[str, str | None, str | None, str, str]]
"""Row -> status, error_code, warning_code, and its `error` (else `warning`) in English and Japanese."""

REFUSED = (
    "HubSpot 400 VALIDATION_ERROR: properties.hs_meeting_title 'HubSpotが断る [REFUSE]' is refused by a rule"
    " of this portal. (properties.hs_meeting_title 'HubSpotが断る [REFUSE]' is refused by a rule of this"
    " portal.)"
)
FORBIDDEN = (
    "HubSpot 403 MISSING_SCOPES: This app hasn't been granted all required scopes to make this call. Read"
    " more about required scopes here: https://developers.hubspot.com/scopes. (One or more of the following"
    " scopes are required.)"
)
NO_OWNER = (
    "owner not found: no HubSpot owner has the e-mail nobody@example.com",
    "担当者メール: 「nobody@example.com」のHubSpot担当者が見つかりません（HubSpotにログインするメールアドレスを書いてください）",
)
TWICE = (
    "開始日時: '2027/11/07 01:30' occurs twice in America/New_York (daylight saving time ends); took the"
    " first, 2027-11-07 05:30Z",
    "開始日時: 「2027/11/07 01:30」はAmerica/New_Yorkでは2回あります（夏時間の終了）。1回目の 2027-11-07 05:30Z としました",
)
SHARED = (
    "HubSpot's meeting {shared} matches rows 14, 15 alike; none adopted, none created",
    "HubSpotのミーティング {shared} が行 14, 15 のどれにも一致します。どの行にも割り当てず、作成もしていません",
)
FIRST_RUN: Expected = {
    2: ("failed", "COULD_NOT_FIND_OWNER", None, *NO_OWNER),
    3: (
        "failed",
        "ARCHIVED_OWNER",
        None,
        "owner is archived in HubSpot: former.rep@example.com",
        "担当者メール: 「former.rep@example.com」の担当者はHubSpotでアーカイブされています。有効な担当者にしてください",
    ),
    4: (
        "failed",
        "OWNER_WITHOUT_USER",
        None,
        "owner has no HubSpot user (deactivated?) and cannot organise meetings: deactivated.user@example.com",
        "担当者メール: 「deactivated.user@example.com」の担当者にはHubSpotのユーザーがない（無効化された？）ため、"
        "ミーティングを主催できません。有効な担当者にしてください",
    ),
    5: (
        "failed",
        "ATTENDEE_NOT_AN_OWNER",
        None,
        "attendee is not an active HubSpot owner: stranger@example.com",
        "同席者メール: 「stranger@example.com」は有効なHubSpot担当者のメールアドレスではありません",
    ),
    6: (
        "failed",
        "ASSOCIATION_RECORD_NOT_FOUND",
        None,
        "contact not found: nobody@unknown.example.com",
        "取引先担当者メール: コンタクトが見つかりません: 「nobody@unknown.example.com」（HubSpotで作成するか値を直すか、"
        'on_missing_association = "skip" にしてください）',
    ),
    7: (
        "failed",
        "UNKNOWN_ASSOCIATION_RECORD_ID",
        None,
        "deal not found: 3199999",
        "取引ID: 取引が見つかりません: 「3199999」（HubSpotのレコードIDを確かめてください）",
    ),
    8: (
        "failed",
        "MULTIPLE_COMPANIES_WITH_THIS_DOMAIN",
        None,
        "company domain is ambiguous: globex.com belongs to companies 6100006, 6100007",
        "会社ドメイン: 「globex.com」は複数の会社（6100006, 6100007）のドメインです。HubSpotで会社を統合するか、"
        'ambiguous_company_domain = "all" にしてください',
    ),
    9: ("failed", "HUBSPOT_REFUSED", None, REFUSED, f"HubSpotが受け付けませんでした: {REFUSED}"),
    10: ("failed", "HUBSPOT_REFUSED", None, FORBIDDEN, f"HubSpotが受け付けませんでした: {FORBIDDEN}"),
    11: (
        "skipped",
        None,
        "ALREADY_IN_HUBSPOT",
        "already in HubSpot (meeting {same}): not created again",
        "HubSpotに登録済みです（ミーティング {same}）。再作成していません",
    ),
    12: (
        "created",
        None,
        "SIMILAR_MEETING_EXISTS",
        "HubSpot's meeting {similar} has this owner, start and title but differs; created a new one",
        "HubSpotのミーティング {similar} は担当者・開始日時・件名が同じですが内容が異なるため、新しく作成しました",
    ),
    13: (
        "failed",
        "MULTIPLE_EXISTING_MEETINGS",
        None,
        "HubSpot already has 2 meetings like this row: {twins}; not created, not guessed",
        "HubSpotにこの行と同じ内容のミーティングが2件あります: {twins}。どれか一つに決められないため、作成していません",
    ),
    14: ("failed", "MEETING_MATCHES_SEVERAL_ROWS", None, *SHARED),
    15: ("failed", "MEETING_MATCHES_SEVERAL_ROWS", None, *SHARED),
    16: (
        "failed",
        "DUPLICATE_ROW_CONTENT;COULD_NOT_FIND_OWNER",
        None,
        f"same meeting as row 2; {NO_OWNER[0]}",
        f"2行目と同じミーティングです; {NO_OWNER[1]}",
    ),
    17: ("created", None, "AMBIGUOUS_LOCAL_TIME", *TWICE),
}
EARLIER = ("created earlier (results file)", "以前に作成済み（結果ファイルより）")
READ_BACK: Expected = {
    11: ("skipped", None, "CREATED_EARLIER", *EARLIER),
    12: ("skipped", None, "CREATED_EARLIER", *EARLIER),
    17: (
        "skipped",
        None,
        "AMBIGUOUS_LOCAL_TIME;CREATED_EARLIER",
        f"{TWICE[0]}; {EARLIER[0]}",
        f"{TWICE[1]}; {EARLIER[1]}",
    ),
    18: (
        "failed",
        "RESULTS_MEETING_DELETED",
        None,
        "meeting {deleted}, which the results file names, is not in HubSpot (deleted?); clear its meeting_id"
        " and status cells to create it again",
        "結果ファイルにあるミーティング {deleted} がHubSpotにありません（削除された？）。作り直すには meeting_id と"
        " status のセルを空にしてください",
    ),
}


def _by_hand(sandbox: Sandbox, title: str, start: str, minutes: int, owner: str) -> str:
    """A meeting a rep made in HubSpot (no associations), at `start` in Tokyo."""
    local = datetime.fromisoformat(start).replace(tzinfo=ZoneInfo("Asia/Tokyo"))
    begin, end = (
        t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for t in (local, local + timedelta(minutes=minutes))
    )
    properties = {"hs_meeting_start_time": begin, "hs_meeting_end_time": end, "hs_timestamp": begin}
    return sandbox.add_meeting(
        None,
        hs_meeting_title=title,
        hs_meeting_outcome="SCHEDULED",
        hubspot_owner_id=OWNER_IDS[owner],
        **properties,
    )


def _seed(sandbox: Sandbox) -> dict[str, str]:
    """The sheet's rows 11 to 15 as HubSpot already has them: the same meeting, one that differs in its
    end, two alike, and one that two rows (differing only in contacts, which search does not show) match."""
    kenji, emma = "kenji.sato@example.co.jp", "emma.wilson@example.com"
    twins = [_by_hand(sandbox, "二重に作成済み", "2027-02-01 15:30", 30, kenji) for _ in range(2)]
    return {
        "same": _by_hand(sandbox, "手で作成済み", "2027-02-01 14:30", 30, kenji),
        "similar": _by_hand(sandbox, "似た会議がある", "2027-02-01 15:00", 30, kenji),
        "twins": ", ".join(twins),
        "shared": _by_hand(sandbox, "二行に一致", "2027-02-01 16:00", 30, emma),
    }


def _check(results: Path, expected: Expected, language: str, ids: dict[str, str]) -> pl.DataFrame:
    frame = read_results(results)
    rows = {int(r["row"]): r for r in frame.iter_rows(named=True)}
    for row, (status, error_code, warning_code, english, japanese) in expected.items():
        got = rows[row]
        found = (got["status"], got["error_code"], got["warning_code"], got["error"] or got["warning"])
        message = english if language == "en" else japanese
        assert found == (status, error_code, warning_code, message.format(**ids)), row
    return frame


@pytest.mark.parametrize("language", LANGUAGES)
def test_codes_of_lookups_creates_and_the_existing_check(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path, language: str
) -> None:
    sandbox = start_sandbox(window_ms=1000, refuse_title="[REFUSE]", forbid_title="[FORBID]")
    ids = _seed(sandbox)
    results = tmp_path / "codes.results.csv"
    args = ["run", str(SHEET), "--config", str(CONFIG), "--lang", language]

    first = run_cli([*args, "--results", str(results)], importer_env(sandbox))

    assert first.returncode == 1, first.stdout + first.stderr
    frame = _check(results, FIRST_RUN, language, ids)
    assert frame.filter(pl.col("row") == "18").select("status", "error_code", "warning_code").row(0) == (
        "created",
        None,
        None,
    )

    # The results file imported again, on a machine without the ledger: its own columns (the code columns
    # among them) are evidence, not input; a meeting deleted in HubSpot since fails its row.
    ids["deleted"] = frame.filter(pl.col("row") == "18")["meeting_id"][0]
    sandbox.delete_meeting(ids["deleted"])
    again = tmp_path / "again.results.csv"
    fresh = importer_env(sandbox, XDG_STATE_HOME=str(tmp_path / "another-machine"))

    second = run_cli(
        ["run", str(results), "--config", str(CONFIG), "--lang", language, "--results", str(again)], fresh
    )

    assert second.returncode == 1, second.stdout + second.stderr
    assert read_results(again).columns == frame.columns
    _check(again, READ_BACK, language, ids)


STOPPED: Expected = {
    2: (
        "in_doubt",
        "OUTCOME_UNKNOWN",
        None,
        "outcome unknown: HubSpot's answer was lost ({lost}); the run stopped before it was settled; the next"
        " run searches HubSpot before sending this row again",
        "結果不明: HubSpotの応答が届きませんでした（{lost}）; 確認が済む前に実行が停止しました。次回の実行では、"
        "この行を再送する前にHubSpotを検索します",
    ),
    **{
        row: (
            "not_sent",
            "RUN_STOPPED",
            None,
            "HubSpot's daily request limit is reached",
            "HubSpotの1日あたりのリクエスト上限に達しました（この行は未送信です。次回の実行で送信します）",
        )
        for row in (3, 4, 5)
    },
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_codes_of_a_lost_answer_and_a_stop(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path, language: str
) -> None:
    """Every create's answer is lost and search never shows the meeting; the daily cap is reached at the
    second create: the first row is in doubt, the rest not sent."""
    lookups = 4  # account, owners, contacts, the existing-meeting search
    sandbox = start_sandbox(
        window_ms=1000,
        daily_limit=lookups + 2,
        error_5xx_after=1.0,
        search_lag_extra_ms=600_000,
        search_lag_extra_share=1.0,
    )
    sheet = write_meetings(tmp_path / "m.csv", 4)
    env = importer_env(sandbox, MEETING_IMPORTER_SEARCH_LAG_S="0.2")

    proc = run_cli(["run", str(sheet), "--concurrency", "1", "--lang", language], env)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    lost = "HubSpot 502 BAD_GATEWAY: Bad gateway: the upstream service did not answer."  # seed 0's dice
    _check(tmp_path / "m.results.csv", STOPPED, language, {"lost": lost})
    assert sandbox.stats()["meetings_created"] == 1


def _keyed_sheet(path: Path, rows: int) -> pl.DataFrame:
    """`rows` meetings with a key column and a reminders column, as a sheet that is edited is kept."""
    write_meetings(path, rows)
    frame = pl.read_csv(path, infer_schema=False).with_columns(
        pl.format("M-{}", pl.int_range(rows)).alias("key"), pl.lit("1d").alias("reminders")
    )
    frame.write_csv(path)
    return frame


def _edit_row(frame: pl.DataFrame, row: int, column: str, value: str) -> pl.DataFrame:
    """`frame` with the cell of sheet row `row` (2 is the first under the header) in `column` set."""
    at = pl.int_range(pl.len()) == row - 2
    return frame.with_columns(pl.when(at).then(pl.lit(value)).otherwise(pl.col(column)).alias(column))


EDITED: Expected = {
    2: ("updated", None, "CHANGED_COLUMNS", "changed: title", "変更: title"),
    3: (
        "skipped",
        None,
        "ONLY_NOT_UPDATABLE",
        "changed only in what a CRM update cannot change: reminders",
        "変更はCRMの更新では変えられない項目だけです: reminders",
    ),
    4: (
        "failed",
        "MEETING_DELETED",
        None,
        "meeting {deleted} is no longer in HubSpot (deleted?); not created again (pass --recreate-missing to"
        " create it anew)",
        "ミーティング {deleted} はHubSpotにもうありません（削除された？）。再作成していません（作り直すには"
        " --recreate-missing を指定）",
    ),
}
LEFT_AS_IT_WAS: Expected = {
    2: (
        "skipped",
        None,
        "CHANGE_NOT_SENT",
        "changed in the sheet since it was sent; HubSpot not updated (on_change = skip)",
        "送信後にシートで変更されましたが、HubSpotは更新していません（on_change = skip）",
    ),
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_codes_of_edited_rows(start_sandbox: Callable[..., Sandbox], tmp_path: Path, language: str) -> None:
    """A keyed sheet imported, then edited: a title (updated), only the reminders (a CRM update cannot
    change them), and a row whose meeting a rep deleted meanwhile; then edited again under --on-change skip."""
    sandbox = start_sandbox(window_ms=1000)
    sheet = tmp_path / "m.csv"
    frame = _keyed_sheet(sheet, 3)
    results = tmp_path / "m.results.csv"
    args = ["run", str(sheet), "--key-column", "key", "--lang", language]
    assert run_cli(args, importer_env(sandbox)).returncode == 0
    ids = {"deleted": read_results(results)["meeting_id"][2]}
    sandbox.delete_meeting(ids["deleted"])
    edited = _edit_row(frame, 2, "title", "Moved")
    edited = _edit_row(edited, 3, "reminders", "2h")
    edited = _edit_row(edited, 4, "title", "Gone")
    edited.write_csv(sheet)

    second = run_cli(args, importer_env(sandbox))

    assert second.returncode == 1, second.stdout + second.stderr
    _check(results, EDITED, language, ids)
    assert len(sandbox.meetings()) == 2  # the deleted one not made again
    updates = sandbox.stats()["updates_by_route"]
    _edit_row(edited, 2, "title", "Moved again").write_csv(sheet)

    third = run_cli([*args, "--on-change", "skip"], importer_env(sandbox))

    assert third.returncode == 0, third.stdout + third.stderr
    _check(results, LEFT_AS_IT_WAS, language, ids)
    assert sandbox.stats()["updates_by_route"] == updates  # nothing sent to HubSpot


BUSY = "HubSpot 429 RATE_LIMIT: You have reached your ten_secondly_rolling limit."
TURNED_AWAY: Expected = {
    2: (
        "failed",
        "HUBSPOT_UNAVAILABLE",
        None,
        BUSY,
        f"再試行してもHubSpotが受け付けませんでした（作成はされていません）: {BUSY}",
    ),
}
FOUND: Expected = {
    2: (
        "created",
        None,
        "FOUND_AFTER_LOST_ANSWER",
        "found in HubSpot after an earlier attempt lost its answer",
        "応答が届かなかった送信のミーティングをHubSpotで見つけました",
    ),
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_codes_of_creates_turned_away_and_answers_lost(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path, language: str
) -> None:
    """A create HubSpot turns away with a 429 on every attempt fails its row; the rerun's create is carried
    out but its answer lost (a gateway's 5xx), and search finds the meeting it made."""
    sandbox = start_sandbox(window_ms=1000, spurious_429=1.0)
    sheet = write_meetings(tmp_path / "m.csv", 1)
    env = importer_env(sandbox, MEETING_IMPORTER_MAX_ATTEMPTS="2")
    args = ["run", str(sheet), "--lang", language]

    turned_away = run_cli(args, env)

    assert turned_away.returncode == 1, turned_away.stdout + turned_away.stderr
    frame = _check(tmp_path / "m.results.csv", TURNED_AWAY, language, {})
    assert frame.select("http_status", "attempts").row(0) == ("429", "2")  # both attempts spent
    assert sandbox.stats()["meetings_created"] == 0
    sandbox.set_faults(spurious_429=0.0, error_5xx_after=1.0)

    lost = run_cli(args, env)

    assert lost.returncode == 0, lost.stdout + lost.stderr
    frame = _check(tmp_path / "m.results.csv", FOUND, language, {})
    assert frame["attempts"].to_list() == ["1"]  # found by search, not sent again
    stats = sandbox.stats()
    assert stats["faults_injected"]["error_5xx_after"] == 1 and stats["meetings_created"] == 1
