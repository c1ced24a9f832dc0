"""Usage reports for a period: a summary computed from the metrics series (metrics.database_series and
metrics.instance_series), rendered as JSON, CSV (one row per sample point), HTML with inline SVG charts drawn here
(no JavaScript, nothing fetched) or PDF (reportlab, charts from reportlab.graphics). No HTTP here: the views pick
the format and send what render() returns."""
from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy.orm import Session

from webapp.services import Invalid
from webapp.services import metrics

FORMATS = {"json": "application/json", "csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8",
           "pdf": "application/pdf"}
MIB = 1024 * 1024

DB_COLUMNS = ("at", "resolution", "size_bytes", "connections", "connections_max", "tps", "rollbacks_per_s",
              "tuples_written_per_s", "cache_hit_ratio", "quota_mb", "quota_used", "deadlocks", "temp_bytes")
INSTANCE_COLUMNS = ("at", "resolution", "healthy", "connections", "max_connections", "timeline", "wal_bytes_per_s",
                    "max_lag_bytes", "max_lag_seconds")


@dataclass
class Chart:
    title: str
    unit: str
    values: list[tuple[float, float | None]]  # (unix time, value); None breaks the line
    label: str = ""  # names the line when there are several
    more: list[tuple[str, list[tuple[float, float | None]]]] = field(default_factory=list)  # (label, values)
    span: tuple[float, float] | None = None  # the time axis (unix times); default: the first and last value


@dataclass
class Report:
    kind: str  # database | instance
    instance: str
    database: str | None
    start: datetime
    end: datetime
    summary: dict
    points: list[dict]
    columns: tuple[str, ...]
    charts: list[Chart] = field(default_factory=list)
    rows: list[tuple[str, str]] = field(default_factory=list)  # the summary as label, text (html and pdf)
    statements: list[dict] | None = None  # a database's top statements now (services/statements.py); None: unknown

    @property
    def title(self) -> str:
        return (f"Database {self.database} on {self.instance}" if self.kind == "database"
                else f"Instance {self.instance}")


def check_format(fmt: str | None) -> str:
    fmt = (fmt or "json").lower()
    if fmt not in FORMATS:
        raise Invalid(f"unknown report format {fmt!r}: use one of {', '.join(FORMATS)}", field="format")
    return fmt


# -- summaries --------------------------------------------------------------------------------------------------
def _ts(p: dict) -> float:
    return datetime.fromisoformat(p["at"]).timestamp()


def _rate_total(points: list[dict], key: str) -> tuple[float, float]:
    """(sum of rate x interval, seconds covered) over the points that carry the rate: the counter's growth."""
    total = covered = 0.0
    for prev, p in zip(points, points[1:]):
        if p.get(key) is not None:
            dt = _ts(p) - _ts(prev)
            total += p[key] * dt
            covered += dt
    return total, covered


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _max(values):
    return max((v for v in values if v is not None), default=None)


def _min(values):
    return min((v for v in values if v is not None), default=None)


def health(instance_points: list[dict]) -> dict:
    """Failovers = changes of the primary's timeline between consecutive samples; availability = the share of the
    instance's samples that were healthy."""
    timelines = [p["timeline"] for p in instance_points if p.get("timeline") is not None]
    failovers = sum(1 for a, b in zip(timelines, timelines[1:]) if a != b)
    healthy = sum(1 for p in instance_points if p["healthy"])
    return {"failovers": failovers,
            "availability": healthy / len(instance_points) if instance_points else None,
            "instance_samples": len(instance_points)}


def database_report(s: Session, instance: str, database: str, start: datetime, end: datetime) -> Report:
    pts = metrics.database_series(s, instance, database, start, end)
    ipts = metrics.instance_series(s, instance, start, end)
    txn, covered = _rate_total(pts, "tps")
    rollbacks, _ = _rate_total(pts, "rollbacks_per_s")
    sizes = [p["size_bytes"] for p in pts]
    quota_used = [p["quota_used"] for p in pts]
    summary = {
        "samples": len(pts),
        "first_sample": pts[0]["at"] if pts else None,
        "last_sample": pts[-1]["at"] if pts else None,
        "size": {"first_bytes": sizes[0] if sizes else None, "last_bytes": sizes[-1] if sizes else None,
                 "delta_bytes": sizes[-1] - sizes[0] if sizes else None, "peak_bytes": _max(sizes)},
        "connections": {"peak": _max(p["connections_max"] for p in pts),
                        "mean": _mean(p["connections"] for p in pts)},
        "transactions": round(txn) if covered else None,
        "rollbacks": round(rollbacks) if covered else None,
        "tps": {"mean": txn / covered if covered else None, "peak": _max(p.get("tps") for p in pts)},
        "cache_hit_ratio": {"mean": _mean(p.get("cache_hit_ratio") for p in pts),
                            "min": _min(p.get("cache_hit_ratio") for p in pts)},
        "quota": {"quota_mb": pts[-1]["quota_mb"] if pts else None,
                  "peak_percent": 100 * _max(quota_used) if _max(quota_used) is not None else None,
                  "last_percent": 100 * quota_used[-1] if pts and quota_used[-1] is not None else None},
        **health(ipts),
    }
    sm = summary
    rows = [("Samples", f"{sm['samples']} ({_when(sm['first_sample'])} to {_when(sm['last_sample'])})"),
            ("Size (first / last)", f"{_bytes(sm['size']['first_bytes'])} / {_bytes(sm['size']['last_bytes'])}"),
            ("Size growth", _bytes(sm["size"]["delta_bytes"], signed=True)),
            ("Connections (peak / mean)", f"{_num(sm['connections']['peak'])} / {_num(sm['connections']['mean'])}"),
            ("Transactions (rollbacks)", f"{_num(sm['transactions'])} ({_num(sm['rollbacks'])})"),
            ("TPS (mean / peak)", f"{_num(sm['tps']['mean'])} / {_num(sm['tps']['peak'])}"),
            ("Cache hit ratio (mean / min)",
             f"{_pct(sm['cache_hit_ratio']['mean'])} / {_pct(sm['cache_hit_ratio']['min'])}"),
            ("Quota", f"{sm['quota']['quota_mb']} MiB, peak use {_num(sm['quota']['peak_percent'])}%"
             if sm["quota"]["quota_mb"] else "none"),
            ("Failovers", _num(sm["failovers"])),
            ("Availability", _pct(sm["availability"]))]
    charts = [Chart("Size", "MiB", [(_ts(p), p["size_bytes"] / MIB) for p in pts]),
              Chart("Connections", "sessions", [(_ts(p), p["connections"]) for p in pts]),
              Chart("Transactions per second", "tps", [(_ts(p), p.get("tps")) for p in pts]),
              Chart("Cache hit ratio", "%", [(_ts(p), None if p.get("cache_hit_ratio") is None
                                              else 100 * p["cache_hit_ratio"]) for p in pts])]
    if any(q is not None for q in quota_used):
        charts.append(Chart("Quota use", "%", [(_ts(p), None if p["quota_used"] is None else 100 * p["quota_used"])
                                               for p in pts]))
    return Report("database", instance, database, start, end, summary, pts, DB_COLUMNS, charts, rows)


def instance_report(s: Session, instance: str, start: datetime, end: datetime) -> Report:
    pts = metrics.instance_series(s, instance, start, end)
    wal, covered = _rate_total(pts, "wal_bytes_per_s")
    summary = {
        "samples": len(pts),
        "first_sample": pts[0]["at"] if pts else None,
        "last_sample": pts[-1]["at"] if pts else None,
        "connections": {"peak": _max(p["connections"] for p in pts), "mean": _mean(p["connections"] for p in pts),
                        "max_connections": pts[-1]["max_connections"] if pts else None},
        "wal": {"bytes": round(wal) if covered else None, "mean_bytes_per_s": wal / covered if covered else None,
                "peak_bytes_per_s": _max(p.get("wal_bytes_per_s") for p in pts)},
        "lag": {"peak_bytes": _max(p["max_lag_bytes"] for p in pts),
                "mean_bytes": _mean(p["max_lag_bytes"] for p in pts),
                "peak_seconds": _max(p["max_lag_seconds"] for p in pts)},
        **health(pts),
    }
    sm = summary
    rows = [("Samples", f"{sm['samples']} ({_when(sm['first_sample'])} to {_when(sm['last_sample'])})"),
            ("Connections (peak / mean / max)", f"{_num(sm['connections']['peak'])} / "
                                                f"{_num(sm['connections']['mean'])} / "
                                                f"{_num(sm['connections']['max_connections'])}"),
            ("WAL written", _bytes(sm["wal"]["bytes"])),
            ("WAL rate (mean / peak)", f"{_bytes(sm['wal']['mean_bytes_per_s'])}/s / "
                                       f"{_bytes(sm['wal']['peak_bytes_per_s'])}/s"),
            ("Replication lag (peak)", f"{_bytes(sm['lag']['peak_bytes'])}, {_num(sm['lag']['peak_seconds'])} s"),
            ("Failovers", _num(sm["failovers"])),
            ("Availability", _pct(sm["availability"]))]
    charts = [Chart("Connections", "sessions", [(_ts(p), p["connections"]) for p in pts]),
              Chart("WAL rate", "KiB/s", [(_ts(p), None if p.get("wal_bytes_per_s") is None
                                           else p["wal_bytes_per_s"] / 1024) for p in pts]),
              Chart("Replication lag", "KiB", [(_ts(p), None if p["max_lag_bytes"] is None
                                                else p["max_lag_bytes"] / 1024) for p in pts]),
              Chart("Healthy", "1 = yes", [(_ts(p), 1 if p["healthy"] else 0) for p in pts])]
    return Report("instance", instance, None, start, end, summary, pts, INSTANCE_COLUMNS, charts, rows)


# -- text helpers ---------------------------------------------------------------------------------------------------
def _num(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, int) or float(v).is_integer():
        return str(int(v))
    return f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def _bytes(v, signed: bool = False) -> str:
    if v is None:
        return "n/a"
    sign = "+" if signed and v >= 0 else ("-" if v < 0 else "")
    a = abs(v)
    for unit, size in (("GiB", 1024 ** 3), ("MiB", MIB), ("KiB", 1024)):
        if a >= size:
            return f"{sign}{a / size:.2f} {unit}"
    return f"{sign}{a:.0f} B"


def _when(iso: str | None) -> str:
    return datetime.fromisoformat(iso).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if iso else "n/a"


def _clock(ts: float, span: float) -> str:
    d = datetime.fromtimestamp(ts, tz=timezone.utc)
    if span >= 86400:
        return d.strftime("%m-%d %H:%M")
    return d.strftime("%H:%M:%S" if span < 600 else "%H:%M")


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    mag = 10 ** len(str(int(v))) / 10 if v >= 1 else 1.0
    for m in (1, 2, 4, 8, 10):  # quarters of these are round numbers
        if v <= m * mag:
            return m * mag
    return 10 * mag


def _segments(values):
    """Runs of consecutive known values, so a missing rate leaves a gap instead of a false line."""
    seg = []
    for t, v in values:
        if v is None:
            if seg:
                yield seg
            seg = []
        else:
            seg.append((t, v))
    if seg:
        yield seg


# -- rendering ------------------------------------------------------------------------------------------------------
def render(report: Report, fmt: str) -> tuple[bytes, str, str]:
    """(body, media type, file name)."""
    name = f"{report.instance}-{report.database}" if report.database else report.instance
    stamp = report.start.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S")
    filename = f"report-{name}-{stamp}.{fmt}"
    body = {"json": lambda r: json.dumps(as_dict(r)).encode(), "csv": to_csv, "html": to_html,
            "pdf": to_pdf}[fmt](report)
    return body, FORMATS[fmt], filename


def as_dict(report: Report) -> dict:
    return {"kind": report.kind, "instance": report.instance,
            **({"database": report.database} if report.database else {}),
            "from": report.start.isoformat(), "to": report.end.isoformat(), "summary": report.summary,
            **({"top_statements": report.statements} if report.kind == "database" else {}),
            "points": report.points}


STATEMENT_COLUMNS = ("Statement", "Calls", "Total ms", "Mean ms")


def _statement_rows(report: Report) -> list[tuple[str, str, str, str]]:
    return [(st["query"][:300], str(st["calls"]), f"{st['total_time_ms']:.1f}", f"{st['mean_time_ms']:.2f}")
            for st in report.statements or []]


def to_csv(report: Report) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(report.columns)
    for p in report.points:
        w.writerow(["" if p.get(c) is None else p[c] for c in report.columns])
    return buf.getvalue().encode()


W, H, ML, MR, MT, MB = 640, 190, 64, 16, 28, 30  # chart size and margins (left, right, top, bottom)
COLOURS = ("#1f6fb4", "#d9730d", "#2e8b57", "#9b59b6")


def _axes(chart: Chart):
    known = [(t, v) for vals in [chart.values, *(v for _, v in chart.more)] for t, v in vals if v is not None]
    if not known:
        return None
    # every chart of a report on the same time axis
    t0, t1 = chart.span or ((chart.values or known)[0][0], (chart.values or known)[-1][0])
    if t1 <= t0:
        t1 = t0 + 1
    ymax = _nice_max(max(v for _, v in known))
    return t0, t1, ymax


def svg_chart(chart: Chart) -> str:
    e = html.escape
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           f'role="img" aria-label="{e(chart.title)}" font-family="sans-serif" font-size="11">',
           f'<text x="{ML}" y="16" font-size="13" font-weight="bold">{e(chart.title)} ({e(chart.unit)})</text>']
    axes = _axes(chart)
    pw, ph = W - ML - MR, H - MT - MB
    out.append(f'<rect x="{ML}" y="{MT}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#bbb"/>')
    if axes is None:
        out.append(f'<text x="{ML + pw / 2}" y="{MT + ph / 2}" text-anchor="middle" fill="#888">no data</text>')
        return "".join(out) + "</svg>"
    t0, t1, ymax = axes

    def x(t):
        return ML + (t - t0) / (t1 - t0) * pw

    def y(v):
        return MT + ph - min(v, ymax) / ymax * ph

    for i in range(5):
        v = ymax * i / 4
        out.append(f'<line x1="{ML}" y1="{y(v):.1f}" x2="{ML + pw}" y2="{y(v):.1f}" stroke="#e4e4e4"/>'
                   f'<text x="{ML - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{e(_num(v))}</text>')
        t = t0 + (t1 - t0) * i / 4
        anchor = "end" if i == 4 else "middle"
        out.append(f'<text x="{x(t):.1f}" y="{H - 10}" text-anchor="{anchor}">{e(_clock(t, t1 - t0))}</text>')
    lines = [(chart.label, chart.values), *chart.more]
    for i, (label, values) in enumerate(lines):
        colour = COLOURS[i % len(COLOURS)]
        for seg in _segments(values):
            if len(seg) == 1:
                out.append(f'<circle cx="{x(seg[0][0]):.1f}" cy="{y(seg[0][1]):.1f}" r="2" fill="{colour}"/>')
            else:
                pts = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in seg)
                out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        if label and len(lines) > 1:
            out.append(f'<text x="{W - MR}" y="16" dx="{-150 * (len(lines) - 1 - i)}" text-anchor="end" '
                       f'fill="{colour}">{e(label)}</text>')
    return "".join(out) + "</svg>"


def to_html(report: Report) -> bytes:
    e = html.escape
    period = f"{_when(report.start.isoformat())} to {_when(report.end.isoformat())}"
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in report.rows)
    charts = "".join(f"<figure>{svg_chart(c)}</figure>" for c in report.charts) if report.points else \
        "<p>No samples in this period.</p>"
    statements = ""
    if report.kind == "database":
        body = "".join("<tr>" + "".join(f"<td>{e(v)}</td>" for v in r) + "</tr>" for r in _statement_rows(report))
        statements = ("<h2>Top statements (now)</h2>" + (
            f"<table><tr>{''.join(f'<th>{c}</th>' for c in STATEMENT_COLUMNS)}</tr>{body}</table>" if body else
            "<p>None recorded.</p>" if report.statements is not None else "<p>The instance did not answer.</p>"))
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(report.title)}: report</title>
<style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}
th,td{{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:left}}th{{font-weight:normal;color:#555}}
figure{{margin:1em 0}}</style></head>
<body><h1>{e(report.title)}</h1><p>Period: {e(period)}</p>
<table>{rows}</table>
{statements}
{charts}
</body></html>
"""
    return doc.encode()


def to_pdf(report: Report) -> bytes:
    from reportlab.graphics.charts.lineplots import LinePlot
    from reportlab.graphics.shapes import Drawing, String
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, title=f"{report.title}: report", author="pgaas",
                            leftMargin=18 * mm, rightMargin=18 * mm, topMargin=16 * mm, bottomMargin=16 * mm)
    e = html.escape  # Paragraph takes a small markup language: escape names and values
    story = [Paragraph(e(report.title), styles["Title"]),
             Paragraph(f"Period: {e(_when(report.start.isoformat()))} to {e(_when(report.end.isoformat()))}",
                       styles["Normal"]), Spacer(1, 4 * mm)]
    table = Table([[k, v] for k, v in report.rows], colWidths=[62 * mm, 110 * mm])
    table.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), "Helvetica", 9),
                               ("TEXTCOLOR", (0, 0), (0, -1), colors.HexColor("#555555")),
                               ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#dddddd")),
                               ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story += [table, Spacer(1, 6 * mm)]
    if report.kind == "database" and report.statements:
        cells = [[Paragraph(e(r[0]), styles["Code"]), *r[1:]] for r in _statement_rows(report)]
        top = Table([list(STATEMENT_COLUMNS), *cells], colWidths=[112 * mm, 18 * mm, 22 * mm, 20 * mm])
        top.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), "Helvetica", 8), ("VALIGN", (0, 0), (-1, -1), "TOP"),
                                 ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#dddddd"))]))
        story += [Paragraph("Top statements (now)", styles["Heading2"]), top, Spacer(1, 6 * mm)]
    if not report.points:
        story.append(Paragraph("No samples in this period.", styles["Normal"]))
    width = doc.width
    for chart in report.charts if report.points else []:
        d = Drawing(width, 48 * mm)
        d.add(String(0, 48 * mm - 11, f"{chart.title} ({chart.unit})", fontName="Helvetica-Bold", fontSize=10))
        axes = _axes(chart)
        if axes is None:
            d.add(String(width / 2, 20 * mm, "no data", fontName="Helvetica", fontSize=9, textAnchor="middle",
                         fillColor=colors.grey))
        else:
            t0, t1, ymax = axes
            lp = LinePlot()
            lp.x, lp.y, lp.width, lp.height = 14 * mm, 8 * mm, width - 18 * mm, 32 * mm
            segs = [[(t - t0, v) for t, v in seg] for seg in _segments(chart.values)]
            lp.data = segs
            for i in range(len(segs)):
                lp.lines[i].strokeColor = colors.HexColor("#1f6fb4")
                lp.lines[i].strokeWidth = 1.2
            lp.xValueAxis.valueMin, lp.xValueAxis.valueMax = 0, t1 - t0
            lp.xValueAxis.valueSteps = [(t1 - t0) * i / 4 for i in range(5)]
            lp.xValueAxis.labelTextFormat = lambda v, t0=t0, span=t1 - t0: _clock(t0 + v, span)
            lp.xValueAxis.labels.fontSize = 7
            lp.yValueAxis.valueMin, lp.yValueAxis.valueMax = 0, ymax
            lp.yValueAxis.valueSteps = [ymax * i / 4 for i in range(5)]
            lp.yValueAxis.labelTextFormat = _num
            lp.yValueAxis.labels.fontSize = 7
            lp.yValueAxis.visibleGrid = True
            lp.yValueAxis.gridStrokeColor = colors.HexColor("#e4e4e4")
            d.add(lp)
        story += [d, Spacer(1, 3 * mm)]
    doc.build(story)
    return buf.getvalue()
