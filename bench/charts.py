"""SVG charts of a benchmark run, with nothing but the standard library: line charts
(throughput against connections, memory over time) and grouped bars (latency
percentiles). Each chart is a self-contained file that a browser or GitHub renders.
"""
import math
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 900, 420
LEFT, RIGHT, TOP, BOTTOM = 80, 300, 50, 60
# Colour-blind-safe (Okabe-Ito), one per series in order; dashes tell floors apart.
COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"]


def nice_step(value):
    """The smallest of 1, 2, 2.5, 5 × 10^k at or above `value`."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def axis_top(largest, ticks=5):
    """A y axis' top and tick count: whole nice steps just above the largest value."""
    step = nice_step(largest / ticks)
    count = max(1, math.ceil(largest * 1.02 / step))
    return step * count, count


def _frame(title, x_label, y_label, y_top, y_ticks):
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="24" text-anchor="middle" font-size="15">{escape(title)}</text>',
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 16}" text-anchor="middle">{escape(x_label)}</text>',
        f'<text transform="translate(18,{TOP + plot_h / 2}) rotate(-90)" text-anchor="middle">{escape(y_label)}</text>',
    ]
    for i in range(y_ticks + 1):
        value = y_top * i / y_ticks
        y = TOP + plot_h - plot_h * i / y_ticks
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        label = f"{value:g}"
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    parts.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}" stroke="black"/>')
    parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="black"/>')
    return parts, plot_w, plot_h


def _legend(parts, names, dashed=()):
    for i, name in enumerate(names):
        y = TOP + 10 + 20 * i
        x = WIDTH - RIGHT + 14
        dash = ' stroke-dasharray="6,4"' if name in dashed else ""
        parts.append(f'<line x1="{x}" x2="{x + 22}" y1="{y}" y2="{y}" stroke="{COLOURS[i % len(COLOURS)]}" '
                     f'stroke-width="3"{dash}/>')
        parts.append(f'<text x="{x + 28}" y="{y + 4}">{escape(name)}</text>')


def line_chart(path, title, x_label, y_label, series, log2_x=False, dashed=(), note=None, limit=None):
    """`series`: {name: [(x, y), ...]}; a log2 x axis spaces 1, 2, 4, 8, 16 evenly;
    `limit`: (y, label), a bound drawn across the plot."""
    points = [p for values in series.values() for p in values]
    if not points:
        return
    xs = sorted({x for x, _ in points})
    scale_x = (lambda x: math.log2(x)) if log2_x else (lambda x: x)
    x_min, x_max = scale_x(xs[0]), scale_x(xs[-1])
    span = (x_max - x_min) or 1.0
    y_top, y_ticks = axis_top(max([y for _, y in points] + ([limit[0]] if limit else [])))
    parts, plot_w, plot_h = _frame(title, x_label, y_label, y_top, y_ticks)
    to_x = lambda x: LEFT + plot_w * (scale_x(x) - x_min) / span
    to_y = lambda y: TOP + plot_h - plot_h * y / y_top
    if log2_x:
        ticks = xs
    else:
        step = nice_step((xs[-1] - xs[0]) / 8)
        ticks = [xs[0] + step * i for i in range(int((xs[-1] - xs[0]) / step) + 1)]
    for x in ticks:
        parts.append(f'<text x="{to_x(x):.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">{x:g}</text>')
    for i, (name, values) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        dash = ' stroke-dasharray="6,4"' if name in dashed else ""
        line = " ".join(f"{to_x(x):.1f},{to_y(y):.1f}" for x, y in sorted(values))
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2.5"{dash}/>')
        if len(values) <= 12:
            for x, y in values:
                parts.append(f'<circle cx="{to_x(x):.1f}" cy="{to_y(y):.1f}" r="3.5" fill="{colour}"/>')
    if limit:
        y = to_y(limit[0])
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#B00" '
                     'stroke-dasharray="3,3"/>')
        parts.append(f'<text x="{LEFT + plot_w - 4}" y="{y - 5:.1f}" text-anchor="end" fill="#B00">'
                     f'{escape(limit[1])}</text>')
    _legend(parts, list(series), dashed)
    if note:
        parts.append(f'<text x="{LEFT}" y="{HEIGHT - 2}" font-size="10" fill="#555">{escape(note)}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def bar_chart(path, title, y_label, groups, series_names, note=None):
    """`groups`: [(group label, [value per series]), ...], bars side by side per group."""
    values = [v for _, vs in groups for v in vs if v is not None]
    if not values:
        return
    y_top, y_ticks = axis_top(max(values))
    parts, plot_w, plot_h = _frame(title, "", y_label, y_top, y_ticks)
    slot = plot_w / len(groups)
    bar = slot * 0.8 / len(series_names)
    for g, (label, vs) in enumerate(groups):
        x0 = LEFT + slot * g + slot * 0.1
        parts.append(f'<text x="{LEFT + slot * (g + 0.5):.1f}" y="{TOP + plot_h + 18}" '
                     f'text-anchor="middle">{escape(label)}</text>')
        for s, value in enumerate(vs):
            if value is None:
                continue
            height = plot_h * value / y_top
            x = x0 + bar * s
            parts.append(f'<rect x="{x:.1f}" y="{TOP + plot_h - height:.1f}" width="{bar - 2:.1f}" '
                         f'height="{height:.1f}" fill="{COLOURS[s % len(COLOURS)]}"/>')
            parts.append(f'<text x="{x + bar / 2 - 1:.1f}" y="{TOP + plot_h - height - 4:.1f}" '
                         f'text-anchor="middle" font-size="10">{value:.2f}</text>')
    _legend(parts, series_names)
    if note:
        parts.append(f'<text x="{LEFT}" y="{HEIGHT - 2}" font-size="10" fill="#555">{escape(note)}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")
