"""The leaderboard, a report page and the history site, opened in headless Chromium: no console errors,
the summary figure and tables on the first screen, sorting and filtering change what is shown."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from chromium import CHROMIUM, VISIBLE, Browser

from nodebench.benchmarking import leaderboard_page

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)")

BASELINES = Path(__file__).resolve().parents[1] / "results" / "baselines"
SCREEN = 900


def visible(selector: str) -> str:
    return f"{VISIBLE.format(height=10**6)}(document.querySelector({selector!r}))"


def on_first_screen(selector: str) -> str:
    return f"{VISIBLE.format(height=SCREEN)}(document.querySelector({selector!r}))"


def column(table: str, index: int) -> str:
    return f"Array.from(document.querySelectorAll('{table} > tbody > tr')).map(r => r.cells[{index}].textContent)"


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    out = tmp_path_factory.mktemp("board")
    leaderboard_page.write([BASELINES / "do_vs_od-quick-cpu", BASELINES / "snode-quick-cpu"], out)
    return out / "leaderboard.html"


def test_leaderboard_first_screen_sorting_and_filters(board, tmp_path):
    with Browser(height=SCREEN) as b:
        b.open(board)
        assert b.errors == []
        assert b.js(on_first_screen("#summary-figure img")) and b.js("document.querySelector('#summary-figure img')"
                                                                     ".naturalWidth") > 300
        assert b.js(on_first_screen("#summary")) and b.js(visible("#overall"))
        shot = b.screenshot(tmp_path / "leaderboard.png")
        assert shot.stat().st_size > 20_000

        # sorting: a click on "family" orders the rows by name, a second click reverses them
        before = b.js(column("#summary", 0))
        b.js("document.querySelector('#summary th').click()")
        ascending = b.js(column("#summary", 0))
        b.js("document.querySelector('#summary th').click()")
        descending = b.js(column("#summary", 0))
        assert ascending == sorted(before) and descending == sorted(before, reverse=True) and len(before) > 2
        # sorting by a time column puts the numbers in order and ✗ / not run last
        b.js("document.querySelector('#summary th:nth-child(2)').click()")
        values = b.js("Array.from(document.querySelectorAll('#summary > tbody > tr')).map(r => "
                      "r.cells[1].getAttribute('data-v'))")
        numbers = [float(v) for v in values if v is not None]
        assert numbers == sorted(numbers) and values[:len(numbers)] == [v for v in values if v is not None]

        # filters: one task leaves one task section and one task column
        sections = b.js("document.querySelectorAll('section[data-task]').length")
        task = b.js("document.querySelector('section[data-task]').dataset.task")
        b.js(f"const s = document.getElementById('filter-task'); s.value = {task!r};"
             "s.dispatchEvent(new Event('change'))")
        shown = b.js("Array.from(document.querySelectorAll('section[data-task]')).filter(s => "
                     "!s.classList.contains('hidden')).length")
        columns = b.js("Array.from(document.querySelectorAll('#summary th')).filter(th => th.offsetWidth > 0).length")
        assert sections > 1 and shown == 1 and columns == 2
        b.js("const p = document.getElementById('filter-paper'); p.value = 'snode';"
             "p.dispatchEvent(new Event('change'))")  # task of do_vs_od and paper snode: nothing left
        assert b.js("Array.from(document.querySelectorAll('section[data-task]')).filter(s => "
                    "!s.classList.contains('hidden')).length") == 0
        # the folded configurations open with a click
        if b.js("document.querySelector('details') !== null"):
            b.js("document.getElementById('filter-paper').value=''; document.getElementById('filter-task').value='';"
                 "document.getElementById('filter-task').dispatchEvent(new Event('change'));"
                 "document.querySelector('details summary').click()")
            assert b.js("document.querySelector('details').open")
        # every number has its environment as a tooltip
        assert "CPU" in b.js("document.querySelector('#summary td[data-v]').title")
        assert b.errors == []


@pytest.fixture(scope="module")
def history_site(tmp_path_factory):
    """The site of a store holding the first four runs of the committed history store."""
    from nodebench import api

    source = Path(__file__).resolve().parents[1] / "results" / "history"
    runs = sorted(source.glob("dev-2core-cpu1/nightly/*/records.parquet"))[:4]
    store = tmp_path_factory.mktemp("store")
    for records in runs:
        shutil.copytree(records.parent, store / records.parent.relative_to(source))
    out = api.history(store, suite="nightly", html=True)
    return out / "index.html"


def test_history_site_opens_with_its_graphs_links_and_filter(history_site, tmp_path):
    with Browser(height=SCREEN) as b:
        b.open(history_site)
        assert b.errors == []
        graphs = b.js("document.querySelectorAll('figure.history svg').length")
        assert graphs > 3 and b.js(on_first_screen("figure.history svg")) and b.js(visible("#runs"))
        assert b.js("document.querySelectorAll('#runs > tbody > tr').length") == 4
        # each point links to an existing records file of its run
        href = b.js("document.querySelector('figure.history a').getAttribute('href')")
        assert href.endswith("records.parquet") and (history_site.parent / href).is_file()
        metric = b.js("document.querySelector('#filter-metric option:nth-child(2)').value")
        b.js(f"const s = document.getElementById('filter-metric'); s.value = {metric!r};"
             "s.dispatchEvent(new Event('change'))")
        shown = b.js("Array.from(document.querySelectorAll('figure.history')).filter(f => f.offsetWidth > 0)"
                     ".map(f => f.dataset.metric)")
        assert 0 < len(shown) < graphs and set(shown) == {metric}
        b.screenshot(tmp_path / "history.png")
        assert b.errors == []


def _history_site(tmp_path, runs) -> Path:
    """The history site of a store holding ``runs`` (records frames, oldest first) of machine m, suite s."""
    from nodebench import api

    for index, records in enumerate(runs):
        folder = tmp_path / "store" / "m" / "s" / f"2026010{index + 1}T000000Z-aaaa"
        folder.mkdir(parents=True)
        records.to_parquet(folder / "records.parquet", index=False)
    return api.history(tmp_path / "store", "m", "s", tmp_path / "site", html=True) / "index.html"


def test_the_history_site_s_metric_filter_filters_the_regressions_table_too(tmp_path):
    """Choosing a metric hid the other metrics' graphs but left every regression listed: a memory regression
    still read under "time/iter" chosen."""
    from test_bench_compare import _records

    tonight = _records(mem=1.6 * 8 * 2**20)[0]  # +4.8 MiB a seed: a memory regression
    runs = [_records()[0], tonight, tonight.assign(nfe_forward_per_iter=12.0)]  # then 2 NFE more: an NFE one
    site = _history_site(tmp_path, runs)
    listed = ("Array.from(document.querySelectorAll('#regressions > tbody > tr')).filter(r => r.offsetHeight > 0)"
              ".map(r => r.cells[4].textContent)")
    with Browser(height=SCREEN) as b:
        b.open(site)
        assert sorted(b.js(listed)) == ["NFE/iter", "peak memory"]
        for metric, shown in (("memory", ["peak memory"]), ("nfe", ["NFE/iter"]), ("time", []), ("", None)):
            b.js(f"{{ const s = document.getElementById('filter-metric'); s.value = {metric!r};"
                 "s.dispatchEvent(new Event('change')) }")
            assert sorted(b.js(listed)) == (shown if shown is not None else ["NFE/iter", "peak memory"]), metric
        assert b.errors == []


def test_the_history_site_shows_times_in_ms_and_memory_in_mib_as_the_gate_does(tmp_path):
    """The site drew and listed the records' raw values with no unit: a peak memory read "1.354e+07" (bytes) and a
    time/iter "0.01" (seconds), where `nodebench compare` and history.md say "12.93 MiB" and "10 ms"."""
    from test_bench_compare import _records

    site = _history_site(tmp_path, [_records()[0], _records(mem=1.6 * 8 * 2**20)[0]])  # a memory regression
    graph = "document.querySelector('figure.history[data-metric={}]')"
    with Browser(height=SCREEN) as b:
        b.open(site)
        assert b.js("document.querySelector('#regressions > tbody > tr').cells[5].textContent") == "12.93 MiB"
        for metric, caption, tip in (("memory", "peak memory [MiB]", ": 12.93 MiB (regression)"),
                                     ("time", "time/iter [ms]", ": 10 ms (same)")):
            assert caption in b.js(graph.format(metric) + ".querySelector('figcaption').textContent"), metric
            tips = b.js(f"Array.from({graph.format(metric)}.querySelectorAll('title')).map(t => t.textContent)")
            assert tips[-1].endswith(tip), tips
            axis = b.js(f"Array.from({graph.format(metric)}.querySelectorAll('text')).slice(0, 2)"
                        ".map(t => parseFloat(t.textContent))")
            assert all(5 < value < 20 for value in axis), (metric, axis)  # 8 to 13 MiB, 10 ms: not bytes, seconds
        assert b.errors == []


def test_the_history_site_lists_newly_failing_cases_and_lost_measurements_and_each_run_s_gate(tmp_path):
    """The site listed regressions only: a run whose case went out of memory, which fails the gate, showed no
    failure anywhere. Its failures are listed (a failed case under every metric filter, a lost measurement
    under its metric's) and each run's gate decision is in the runs table."""
    from test_bench_compare import _records

    runs = [_records()[0], _records()[0].assign(status="oom", time_per_iter_s=float("nan")), _records()[0],
            _records()[0].assign(peak_mem_bytes=float("nan"))]
    site = _history_site(tmp_path, runs)
    listed = ("Array.from(document.querySelectorAll('#failures > tbody > tr')).filter(r => r.offsetHeight > 0)"
              ".map(r => r.cells[0].textContent + ' ' + r.cells[3].textContent)")
    with Browser(height=SCREEN) as b:
        b.open(site)
        assert b.js(listed) == ["1 e: m (now fails: oom)", "3 e: m (peak memory not measured)"]
        assert b.js(column("#runs", 4)) == ["–", "fails", "passes", "fails"]
        for metric, shown in (("time", ["1 e: m (now fails: oom)"]),
                              ("memory", ["1 e: m (now fails: oom)", "3 e: m (peak memory not measured)"])):
            b.js(f"{{ const s = document.getElementById('filter-metric'); s.value = {metric!r};"
                 "s.dispatchEvent(new Event('change')) }")
            assert b.js(listed) == shown, metric
        assert b.js("Array.from(document.querySelectorAll('#filter-metric option')).map(o => o.value)").count(
            "status") == 0  # the filter offers gated metrics only
        assert b.errors == []


def test_report_page_puts_the_claims_first_and_sorts(tmp_path):
    from nodebench.report_page import write_report_html

    run = tmp_path / "run"
    shutil.copytree(BASELINES / "taynode-quick-cpu", run)
    # the committed baseline keeps its records and report, not its figures: draw the first one it names
    import matplotlib.pyplot as plt

    figure = run / re.search(r"!\[[^\]]*\]\(([^)]+)\)", (run / "report.md").read_text()).group(1)
    figure.parent.mkdir(exist_ok=True)
    plt.figure(figsize=(3, 2)).gca().plot([1, 2, 3])
    plt.savefig(figure)
    plt.close("all")
    page = write_report_html(run / "report.md")
    assert f"missing figure {figure.relative_to(run)}" not in page.read_text()
    with Browser(height=SCREEN) as b:
        b.open(page)
        assert b.errors == []
        assert b.js("document.querySelector('h2').textContent") == "Claims"
        assert b.js(on_first_screen("table")) and b.js("document.querySelectorAll('img').length") >= 1
        assert b.js("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        ids = "Array.from(document.querySelector('table').tBodies[0].rows).map(r => r.cells[0].textContent)"
        before = b.js(ids)
        b.js("document.querySelector('table th').click()")
        b.js("document.querySelector('table th').click()")
        assert b.js(ids) == sorted(before, reverse=True) != before
        b.screenshot(tmp_path / "report.png")


NO_VALUE = ("Array.from(document.querySelectorAll('td')).map(c => c.textContent.trim())"
            ".filter(t => ['nan', 'None', 'undefined', 'NaN'].includes(t))")


def test_pages_show_no_python_none_or_nan_and_every_history_point_links_and_hovers(board, history_site):
    """Gaps of the tests above: a missing value read "nan"/"None" in the leaderboard's and the history site's
    tables; every point of every history graph (not only the first) links to a records file that exists and
    has a hover title with its commit and value."""
    with Browser(height=SCREEN) as b:
        b.open(board)
        assert b.js(NO_VALUE) == [] and b.errors == []
        b.open(history_site)
        assert b.js(NO_VALUE) == [] and b.errors == []
        points = b.js("Array.from(document.querySelectorAll('figure.history a')).map(a => [a.getAttribute('href'),"
                      " (a.querySelector('circle > title') || {}).textContent || ''])")
        assert len(points) > 20
        assert all((history_site.parent / href).is_file() for href, _ in points)
        assert all(re.search(r"\b[0-9a-f]{7,}: [-0-9.e+]+( ms| MiB)? \(", tip) for _, tip in points), points[:3]
        assert b.errors == []


def test_pages_keep_the_window_s_width_on_a_narrow_screen(board, history_site, tmp_path):
    """At 420 px every page scrolled sideways as a whole (the report's claims table is some 730 px wide, the
    leaderboard's task tables 880 px, the history site's runs table 980 px): a wide table scrolls in its own box,
    the rest of the page keeps the window's width, and a phone is told so (viewport meta)."""
    from nodebench.report_page import write_report_html

    run = tmp_path / "run"
    run.mkdir()
    (run / "report.md").write_text((BASELINES / "do_vs_od-quick-cpu" / "report.md").read_text())
    report = write_report_html(run / "report.md", link_figures=True)
    width = 420
    with Browser(width=width, height=SCREEN) as b:
        for page in (report, board, history_site):
            b.open(page)
            assert b.js("document.documentElement.scrollWidth") <= width, page
            boxes = b.js("Array.from(document.querySelectorAll('table')).filter(t => t.offsetWidth > "
                         f"{width}).map(t => [t.parentElement.scrollWidth > t.parentElement.clientWidth, "
                         "getComputedStyle(t.parentElement).overflowX])")
            assert boxes and all(box == [True, "auto"] for box in boxes), (page, boxes)
            assert b.js("document.querySelector('meta[name=viewport]').content").startswith("width=device-width")
            assert b.errors == []


def test_a_leaderboard_of_runs_recorded_without_optional_columns_shows_no_nan(tmp_path):
    """A run whose records lack the optional `paper` and `git_sha` columns (valid records), beside one that has
    them: the paper filter offered "nan", the environment table's commit read "nan", and counts read "2.0"."""
    from test_leaderboard_fairness import MIXED, board as records_of

    run = tmp_path / "bare"
    run.mkdir()
    for frame, name in zip(records_of(MIXED), ("records", "curves")):
        frame.to_parquet(run / f"{name}.parquet", index=False)
    _, page = leaderboard_page.write([run, BASELINES / "do_vs_od-quick-cpu"], tmp_path / "board",
                                     targets={"toy": 0.5})
    with Browser(height=SCREEN) as b:
        b.open(page)
        options = b.js("Array.from(document.querySelectorAll('select option')).map(o => o.value)")
        assert "nan" not in options and b.js(NO_VALUE) == [] and b.errors == []
        tips = b.js("Array.from(document.querySelectorAll('td[title]')).map(c => c.title)")
        assert tips and not any(re.search(r"(cores|threads) \d+\.0\b", tip) for tip in tips), tips[:2]


def test_report_pages_keep_escaped_pipes_in_their_cells_quote_warnings_and_anchor_every_heading(tmp_path):
    """The committed do_vs_od report has a column "\\|J−J_ref\\|": the page split its header there, so the header
    had two cells more than the rows; a settings warning ("> **Warning:** ...") showed as a paragraph with a
    literal ">"; and headings had no id to link to (the taynode report repeats some, each needs its own)."""
    from nodebench.report_page import write_report_html

    pages = []
    for name in ("do_vs_od-quick-cpu", "taynode-quick-cpu"):
        run = tmp_path / name
        run.mkdir()
        text = (BASELINES / name / "report.md").read_text()
        (run / "report.md").write_text(text + "\n> **Warning:** rtol | atol are loose\n")
        pages.append(write_report_html(run / "report.md"))
    with Browser(height=SCREEN) as b:
        for page in pages:
            b.open(page)
            ragged = b.js("Array.from(document.querySelectorAll('table')).filter(t => Array.from(t.tBodies[0].rows)"
                          ".some(r => r.cells.length !== t.tHead.rows[0].cells.length)).length")
            quote = b.js("Array.from(document.querySelectorAll('blockquote')).map(q => q.textContent)")
            ids = b.js("Array.from(document.querySelectorAll('h1, h2, h3')).map(h => h.id)")
            assert ragged == 0 and quote == ["Warning: rtol | atol are loose"], (page, ragged, quote)
            assert all(ids) and len(set(ids)) == len(ids) and "claims" in ids, ids
            assert b.js("document.querySelector('#claims').textContent") == "Claims" and b.errors == []
            headers = b.js("Array.from(document.querySelectorAll('th')).map(h => h.textContent)")
            assert ("|J−J_ref|" in headers) == (page == pages[0])


def test_a_report_page_inlines_its_figures_or_links_them_and_both_load(tmp_path):
    """report.html inlined every figure (1.46 MB for the committed do_vs_od quick run, 19 figures; 23 kB
    without them): with link_figures it references them by their path from the page, as report.md does, and
    a name that needs escaping in a URL ("a b#1.png") still loads."""
    from nodebench.report_page import write_report_html
    import matplotlib.pyplot as plt

    run = tmp_path / "run"
    run.mkdir()
    report = (BASELINES / "do_vs_od-quick-cpu" / "report.md").read_text() + "\n![odd name](figures/a b#1.png)\n"
    (run / "report.md").write_text(report)
    names = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    (run / "figures").mkdir()
    plt.figure(figsize=(3, 2)).gca().plot([1, 2, 3])
    for name in names:
        plt.savefig(run / name)
    plt.close("all")
    inlined = write_report_html(run / "report.md").read_text()
    linked = write_report_html(run / "report.md", link_figures=True).read_text()
    assert "data:image" in inlined and "data:image" not in linked and "missing figure" not in linked
    assert len(linked) < len(inlined) - sum((run / name).stat().st_size for name in names)
    with Browser(height=SCREEN) as b:
        for text in (inlined, linked):
            (run / "report.html").write_text(text)
            b.open(run / "report.html")
            sizes = b.js("Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
            assert len(sizes) == len(names) > 10 and min(sizes) > 0 and b.errors == [], sizes


def test_a_report_page_sorts_infinite_metrics_as_numbers(tmp_path):
    """A summary cell read "inf" / "-inf" and sorted as text: after every number, ascending or descending."""
    from test_claims_report import INFINITE_METRIC

    from nodebench.reporting import write_report

    page = write_report(tmp_path, INFINITE_METRIC, []).with_suffix(".html")
    with Browser(height=SCREEN) as b:
        b.open(page)
        header = "Array.from(document.querySelectorAll('table th')).find(th => th.textContent === 'test_mse')"
        cells = "Array.from(document.querySelector('table').tBodies[0].rows).map(r => r.cells[r.cells.length - 1]" \
                ".textContent)"
        b.js(f"{header}.click()")
        ascending = b.js(cells)
        b.js(f"{header}.click()")
        descending = b.js(cells)
        assert ascending[:2] == ["−∞", "1.5 [1, 2]"] and ascending[-1] == "–", ascending
        assert set(ascending[2:4]) == {"∞", "∞ [0.5, ∞]"} and b.errors == []
        assert set(descending[:2]) == {"∞", "∞ [0.5, ∞]"} and descending[2:] == ["1.5 [1, 2]", "−∞", "–"], descending
