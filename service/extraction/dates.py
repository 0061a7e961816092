"""Time expressions in chat, resolved against the message's own timestamp.

"yesterday" in a message sent on 8 May 2023 is 7 May 2023; the memory written from it
says "on 7 May 2023" so it still means something a year later. Each mention carries the
resolved datetime (midnight, in ``at``'s timezone), its precision, and a phrase that
can replace the original words in a standalone memory text:

    yesterday        -> on 7 May 2023
    last Tuesday     -> on 14 May 2024
    last week        -> the week before 16 May 2024
    two weeks ago    -> two weeks before 16 May 2024
    in March         -> in March 2025   (future tense) / in March 2024 (past tense)
    May 2023         -> May 2023
    in 2022          -> in 2022

Bare months and day-months take their year from the sentence's tense ("we're moving in
March" is the next March, "we went in March" the last one). Every pattern is compiled at
import; nothing here raises on odd input (bad dates are skipped).
"""

from __future__ import annotations

import re
from bisect import bisect_right, insort
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from dateutil.relativedelta import relativedelta

# the full names (the tables below also take abbreviations)
MONTH_NAMES = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = {
    "january": 1,
    "jan": 1,
    "february": 2,
    "feb": 2,
    "march": 3,
    "mar": 3,
    "april": 4,
    "apr": 4,
    "may": 5,
    "june": 6,
    "jun": 6,
    "july": 7,
    "jul": 7,
    "august": 8,
    "aug": 8,
    "september": 9,
    "sep": 9,
    "sept": 9,
    "october": 10,
    "oct": 10,
    "november": 11,
    "nov": 11,
    "december": 12,
    "dec": 12,
}
WEEKDAYS = {
    "monday": 0,
    "mon": 0,
    "tuesday": 1,
    "tue": 1,
    "tues": 1,
    "wednesday": 2,
    "wed": 2,
    "thursday": 3,
    "thu": 3,
    "thurs": 3,
    "friday": 4,
    "fri": 4,
    "saturday": 5,
    "sat": 5,
    "sunday": 6,
    "sun": 6,
}
NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "a couple of": 2,
    "a couple": 2,
    "couple of": 2,
    "a few": 3,
    "few": 3,
    "several": 3,
}

_MONTH = (
    r"(january|february|march|april|may|june|july|august|september|october|november|december"
    r"|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)"
)
_MONTH_FULL = "(" + "|".join(MONTH_NAMES) + ")"
_WEEKDAY = "(" + "|".join(WEEKDAY_NAMES) + ")"
_NUM = (
    r"(\d{1,3}|a couple of|a couple|couple of|a few|few|several|an|a"
    r"|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
)
_PREP = r"(?:(on|in|since|during|from|by|until|till|before|after|around|back in|early|late|mid)\s+)?"
_YEAR = r"((?:19|20)\d{2})"

_I = re.IGNORECASE
_ISO = re.compile(_PREP + r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b", _I)
_DAY_MONTH = re.compile(
    _PREP + r"(?:the\s+)?\b(\d{1,2})(?:st|nd|rd|th)?(?:\s+of)?\s+" + _MONTH + r"\b\.?(?:,?\s+" + _YEAR + r"\b)?", _I
)
_MONTH_DAY = re.compile(
    _PREP + r"\b" + _MONTH + r"\.?\s+(\d{1,2})(?:st|nd|rd|th)?(?!\d)\b(?:,?\s+" + _YEAR + r"\b)?", _I
)
_MONTH_YEAR = re.compile(_PREP + r"\b" + _MONTH_FULL + r",?\s+" + _YEAR + r"\b", _I)
_REL_DAY = re.compile(
    r"\b(the\s+day\s+before\s+yesterday|the\s+day\s+after\s+tomorrow|yesterday|last\s+night|today|tonight|"
    r"this\s+(?:morning|afternoon|evening)|tomorrow)\b",
    _I,
)
_REL_PERIOD = re.compile(r"\b(last|past|previous|next|this|coming)\s+(week|weekend|month|year)\b", _I)
_REL_WEEKDAY = re.compile(r"(?:\b(last|next|this|coming|on|past)\s+)?\b" + _WEEKDAY + r"\b", _I)
_AGO = re.compile(r"\b" + _NUM + r"\s+(day|week|weekend|month|year)s?\s+(ago|before|earlier|back)\b", _I)
_IN_FUTURE = re.compile(
    r"\bin\s+"
    + _NUM
    + r"\s+(day|week|month|year)s?(?:'?\s*time)?\b|\b"
    + _NUM
    + r"\s+(day|week|month|year)s?\s+from\s+now\b",
    _I,
)
_MONTH_ALONE = re.compile(
    r"\b(in|on|since|during|by|until|till|this|last|next|early|late|mid|back in|around|before|after)\s+"
    + _MONTH_FULL
    + r"\b(?!\s+\d)",
    _I,
)
_YEAR_ALONE = re.compile(
    r"(?:\b(in|since|during|of|back in|from|until|till|by|around|before|after)\s+)?(?<![\w$#£€.,/-])"
    + _YEAR
    + r"(?![\w$%/-]|[.,]\d)",
    _I,
)

_PAST = re.compile(
    r"\b(went|was|were|did|had|ago|last|yesterday|bought|purchased|ordered|got|made|took|saw|moved|visited|"
    r"attended|started|finished|met|came|left|spent|gave|told|said|found|felt|ran|painted|joined|adopted|"
    r"celebrated|hosted|tried|used to|earlier|back in|\w{3,}ed)\b",
    _I,
)
_PAST_EXCEPT = {
    "need",
    "needed",
    "interested",
    "excited",
    "obsessed",
    "tired",
    "married",
    "based",
    "bed",
    "shed",
    "speed",
    "seed",
    "feed",
    "indeed",
    "embed",
    "red",
    "wed",
    "prefered",
    "shaped",
    "upholstered",
    "reclaimed",
    "powder-coated",
    "extended",
    "limited",
    "tempered",
    "used",
}
_FUTURE = re.compile(
    r"\b(will|going to|gonna|plan|plans|planning|hope to|hoping to|want to|would like to|next|upcoming|soon|"
    r"tomorrow|coming|due|expecting|about to|moving)\b|'ll\b|\b(?:am|are|is|'m|'re|'s)\s+\w+ing\b",
    _I,
)


@dataclass(frozen=True)
class DateMention:
    text: str  # the words as written ("last Tuesday")
    start: int
    end: int
    value: datetime  # resolved, midnight in at's timezone
    precision: str  # "day" | "week" | "weekend" | "month" | "year"
    phrase: str  # absolute wording to put in a memory ("on 14 May 2024")


def format_day(d: datetime) -> str:
    return f"{d.day} {d:%B %Y}"


def _tense(text: str) -> str | None:
    for m in _PAST.finditer(text):
        if m.group(1) is None or m.group(1).lower() not in _PAST_EXCEPT:
            return "past"
    if _FUTURE.search(text):
        return "future"
    return None


def _day(at: datetime, y: int, m: int, d: int) -> datetime | None:
    try:
        return datetime(y, m, d, tzinfo=at.tzinfo)
    except ValueError:
        return None


def midnight(at: datetime) -> datetime:
    """The start of ``at``'s day, in its timezone: "today" for a message sent at ``at``."""
    return datetime(at.year, at.month, at.day, tzinfo=at.tzinfo)


def _number(word: str) -> int | None:
    word = re.sub(r"\s+", " ", word.lower())
    if word.isdigit():
        n = int(word)
        return n if 0 < n <= 200 else None
    return NUMBERS.get(word)


def _with_prep(prep: str | None, core: str, default: str) -> str:
    if prep:
        return f"{prep} {core}" if not prep.endswith("-") else f"{prep}{core}"
    return f"{default} {core}" if default else core


def _pick_year(at: datetime, month: int, day: int | None, tense: str | None) -> int:
    """The year for a date written without one, from the sentence's tense."""
    today = midnight(at)
    candidate = _day(at, at.year, month, day or 1)
    if candidate is None:
        return at.year
    if day is None:  # month precision: this month counts as "now"
        if tense == "future" and month < at.month:
            return at.year + 1
        if tense == "past" and month > at.month:
            return at.year - 1
        return at.year
    if tense == "future" and candidate < today:
        return at.year + 1
    if tense == "past" and candidate > today:
        return at.year - 1
    return at.year


Resolved = tuple[datetime, str, str]  # (value, precision, phrase)
Resolver = Callable[[re.Match[str], datetime, str | None], Resolved | None]


def _resolve(m: re.Match[str], kind: str, at: datetime, tense: str | None) -> Resolved | None:
    """(value, precision, phrase) for one regex match of ``kind``, or None."""
    resolver = _RESOLVERS.get(kind)
    return resolver(m, at, tense) if resolver is not None else None


def _iso(m: re.Match[str], at: datetime, tense: str | None) -> Resolved | None:
    prep, y, mo, d = m.groups()
    v = _day(at, int(y), int(mo), int(d))
    return (v, "day", _with_prep(prep, format_day(v), "on")) if v else None


def _day_month(m: re.Match[str], at: datetime, tense: str | None) -> Resolved | None:
    prep, d, mon, y = m.groups()
    return _calendar_day(at, tense, prep, mon, d, y)


def _month_day(m: re.Match[str], at: datetime, tense: str | None) -> Resolved | None:
    prep, mon, d, y = m.groups()
    return _calendar_day(at, tense, prep, mon, d, y)


def _calendar_day(at: datetime, tense: str | None, prep: str, mon: str, d: str, y: str | None) -> Resolved | None:
    if mon.lower() == "may" and not mon[0].isupper():
        return None  # "you may 2 ..." is the verb
    mo = MONTHS[mon.lower()]
    year = int(y) if y else _pick_year(at, mo, int(d), tense)
    v = _day(at, year, mo, int(d))
    return (v, "day", _with_prep(prep, format_day(v), "on")) if v else None


def _month_year(m: re.Match[str], at: datetime, tense: str | None) -> Resolved | None:
    prep, mon, y = m.groups()
    v = _day(at, int(y), MONTHS[mon.lower()], 1)
    return (v, "month", _with_prep(prep, f"{v:%B %Y}", "")) if v else None


_DAY_OFFSETS = {
    "the day before yesterday": -2,
    "the day after tomorrow": 2,
    "yesterday": -1,
    "last night": -1,
    "tomorrow": 1,
}


def _rel_day(m: re.Match[str], at: datetime, tense: str | None) -> Resolved | None:
    word = re.sub(r"\s+", " ", m.group(1).lower())
    v = midnight(at) + timedelta(days=_DAY_OFFSETS.get(word, 0))
    if word == "last night":
        return v, "day", f"on the night of {format_day(v)}"
    return v, "day", f"on {format_day(v)}"


def _rel_period(m: re.Match[str], at: datetime, tense: str | None) -> Resolved | None:
    which, unit = m.group(1).lower(), m.group(2).lower()
    sign = {"last": -1, "past": -1, "previous": -1, "next": 1, "coming": 1, "this": 0}[which]
    today = midnight(at)
    if unit == "week":
        v = today + timedelta(days=7 * sign)
        word = {-1: "before", 0: "of", 1: "after"}[sign]
        return v, "week", f"the week {word} {format_day(today)}"
    if unit == "weekend":
        saturday = _weekend(today, sign, which)
        return saturday, "weekend", f"the weekend of {format_day(saturday)}"
    if unit == "month":
        v = (today + relativedelta(months=sign)).replace(day=1)
        return v, "month", f"in {v:%B %Y}"
    v = today.replace(month=1, day=1) + relativedelta(years=sign)
    return v, "year", f"in {v.year}"


def _weekend(today: datetime, sign: int, which: str) -> datetime:
    """The Saturday of the weekend "this", "last" or "next weekend" names."""
    saturday = today + timedelta(days=(5 - today.weekday()) % 7)  # this (or today's) Saturday
    if today.weekday() == 6:
        saturday = today - timedelta(days=1)
    if sign < 0:
        saturday = saturday - timedelta(days=7) if saturday >= today else saturday
    elif sign > 0 and which == "next":
        saturday = saturday + timedelta(days=7) if today.weekday() >= 5 else saturday
    return saturday


def _rel_weekday(m: re.Match[str], at: datetime, tense: str | None) -> Resolved | None:
    which, wd = (m.group(1) or "").lower(), WEEKDAYS[m.group(2).lower()]
    today = midnight(at)
    back = (today.weekday() - wd) % 7  # days since the most recent such day (0: today)
    ahead = (wd - today.weekday()) % 7  # days until the next one (0: today)
    if which in ("last", "past"):
        v = today - timedelta(days=back or 7)
    elif which in ("next", "coming"):
        v = today + timedelta(days=ahead or 7)
    elif which == "this":
        v = today + timedelta(days=ahead) if tense != "past" else today - timedelta(days=back)
    else:  # "on Saturday", "Saturday"
        v = today - timedelta(days=back or 7) if tense == "past" else today + timedelta(days=ahead)
    return v, "day", f"on {format_day(v)}"


def _ago(m: re.Match[str], at: datetime, tense: str | None) -> Resolved | None:
    n, unit = _number(m.group(1)), m.group(2).lower()
    if n is None:
        return None
    today = midnight(at)
    if unit == "day":
        v = today - timedelta(days=n)
        return v, "day", f"on {format_day(v)}"
    if unit in ("week", "weekend"):
        v, precision = today - timedelta(days=7 * n), unit
    elif unit == "month":
        v, precision = today - relativedelta(months=n), "month"
    else:
        v = today - relativedelta(years=n)
        return v, "year", f"in {v.year}"
    count = m.group(0)[: m.start(3) - m.start(0)].strip()
    return v, precision, f"{count} before {format_day(today)}"


def _in_future(m: re.Match[str], at: datetime, tense: str | None) -> Resolved | None:
    g = m.groups()
    num, unit = (g[0], g[1]) if g[0] else (g[2], g[3])
    n = _number(num)
    if n is None:
        return None
    unit, today = unit.lower(), midnight(at)
    if unit == "day":
        v = today + timedelta(days=n)
        return v, "day", f"on {format_day(v)}"
    if unit == "week":
        v = today + timedelta(days=7 * n)
        return v, "week", f"the week of {format_day(v)}"
    if unit == "month":
        v = today + relativedelta(months=n)
        return v, "month", f"in {v:%B %Y}"
    v = today + relativedelta(years=n)
    return v, "year", f"in {v.year}"


def _month_alone(m: re.Match[str], at: datetime, tense: str | None) -> Resolved | None:
    prep, mon = m.group(1).lower(), m.group(2)
    if mon.lower() == "may" and not mon[0].isupper():
        return None
    mo = MONTHS[mon.lower()]
    if prep == "last":
        year = at.year if mo < at.month else at.year - 1
    elif prep == "next":
        year = at.year if mo > at.month else at.year + 1
    elif prep == "this":
        year = at.year
    else:
        year = _pick_year(at, mo, None, tense)
    v = _day(at, year, mo, 1)
    if v is None:
        return None
    keep = m.group(1) if prep not in ("last", "next", "this") else "in"
    return v, "month", _with_prep(keep, f"{v:%B %Y}", "in")


def _year(m: re.Match[str], at: datetime, tense: str | None) -> Resolved | None:
    prep, y = m.groups()
    v = _day(at, int(y), 1, 1)
    return (v, "year", _with_prep(prep, y, "in")) if v else None


_RESOLVERS: dict[str, Resolver] = {
    "iso": _iso,
    "day_month": _day_month,
    "month_day": _month_day,
    "month_year": _month_year,
    "rel_day": _rel_day,
    "rel_period": _rel_period,
    "rel_weekday": _rel_weekday,
    "ago": _ago,
    "in_future": _in_future,
    "month_alone": _month_alone,
    "year": _year,
}


_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("iso", _ISO),
    ("day_month", _DAY_MONTH),
    ("month_day", _MONTH_DAY),
    ("month_year", _MONTH_YEAR),
    ("rel_day", _REL_DAY),
    ("ago", _AGO),
    ("in_future", _IN_FUTURE),
    ("rel_period", _REL_PERIOD),
    ("rel_weekday", _REL_WEEKDAY),
    ("month_alone", _MONTH_ALONE),
    ("year", _YEAR_ALONE),
]


def find_dates(text: str, at: datetime) -> list[DateMention]:
    """Every time expression in ``text`` resolved against ``at``, in order, non-overlapping."""
    if not text or at is None:
        return []
    tense = _tense(text)
    candidates: list[tuple[int, int, int, DateMention]] = []
    for priority, (kind, pattern) in enumerate(_PATTERNS):
        for m in pattern.finditer(text):
            try:
                resolved = _resolve(m, kind, at, tense)
            except (ValueError, OverflowError, KeyError):
                resolved = None
            if resolved is None:
                continue
            value, precision, phrase = resolved
            mention = DateMention(m.group(0), m.start(), m.end(), value, precision, phrase)
            candidates.append((m.start(), -(m.end() - m.start()), priority, mention))
    candidates.sort(key=lambda c: (c[2], c[0]))
    chosen: list[DateMention] = []
    taken: list[tuple[int, int]] = []  # the chosen spans, in order (they never overlap)
    for _, _, _, mention in candidates:
        i = bisect_right(taken, (mention.start, mention.end))
        if (i == 0 or taken[i - 1][1] <= mention.start) and (i == len(taken) or taken[i][0] >= mention.end):
            chosen.append(mention)
            insort(taken, (mention.start, mention.end))
    chosen.sort(key=lambda c: c.start)
    return chosen


def resolve_dates(text: str, at: datetime) -> list[tuple[str, datetime]]:
    """``[(words as written, resolved datetime), ...]`` for every time expression in ``text``."""
    return [(d.text, d.value) for d in find_dates(text, at)]
