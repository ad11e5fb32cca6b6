"""The recurrence examples of RFC 5545 (section 3.8.5.3) as fixtures, in our own words.

Each fixture: what the rule says, DTSTART (a wall time in America/New_York, as in the RFC),
the rule, and the occurrences the RFC lists, as local dates ("1997: 0902 0903" is 2 and 3
September 1997), at DTSTART's time of day unless a time is written ("0902T0915"). Where the
RFC lists an open-ended rule only in part, the first ones are compared. Our answers are
instants: each is read back on New York's clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from app.timing import make_timing, occurrences

NEW_YORK = ZoneInfo("America/New_York")

FIXTURES = [
    ("daily, ten times", "19970902T0900", "FREQ=DAILY;COUNT=10",
     "1997: 0902 0903 0904 0905 0906 0907 0908 0909 0910 0911"),
    ("every other day", "19970902T0900", "FREQ=DAILY;INTERVAL=2",
     "1997: 0902 0904 0906 0908 0910 0912 0914 0916"),
    ("every ten days, five times", "19970902T0900", "FREQ=DAILY;INTERVAL=10;COUNT=5",
     "1997: 0902 0912 0922 1002 1012"),
    ("weekly, ten times (across the October change)", "19970902T0900", "FREQ=WEEKLY;COUNT=10",
     "1997: 0902 0909 0916 0923 0930 1007 1014 1021 1028 1104"),
    ("every other week on Monday, Wednesday, Friday until 24 December, weeks from Sunday",
     "19970901T0900", "FREQ=WEEKLY;INTERVAL=2;UNTIL=19971224T000000Z;WKST=SU;BYDAY=MO,WE,FR",
     "1997: 0901 0903 0905 0915 0917 0919 0929 1001 1003 1013 1015 1017 1027 1029 1031 "
     "1110 1112 1114 1124 1126 1128 1208 1210 1212 1222"),
    ("every other week on Tuesday and Thursday, eight times", "19970902T0900",
     "FREQ=WEEKLY;INTERVAL=2;COUNT=8;WKST=SU;BYDAY=TU,TH",
     "1997: 0902 0904 0916 0918 0930 1002 1014 1016"),
    ("the first Friday of the month, ten times", "19970905T0900", "FREQ=MONTHLY;COUNT=10;BYDAY=1FR",
     "1997: 0905 1003 1107 1205; 1998: 0102 0206 0306 0403 0501 0605"),
    ("every other month on the first and last Sunday, ten times", "19970907T0900",
     "FREQ=MONTHLY;INTERVAL=2;COUNT=10;BYDAY=1SU,-1SU",
     "1997: 0907 0928 1102 1130; 1998: 0104 0125 0301 0329 0503 0531"),
    ("the second-to-last Monday, six times", "19970922T0900", "FREQ=MONTHLY;COUNT=6;BYDAY=-2MO",
     "1997: 0922 1020 1117 1222; 1998: 0119 0216"),
    ("the third-to-last day of the month", "19970928T0900", "FREQ=MONTHLY;BYMONTHDAY=-3",
     "1997: 0928 1029 1128 1229; 1998: 0129 0226"),
    ("the 2nd and 15th, ten times", "19970902T0900", "FREQ=MONTHLY;COUNT=10;BYMONTHDAY=2,15",
     "1997: 0902 0915 1002 1015 1102 1115 1202 1215; 1998: 0102 0115"),
    ("the first and last day of the month, ten times", "19970930T0900",
     "FREQ=MONTHLY;COUNT=10;BYMONTHDAY=1,-1",
     "1997: 0930 1001 1031 1101 1130 1201 1231; 1998: 0101 0131 0201"),
    ("every 18 months, the 10th to the 15th, ten times", "19970910T0900",
     "FREQ=MONTHLY;INTERVAL=18;COUNT=10;BYMONTHDAY=10,11,12,13,14,15",
     "1997: 0910 0911 0912 0913 0914 0915; 1999: 0310 0311 0312 0313"),
    ("every Tuesday, every other month", "19970902T0900", "FREQ=MONTHLY;INTERVAL=2;BYDAY=TU",
     "1997: 0902 0909 0916 0923 0930 1104 1111 1118 1125; 1998: 0106 0113 0120 0127 0303"),
    ("June and July, ten times", "19970610T0900", "FREQ=YEARLY;COUNT=10;BYMONTH=6,7",
     "1997: 0610 0710; 1998: 0610 0710; 1999: 0610 0710; 2000: 0610 0710; 2001: 0610 0710"),
    ("every third year on days 1, 100 and 200, ten times", "19970101T0900",
     "FREQ=YEARLY;INTERVAL=3;COUNT=10;BYYEARDAY=1,100,200",
     "1997: 0101 0410 0719; 2000: 0101 0409 0718; 2003: 0101 0410 0719; 2006: 0101"),
    ("the 20th Monday of the year", "19970519T0900", "FREQ=YEARLY;BYDAY=20MO",
     "1997: 0519; 1998: 0518; 1999: 0517"),
    ("Monday of ISO week 20", "19970512T0900", "FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO",
     "1997: 0512; 1998: 0511; 1999: 0517"),
    ("every Thursday in March", "19970313T0900", "FREQ=YEARLY;BYMONTH=3;BYDAY=TH",
     "1997: 0313 0320 0327; 1998: 0305 0312 0319 0326; 1999: 0304 0311 0318 0325"),
    ("every Friday the 13th (DTSTART itself is not one)", "19970902T0900",
     "FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13",
     "1998: 0213 0313 1113; 1999: 0813; 2000: 1013"),
    ("the first Saturday after the first Sunday", "19970913T0900",
     "FREQ=MONTHLY;BYDAY=SA;BYMONTHDAY=7,8,9,10,11,12,13",
     "1997: 0913 1011 1108 1213; 1998: 0110 0207 0307 0411 0509 0613"),
    ("US presidential election day", "19961105T0900",
     "FREQ=YEARLY;INTERVAL=4;BYMONTH=11;BYDAY=TU;BYMONTHDAY=2,3,4,5,6,7,8",
     "1996: 1105; 2000: 1107; 2004: 1102"),
    ("the third of Tuesday, Wednesday, Thursday, three months", "19970904T0900",
     "FREQ=MONTHLY;COUNT=3;BYDAY=TU,WE,TH;BYSETPOS=3", "1997: 0904 1007 1106"),
    ("the second-to-last weekday of the month", "19970929T0900",
     "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-2",
     "1997: 0929 1030 1127 1230; 1998: 0129 0226 0330"),
    ("every 15 minutes, six times", "19970902T0900", "FREQ=MINUTELY;INTERVAL=15;COUNT=6",
     "1997: 0902T0900 0902T0915 0902T0930 0902T0945 0902T1000 0902T1015"),
    ("every hour and a half, four times", "19970902T0900", "FREQ=MINUTELY;INTERVAL=90;COUNT=4",
     "1997: 0902T0900 0902T1030 0902T1200 0902T1330"),
    ("every 20 minutes from 9:00 to 16:40, each day", "19970902T0900",
     "FREQ=DAILY;BYHOUR=9,10,11,12,13,14,15,16;BYMINUTE=0,20,40",
     "1997: 0902T0900 0902T0920 0902T0940 0902T1000 0902T1020 0902T1040 0902T1100"),
    ("weeks from Monday change an every-other-week rule", "19970805T0900",
     "FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=MO", "1997: 0805 0810 0819 0824"),
    ("... and from Sunday", "19970805T0900",
     "FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=SU", "1997: 0805 0817 0819 0831"),
    ("a day that does not exist (30 February) is left out, not counted", "20070115T0900",
     "FREQ=MONTHLY;BYMONTHDAY=15,30;COUNT=5", "2007: 0115 0130 0215 0315 0330"),
]  # fmt: skip


def listed(text: str, start: str) -> list[datetime]:
    """The fixture's occurrences as wall times."""
    hour, minute = int(start[9:11]), int(start[11:13])
    found = []
    for group in text.split(";"):
        year, _, days = group.strip().partition(":")
        for day in days.split():
            month_day, _, clock = day.partition("T")
            h, m = (int(clock[:2]), int(clock[2:])) if clock else (hour, minute)
            found.append(datetime(int(year), int(month_day[:2]), int(month_day[2:]), h, m))
    return found


@pytest.mark.parametrize(("says", "start", "rule", "dates"), FIXTURES, ids=[f[0] for f in FIXTURES])
def test_an_example_of_the_rfc(says: str, start: str, rule: str, dates: str):
    wall = datetime.strptime(start, "%Y%m%dT%H%M")
    timing = make_timing(recurring="rrule", rrule=rule, at=wall.isoformat(),
                         timezone="America/New_York")  # fmt: skip
    want = listed(dates, start)
    got = occurrences(timing, datetime(1990, 1, 1, tzinfo=UTC), len(want) + 1)
    walls = [t.astimezone(NEW_YORK).replace(tzinfo=None) for t in got]
    ends = "COUNT" in rule or "UNTIL" in rule
    assert walls[: len(want)] == want
    if ends:
        assert len(walls) == len(want)  # and nothing after the last


def test_the_daily_until_example_counts_113():
    timing = make_timing(recurring="rrule", rrule="FREQ=DAILY;UNTIL=19971224T000000Z",
                         at="1997-09-02T09:00:00", timezone="America/New_York")  # fmt: skip
    got = occurrences(timing, datetime(1990, 1, 1, tzinfo=UTC), 200)
    assert len(got) == 113
    assert got[-1].astimezone(NEW_YORK).replace(tzinfo=None) == datetime(1997, 12, 23, 9, 0)


def test_every_day_in_january_for_three_years():
    rule = "FREQ=YEARLY;UNTIL=20000131T140000Z;BYMONTH=1;BYDAY=SU,MO,TU,WE,TH,FR,SA"
    timing = make_timing(recurring="rrule", rrule=rule, at="1998-01-01T09:00:00",
                         timezone="America/New_York")  # fmt: skip
    got = occurrences(timing, datetime(1990, 1, 1, tzinfo=UTC), 200)
    walls = [t.astimezone(NEW_YORK).replace(tzinfo=None) for t in got]
    assert len(walls) == 93
    assert {(w.month, w.hour) for w in walls} == {(1, 9)}
    assert sorted({w.year for w in walls}) == [1998, 1999, 2000]
