"""The shared figure rules (nodebench.figure_style) as applied by save_figure."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from nodebench.figure_style import METHOD_STYLES, label_styles, method_colors, method_style, styled, subplots
from nodebench.records import measured_memory
from nodebench.plots import _bars, save_figure, slug
from nodebench.papers.do_vs_od.figures import plot_density_grid


@pytest.fixture(autouse=True)
def _nodebench_style():
    """The figures of these tests are drawn as nodebench draws its own: with its style in force."""
    with styled():
        yield


def test_log_axis_only_over_a_decade_and_no_offset(tmp_path):
    fig, (narrow, wide) = subplots(1, 2)
    narrow.plot([1, 2, 3], [34.3336, 34.3337, 34.3338]), narrow.set_yscale("log")
    wide.plot([1, 2, 3], [1e-3, 1e-1, 10.0]), wide.set_yscale("log")
    save_figure(fig, tmp_path, "f")
    assert narrow.get_yscale() == "linear" and wide.get_yscale() == "log"
    assert not narrow.yaxis.get_major_formatter().get_useOffset()


def test_round_off_is_drawn_flat_and_annotated(tmp_path):
    fig, ax = subplots()
    ax.plot([1, 2, 3], [5.2856, 5.2856 + 5e-8, 5.2856 - 3e-8])
    save_figure(fig, tmp_path, "f")
    low, high = ax.get_ylim()
    assert high - low > 0.1 and any("round-off" in t.get_text() for t in ax.texts)


def test_method_style_is_fixed_across_figures():
    assert method_colors(["rk4", "adjoint"])["rk4"] == method_colors(["adjoint", "zzz", "rk4"])["rk4"]
    assert len({c for c, _ in METHOD_STYLES.values()}) == len(METHOD_STYLES)
    assert method_style("gq width=3000") == method_style("gq")
    sweep = label_styles(["gq width=8", "gq width=64", "adjoint"])
    assert sweep["adjoint"] == method_style("adjoint")
    assert sweep["gq width=8"]["color"] != sweep["gq width=64"]["color"]
    assert sweep["gq width=8"]["marker"] != sweep["gq width=64"]["marker"]


def test_an_unknown_method_has_the_same_style_in_every_process():
    """A plug-in's method gets a colour and marker from its name, the same in every figure of every run: not
    from Python's ``hash``, which is salted per process (the assertion here compared a call with itself)."""
    names = ["my_method", "plugin_a", "plugin_b", "x", "another_method"]
    code = ("import json; from nodebench.figure_style import method_style; "
            f"print(json.dumps([method_style(n) for n in {names!r}]))")
    runs = [subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed},
                             stdout=subprocess.PIPE, text=True) for seed in ("1", "2")]
    styles = [json.loads(run.communicate(timeout=120)[0]) for run in runs]
    assert styles[0] == styles[1] == [method_style(n) for n in names]


def test_file_task_names_use_the_file_stem():
    assert slug("trajectories:/tmp/user/data/my_system.npz") == "trajectories_my_system"
    assert slug("cubic_spiral") == "cubic_spiral"


def test_unmeasurable_memory_is_marked_not_zero(tmp_path):
    records = pd.DataFrame({"method": ["rk4", "adjoint", "gq"], "train_wall_s": [1.0, 2.0, 3.0],
                            "peak_mem_bytes": [0.0, 2**20, 0.0], "mem_source": ["ru_maxrss", "vmhwm", "vmhwm"]})
    memory = measured_memory(records)
    assert np.isnan(memory[0]) and memory[1] == 2**20 and np.isnan(memory[2])
    fig = _bars(records, "task")
    assert any(t.get_text() == "not measured" for t in fig.axes[1].texts)
    save_figure(fig, tmp_path, "bars")


def test_density_image_has_axes_labels_and_colour_bar(tmp_path, monkeypatch):
    import nodebench.papers.do_vs_od.figures as figures

    drawn = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, out, name: drawn.append(fig) or [out / f"{name}.png"])
    x, y = np.meshgrid(np.linspace(-1, 1, 4), np.linspace(-1, 1, 4))
    table = pd.DataFrame({"task": "t", "method": "rk4", "seed": 0, "x": x.ravel(), "y": y.ravel(),
                          "log_prob": -(x**2 + y**2).ravel()})
    plot_density_grid(table, tmp_path)
    image_ax, colour_bar = drawn[0].axes
    assert image_ax.get_xlabel() and image_ax.get_ylabel() and len(image_ax.get_xticks()) > 0
    assert colour_bar.get_label() == "<colorbar>"


def test_a_scaling_figure_labels_each_swept_value_on_its_log_axis(tmp_path, monkeypatch):
    """snode's horizon sweep (2.5, 5, 10, 20, 40) on a log axis read "10¹" alone: which horizon each point is was
    left to guess."""
    import nodebench.plots as plots

    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, out, name: drawn.append(fig) or [out / f"{name}.png"])
    horizons = [2.5, 5.0, 10.0, 20.0, 40.0]
    records = pd.DataFrame({"method": "rk4", "seed": 0, "hp_horizon": horizons, "train_wall_s": horizons,
                            "status": "ok"})
    plots.plot_scaling(records, "horizon", None, tmp_path, name="sweep")
    axis = drawn[0].axes[0]
    assert axis.get_xscale() == "log" and list(axis.get_xticks()) == horizons
    assert [label.get_text() for label in axis.get_xticklabels()] == ["2.5", "5", "10", "20", "40"]
    widths = [5, 20, 100, 500, 1000, 2000, 3000]  # 2000 and 3000 printed over each other: one is left blank
    assert plots.log_tick_labels(widths) == ["5", "20", "100", "500", "1000", "", "3000"]


def test_a_long_legend_goes_below_the_axes_which_keep_their_size(tmp_path):
    """33 configurations (taynode's digits_lambda sweep) in the axes' legend collapsed the axes to nothing
    (matplotlib: "constrained_layout not applied"); the legend now goes below and the figure grows."""
    import warnings

    fig, ax = subplots(figsize=(6, 4))
    for k in range(33):
        ax.plot([0, 1], [k, k + 1], label=f"adjoint reg=speed reg_lambda={k} reg_order=2 reg_variant=adjoint_only")
    ax.legend()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the collapse is a UserWarning at draw time
        save_figure(fig, tmp_path, "long")
    assert ax.get_legend() is None and len(fig.legends) == 1 and len(fig.legends[0].texts) == 33
    assert fig.get_size_inches()[1] > 4 + 0.17 * 33
    assert ax.get_position().height > 0.2  # the axes keep a real share of the taller figure
    fig, ax = subplots(figsize=(6, 4))
    for k in range(3):
        ax.plot([0, 1], [k, k], label=f"m{k}")
    ax.legend()
    save_figure(fig, tmp_path, "short")
    assert ax.get_legend() is not None and not fig.legends and tuple(fig.get_size_inches()) == (6, 4)


def test_a_legend_of_long_labels_goes_below_even_when_short(tmp_path):
    """Six configuration labels of ~70 characters in each of two side-by-side axes (taynode's digits_lambda
    work-precision figure) collapsed the axes (matplotlib: "constrained_layout not applied") although the
    legend had fewer than LEGEND_INSIDE entries; a legend that would cover much of its axes goes below."""
    import warnings

    fig, axes = subplots(1, 2, figsize=(9, 3.8))
    for ax in axes:
        for k in range(6):
            ax.scatter([k + 1.0], [k + 2.0], label=f"adjoint reg=speed reg_lambda={10 ** k} reg_order=3 "
                                                   "reg_variant=adjoint_only")
        ax.legend()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_figure(fig, tmp_path, "wide")
    assert all(ax.get_legend() is None for ax in axes) and len(fig.legends) == 1
    assert len(fig.legends[0].texts) == 6  # the two axes' identical entries merged


def _label_boxes(ax):
    renderer = ax.figure.canvas.get_renderer()
    ax.figure.draw(renderer)
    return sorted((t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_visible() and t.get_text()),
                  key=lambda box: box.x0)


def test_long_numeric_tick_labels_never_run_into_each_other(tmp_path):
    """Training times of 30.000–30.190 s and NFE up to 118000 on a half-width axes printed
    "30.00030.02530.050…" and "100000120000140000"; the ticks are now spaced for their labels (after the
    layout), and numeric ticks are never frozen by the label wrapping meant for category labels."""
    fig, axes = subplots(1, 2, figsize=(9, 3.8))
    axes[0].scatter([30.004, 30.19], [1.0, 2.0])
    axes[1].scatter([20000, 118000], [1.0, 2.0])
    axes[1].set_xscale("log")  # finish() makes it linear: under a decade
    save_figure(fig, tmp_path, "ticks")
    for ax in axes:
        boxes = _label_boxes(ax)
        assert len(boxes) >= 3
        assert all(left.x1 < right.x0 for left, right in zip(boxes, boxes[1:]))
    plain, styled = (subplots(figsize=(6, 4)) for _ in range(2))  # short numbers: matplotlib's ticks
    for fig, ax in (plain, styled):
        ax.plot([0, 30], [0, 1])
    save_figure(styled[0], tmp_path, "short_ticks")
    plain[0].savefig(tmp_path / "plain.png")
    assert len(plain[1].get_xticks()) >= 7 and list(styled[1].get_xticks()) == list(plain[1].get_xticks())


_USER_SCRIPT = """
import json, sys
import matplotlib
from matplotlib.figure import Figure
import pandas as pd
matplotlib.use("svg")  # a user's own backend and settings, chosen before nodebench is imported
matplotlib.rcParams.update({"axes.grid": False, "legend.fontsize": 11.0})
user = dict(matplotlib.rcParams)
import nodebench
import nodebench.benchmarking.history_plots, nodebench.benchmarking.leaderboard
from nodebench.plots import plot_metric_by_experiment
nodebench.list_tasks()
drawn, savefig = [], Figure.savefig
Figure.savefig = lambda fig, *args, **kwargs: drawn.append(fig) or savefig(fig, *args, **kwargs)
records = pd.DataFrame({"experiment": ["small", "small", "large"], "method": ["rk4", "adjoint", "rk4"],
                        "status": "ok", "test_mse": [0.1, 0.2, 0.3]})
plot_metric_by_experiment(records, sys.argv[1], name="bars")
ax = drawn[0].axes[0]
print(json.dumps({"changed": sorted(k for k, v in matplotlib.rcParams.items() if user[k] != v),
                  "grid": [(line.get_visible(), line.get_alpha()) for line in ax.xaxis.get_gridlines()],
                  "title_fontsize": ax.title.get_fontsize(),
                  "layout": type(drawn[0].get_layout_engine()).__name__}))
"""


def test_nodebench_leaves_the_users_matplotlib_backend_and_settings_alone(tmp_path):
    """Importing nodebench's figure code selected the Agg backend and set its rcParams globally: a notebook's
    own inline plots stopped showing and took nodebench's style. Its style now holds only while it draws."""
    result = subprocess.run([sys.executable, "-c", _USER_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    drawn = json.loads(result.stdout.strip().splitlines()[-1])
    assert drawn["changed"] == []  # the backend ("svg") and every rcParam as the user set them
    assert drawn["grid"] and all(line == [True, 0.3] for line in drawn["grid"])  # nodebench's style, as before
    assert drawn["title_fontsize"] == 10.0 and drawn["layout"] == "ConstrainedLayoutEngine"
