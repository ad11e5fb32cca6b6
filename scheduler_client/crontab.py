"""Crontab lines to jobs: five fields and a command, `@daily` and its kin, `CRON_TZ=` for
the lines after it, and the comment just above a line as the job's name."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")
MINUTE_FIELD = re.compile(r"[0-9*][0-9*/,-]*")
CRON_FIELD = re.compile(r"[0-9*?/,A-Za-z-]+")  # the server checks each field's meaning
MAX_NAME = 200  # the API's limit on a job's name


@dataclass(frozen=True)
class Entry:
    line: int  # 1-based, in the file
    cron: str
    timezone: str
    command: str
    name: str | None


@dataclass
class Crontab:
    entries: list[Entry] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, what is wrong)


def parse(text: str, timezone: str = "UTC") -> Crontab:
    parsed = Crontab()
    comment: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            comment = None  # a blank line ends the comment that would name the next job
            continue
        if line.startswith("#"):
            text_of = line.lstrip("#").strip()
            comment = None if looks_like_a_job(text_of) else (text_of or None)
            continue
        assignment = ASSIGNMENT.fullmatch(line)
        if assignment and not line.startswith("@"):
            if assignment.group(1) == "CRON_TZ":
                timezone = assignment.group(2).strip().strip("\"'") or "UTC"
            comment = None  # other variables (SHELL, MAILTO, PATH) mean nothing here
            continue
        entry_or_error = parse_line(number, line, timezone, comment)
        if isinstance(entry_or_error, Entry):
            parsed.entries.append(entry_or_error)
        else:
            parsed.errors.append((number, entry_or_error))
        comment = None
    return parsed


def parse_line(number: int, line: str, timezone: str, name: str | None) -> Entry | str:
    if line.startswith("@"):  # @daily and kin: the service knows them (and refuses @reboot)
        nickname, _, command = line.partition(" ")
        cron = nickname.lower()
    else:
        parts = line.split(None, 5)
        if not has_time_fields(parts):
            return "expected five time fields and a command"
        cron, command = " ".join(parts[:5]), parts[5]
    command = command.strip()
    if not command:
        return "no command after the schedule"
    return Entry(number, cron, timezone, command, name[:MAX_NAME] if name else None)


def looks_like_a_job(text: str) -> bool:
    """A commented-out job line names nothing."""
    if text.startswith("@"):
        return len(text.split(None, 1)) == 2
    return has_time_fields(text.split(None, 5))


def has_time_fields(parts: list[str]) -> bool:
    return (
        len(parts) == 6
        and MINUTE_FIELD.fullmatch(parts[0]) is not None
        and all(CRON_FIELD.fullmatch(p) for p in parts[1:5])
    )
