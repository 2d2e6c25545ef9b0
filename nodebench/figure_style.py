"""One look for every figure nodebench draws (run figures, paper figures, benchmark figures).

- **Fixed method styles**: each method has one colour and marker in every figure of every report (a fixed
  table, not a per-figure colour cycle); methods of one family share a hue (fixed-step discretise-then-optimise
  solvers in blues, adjoints in oranges, Gaussian-quadrature adjoints in greens, backprop through adaptive
  solvers in reds/purples, SNODE in black). A configuration label (``gq width=3000``) has its method's style;
  where one figure holds several configurations of a method (:func:`label_styles`), they get shades of the
  method's colour and their own markers.
- **Honest axes** (:func:`finish`, applied by :func:`nodebench.plots.save_figure`): a log scale only where the
  data span at least one decade; no offset text (``ScalarFormatter(useOffset=False)``); data that vary by less
  than :data:`ROUND_OFF` (relative) are drawn flat and annotated as round-off rather than as a trend.
- **Readable text**: long titles, axis labels and category tick labels are wrapped to the axes' width; the
  layout is constrained, so nothing is cut off. A legend of more than :data:`LEGEND_INSIDE` entries (a sweep
  of many configurations), or one that would cover much of its axes (long configuration labels:
  :data:`LEGEND_MAX_WIDTH`, :data:`LEGEND_MAX_AREA`), moves below the axes, and the figure grows to hold it,
  so the axes keep their size.
- **Reference lines** (:func:`reference_line`) differ from data and from each other in style and colour, and
  are labelled in the legend. **Spread over seeds** is drawn as a min–max band (:func:`band`).
- **Memory that was not measured** (:func:`nodebench.records.measured_memory`) is a gap with the words
  "not measured", never 0.
"""

from __future__ import annotations

import textwrap
import zlib

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: Relative spread below which plotted values count as round-off (drawn flat, annotated).
ROUND_OFF = 1e-6
#: The most legend entries drawn inside the axes; a longer legend goes below them (:func:`finish`).
LEGEND_INSIDE = 10
#: The largest share of its axes' width, and of their area, that a legend may take inside them; a wider or
#: larger one (long configuration labels) goes below them (:func:`finish`).
LEGEND_MAX_WIDTH, LEGEND_MAX_AREA = 0.6, 0.35

#: method → (colour, marker): one entry per registered method, grouped by family hue.
METHOD_STYLES: dict[str, tuple[str, str]] = {
    # discretise-then-optimise: backprop through fixed-step solvers
    "rk4": ("#1f77b4", "o"), "rk4_38": ("#6baed6", "s"), "euler": ("#08306b", "v"), "midpoint": ("#4292c6", "^"),
    # optimise-then-discretise: continuous adjoints
    "adjoint": ("#ff7f0e", "D"), "seminorm": ("#fdae6b", "d"), "sde_adjoint": ("#d94801", "P"),
    # Gaussian-quadrature adjoints
    "gq": ("#2ca02c", "*"), "gq_batched": ("#74c476", "X"),
    # backprop through adaptive solvers
    "direct": ("#d62728", "<"), "bosh3": ("#9467bd", ">"), "adaptive_heun": ("#c5b0d5", "h"),
    "sde_direct": ("#e377c2", "p"),
    # spectral
    "snode": ("#000000", "8"),
    # d^K z/dt^K (the Taylor-mode cost benchmark): eager and compiled Taylor mode, nested jvp, JAX jet
    "taylor": ("#636363", "o"), "taylor_compiled": ("#393b79", "D"), "taylor_fused": ("#bcbd22", "*"),
    "jvp": ("#e7969c", "v"), "jax_jet": ("#17becf", "s"),
}
_FALLBACK_COLOURS = ["#8c564b", "#17becf", "#bcbd22", "#7f7f7f", "#e7969c", "#393b79", "#637939", "#843c39"]
_FALLBACK_MARKERS = "osD^v<>pPXh*"
_VARIANT_STYLES = ["-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3))]
#: (colour, line style) of the reference lines of one axes, in order: none equals a method's style.
REFERENCE_STYLES = [("0.15", (0, (6, 3))), ("#b8860b", (0, (1, 2))), ("#8b008b", (0, (8, 2, 1, 2))),
                    ("0.55", (0, (3, 1, 1, 1)))]


#: The matplotlib settings of every nodebench figure, in force only while nodebench draws (:func:`styled`).
STYLE = {"axes.formatter.useoffset": False, "figure.constrained_layout.use": True, "axes.grid": True,
         "grid.alpha": 0.3, "legend.fontsize": 8, "axes.titlesize": 10}


def styled():
    """:data:`STYLE` in force for a ``with`` block or a decorated function (``@styled()``), and the user's
    matplotlib settings as they were afterwards: nodebench never changes the global backend or rcParams. Wrap
    the whole drawing, saving included (tick lines are made as the figure is drawn)."""
    return matplotlib.rc_context(STYLE)


def subplots(nrows: int = 1, ncols: int = 1, *, figsize=None, **kwargs):
    """A figure and its axes like ``pyplot.subplots``, but not registered with pyplot (nothing pops up, nothing
    to close) and drawn by Agg whatever the user's backend; call it under :func:`styled`."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def _stable_index(text: str, n: int) -> int:
    return zlib.crc32(text.encode()) % n


def method_style(label: str) -> dict:
    """Line/marker keyword arguments for a method or configuration label (``"gq width=3000"``): the method's
    fixed colour and marker. Unknown names get a colour and marker from a hash of the name, so they are still
    the same in every figure."""
    method = str(label).partition(" ")[0]
    if method in METHOD_STYLES:
        colour, marker = METHOD_STYLES[method]
    else:
        colour = _FALLBACK_COLOURS[_stable_index(method, len(_FALLBACK_COLOURS))]
        marker = _FALLBACK_MARKERS[_stable_index(method, len(_FALLBACK_MARKERS))]
    return {"color": colour, "marker": marker, "ls": "-"}


def label_styles(labels) -> dict[str, dict]:
    """Styles for the labels of one figure: :func:`method_style`, and where a method has several labels
    (configurations), shades of its colour, distinct markers and line styles, in sorted label order."""
    labels = sorted(dict.fromkeys(map(str, labels)))
    by_method: dict[str, list[str]] = {}
    for label in labels:
        by_method.setdefault(label.partition(" ")[0], []).append(label)
    styles = {}
    for method, group in by_method.items():
        base = method_style(method)
        for i, (label, colour) in enumerate(zip(group, shades(base["color"], len(group)))):
            variant = {"color": colour, "ls": _VARIANT_STYLES[i % len(_VARIANT_STYLES)],
                       "marker": VARIANT_MARKERS[i % len(VARIANT_MARKERS)]}
            styles[label] = base if len(group) == 1 else variant
    return styles


def method_colors(methods) -> dict[str, str]:
    """Label → its colour (:func:`label_styles`)."""
    return {m: s["color"] for m, s in label_styles(methods).items()}


def shades(colour: str, n: int) -> list:
    """``n`` shades of ``colour``, dark to light: the variants of one method (tolerances, step sizes) keep the
    method's hue and stay distinguishable."""
    rgb = np.array(matplotlib.colors.to_rgb(colour))
    if n <= 1:
        return [tuple(rgb)]
    dark, light = 0.65 * rgb, rgb + 0.55 * (1.0 - rgb)
    return [tuple(dark + f * (light - dark)) for f in np.linspace(0.0, 1.0, n)]


#: Markers for the variants of one method, in order (filled, then open shapes).
VARIANT_MARKERS = "o^sDvP*X"


def reference_line(ax, y: float, label: str, index: int = 0, *, vertical: bool = False):
    """A horizontal (or vertical) reference line, the ``index``-th of its axes: its own colour and dash
    pattern, labelled for the legend."""
    colour, ls = REFERENCE_STYLES[index % len(REFERENCE_STYLES)]
    draw = ax.axvline if vertical else ax.axhline
    return draw(y, color=colour, ls=ls, lw=1.3, label=label, zorder=1.5)


def band(ax, x, median, low, high, label: str, *, method: str | None = None, lw: float = 1.3, **style):
    """Median line with a shaded min–max band over seeds (a single seed: just the line), in the style of
    ``method`` (default: the label's), overridden by ``style``."""
    style = {**method_style(method or label), **style}
    line, = ax.plot(x, median, color=style["color"], marker=style["marker"], ls=style["ls"], ms=4, lw=lw,
                    label=label)
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    if np.any(high > low):
        ax.fill_between(x, low, high, color=style["color"], alpha=0.18, lw=0)
    return line


def mark_not_measured(ax, positions, *, y: float | None = None) -> None:
    """Write "not measured" at the category positions whose value is missing."""
    y0, y1 = ax.get_ylim()
    for x in positions:
        ax.text(x, y if y is not None else y0 + 0.05 * (y1 - y0), "not measured", rotation=90, ha="center",
                va="bottom", fontsize=7, color="0.35")


def _wrap_width(ax, fontsize: float, axis: str = "x") -> int:
    box = ax.get_position()
    fig_w, fig_h = ax.figure.get_size_inches()
    inches = box.width * fig_w if axis == "x" else box.height * fig_h
    return max(12, int(inches * 72 / (0.55 * fontsize)))


def _wrap_text(ax) -> None:
    title = ax.title
    if title.get_text():
        title.set_text(textwrap.fill(" ".join(title.get_text().split()), _wrap_width(ax, title.get_fontsize())))
    for label, axis in ((ax.xaxis.label, "x"), (ax.yaxis.label, "y")):
        if label.get_text():
            width = _wrap_width(ax, label.get_fontsize(), axis)
            label.set_text(textwrap.fill(" ".join(label.get_text().split()), width))
    if isinstance(ax.xaxis.get_major_formatter(), matplotlib.ticker.ScalarFormatter):
        return  # numbers: their ticks are spaced (RoomyLocator), never wrapped or frozen
    ticks = ax.get_xticklabels()
    texts = [t.get_text() for t in ticks]
    if texts and any(texts) and ax.get_xscale() != "log" and ticks[0].get_rotation() == 0:
        slot = _wrap_width(ax, ticks[0].get_fontsize()) // max(len(texts), 1)
        if any(len(t) > slot for t in texts):
            wrapped = [textwrap.fill(t, max(slot, 6), break_long_words=False, break_on_hyphens=False) for t in texts]
            if any(len(line) > max(slot, 6) for text in wrapped for line in text.splitlines()):
                wrapped = [textwrap.fill(t, 28, break_long_words=False) for t in texts]  # too long: stand them up
                ax.set_xticks(ax.get_xticks(), wrapped, rotation=90)
            else:
                ax.set_xticks(ax.get_xticks(), wrapped)


def _honest_scale(ax, axis: str) -> None:
    low, high = (ax.dataLim.intervalx if axis == "x" else ax.dataLim.intervaly)
    if not (np.isfinite(low) and np.isfinite(high)):
        return
    get_scale = ax.get_xscale if axis == "x" else ax.get_yscale
    set_scale = ax.set_xscale if axis == "x" else ax.set_yscale
    if get_scale() == "log" and (low <= 0 or high / low < 10):
        set_scale("linear")
    scale = max(abs(low), abs(high))
    if axis == "y" and high > low and (high - low) <= ROUND_OFF * scale:
        centre = 0.5 * (low + high)
        ax.set_ylim(centre - 0.05 * abs(centre), centre + 0.05 * abs(centre))
        ax.text(0.5, 0.95, f"flat: values differ by < {ROUND_OFF:g} (relative), round-off", transform=ax.transAxes,
                ha="center", va="top", fontsize=7, color="0.3")
    elif axis == "y" and high > low and get_scale() == "linear" and (high - low) <= 1e-3 * scale:
        ax.text(0.5, 0.01, f"note the scale: all values within {high - low:.2g} ({(high - low) / scale:.1e} "
                "relative)", transform=ax.transAxes, ha="center", va="bottom", fontsize=7, color="0.3")


class RoomyLocator(matplotlib.ticker.AutoLocator):
    """matplotlib's default tick locator, with as many ticks as have room for their labels side by side.
    The default leaves each tick about five characters, so long numbers (``30.025``, ``120000``) on a narrow
    axes run into each other; this one counts the labels' characters when the ticks are placed (at draw
    time, after the layout) and takes fewer ticks where they need it."""

    def tick_values(self, vmin, vmax):
        self._nbins = "auto"
        locs = super().tick_values(vmin, vmax)
        if self.axis is None:
            return locs
        chars = max(map(len, self.axis.get_major_formatter().format_ticks(locs)), default=0)
        room = int(3 * self.axis.get_tick_space() / (0.6 * chars + 1.2))  # "auto": 3 font sizes per tick
        if room < len(locs) - 1:
            self._nbins = max(room, 1)
            locs = super().tick_values(vmin, vmax)
        return locs


def _spaced_x_ticks(ax) -> None:
    """Give a linear numeric x-axis with the default locator a :class:`RoomyLocator`."""
    if ax.get_xscale() == "linear" and type(ax.xaxis.get_major_locator()) is matplotlib.ticker.AutoLocator:
        ax.xaxis.set_major_locator(RoomyLocator())


def finish(fig) -> None:
    """Apply the honest-axes and readable-text rules to every axes of ``fig`` (colour-bar axes excepted)."""
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        for axis in ("x", "y"):
            _honest_scale(ax, axis)
        for formatter_axis in (ax.xaxis, ax.yaxis):
            formatter = formatter_axis.get_major_formatter()
            if isinstance(formatter, matplotlib.ticker.ScalarFormatter):
                formatter.set_useOffset(False)
        _wrap_text(ax)
        _spaced_x_ticks(ax)
    _long_legend_below(fig)
    if fig._suptitle is not None:
        fig._suptitle.set_text(textwrap.fill(fig._suptitle.get_text(), int(fig.get_size_inches()[0] * 72 / 6)))


def _crowds_its_axes(ax) -> bool:
    """Whether ``ax``'s legend has more than :data:`LEGEND_INSIDE` entries or takes more than
    :data:`LEGEND_MAX_WIDTH` of the axes' width or :data:`LEGEND_MAX_AREA` of their area (measured as drawn)."""
    legend = ax.get_legend()
    if legend is None:
        return False
    if len(legend.texts) > LEGEND_INSIDE:
        return True
    box, axes = legend.get_window_extent(), ax.get_window_extent()
    too_wide = box.width > LEGEND_MAX_WIDTH * axes.width
    return too_wide or box.width * box.height > LEGEND_MAX_AREA * axes.width * axes.height


def _long_legend_below(fig) -> None:
    """Legends that crowd their axes (:func:`_crowds_its_axes`) become one figure legend below the axes (their
    entries merged by label), the figure made taller by its rows: inside, they leave the axes no room."""
    long = [ax for ax in fig.axes if _crowds_its_axes(ax)]
    if not long:
        return
    entries = {}
    for ax in long:
        entries |= {label: handle for handle, label in zip(*ax.get_legend_handles_labels()) if label not in entries}
        ax.get_legend().remove()
    ncol = 2 if max(map(len, entries)) <= 45 else 1
    width, height = fig.get_size_inches()
    fig.set_size_inches(width, height + 0.17 * -(-len(entries) // ncol) + 0.3)
    fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncol=ncol, fontsize=7,
               frameon=False)
