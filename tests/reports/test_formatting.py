from datetime import date

import pytest

from app.calendar.periods import Period, Scheme, parse_period
from app.reports.charts import bar_chart
from app.reports.formatting import count, in_sentence, number, percent, period_phrase
from app.reports.official import DocumentForm, number_line, place_and_date
from app.reports.router import ReportFormat, negotiate


def test_numbers_as_vietnamese_reports_print_them() -> None:
    assert [number(n) for n in (0, 999, 1473, 19497, 1234567)] == ["0", "999", "1.473", "19.497", "1.234.567"]
    assert [count(n) for n in (0, 2, 9, 10, 21, 1473)] == ["00", "02", "09", "10", "21", "1.473"]
    assert [percent(p) for p in (99.46, 100.0, 0.5, None)] == ["99,46%", "100,00%", "0,50%", "–"]


@pytest.mark.parametrize(
    ("label", "phrase"),
    [
        ("2023-Q3", "quý III năm 2023"),
        ("2023-Q4", "quý IV năm 2023"),
        ("2023-H1", "6 tháng đầu năm 2023"),
        ("2023-H2", "6 tháng cuối năm 2023"),
        ("2023-07", "tháng 7 năm 2023"),
        ("2023", "năm 2023"),
    ],
)
def test_period_phrases(label: str, phrase: str) -> None:
    assert period_phrase(parse_period(label, Scheme.calendar)) == phrase


def test_a_custom_period_is_written_with_its_dates() -> None:
    period = Period("2023-09-01..2023-09-30", Scheme.calendar, date(2023, 9, 1), date(2023, 10, 1))
    assert period_phrase(period) == "từ ngày 01/09/2023 đến ngày 30/09/2023"


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, ReportFormat.markdown),
        ("*/*", ReportFormat.markdown),
        ("text/html,application/xhtml+xml,*/*;q=0.8", ReportFormat.html),
        ("text/*", ReportFormat.markdown),
        ("text/markdown;q=0.5, text/html", ReportFormat.html),
        ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ReportFormat.xlsx),
        ("application/*;q=0.9, text/html;q=0.1", ReportFormat.xlsx),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", ReportFormat.docx),
        ("application/json", None),
        ("text/html;q=0", None),
    ],
)
def test_accept_negotiation(accept: str | None, chosen: ReportFormat | None) -> None:
    assert negotiate(accept) == chosen


def test_bars_are_as_tall_as_their_percentage() -> None:
    chart = bar_chart("Tỷ lệ", ["Q1", "Q2"], {"district": [50.0, None], "commune": [100.0, 25.0]}, {})
    assert [bar.series for bar in chart.bars] == ["district", "commune", "commune"]
    plot = chart.grid[0][0] - chart.grid[-1][0]
    heights = [bar.height for bar in chart.bars]
    assert heights == [
        pytest.approx(plot / 2, abs=0.1),
        pytest.approx(plot, abs=0.1),
        pytest.approx(plot / 4, abs=0.1),
    ]
    assert all(bar.y + bar.height == pytest.approx(chart.baseline, abs=0.1) for bar in chart.bars)
    assert chart.bars[0].label == "50,00"


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("Huyện Kiến Thụy", "huyện Kiến Thụy"),
        ("Thành phố Hải Phòng", "thành phố Hải Phòng"),
        ("Thị trấn Núi Đối", "thị trấn Núi Đối"),
        ("Xã Tiên Thắng", "xã Tiên Thắng"),
        ("Đặc khu Bạch Long Vĩ", "đặc khu Bạch Long Vĩ"),
        ("Xãhội", "Xãhội"),  # a kind is a whole word
        ("Hải Phòng", "Hải Phòng"),
    ],
)
def test_unit_names_inside_a_sentence(name: str, written: str) -> None:
    assert in_sentence(name) == written


@pytest.mark.parametrize(
    ("issued_on", "place", "line"),
    [
        (date(2023, 10, 5), "Kiến Thụy", "Kiến Thụy, ngày 05 tháng 10 năm 2023"),
        (date(2024, 2, 15), "Hải Phòng", "Hải Phòng, ngày 15 tháng 02 năm 2024"),
        (date(2024, 3, 1), None, "…, ngày 01 tháng 3 năm 2024"),
        (None, "Kiến Thụy", "Kiến Thụy, ngày … tháng … năm …"),
    ],
)
def test_place_and_date_as_the_decree_writes_them(
    issued_on: date | None, place: str | None, line: str
) -> None:
    assert place_and_date(DocumentForm(issuer="X", place=place, issued_on=issued_on)) == line


def test_the_number_is_always_left_to_the_registry() -> None:
    assert number_line(DocumentForm(issuer="X", code="BC-PNV")) == "Số: …/BC-PNV"
    assert number_line(DocumentForm(issuer="X")) == "Số: …/BC-…"
