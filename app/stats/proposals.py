"""Statistics of reform proposals: how many were submitted in a period, and what they save."""

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.calendar.periods import Period
from app.proposals.models import Proposal
from app.stats.groups import Key, group_key

PROPOSAL_GROUPS = ("kind", "level", "sector", "state")


async def proposal_counts(
    session: AsyncSession, units: set[str], period: Period, group_by: Sequence[str]
) -> tuple[dict[Key, dict[str, int]], dict[str, int]]:
    """Proposals submitted in the period, and their summed yearly savings, per group and in total."""
    rows = await session.execute(
        select(
            Proposal.kind,
            Proposal.level,
            Proposal.sector_code,
            Proposal.state,
            Proposal.cost_before_vnd,
            Proposal.cost_after_vnd,
        ).where(
            Proposal.unit_code.in_(units),
            Proposal.submitted_at >= period.start_at,
            Proposal.submitted_at < period.end_at,
        )
    )
    groups: dict[Key, dict[str, int]] = defaultdict(lambda: {"count": 0, "savings_vnd": 0})
    total = {"count": 0, "savings_vnd": 0}
    for kind, level, sector, state, before, after in rows:
        values = {"kind": kind, "level": level, "sector": sector, "state": state}
        saving = before - after if before is not None and after is not None else 0
        for target in (groups[group_key(values, group_by)], total):
            target["count"] += 1
            target["savings_vnd"] += saving
    return dict(sorted(groups.items())), total
