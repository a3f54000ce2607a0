"""The documentation runs: docstring examples, the README tour, the site's structure and build.

* Every module of tensornet has its ``Examples`` sections run as doctests
  (one test per module; a module whose examples import an optional package
  that is not installed is skipped, naming the package).
* The main public entry points have a runnable example.
* Every ``python`` block of README.md runs as it is, in a fresh namespace.
* mkdocs.yml's nav points at pages that exist, every sub-package has an API
  page, every example script has its section on the Examples page; and,
  where mkdocs is installed (``pip install -e '.[docs]'``), the site builds
  with ``--strict`` (any warning fails it).
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tensornet

ROOT = Path(__file__).resolve().parents[1]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules():
    names = ["tensornet"]
    for info in pkgutil.walk_packages(tensornet.__path__, "tensornet."):
        if info.name.rsplit(".", 1)[-1] != "__main__":
            names.append(info.name)
    return sorted(names)


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _missing_imports(tests) -> list[str]:
    """Top-level packages imported by the examples that are not installed."""
    missing = set()
    pattern = re.compile(r"^\s*(?:import|from)\s+([A-Za-z_][\w]*)", re.M)
    for test in tests:
        for example in test.examples:
            for name in pattern.findall(example.source):
                if not _installed(name):
                    missing.add(name)
    return sorted(missing)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:  # an optional dependency of this module
        pytest.skip(f"{name} needs {exc.name}, which is not installed")
    tests = [t for t in doctest.DocTestFinder().find(module, name) if t.examples]
    if not tests:
        return
    missing = _missing_imports(tests)
    if missing:
        pytest.skip(f"the examples of {name} need {', '.join(missing)}, not installed")
    # verbose=False: doctest otherwise turns verbose when '-v' is in sys.argv (pytest -v)
    runner = _Runner(optionflags=FLAGS, verbose=False)
    failures, needs = [], []
    for test in tests:
        out = []
        n_import_errors = len(runner.import_errors)
        result = runner.run(test, out=out.append)
        assert result.attempted > 0
        if len(runner.import_errors) > n_import_errors:
            # tensornet raises ImportError naming the package when an optional one is
            # absent; the rest of that docstring's examples cannot run either
            needs.append(runner.import_errors[n_import_errors])
        else:
            failures += out
    assert not failures, "".join(failures)
    if needs:
        pytest.skip(f"some examples of {name} need an optional package: {needs[0]}")


class _Runner(doctest.DocTestRunner):
    """Records examples that failed only because an optional package is not installed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.import_errors = []

    def report_unexpected_exception(self, out, test, example, exc_info):
        if issubclass(exc_info[0], ImportError):
            self.import_errors.append(str(exc_info[1]))
        super().report_unexpected_exception(out, test, example, exc_info)


#: the entry points a user meets first: each must show a runnable example
ENTRY_POINTS = [
    "tensornet.contract", "tensornet.contract_plan", "tensornet.multilinear",
    "tensornet.decomposition.cp", "tensornet.decomposition.tucker",
    "tensornet.decomposition.tt", "tensornet.decomposition.tt_matrix",
    "tensornet.nn.CPLinear", "tensornet.nn.TuckerLinear", "tensornet.nn.TTLinear",
    "tensornet.nn.tensorize",
    "tensornet.topics.TensorLDA",
    "tensornet.forecast.TTLSTMForecaster",
    "tensornet.optim.LinBreg", "tensornet.optim.AdaBreg", "tensornet.optim.RankL1",
    "tensornet.optim.prune_ranks",
    "tensornet.robust.fgsm", "tensornet.robust.fgm", "tensornet.robust.pgd",
    "tensornet.robust.lipschitz_upper_bound",
]


@pytest.mark.parametrize("path", ENTRY_POINTS)
def test_entry_point_has_runnable_example(path):
    module, _, attr = path.rpartition(".")
    obj = getattr(importlib.import_module(module), attr)
    doc = inspect.getdoc(obj) or ""
    assert "Examples\n--------" in doc, f"{path} has no Examples section"
    assert ">>>" in doc.split("Examples\n--------", 1)[1], f"{path}: Examples has no >>> lines"


def _readme_blocks():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_has_the_two_commands_first():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first_code = text.index("```")
    block = text[first_code:text.index("```", first_code + 3)]
    assert "make demo" in block and "make test" in block
    assert len(_readme_blocks()) >= 8


@pytest.mark.parametrize("index", range(len(_readme_blocks())))
def test_readme_snippet_runs(index, tmp_path, monkeypatch):
    code = _readme_blocks()[index]
    missing = [n for n in re.findall(r"^\s*(?:import|from)\s+(\w+)", code, re.M)
               if not _installed(n)]
    if missing:
        pytest.skip(f"README snippet {index} needs {', '.join(missing)}, not installed")
    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(code, f"README.md[python block {index}]", "exec"), {"__name__": "__readme__"})
    except ImportError as exc:  # a data set whose package is an optional extra
        if "not installed" not in str(exc):
            raise
        pytest.skip(f"README snippet {index}: {exc}")


# --- the site -------------------------------------------------------------------

def _nav_pages(nav):
    for item in nav:
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            for value in item.values():
                yield from (_nav_pages(value) if isinstance(value, list) else [value])


def _mkdocs_config():
    yaml = pytest.importorskip("yaml")

    class Loader(yaml.SafeLoader):
        pass

    # mkdocs.yml may hold !!python/name tags (pymdownx options); they do not matter here
    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    return yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)


def test_nav_pages_exist_and_cover_the_package():
    config = _mkdocs_config()
    pages = list(_nav_pages(config["nav"]))
    for page in pages:
        assert (ROOT / "docs" / page).is_file(), f"mkdocs.yml nav names a missing page: {page}"
    guides = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert guides <= set(pages), f"pages left out of the nav: {sorted(guides - set(pages))}"
    for sub in ("contraction", *sorted(tensornet._SUBPACKAGES)):
        page = ROOT / "docs" / "api" / f"{sub}.md"
        assert f"api/{sub}.md" in pages, f"no API page for tensornet.{sub} in the nav"
        assert f"::: tensornet.{sub}" in page.read_text(encoding="utf-8")


def test_examples_page_includes_every_script():
    text = (ROOT / "docs" / "examples.md").read_text(encoding="utf-8")
    for script in sorted((ROOT / "examples").glob("*.py")):
        assert f'--8<-- "examples/{script.name}"' in text, f"{script.name} missing from the page"


def test_benchmark_plots_resolve_from_docs():
    readme = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme):
        assert (ROOT / "docs" / target).is_file(), f"plot {target} does not resolve from docs/"


def test_cli_reference_lists_every_subcommand():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        hooks = importlib.import_module("hooks")
    finally:
        sys.path.remove(str(ROOT / "docs"))
    text = hooks.cli_reference()
    from tensornet.cli import build_parser

    parser = build_parser()
    subs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in subs.choices:
        assert f"### `tensornet {name}`" in text
        assert f"usage: tensornet {name}" in text


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None
                    or importlib.util.find_spec("mkdocstrings") is None,
                    reason="the docs extra is not installed (pip install -e '.[docs]')")
def test_site_builds_strict_without_warnings(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "WARNING" not in log, log[-4000:]
    assert (tmp_path / "site" / "benchmarks" / "index.html").is_file()
    assert (tmp_path / "site" / "results" / "bench_compression.png").is_file()
