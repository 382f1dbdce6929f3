"""How the rows to send are cut into chunks (stages.row_chunks) and handed to a sender (sender.Feed)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from importer.models import Meeting
from importer.sender import Feed
from importer.stages import CHUNK_ROWS, FIRST_CHUNK_ROWS, Packed, row_chunks

START = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)


def meeting(owner: int, slot: int) -> Packed:
    start = START + timedelta(minutes=30 * slot)
    return Packed.of(meeting_of(owner, start))


def meeting_of(owner: int, start: datetime) -> Meeting:
    return Meeting.model_validate(
        {
            "title": f"Visit {owner} {start:%m%d%H%M}",
            "start": start,
            "end": start + timedelta(minutes=30),
            "timezone": "Asia/Tokyo",
            "owner_email": f"owner{owner}@example.com",
        }
    )


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40)), max_size=400))
def test_chunks_hold_every_row_once_by_owner_and_start_never_splitting_a_slot(
    slots: list[tuple[int, int]],
) -> None:
    rows = [(index, meeting(owner, slot)) for index, (owner, slot) in enumerate(slots)]
    chunks = list(row_chunks(rows))
    flat = [row for chunk in chunks for row in chunk]
    assert sorted(index for index, _ in flat) == list(range(len(rows)))
    keys = [(m.owner_email, m.start_ms) for _, m in flat]
    assert keys == sorted(keys)
    for before, after in itertools.pairwise(chunks):
        last, first = before[-1][1], after[0][1]
        assert (last.owner_email, last.start_ms) != (first.owner_email, first.start_ms)


def test_chunks_start_small_and_grow_to_their_cap() -> None:
    rows = [(i, meeting(i % 7, i)) for i in range(5_000)]  # every row its own slot
    sizes = [len(chunk) for chunk in row_chunks(rows)]
    assert sizes[0] == FIRST_CHUNK_ROWS
    assert sizes[:4] == sorted(sizes[:4]) and max(sizes) == CHUNK_ROWS
    assert sum(sizes) == 5_000


def test_a_slot_larger_than_a_chunk_stays_whole() -> None:
    rows = [(i, meeting(0, 0)) for i in range(FIRST_CHUNK_ROWS + 30)] + [(999, meeting(0, 1))]
    assert [len(chunk) for chunk in row_chunks(rows)] == [FIRST_CHUNK_ROWS + 30, 1]


def test_a_packed_meeting_unpacks_to_the_same_meeting_and_key() -> None:
    original = Meeting.model_validate(
        {
            "title": "商談 「見積」",
            "start": datetime(2027, 3, 1, 14, 0, tzinfo=ZoneInfo("Asia/Tokyo")),
            "end": datetime(2027, 3, 1, 15, 0, tzinfo=ZoneInfo("Asia/Tokyo")),
            "timezone": "Asia/Tokyo",
            "owner_email": "aiko.tanaka@example.co.jp",
            "contact_emails": ("a@b.jp", "c@d.jp"),
            "deal_ids": ("3100001",),
            "location": "本社 会議室A",
            "body": "議題:\n- 価格",
            "outcome": "COMPLETED",
            "reminders": [{"number": 30, "unit": "MINUTES"}],
        }
    )
    packed = Packed.of(original)
    assert packed.meeting == original and packed.meeting.row_key == original.row_key == packed.row_key
    assert packed.meeting.body_without_ids() == original.body_without_ids()


def test_a_feed_holds_its_producer_back_until_the_sender_takes_a_chunk() -> None:
    async def main() -> list[str]:
        feed: Feed[int] = Feed(ahead=2)
        events: list[str] = []

        async def produce() -> None:
            for n in range(4):
                await feed.put([n])
                events.append(f"put {n}")
            feed.close()

        async def consume() -> None:
            await asyncio.sleep(0)  # the producer runs ahead first, as far as the feed lets it
            async for chunk in feed:
                events.append(f"took {chunk[0]}")
                await asyncio.sleep(0)

        await asyncio.gather(produce(), consume())
        return events

    events = asyncio.run(main())
    assert events[:2] == ["put 0", "put 1"]  # then it waits: two chunks are ahead
    assert events.index("put 2") > events.index("took 0")
    assert [e for e in events if e.startswith("took")] == ["took 0", "took 1", "took 2", "took 3"]


def test_an_abandoned_feed_lets_its_producer_finish_and_drops_what_it_puts() -> None:
    async def main() -> list[int]:
        feed: Feed[int] = Feed(ahead=1)
        taken: list[int] = []

        async def consume() -> None:
            async for chunk in feed:
                taken.extend(chunk)
                feed.abandon()  # the sender stopped: a signal, the daily cap

        async def produce() -> None:
            for n in range(5):
                await feed.put([n])
            feed.close()

        await asyncio.wait_for(asyncio.gather(consume(), produce()), 5)
        return taken

    assert asyncio.run(main()) == [0]
