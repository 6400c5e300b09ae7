"""Dossier events in: one pipeline behind every way in, set-based, idempotent, and in time order
whatever the order of arrival.

Every way in — single events and batches (``events``), DongBoHoSoMC records (``records``), the
bulk import's fold (``folding``) and a replay under a changed calendar (app.dossiers.recalendar) —
only translates its input into arrivals per dossier and the outcome back into its answers. Between
the two, ``pipeline``:

- **open** (``pipeline.open_round``): the dossiers' writers serialised in code order (``locks``),
  their stored states, what waits on them, the sender's reach;
- **resolve** (``catalogue``): the procedure versions in force and the units the arrivals name;
- **decide** (``decide.decide``, pure): per dossier, the **fast path** when the arrivals come after
  everything the dossier has (the state machine advances from the stored state), else the
  **replay** of its stored history with the arrivals (app.dossiers.history), so the cost is that
  dossier's own history, not the data set; either way the counters' difference (``facts_marks``
  of the old and new facts);
- **write** (``writes.write``): dossiers, events and corrections set-based, then the counters'
  difference to a sink (``LiveCounters`` for requests, ``DaySums`` for a bulk fold's merge).

The units of work (who sends, what arrives, what is stored) are in ``work``.
"""
