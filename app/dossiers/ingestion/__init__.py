"""Dossier events in: set-based, idempotent, and in time order whatever the order of arrival.

A batch is worked dossier by dossier, under a lock per dossier code taken in code order:

- the common case — events that come after everything the dossier already has, none of them a
  correction, and nothing of the dossier waiting — takes the **fast path**: the state machine
  advances from the stored state, as it always did;
- anything else (an event older than the dossier's last one, a correction, a reception that
  arrives after its dossier's events, events of a dossier not received yet) takes the **replay**:
  the dossier's stored events are loaded and its history replayed from the start
  (app.dossiers.history), so the cost is that dossier's own history, not the data set.

Either way the statistics counters receive exactly the difference between the dossier's old and
new contribution (``facts_marks`` of the old and new facts; the fast path's marks are the same
difference, event by event), in the same transaction.

The phases, one module each:

- **parse** (``events.parse``, ``records``): each item validated on its own, in its canonical form
  (``work.canonical``); the units of work (``work``: what arrives, what is stored);
- **lock** (``locks``): the dossiers' writers serialised, in code order;
- **resolve** (``catalogue``): the procedure versions in force and the units the events name;
- **apply** (``batch``): the fast path or the replay, dossier by dossier, deciding each answer;
- **write** (``writes``): dossiers, events and corrections set-based, then the counters
  (app.dossiers.counters).

``events.ingest`` serves ``POST /dossier-events``, ``records.ingest_records`` ``POST /sync/dvcqg``.
"""
