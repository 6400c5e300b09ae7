"""The 766 scorecard as the national portal scores it (SPEC §8), on hand-computed figures."""

from app.core.config import Index766Settings
from app.stats.index766 import Inputs, scorecard


def inputs(**values: int) -> Inputs:
    base = dict.fromkeys(Inputs.__dataclass_fields__, 0)
    return Inputs(**{**base, **values})


def groups(**values: int) -> dict[str, dict]:  # type: ignore[type-arg]
    return {g["group"]: g for g in scorecard(inputs(**values), Index766Settings())}


def test_progress_is_twenty_times_the_on_time_share_half_up() -> None:
    assert groups(on_time_766=1, handled=3)["progress"]["score"] == 6.67
    assert groups(on_time_766=1, handled=160)["progress"]["score"] == 0.13  # 0.125, half up
    assert groups(on_time_766=0, handled=0)["progress"]["score"] == 0.0  # nothing received


def test_satisfaction_parts_as_the_portal_scores_them() -> None:
    scored = groups(
        received=3, feedback_received=3, feedback_closed_in_time=2, feedback_answered=1, resolved_late=0
    )["satisfaction"]
    assert scored["inputs"]["parts"] == [4.0, 2.0, 6.0]  # 6 × 2/3; 6 × 1/3; min(6, 6 × 1 / 0.9)
    assert scored["score"] == 12.0
    without_feedback = groups(received=10, resolved_late=1, ratings_unsatisfied=1)["satisfaction"]
    assert without_feedback["inputs"]["parts"] == [6.0, 6.0, 5.33]  # r = 8/10: 6 × 0.8 / 0.9
    nothing = groups()["satisfaction"]
    assert nothing["inputs"]["parts"] == [6.0, 6.0, 0.0]
