from datetime import date

from sqlalchemy import Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base

# The rollup value of the sector and procedure columns: the row counts every sector/procedure.
ALL = "*"


class DossierCounter(Base):
    """Counts of dated happenings (receptions, finishes, pauses, …) per unit, sector and procedure.

    Each happening is counted in the bucket of its local day, month and year (``grain`` d, m, y), so
    any prefix sum "before day T" reads at most a year row per past year, eleven month rows and
    thirty day rows per unit, however many dossiers there are. Rows with sector and procedure
    ``*`` sum all of them for their unit. See app.stats.definitions for the counters.
    """

    __tablename__ = "dossier_counters"
    # Updated in place all the time: room in each page lets PostgreSQL skip index writes (HOT).
    __table_args__ = ({"postgresql_with": {"fillfactor": 70}},)

    unit_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    sector_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    procedure_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    grain: Mapped[str] = mapped_column(String(1), primary_key=True)
    bucket: Mapped[date] = mapped_column(Date, primary_key=True)

    received_direct: Mapped[int] = mapped_column(Integer, default=0)
    received_postal: Mapped[int] = mapped_column(Integer, default=0)
    received_online_partial: Mapped[int] = mapped_column(Integer, default=0)
    received_online_full: Mapped[int] = mapped_column(Integer, default=0)
    ended_direct: Mapped[int] = mapped_column(Integer, default=0)
    ended_postal: Mapped[int] = mapped_column(Integer, default=0)
    ended_online_partial: Mapped[int] = mapped_column(Integer, default=0)
    ended_online_full: Mapped[int] = mapped_column(Integer, default=0)
    finished_on_time: Mapped[int] = mapped_column(Integer, default=0)
    finished_early: Mapped[int] = mapped_column(Integer, default=0)
    finished_late: Mapped[int] = mapped_column(Integer, default=0)
    withdrawn: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    waiting_start: Mapped[int] = mapped_column(Integer, default=0)
    waiting_end: Mapped[int] = mapped_column(Integer, default=0)
    overdue_start: Mapped[int] = mapped_column(Integer, default=0)
    overdue_end: Mapped[int] = mapped_column(Integer, default=0)
