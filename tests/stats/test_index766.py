"""The 766 scorecard as the national portal scores it (SPEC §8): two decimals, half up on the exact value.

The exhaustive tests run each group's formula (``Formulas``, in hundredths of a point) over every
share n / d with 1 ≤ d ≤ 2,000 and 0 ≤ n ≤ d — 2,003,000 pairs a group — against an independent
exact computation: the national weights and thresholds written here as fractions, each row's value
per unit of n as a ``Fraction``, and half up by hand (the quotient, plus one when the remainder is
at least half the divisor). The expected rows are built with ``map`` over ``range``, so most of
the time goes to the formulas under test.
"""

from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from fractions import Fraction
from itertools import repeat
from operator import add, floordiv, ge, mod, mul

import pytest
from httpx import AsyncClient
from pydantic import ValidationError

from app.core.config import Index766Settings, Settings
from app.stats.index766 import Formulas, Inputs, hundredths, points, scorecard
from tests.dossiers.conftest import portal, received, send, step, world  # noqa: F401

LARGEST = 2000
FORMULAS = Formulas(Index766Settings())
# The national weights and thresholds (SPEC §8), as exact numbers.
PROGRESS, ONLINE_SERVICE, DIGITISATION, PART, ONLINE_PAYMENT = 20, 12, 22, 6, 10
FULL_ONLINE_AT, PAID_ONLINE_AT, SATISFIED_AT = Fraction(1, 2), Fraction(1, 2), Fraction(9, 10)


def inputs(**values: int) -> Inputs:
    base = dict.fromkeys(Inputs.__dataclass_fields__, 0)
    return Inputs(**{**base, **values})


def groups(weights: Index766Settings | None = None, **values: int) -> dict[str, dict]:  # type: ignore[type-arg]
    return {g["group"]: g for g in scorecard(inputs(**values), weights or Index766Settings())}


def written(values: Iterable[Decimal]) -> list[str]:
    return [str(value) for value in values]


def half_up(numerators: Iterable[int], denominator: int) -> Iterator[int]:
    """⌊x + ½⌋ of each x = numerator / denominator ≥ 0: the quotient, plus one when the remainder
    is at least half the denominator (for an integer remainder: at least ⌈denominator / 2⌉)."""
    numerators = list(numerators)
    quotients = map(floordiv, numerators, repeat(denominator))
    remainders = map(mod, numerators, repeat(denominator))
    return map(add, quotients, map(ge, remainders, repeat((denominator + 1) // 2)))


def row(hundredths_per_unit: Fraction, count: int) -> Iterator[int]:
    """The exact n × ``hundredths_per_unit``, half up, for n = 0 … count − 1."""
    p, q = hundredths_per_unit.numerator, hundredths_per_unit.denominator
    return half_up(range(0, count * p, p), q)


def capped(scores: Iterable[int], full: int) -> Iterator[int]:
    # Half up is monotone, so rounding the capped value is capping the rounded one at the (whole) cap.
    return map(min, scores, repeat(full))


def assert_rows(
    scores: Callable[[int], Iterable[int | None]], expected: Callable[[int], Iterable[int]]
) -> None:
    """For every 1 ≤ d ≤ LARGEST, the scores of n = 0 … d are the ``expected`` hundredths."""
    for d in range(1, LARGEST + 1):
        got, want = list(scores(d)), list(expected(d))
        if got != want:
            n = next(n for n in range(d + 1) if got[n] != want[n])
            pytest.fail(f"{n}/{d}: scored {got[n]} hundredths, exactly half up {want[n]}")


# The cases: a binary float or banker's rounding puts each one hundredth low.


def test_the_reported_half_hundredths_round_up() -> None:
    assert FORMULAS.online_service(3, 64) == 113  # 3/64 / 50 % × 12 = 1.125
    assert FORMULAS.digitisation(24, 64, 0, 1) == 413  # (24/64 + 0/1) / 2 × 22 = 4.125
    assert FORMULAS.satisfaction_parts(0, 0, 0, 141, 160) == (600, 600, 588)  # 6 × 141/160 / 0.9 = 5.875
    assert FORMULAS.satisfaction(0, 0, 0, 141, 160) == 1788
    card = groups(received=160, resolved_late=19)["satisfaction"]
    assert (str(card["score"]), written(card["inputs"]["parts"])) == ("17.88", ["6.00", "6.00", "5.88"])
    card = groups(received=64, received_online_full=3, digitized=24, resolved=1)
    assert written([card["online_service"]["score"], card["digitisation"]["score"]]) == ["1.13", "4.13"]


def test_scores_are_decimals_with_two_decimals() -> None:
    assert written(map(points, (0, 5, 113, 600, 1788))) == ["0.00", "0.05", "1.13", "6.00", "17.88"]
    assert (hundredths(1125, 1000), hundredths(1124_999, 1000_000), hundredths(1, 3)) == (113, 112, 33)
    card = groups(on_time_766=3, handled=3, received=2, received_online_full=2)
    assert written([card["progress"]["score"], card["online_service"]["score"]]) == ["20.00", "12.00"]
    assert card["online_payment"]["score"] is None and card["digitisation"]["score"] is None


def test_progress_is_twenty_times_the_on_time_share_half_up() -> None:
    assert groups(on_time_766=1, handled=3)["progress"]["score"] == Decimal("6.67")
    assert groups(on_time_766=1, handled=160)["progress"]["score"] == Decimal("0.13")  # 0.125, half up
    assert str(groups(on_time_766=0, handled=0)["progress"]["score"]) == "0.00"  # nothing received


def test_satisfaction_parts_as_the_portal_scores_them() -> None:
    card = groups(
        received=3, feedback_received=3, feedback_closed_in_time=2, feedback_answered=1, resolved_late=0
    )["satisfaction"]
    assert written(card["inputs"]["parts"]) == ["4.00", "2.00", "6.00"]  # 6 × 2/3; 6 × 1/3; min(6, 6 / 0.9)
    assert card["score"] == 12
    without_feedback = groups(received=10, resolved_late=1, ratings_unsatisfied=1)["satisfaction"]
    assert written(without_feedback["inputs"]["parts"]) == ["6.00", "6.00", "5.33"]  # r = 8/10: 6 × 0.8 / 0.9
    nothing = groups()["satisfaction"]
    assert written(nothing["inputs"]["parts"]) == ["6.00", "6.00", "0.00"]
    # Feedback closed in the period may have been received before it: more than 6 is what it is.
    assert FORMULAS.satisfaction_parts(3, 0, 2, 0, 0)[0] == 900


def test_the_satisfaction_threshold_is_the_setting() -> None:
    eighty = Index766Settings(satisfaction_threshold=80)
    assert groups(eighty, received=10, resolved_late=2)["satisfaction"]["inputs"]["parts"][2] == 6
    card = groups(eighty, received=10, resolved_late=3)["satisfaction"]
    assert card["inputs"]["parts"][2] == Decimal("5.25")  # 6 × 0.7 / 0.8
    assert "× r / 0.8)" in card["formula"]
    assert "× r / 0.9)" in groups(received=1)["satisfaction"]["formula"]
    for wrong in (0, -5, 101):
        with pytest.raises(ValidationError):
            Index766Settings(satisfaction_threshold=wrong)


def test_the_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTHC_INDEX_766", '{"satisfaction_threshold": 75, "online_full_threshold": 60}')
    weights = Settings(_env_file=None).index_766
    assert (weights.satisfaction_threshold, weights.online_full_threshold) == (75, 60)
    assert Formulas(weights).satisfaction_parts(0, 0, 0, 3, 5)[2] == 480  # 6 × 0.6 / 0.75
    assert Formulas(weights).online_service(3, 10) == 600  # 12 × 0.3 / 0.6


def test_settings_are_read_as_the_decimals_written() -> None:
    # 0.145 as a binary float is 0.14499999999999999…: taken as written it is 0.145, half up 0.15.
    assert Formulas(Index766Settings(progress=0.145)).progress(1, 1) == 15
    assert Formulas(Index766Settings(satisfaction=3.015)).satisfaction_parts(1, 0, 1, 0, 0)[0] == 101


# Every share up to 2,000 of each group, against exact half up.


def test_progress_over_every_share() -> None:
    assert_rows(
        lambda d: map(FORMULAS.progress, range(d + 1), repeat(d)),
        lambda d: row(Fraction(100 * PROGRESS, d), d + 1),
    )


def test_online_service_over_every_share() -> None:
    assert_rows(
        lambda d: map(FORMULAS.online_service, range(d + 1), repeat(d)),
        lambda d: capped(row(100 * ONLINE_SERVICE / (d * FULL_ONLINE_AT), d + 1), 100 * ONLINE_SERVICE),
    )


def test_online_payment_over_every_share() -> None:
    assert_rows(
        lambda d: map(FORMULAS.online_payment, range(d + 1), repeat(d)),
        lambda d: capped(row(100 * ONLINE_PAYMENT / (d * PAID_ONLINE_AT), d + 1), 100 * ONLINE_PAYMENT),
    )


def test_digitisation_over_every_share() -> None:
    """Every digitised share n / d, each with an e-result share m / d′ that moves along the row;
    d′ = 997 d mod 2,000 + 1 runs over every denominator as d does (997 is prime to 2,000)."""

    def partner(d: int) -> tuple[int, list[int]]:
        e = d * 997 % LARGEST + 1
        return e, list(map(mod, range(d, d + 7 * (d + 1), 7), repeat(e + 1)))  # m = (7 n + d) mod (d′ + 1)

    def scores(d: int) -> Iterator[int | None]:
        e, others = partner(d)
        return map(FORMULAS.digitisation, range(d + 1), repeat(d), others, repeat(e))

    def expected(d: int) -> Iterator[int]:
        # (n / d + m / d′) / 2 × 22 in hundredths: (n d′ + m d) × 2,200 / 2 / (d d′).
        e, others = partner(d)
        numerators = map(add, range(0, (d + 1) * e, e), map(mul, others, repeat(d)))
        factor = Fraction(100 * DIGITISATION, 2)
        return half_up(map(mul, numerators, repeat(factor.numerator)), d * e * factor.denominator)

    assert_rows(scores, expected)


def test_satisfaction_over_every_share() -> None:
    """Feedback handled on time n of d, satisfied d − n of d, dossiers satisfied n of d: every share
    in each part, and the group the sum of the three rounded parts."""

    def expected(d: int) -> Iterator[int]:
        feedback = list(row(Fraction(100 * PART, d), d + 1))
        dossiers = capped(row(100 * PART / (d * SATISFIED_AT), d + 1), 100 * PART)
        return map(add, map(add, feedback, reversed(feedback)), dossiers)

    assert_rows(
        lambda d: map(
            FORMULAS.satisfaction, range(d + 1), range(d, -1, -1), repeat(d), range(d + 1), repeat(d)
        ),
        expected,
    )
    # Without feedback, two full parts.
    no_feedback = map(
        FORMULAS.satisfaction, repeat(0), repeat(0), repeat(0), range(LARGEST + 1), repeat(LARGEST)
    )
    dossiers = capped(row(100 * PART / (LARGEST * SATISFIED_AT), LARGEST + 1), 100 * PART)
    assert list(no_feedback) == [2 * 100 * PART + part for part in dossiers]


# Through the API: the scores are JSON numbers with two decimals.


@pytest.mark.usefixtures("world")
async def test_the_scorecard_answers_the_exact_scores(portal: AsyncClient, client: AsyncClient) -> None:  # noqa: F811
    at = "2023-07-03T09:00:00+07:00"
    events = [
        received(f"H-{i}", at, channel="online" if i < 3 else "direct", digitized=i < 24) for i in range(64)
    ]
    await send(portal, *events, step("H-63", "resolved", "2023-07-04T09:00:00+07:00"))
    response = await client.get(
        "/api/v1/stats/index-766", params={"unit": "313", "from": "2023-07-01", "to": "2023-07-31"}
    )
    assert response.status_code == 200
    body = response.json()
    scores = {g["group"]: g["score"] for g in body["groups"]}
    # 3 of 64 online with full service; 24 of 64 digitised and 0 of the 1 resolved with an e-result;
    # the one resolved on time of 64 (the rest overdue); no feedback, 64 of 64 dossiers satisfied.
    assert scores == {
        "publicity": None,
        "progress": 0.31,  # 20 / 64 = 0.3125
        "online_service": 1.13,
        "digitisation": 4.13,
        "satisfaction": 18.0,
        "online_payment": None,
    }
    assert '"score": 1.13' in response.text and '"score": 4.13' in response.text
    assert body["total"]["score"] == 23.57  # 0.31 + 1.13 + 4.13 + 18.00
