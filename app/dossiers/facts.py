"""What happened to a dossier, as the statistics count it, and the counter marks it leaves.

``facts_marks`` is what ingestion adds up event by event and what `tthc stats rebuild` recomputes
from every dossier; the tests' yardstick, tests.stats.reference, judges the counters against the
same facts (SPEC §5).
"""

from dataclasses import dataclass, field
from datetime import datetime

from app.calendar.working_time import WorkingCalendar
from app.dossiers.lifecycle import Mark, channel_category, due_after_pause


@dataclass
class Pause:
    start: datetime
    end: datetime | None
    """When the clock restarted: the supplement arrived, or the dossier ended while waiting."""
    resumed: bool
    """Whether it ended with the supplement (and so moved the due date)."""


@dataclass
class DossierFacts:
    unit_code: str
    sector_code: str | None
    procedure_code: str
    channel: str | None
    online_level: str | None
    received_at: datetime | None
    original_due_at: datetime | None
    finished_at: datetime | None = None
    on_time: bool | None = None
    early: bool | None = None
    withdrawn_at: datetime | None = None
    refused_at: datetime | None = None
    pauses: list[Pause] = field(default_factory=list)

    @property
    def ended_at(self) -> datetime | None:
        return self.finished_at or self.withdrawn_at

    def due_steps(self, calendar: WorkingCalendar) -> list[tuple[datetime | None, datetime]]:
        """(since, due): the due date from reception, then after each pause the supplement ended."""
        assert self.original_due_at is not None
        due = self.original_due_at
        steps: list[tuple[datetime | None, datetime]] = [(None, due)]
        for pause in self.pauses:
            if pause.resumed and pause.end is not None:
                due = due_after_pause(calendar, due, pause.start, pause.end)
                steps.append((pause.end, due))
        return steps


FACT_FIELDS = tuple(name for name in DossierFacts.__dataclass_fields__ if name != "pauses")
"""The dossier columns the facts are, in the order of ``DossierFacts``' fields."""


def _overdue_spans(facts: DossierFacts, calendar: WorkingCalendar) -> list[tuple[datetime, datetime | None]]:
    """The spans (a, b] during which the dossier is open, not waiting, and past its due date."""
    assert facts.received_at is not None
    steps = facts.due_steps(calendar)
    spans: list[tuple[datetime, datetime | None]] = []
    # Stretches without a pause: from reception (or a pause's end) to the next pause (or the end).
    starts = [facts.received_at] + [p.end for p in facts.pauses if p.resumed and p.end is not None]
    stops: list[datetime | None] = [*(p.start for p in facts.pauses), facts.ended_at]
    for index, (begin, stop) in enumerate(zip(starts, stops, strict=False)):
        due = steps[index][1]
        start = max(begin, due)
        if stop is None or start < stop:
            spans.append((start, stop))
    return spans


def facts_marks(facts: DossierFacts, calendar: WorkingCalendar) -> list[Mark]:
    """The counter marks a dossier's whole history leaves (what ingestion adds up event by event)."""
    if facts.refused_at is not None:
        return [("refused", facts.refused_at, 1)]
    assert facts.received_at is not None
    category = channel_category(facts.channel, facts.online_level)
    marks: list[Mark] = [(f"received_{category}", facts.received_at, 1)]
    if facts.ended_at is not None:
        marks.append((f"ended_{category}", facts.ended_at, 1))
    if facts.finished_at is not None:
        if facts.on_time:
            marks.append(("finished_on_time", facts.finished_at, 1))
            if facts.early:
                marks.append(("finished_early", facts.finished_at, 1))
        else:
            marks.append(("finished_late", facts.finished_at, 1))
    if facts.withdrawn_at is not None:
        marks.append(("withdrawn", facts.withdrawn_at, 1))
    for pause in facts.pauses:
        marks.append(("waiting_start", pause.start, 1))
        if pause.end is not None:
            marks.append(("waiting_end", pause.end, 1))
    for start, stop in _overdue_spans(facts, calendar):
        marks.append(("overdue_start", start, 1))
        if stop is not None:
            marks.append(("overdue_end", stop, 1))
    return marks
