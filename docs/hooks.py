"""mkdocs hooks: the command-line page is generated from the real ``--help``.

``<!-- tensornet-help -->`` in a page becomes one section per ``tensornet``
subcommand (and per action of a subcommand that has actions, such as
``topics fit``), each with the subcommand's ``--help`` text exactly as the
command prints it at 88 columns. A subcommand added to the CLI shows up
here without editing the page.

The docstrings use Sphinx roles (``:func:`name```), which Markdown renders
as ``:func:`` followed by code; ``on_page_content`` drops the role and the
``~`` shortening prefix so that only the name is shown.
"""

from __future__ import annotations

import argparse
import os
import re

MARKER = "<!-- tensornet-help -->"
WIDTH = "88"


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name), sub


def _help(parser) -> str:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        return parser.format_help().rstrip()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def _section(title, summary, parser, level):
    out = [f"{'#' * level} `{title}`", ""]
    if summary:
        out += [summary[0].upper() + summary[1:] + ".", ""]
    out += ["```text", _help(parser), "```", ""]
    for name, help_, sub in _subparsers(parser):
        out += _section(f"{title} {name}", help_, sub, level + 1)
    return out


def cli_reference() -> str:
    from tensornet.cli import build_parser

    parser = build_parser()
    out = ["```text", _help(parser), "```", ""]
    for name, help_, sub in _subparsers(parser):
        out += _section(f"tensornet {name}", help_, sub, 3)
    return "\n".join(out)


ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|obj|exc|const):(?=<code>)")
TILDE = re.compile(r"<code>~(?:[\w]+\.)*([\w]+)</code>")


def on_page_content(html, page, config, files, **kwargs):
    return TILDE.sub(r"<code>\1</code>", ROLE.sub("", html))


def on_page_markdown(markdown, page, config, files, **kwargs):
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, cli_reference())
    return markdown
