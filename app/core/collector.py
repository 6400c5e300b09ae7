"""Python's cyclic garbage collector, set for a long-running process of the service.

Ingestion allocates millions of short-lived objects (validated models, dictionaries, history
events), almost all freed by reference counting; yet every few hundred allocations the collector
runs, and each collection of its oldest generation walks every long-lived object: the modules,
the ORM's metadata, pydantic's schemas. Measured on `tthc dossiers import` of the bench's 56,794
events (docs/benchmarks.md, issue 29): 8.6 s with the default collector, 7.1 s once the start-up's
objects are frozen and the youngest generation may grow to 10,000 objects. At 10,000 a one-job
import still met about 60 collections, each walking the live objects of the chunk under way again
(2 ms each): the collector took 130 ms of its 4 s of CPU, and 10 ms at 50,000 (200,000 gave no
more). The collections free a few thousand objects in a whole load.
"""

import gc

YOUNGEST = 50_000
"""Allocations (less deallocations) of container objects before a collection of the youngest
generation; Python's default is 700. The older generations keep their default ratios."""


def settle_after_start_up() -> None:
    """Everything alive now (the start-up's objects) moved out of the collector's view for good,
    and collections made rarer. For a process's entry point, once its imports are done: objects
    frozen here are never collected, so a process that builds and drops applications (the tests)
    must not call it."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNGEST, middle, oldest)
