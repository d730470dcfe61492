"""`{"type": "business_hours", "timezone": IANA, "hours": {"mon": "09:00-18:00" | [ranges] | null, ...},
"closed_path"?}`: open now, the next step; closed, `closed_path`, or without one a pause (a delay: messages
meanwhile are held, SPEC §5.1) until the next opening, then the next step (SPEC §5.3).

Hours are local wall-clock times in `timezone` (the zone database ships as the `tzdata` package). A
range whose end is not after its start runs across midnight ("22:00-02:00": Monday 22:00 to Tuesday
02:00); "24:00" ends a day. Whether it is open is decided on the wall clock at that instant. The next
opening is computed on the wall clock and then converted: an opening that falls in a daylight-saving
gap (the clock jumps from 02:00 to 03:00) happens when the wall clock first passes it (03:00); one that
falls in the repeated hour happens at its first occurrence. An opening at which the hours are not
open after all (a range entirely inside a gap) is skipped. "Now" is the event's time, passed in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flow_engine.core.steps.base import Invalid, ParseContext

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order
SEARCH_DAYS = 400  # the next opening is looked for this far ahead (a week, unless gaps swallow openings)
_RANGE = re.compile(r"\s*([0-9]{1,2}):([0-9]{2})\s*-\s*([0-9]{1,2}):([0-9]{2})\s*")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

Range = tuple[int, int]  # minutes after local midnight: (opens, closes); closes <= opens: across midnight


def local_time(at_ms: int, zone: ZoneInfo) -> datetime:
    return (_EPOCH + timedelta(milliseconds=at_ms)).astimezone(zone)


def epoch_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS


def wall_instant_ms(day: date, minute: int, zone: ZoneInfo) -> int:
    """The first instant at which the wall clock of `zone` shows `minute` of `day` or later: the
    instant itself when it exists (its first occurrence when it is repeated), else the end of the
    daylight-saving gap it falls in."""
    wall = datetime(day.year, day.month, day.day, minute // 60, minute % 60)
    first = wall.replace(tzinfo=zone, fold=0)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return epoch_ms(first)  # exists (fold=0: the first of two occurrences)
    # In a gap: fold=1 gives an instant before the jump, fold=0 one after it; the jump is between.
    low, high = epoch_ms(wall.replace(tzinfo=zone, fold=1)) // 1000, epoch_ms(first) // 1000
    low, high = min(low, high), max(low, high)
    while low < high:  # the first second whose wall time is at least `wall`
        middle = (low + high) // 2
        if local_time(middle * 1000, zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle + 1
    return low * 1000


@dataclass(frozen=True)
class BusinessHours:
    timezone: str
    hours: tuple[tuple[Range, ...], ...]  # per day, Monday first
    closed_path: str | None
    zone: ZoneInfo = field(compare=False, repr=False)

    @property
    def falls_through(self) -> bool:
        return True  # open: the next step (in the same event)

    def is_open(self, at_ms: int) -> bool:
        local = local_time(at_ms, self.zone)
        minute, day = local.hour * 60 + local.minute, local.weekday()
        for opens, closes in self.hours[day]:
            if opens <= minute and (minute < closes or closes <= opens):
                return True
        return any(closes <= opens and minute < closes for opens, closes in self.hours[(day - 1) % 7])

    def next_opening_ms(self, at_ms: int) -> int | None:
        """The first opening after `at_ms` at which the hours are open; None within SEARCH_DAYS."""
        today = local_time(at_ms, self.zone).date()
        for offset in range(SEARCH_DAYS):
            day = today + timedelta(days=offset)
            for opens in sorted({opens for opens, _ in self.hours[day.weekday()]}):
                moment = wall_instant_ms(day, opens, self.zone)
                if moment > at_ms and self.is_open(moment):
                    return moment
        return None

    def run(self, execution: Any, path: str, index: int) -> Any:
        now_ms = execution.now_ms
        if self.is_open(now_ms):
            return None
        if self.closed_path is not None:
            execution.jumped(path, index, "closed", self.closed_path)
            return self.closed_path
        opening = self.next_opening_ms(now_ms)
        if opening is None:
            return execution.fail(f"{path}:{index}", f"paths.{path}[{index}]: business_hours: no opening within "
                                                     f"{SEARCH_DAYS} days")
        return execution.pause(path, index, "delay", opening - now_ms, None)

    def describe(self) -> str:
        return f"business hours ({self.timezone})"

    def jumps(self) -> tuple[tuple[str, str], ...]:
        return () if self.closed_path is None else (("closed", self.closed_path),)

    next_label = "open"  # the edge to the next step (Mermaid)

    @property
    def may_pause(self) -> bool:
        """Closed without a closed_path, it pauses until the next opening (Mermaid draws a pause)."""
        return self.closed_path is None


def _minutes(hour: str, minute: str, *, end: bool) -> int | None:
    h, m = int(hour), int(minute)
    if m > 59 or h > 24 or (h == 24 and (m != 0 or not end)):
        return None
    return h * 60 + m


def _ranges(value: Any, where: str, context: ParseContext) -> tuple[Range, ...]:
    if value is None:
        return ()
    items = [(value, where)] if isinstance(value, str) else \
        [(item, f"{where}[{i}]") for i, item in enumerate(value)] if isinstance(value, list) else None
    if items is None:
        context.problem(where, 'must be a range "HH:MM-HH:MM", a list of ranges, or null (closed)')
        return ()
    ranges = []
    for item, at in items:
        found = _RANGE.fullmatch(item) if isinstance(item, str) else None
        if found is None:
            context.problem(at, f'must be a range "HH:MM-HH:MM", got {json.dumps(item, ensure_ascii=False)}')
            continue
        opens, closes = _minutes(*found.group(1, 2), end=False), _minutes(*found.group(3, 4), end=True)
        if opens is None or closes is None:
            context.problem(at, f"{json.dumps(item)}: not a time of day (00:00 to 23:59, 24:00 as an end)")
        elif opens == closes % 1440 and not (opens == 0 and closes == 1440):
            context.problem(at, f"{json.dumps(item)}: opens and closes at the same time")
        else:
            ranges.append((opens, closes))
    return tuple(ranges)


def parse(raw: Mapping[str, Any], where: str, context: ParseContext) -> BusinessHours | Invalid:
    timezone = raw.get("timezone")
    if not isinstance(timezone, str) or not timezone:
        return Invalid(context.problem(f"{where}.timezone", 'business_hours requires "timezone" (IANA, e.g. '
                                                            '"America/Mexico_City")'))
    try:
        zone = ZoneInfo(timezone)
    except Exception:  # unknown key, a malformed one ("../x", NUL), a directory of the database
        return Invalid(context.problem(f"{where}.timezone", f"unknown time zone {json.dumps(timezone)}"))
    hours = raw.get("hours")
    if not isinstance(hours, dict):
        return Invalid(context.problem(f"{where}.hours", 'business_hours requires "hours": {"mon": "09:00-18:00", '
                                                         '..., "sun": null}'))
    problems_before = len(context.problems)
    for day in hours:
        if day not in DAYS:
            context.problem(f"{where}.hours.{day}", f"unknown day (one of {', '.join(DAYS)})")
    week = tuple(_ranges(hours.get(day), f"{where}.hours.{day}", context) for day in DAYS)
    closed_path = raw.get("closed_path")
    if closed_path is not None and (not isinstance(closed_path, str) or closed_path not in context.path_names):
        context.problem(f"{where}.closed_path", f"path {json.dumps(closed_path, ensure_ascii=False)} does not exist")
        closed_path = None
    elif closed_path is None and not any(week) and len(context.problems) == problems_before:
        context.problem(f"{where}.hours", "no day has opening hours, so the pause until the next opening never ends")
    return BusinessHours(timezone, week, closed_path, zone)
