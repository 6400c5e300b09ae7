"""Grouped bar charts of percentages, laid out for inline SVG (drawn by the HTML template)."""

from dataclasses import dataclass

WIDTH, HEIGHT = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 36, 56
COLOURS = {"province": "#7b3294", "district": "#1f78b4", "commune": "#33a02c"}


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    label: str
    """The value as printed above the bar."""
    series: str


@dataclass(frozen=True)
class Chart:
    title: str
    width: int
    height: int
    bars: list[Bar]
    categories: list[tuple[float, str]]
    """(x of the group's centre, label)."""
    grid: list[tuple[float, str]]
    """(y, label) of the horizontal lines at 0, 25, 50, 75 and 100 %."""
    legend: list[tuple[str, str]]
    """(colour, series name)."""
    baseline: float


def bar_chart(
    title: str,
    categories: list[str],
    series: dict[str, list[float | None]],
    names: dict[str, str],
) -> Chart:
    """Percentages (0–100) of each series per category; a missing value draws no bar."""
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    baseline = TOP + plot_height
    group_width = plot_width / max(len(categories), 1)
    bar_width = group_width * 0.7 / max(len(series), 1)
    bars = []
    for position, _category in enumerate(categories):
        group_left = LEFT + position * group_width + group_width * 0.15
        for number, (key, values) in enumerate(series.items()):
            value = values[position]
            if value is None:
                continue
            height = plot_height * max(0.0, min(value, 100.0)) / 100
            bars.append(
                Bar(
                    x=round(group_left + number * bar_width, 1),
                    y=round(baseline - height, 1),
                    width=round(bar_width - 2, 1),
                    height=round(height, 1),
                    colour=COLOURS.get(key, "#666666"),
                    label=f"{value:.2f}".replace(".", ","),
                    series=names.get(key, key),
                )
            )
    return Chart(
        title=title,
        width=WIDTH,
        height=HEIGHT,
        bars=bars,
        categories=[
            (round(LEFT + (position + 0.5) * group_width, 1), label)
            for position, label in enumerate(categories)
        ],
        grid=[
            (round(baseline - plot_height * share / 100, 1), f"{share}%") for share in (0, 25, 50, 75, 100)
        ],
        legend=[(COLOURS.get(key, "#666666"), names.get(key, key)) for key in series],
        baseline=baseline,
    )
