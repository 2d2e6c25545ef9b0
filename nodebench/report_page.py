"""``report.html``: a run's ``report.md`` as one self-contained page, the claims table first.

The Markdown stays the source (it diffs well); the page is rendered from it: the title and preamble,
then the ``Claims`` section (claim, published source, our measurement, seeds, verdict), then the
experiments, analyses and figures in the report's order. Figures are inlined as data URIs (one file to
move or send), or, with ``link_figures``, referenced by their path from the page (``figures/NAME.png``, as
in ``report.md``: a page some 60× smaller that needs its ``figures/`` folder beside it). Tables sort by a
click on their header. The converter covers the Markdown the reports write: headings, pipe tables,
images, bullet lists, block quotes, paragraphs, and ``**bold**``, ``*italic*`` and ```code``` spans.
"""

from __future__ import annotations

import re
from pathlib import Path

from nodebench.html_page import document, esc, image, table
from nodebench.records import atomic_write

CLAIMS = "## Claims"


def inline(text: str) -> str:
    """Escaped text with the report's inline Markdown (bold, italic, code) as HTML."""
    text = esc(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<i>\1</i>", text)


def _cells(line: str) -> list[str]:
    """The cells of a table row; ``\\|`` is a ``|`` inside a cell (:func:`nodebench.markdown.markdown_table`)."""
    row = line.strip().removeprefix("|")
    row = row[:-1] if row.endswith("|") and not row.endswith("\\|") else row
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", row)]


def _anchor(text: str, seen: dict[str, int]) -> str:
    """A heading's id as GitHub makes it for ``report.md`` (lower case, punctuation dropped, spaces to ``-``),
    with ``-1``, ``-2``, ... on repeats, so that every heading of the page has its own."""
    slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
    count = seen.get(slug, 0)
    seen[slug] = count + 1
    return f"{slug}-{count}" if count else slug


def markdown_html(markdown: str, base: Path, *, link_figures: bool = False) -> str:
    """The reports' Markdown subset as HTML; images relative to ``base`` are inlined, or linked from a page in
    ``base`` with ``link_figures``."""
    out, lines, i, seen = [], markdown.splitlines(), 0, {}
    while i < len(lines):
        line = lines[i]
        heading = re.match(r"(#{1,6}) (.*)", line)
        picture = re.fullmatch(r"!\[([^\]]*)\]\(([^)]+)\)", line.strip())
        if heading:
            level = len(heading.group(1))
            out.append(f"<h{level} id='{esc(_anchor(heading.group(2), seen))}'>{inline(heading.group(2))}</h{level}>")
            i += 1
        elif picture:
            path, caption = base / picture.group(2), picture.group(1)
            out.append(f"<figure>{image(path, caption, relative_to=base if link_figures else None)}"
                       f"<figcaption>{esc(caption)}</figcaption></figure>" if path.is_file()
                       else f"<p>missing figure {esc(picture.group(2))}</p>")
            i += 1
        elif line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            rows = [f"<tr>{''.join(f'<td>{inline(c)}</td>' for c in _cells(r))}</tr>" for r in block[2:]]
            out.append(table(_cells(block[0]), rows))
        elif line.startswith(">"):
            quote = []
            while i < len(lines) and lines[i].startswith(">"):
                quote.append(lines[i][1:].strip())
                i += 1
            out.append(f"<blockquote><p>{inline(' '.join(quote))}</p></blockquote>")
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith(("- ", "  ")):
                if lines[i].startswith("- "):
                    items.append(lines[i][2:])
                else:
                    items[-1] += " " + lines[i].strip()
                i += 1
            out.append("<ul>" + "".join(f"<li>{inline(item)}</li>" for item in items) + "</ul>")
        elif line.strip():
            paragraph = []
            while i < len(lines) and lines[i].strip() and not re.match(r"#|\||- |!\[|>", lines[i]):
                paragraph.append(lines[i])
                i += 1
            out.append(f"<p>{inline(' '.join(paragraph))}</p>")
        else:
            i += 1
    return "\n".join(out)


def claims_first(markdown: str) -> str:
    """The report with its ``## Claims`` section moved before the first other ``## `` section."""
    parts = re.split(r"(?m)^(?=## )", markdown)
    preamble, sections = parts[0], parts[1:]
    claims = [s for s in sections if s.startswith(CLAIMS + "\n")]
    return preamble + "".join(claims + [s for s in sections if s not in claims])


def write_report_html(report_md: Path, *, link_figures: bool = False) -> Path:
    """Write ``report.html`` beside ``report_md`` (figures inlined, or linked with ``link_figures``), whole or not
    at all (:func:`~nodebench.records.atomic_write`); returns its path."""
    report_md = Path(report_md)
    markdown = report_md.read_text()
    title = markdown.splitlines()[0].lstrip("# ") if markdown else "nodebench report"
    path = report_md.with_suffix(".html")
    body = markdown_html(claims_first(markdown), report_md.parent, link_figures=link_figures)
    page = document(title, body)
    atomic_write(path, lambda tmp: tmp.write_text(page))
    return path
