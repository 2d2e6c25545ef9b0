"""Self-contained HTML pages (leaderboard, reports, history site): one file, inline CSS and JS, no CDN (a
report page may link its figures instead of inlining them).

The script makes every ``table.sortable`` sortable by a click on its header (numbers by their ``data-v``
value, their text, or as the infinity a text starting ``∞`` / ``−∞`` is; ✗/not reached last) and applies the
page's filters: a ``select[data-filter=KEY]`` hides every element whose ``data-KEY`` attribute (a
space-separated list) does not contain the chosen value.
"""

from __future__ import annotations

import base64
import html
import math
import urllib.parse
from pathlib import Path

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1280px;margin:1em auto;padding:0 1em;color:#222;
  overflow-wrap:break-word}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin-top:1.4em}h3{font-size:1.05em}
table{border-collapse:collapse;font-size:12.5px;margin:.4em 0}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#eef1f5}table.sortable th{cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
td.num{text-align:right;white-space:nowrap}td.miss{color:#b00;text-align:center}
#summary th{font-size:11px;max-width:7em;overflow-wrap:anywhere}#summary td{line-height:1.1}
td.best{background:#e6f4e6}img{max-width:100%}p.note{color:#555;font-size:12.5px;margin:.2em 0}
.filters{background:#f6f7f9;border:1px solid #ddd;padding:4px 8px;font-size:13px;margin:.4em 0}
.filters label{margin-right:1em}details summary{cursor:pointer;color:#246}
.verdict-holds{color:#060}.verdict-fails{color:#b00}.hidden{display:none!important}
figure.history{margin:0;border:1px solid #ddd;padding:4px}figcaption{font-size:12px}
div.scroll{overflow-x:auto;max-width:100%}
"""

SCRIPT = """
function cellValue(td){const v=td.getAttribute('data-v');if(v!==null)return parseFloat(v);
  const t=td.textContent.trim();if(/^−?∞/.test(t))return t[0]==='∞'?Infinity:-Infinity;
  const n=parseFloat(t);return isNaN(n)?t.toLowerCase():n;}
function sortTable(th){const table=th.closest('table');const body=table.tBodies[0];
  const index=Array.prototype.indexOf.call(th.parentNode.children,th);
  const asc=th.getAttribute('aria-sort')!=='ascending';
  table.querySelectorAll('th').forEach(h=>h.removeAttribute('aria-sort'));
  th.setAttribute('aria-sort',asc?'ascending':'descending');
  const rows=Array.from(body.rows);
  rows.sort((a,b)=>{const x=cellValue(a.cells[index]),y=cellValue(b.cells[index]);
    if(typeof x===typeof y){if(x<y)return asc?-1:1;if(x>y)return asc?1:-1;return 0;}
    return typeof x==='number'?-1:1;});
  rows.forEach(r=>body.appendChild(r));}
function applyFilters(){const chosen={};const keys=[];
  document.querySelectorAll('select[data-filter]').forEach(s=>{keys.push(s.dataset.filter);
    if(s.value)chosen[s.dataset.filter]=s.value;});
  if(!keys.length)return;
  document.querySelectorAll(keys.map(k=>'[data-'+k+']').join(',')).forEach(el=>{
    let show=true;for(const k in chosen){const v=el.getAttribute('data-'+k);
      if(v!==null&&!v.split(' ').includes(chosen[k]))show=false;}
    el.classList.toggle('hidden',!show);});}
document.addEventListener('DOMContentLoaded',()=>{
  document.querySelectorAll('table.sortable thead th').forEach(th=>th.addEventListener('click',()=>sortTable(th)));
  document.querySelectorAll('select[data-filter]').forEach(s=>s.addEventListener('change',applyFilters));});
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def document(title: str, body: str) -> str:
    """A complete page: ``title`` and ``body`` with the inline style and script."""
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{esc(title)}</title>"
            f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body>{body}</body></html>\n")


def image(path: Path, alt: str, style: str = "", *, relative_to: Path | None = None) -> str:
    """``path`` (a PNG or SVG) inline as a data URI; given ``relative_to`` (the page's folder), referenced by
    its path from there instead, which keeps the page small but needs the file beside it."""
    if relative_to is not None:
        source = urllib.parse.quote(Path(path).relative_to(relative_to).as_posix())
    else:
        kind = "svg+xml" if path.suffix == ".svg" else "png"
        source = f"data:image/{kind};base64,{base64.b64encode(Path(path).read_bytes()).decode()}"
    return f"<img alt='{esc(alt)}' style='{esc(style)}' src='{esc(source)}'>"


def cell(text, *, value: float | None = None, title: str = "", attrs: str = "", css: str = "") -> str:
    """A ``<td>``: ``value`` (a number, ∞ for not reached) is what sorting uses; ``title`` is its tooltip."""
    parts = ["<td"]
    if value is not None and not (isinstance(value, float) and math.isnan(value)):
        parts.append(f" data-v='{'Infinity' if math.isinf(value) else repr(float(value))}'")
    if css:
        parts.append(f" class='{css}'")
    if title:
        parts.append(f" title='{esc(title)}'")
    return "".join(parts) + f"{attrs}>{text}</td>"


def table(header: list[str], rows: list[str], *, sortable: bool = True, attrs: str = "") -> str:
    """A table from its header labels and already rendered ``<tr>`` rows, in a box that scrolls sideways where
    the table is wider than the window (the page itself keeps the window's width: text stays readable on a
    narrow screen)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    kind = " class='sortable'" if sortable else ""
    return (f"<div class='scroll'><table{kind}{attrs}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
            "</table></div>")


def plain_table(frame, *, sortable: bool = True) -> str:
    """A DataFrame of display strings as a table (numbers sort numerically; a missing value, None or NaN, is
    "–", never Python's "None" or "nan")."""
    rows = []
    for values in frame.itertuples(index=False):
        cells = []
        for v in values:
            if v is None or (isinstance(v, float) and math.isnan(v)):
                cells.append(cell("–"))
                continue
            number = v if isinstance(v, (int, float)) and not isinstance(v, bool) else None
            cells.append(cell(esc(v), value=number, css="num" if number is not None else ""))
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return table([str(c) for c in frame.columns], rows, sortable=sortable)


def select(key: str, label: str, values) -> str:
    """A filter select: every element with ``data-KEY`` is shown only when it contains the chosen value."""
    options = "".join(f"<option value='{esc(v)}'>{esc(v)}</option>" for v in sorted(set(values)))
    return (f"<label>{esc(label)} <select data-filter='{esc(key)}' id='filter-{esc(key)}'>"
            f"<option value=''>all</option>{options}</select></label>")
