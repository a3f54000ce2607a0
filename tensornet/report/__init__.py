"""A small self-contained HTML report: sections of text, tables and PNG figures.

Used by ``tensornet demo`` (and usable from user code). Figures are written
as PNG files next to ``index.html`` *and* embedded in it as data URIs, so the
page is one file that opens anywhere.
"""

from __future__ import annotations

import base64
import html
import io
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Report", "Section", "new_figure"]


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)  # (kind, payload)

    def text(self, paragraph: str) -> "Section":
        self.blocks.append(("text", paragraph))
        return self

    def table(self, header, rows, caption: str = "") -> "Section":
        self.blocks.append(("table", (list(header), [list(r) for r in rows], caption)))
        return self

    def figure(self, fig, name: str, caption: str = "") -> "Section":
        """Add a matplotlib figure, rendered to PNG now.

        Build figures with :func:`new_figure` (no pyplot, no global state);
        a pyplot figure is accepted too and closed after rendering.
        """
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None and getattr(fig, "number", None) in plt.get_fignums():
            plt.close(fig)
        self.blocks.append(("figure", (name, buf.getvalue(), caption)))
        return self


def new_figure(width: float = 6.4, height: float = 4.0, **subplots):
    """A matplotlib ``Figure`` and its axes, made without pyplot (no global state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(**subplots)


class Report:
    """Collect sections, then :meth:`write` ``index.html`` and the PNGs into a folder.

    Examples
    --------
    >>> import tempfile
    >>> rep = Report("Example")
    >>> sec = rep.section("Numbers").text("A table and a plot.")
    >>> _ = sec.table(["x", "x²"], [[1, 1], [2, 4]])
    >>> fig, ax = new_figure(); _ = ax.plot([1, 2], [1, 4])
    >>> _ = sec.figure(fig, "square.png")
    >>> out = rep.write(tempfile.mkdtemp())
    >>> out.name
    'index.html'
    """

    def __init__(self, title: str, subtitle: str = ""):
        self.title = title
        self.subtitle = subtitle
        self.sections: list[Section] = []

    def section(self, title: str) -> Section:
        sec = Section(title)
        self.sections.append(sec)
        return sec

    def write(self, out_dir) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        parts = [_HEAD.format(title=html.escape(self.title))]
        parts.append(f"<h1>{html.escape(self.title)}</h1>")
        if self.subtitle:
            parts.append(f"<p class='sub'>{html.escape(self.subtitle)}</p>")
        if len(self.sections) > 1:
            parts.append("<nav>" + " · ".join(
                f"<a href='#s{i}'>{html.escape(s.title)}</a>" for i, s in enumerate(self.sections))
                + "</nav>")
        for i, sec in enumerate(self.sections):
            parts.append(f"<section id='s{i}'><h2>{html.escape(sec.title)}</h2>")
            for kind, payload in sec.blocks:
                if kind == "text":
                    parts.append(f"<p>{html.escape(payload)}</p>")
                elif kind == "table":
                    header, rows, caption = payload
                    parts.append("<table>")
                    if caption:
                        parts.append(f"<caption>{html.escape(caption)}</caption>")
                    parts.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>"
                                                  for h in header) + "</tr>")
                    for r in rows:
                        parts.append("<tr>" + "".join(_cell(c) for c in r) + "</tr>")
                    parts.append("</table>")
                elif kind == "figure":
                    name, png, caption = payload
                    (out / name).write_bytes(png)
                    data = base64.b64encode(png).decode("ascii")
                    parts.append(f"<figure><img src='data:image/png;base64,{data}' "
                                 f"alt='{html.escape(caption or name)}' data-file='{html.escape(name)}'>"
                                 f"<figcaption>{html.escape(caption)}</figcaption></figure>")
            parts.append("</section>")
        parts.append("</body></html>")
        index = out / "index.html"
        index.write_text("\n".join(parts), encoding="utf-8")
        return index


_NUMERIC = re.compile(r"^[-+−]?[\d,.]+(?:e[-+]?\d+)?\s*(?:%|×|s|ms|ppm)?"
                      r"(?:\s*→\s*[\d,.]+)?$")


def _cell(c) -> str:
    """A table cell; numbers (with a unit, or 'a → b') are right-aligned, text left."""
    text = _fmt(c)
    cls = " class='num'" if _NUMERIC.match(text.strip()) else ""
    return f"<td{cls}>{html.escape(text)}</td>"


def _fmt(c) -> str:
    if isinstance(c, float):
        return f"{c:.4g}"
    return str(c)


_HEAD = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }}
h1 {{ margin-bottom: 0.2em; }} .sub {{ color: #666; margin-top: 0; }}
nav {{ margin: 1em 0 2em; }} section {{ margin-bottom: 2.5em; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: left; }}
th {{ background: #f3f3f3; }} td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
caption {{ caption-side: top; text-align: left; color: #555; padding-bottom: 0.3em; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; }} figcaption {{ color: #555; font-size: 0.9em; }}
</style></head><body>"""
