"""The group a counted row falls in, for every statistic that takes `group_by`."""

from collections.abc import Mapping, Sequence

Key = tuple[tuple[str, str], ...]
"""A group: (grouping, value) for each grouping asked for, in the order asked."""


def group_key(values: Mapping[str, str], group_by: Sequence[str]) -> Key:
    """The group of a row whose value of each grouping is in ``values``.

    SPEC §9: "a row's `key` names its grouping, e.g. `{"unit_level": "district"}` or
    `{"kind": "simplify", "level": "commune"}`"; without `group_by`, every row falls in the one
    empty group."""
    return tuple((name, values[name]) for name in group_by)
