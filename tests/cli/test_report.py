"""tensornet.report: the self-contained page the demo writes."""

import base64
import re

from tensornet.report import Report, new_figure


def test_report_writes_one_self_contained_page(tmp_path):
    rep = Report("A <title>", "sub & title")
    sec = rep.section("Numbers").text("x < y")
    sec.table(["name", "value", "change"], [["TT", 98.51234, "1,234 → 567"], ["CP", 3, "7.9×"]],
              caption="cap")
    fig, ax = new_figure(3, 2)
    ax.plot([0, 1], [1, 0])
    sec.figure(fig, "line.png", "a line")
    rep.section("Second").text("more")
    index = rep.write(tmp_path / "out")
    html = index.read_text(encoding="utf-8")
    assert "A &lt;title&gt;" in html and "sub &amp; title" in html and "x &lt; y" in html
    # text left-aligned, numbers right-aligned; floats to 4 significant digits
    assert "<td>TT</td><td class='num'>98.51</td><td class='num'>1,234 → 567</td>" in html
    assert "<td class='num'>7.9×</td>" in html
    # the figure is both a file and a data URI holding the same PNG bytes
    png = (tmp_path / "out" / "line.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    data = re.search(r"src='data:image/png;base64,([^']+)'", html).group(1)
    assert base64.b64decode(data) == png
    assert html.count("<section") == 2 and "<nav>" in html
    assert "http" not in html.replace("http-equiv", "")     # nothing fetched from elsewhere
