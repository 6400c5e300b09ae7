"""The plain calculation of SPEC §5, dossier by dossier, straight from what happened to each.

This is the tests' yardstick, and only theirs (the service never calls it): the counters kept
during ingestion must always agree with it, and `tthc stats rebuild` recomputes the counters from
the same facts (app.dossiers.facts.facts_marks). It lives beside the tests so that it stays a
second, independent reading of SPEC §5 rather than code the service could come to lean on.
"""

from datetime import datetime

from app.calendar.working_time import WorkingCalendar
from app.dossiers.facts import DossierFacts
from app.stats.definitions import COUNT_NAMES


def final_due(facts: DossierFacts, calendar: WorkingCalendar) -> datetime:
    """The due date as the dossier's row holds it: moved by every pause, including one the end cut
    short (SPEC §3: the office is not late for the time the citizen owed papers). The yardstick's
    own reading: "due in the period" counts by this date."""
    due = facts.due_steps(calendar)[-1][1]
    for pause in facts.pauses:
        if not pause.resumed and pause.end is not None:
            due = calendar.add_working_time(due, calendar.working_time_between(pause.start, pause.end))
    return due


def reference_counts(
    dossiers: list[DossierFacts], start: datetime, end: datetime, calendar: WorkingCalendar
) -> dict[str, int]:
    """SPEC §5 for [start, end), word for word."""
    counts = dict.fromkeys(COUNT_NAMES, 0)
    for facts in dossiers:
        if facts.refused_at is not None:
            counts["refused"] += start <= facts.refused_at < end
            continue
        assert facts.received_at is not None
        due = final_due(facts, calendar)
        if start <= due < end:
            counts["due_in_period"] += 1
            counts["due_in_period_on_time"] += bool(facts.on_time)
        ended = facts.ended_at
        carried_over = facts.received_at < start and (ended is None or ended >= start)
        received = start <= facts.received_at < end
        if not (carried_over or received):
            continue
        counts["carried_over"] += carried_over
        counts["received"] += received
        if received:
            counts[f"received_{'online' if facts.channel == 'online' else facts.channel or 'direct'}"] += 1
        counts["total"] += 1
        if facts.channel == "online":
            counts["online"] += 1
            counts[f"online_{facts.online_level}"] += 1
        if facts.finished_at is not None and start <= facts.finished_at < end:
            counts["resolved"] += 1
            if facts.on_time:
                counts["resolved_on_time"] += 1
                counts["resolved_early"] += bool(facts.early)
            else:
                counts["resolved_late"] += 1
        if facts.withdrawn_at is not None and start <= facts.withdrawn_at < end:
            counts["withdrawn"] += 1
        open_at_end = ended is None or ended >= end
        if not open_at_end:
            continue
        counts["in_progress"] += 1
        waiting = any(p.start < end and (p.end is None or p.end >= end) for p in facts.pauses)
        if waiting:
            counts["waiting_supplement"] += 1
            continue
        due_at_end = [due for since, due in facts.due_steps(calendar) if since is None or since < end][-1]
        counts["in_progress_overdue"] += due_at_end < end
    return counts
