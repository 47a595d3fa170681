"""``/exports/report.html``: the evaluator's outcome summary as one self-contained HTML page.

The page carries everything it shows (inline CSS, charts as inline SVG drawn here on the server) and loads
nothing: no script, no font, no image from anywhere, so it opens the same from a saved file with no network.
Its Content-Security-Policy says so (``default-src 'none'``). Access and audit are those of the other exports:
a bearer token with ``evaluation:read`` bound to a project, the export audited in its own transaction before
any byte is sent (503 when it cannot be), figures drawn from the suppressed tables only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from pathlib import Path

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from ..domain.analysis import NO_DOSE
from ..domain.outcome_tables import AggregateCell
from ..domain.report import DoseTable, InstrumentReport, build_report
from .exports import authorised_export

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

WIDTH, HEIGHT = 560, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 24, 48


def timepoint_label(value: object) -> str:
    return "all follow-ups" if value is None else str(value).replace("_", " ")


def figure(value: float | None, decimals: int = 2) -> str:
    return "suppressed" if value is None else f"{value:.{decimals}f}"


def dose_svg(report: InstrumentReport, dose: DoseTable, bands: list[str]) -> Markup:
    """Mean change (with its 95 % interval) per dose band as an SVG chart; suppressed or empty bands are
    labelled, never drawn."""
    cells = {cell.key: cell for cell in dose.table.cells}
    shown = [cells[band] for band in bands if band in cells and _plottable(cells[band])]
    values = [0.0, report.reliable_change, -report.reliable_change]
    for plotted in shown:
        assert plotted.mean_change is not None
        values.append(plotted.mean_change)
        if plotted.mean_change_ci is not None:
            values += [plotted.mean_change_ci.lower, plotted.mean_change_ci.upper]
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or 1.0
    low, high = low - pad, high + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def y(value: float) -> float:
        return TOP + (high - value) / (high - low) * plot_h

    step = plot_w / max(len(bands), 1)
    title = f"{report.name}: mean change by sessions attended ({timepoint_label(dose.timepoint)})"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" class="dose-chart">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{LEFT}" y1="{y(0):.1f}" x2="{WIDTH - RIGHT}" y2="{y(0):.1f}" stroke="#555" />',
    ]
    for sign in (1, -1):
        level = y(sign * report.reliable_change)
        parts.append(
            f'<line x1="{LEFT}" y1="{level:.1f}" x2="{WIDTH - RIGHT}" y2="{level:.1f}" stroke="#999" '
            'stroke-dasharray="4 3" />'
        )
    for tick in (high - pad, 0.0, low + pad):
        parts.append(f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="11">{tick:.1f}</text>')
    parts.append(
        f'<text x="14" y="{TOP + plot_h / 2:.1f}" font-size="11" transform="rotate(-90 14 {TOP + plot_h / 2:.1f})" '
        'text-anchor="middle">mean change</text>'
    )
    for position, band in enumerate(bands):
        x = LEFT + step * (position + 0.5)
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" font-size="12">{band}</text>')
        cell = cells.get(band)
        if cell is None:
            note = "no responses"
        elif not _plottable(cell):
            note = "suppressed"
        else:
            note = f"n={cell.n_with_baseline}"
            assert cell.mean_change is not None
            if cell.mean_change_ci is not None:
                parts.append(
                    f'<line x1="{x:.1f}" y1="{y(cell.mean_change_ci.lower):.1f}" x2="{x:.1f}" '
                    f'y2="{y(cell.mean_change_ci.upper):.1f}" stroke="#1f4e79" stroke-width="2" />'
                )
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y(cell.mean_change):.1f}" r="5" fill="#1f4e79">'
                f"<title>{band}: {cell.mean_change:.2f}</title></circle>"
            )
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 32}" text-anchor="middle" font-size="11" '
            f'fill="#444">{note}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (built here from numbers and escaped labels)


def _plottable(cell: AggregateCell) -> bool:
    return cell.mean_change is not None and bool(cell.n_with_baseline)


async def report(request: Request) -> Response:
    authorised = await authorised_export(request, "html")
    if isinstance(authorised, Response):
        return authorised
    principal, prepared, sessions = authorised
    summary = await build_report(sessions, principal, prepared, datetime.now(UTC))
    charts = {
        (instrument.code, index): dose_svg(instrument, dose, summary.dose_bands)
        for instrument in summary.instruments
        for index, dose in enumerate(instrument.dose)
    }
    response = templates.TemplateResponse(
        request,
        "report.html",
        {"report": summary, "charts": charts, "figure": figure, "timepoint_label": timepoint_label, "no_dose": NO_DOSE},
    )
    response.headers["Content-Security-Policy"] = POLICY
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Disposition"] = f'inline; filename="{summary.project_slug}-report.html"'
    return response


routes = [Route("/exports/report.html", report, methods=["GET"])]
