"""``tensornet topics fit``: success paths and user mistakes (exit code 2, one line on stderr)."""

import csv
import json

import numpy as np
import pytest

from tensornet.cli import main
from tensornet.datasets import load_lee_corpus
from tensornet.topics import TensorLDA


@pytest.fixture(scope="module")
def lee_texts():
    return load_lee_corpus().texts


@pytest.fixture
def lines_file(tmp_path, lee_texts):
    path = tmp_path / "lee.txt"
    path.write_text("\n".join(lee_texts) + "\n")
    return path


def test_fit_lines_writes_every_output(lines_file, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["topics", "fit", str(lines_file), "--n-topics", "4", "--out", str(out),
               "--n-words", "8"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "read 300 documents" in captured.out
    topic_lines = [line for line in captured.out.splitlines() if line.startswith("topic ")]
    assert len(topic_lines) == 4 and all(len(t.split(":")[1].split()) == 8 for t in topic_lines)
    assert "NPMI" in captured.out
    assert "reading lee.txt" in captured.err  # the progress bar
    summary = json.loads((out / "topics.json").read_text())
    assert summary["n_topics"] == 4 and summary["n_documents"] == 300
    assert [len(t["words"]) for t in summary["topics"]] == [8] * 4
    assert all(np.isfinite(t["npmi"]) for t in summary["topics"])
    theta = np.load(out / "doc_topic.npy")
    assert theta.shape == (300, 4)
    np.testing.assert_allclose(theta.sum(1), 1.0)
    assert (out / "topics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    vocab = (out / "vocabulary.txt").read_text().split()
    model = TensorLDA.load(out / "model")
    assert model.components_.shape == (4, len(vocab))
    first = summary["topics"][0]
    assert first["words"][0] == vocab[int(np.argmax(model.components_[0]))]


def test_fit_dir_and_csv_with_auto_alpha0(tmp_path, lee_texts, capsys):
    d = tmp_path / "docs"
    d.mkdir()
    for i, t in enumerate(lee_texts):
        (d / f"{i:03d}.txt").write_text(t)
    rc = main(["topics", "fit", str(d), "--format", "dir", "--n-topics", "3",
               "--alpha0", "auto", "--out", str(tmp_path / "o1"), "--quiet"])
    assert rc == 0
    assert "alpha0 chosen" in capsys.readouterr().out
    with open(tmp_path / "c.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "body"])
        for i, t in enumerate(lee_texts):
            w.writerow([i, t])
    rc = main(["topics", "fit", str(tmp_path / "c.csv"), "--format", "csv", "--column", "body",
               "--n-topics", "3", "--out", str(tmp_path / "o2"), "--quiet"])
    assert rc == 0
    a = json.loads((tmp_path / "o2" / "topics.json").read_text())
    assert a["n_documents"] == 300


@pytest.mark.parametrize("extra, message", [
    (["--n-topics", "1000"], "must be smaller than the number of documents"),
    (["--n-topics", "0"], "--n-topics must be a positive integer"),
    (["--n-topics", "3", "--refine-passes", "-1"], "--refine-passes must be 0 or more"),
    (["--n-topics", "3", "--alpha0", "big"], "--alpha0 must be a positive number or 'auto'"),
    (["--n-topics", "3", "--alpha0", "-1"], "--alpha0 must be a positive number"),
    (["--n-topics", "3", "--max-df", "2"], "--max-df must be in"),
])
def test_bad_options_exit_2(lines_file, tmp_path, capsys, extra, message):
    rc = main(["topics", "fit", str(lines_file), "--out", str(tmp_path / "o"), "--quiet",
               *extra])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tensornet topics: error:")
    assert message in err[0]


def test_bad_inputs_exit_2(tmp_path, capsys):
    cases = []
    cases.append((["topics", "fit", str(tmp_path / "nope.txt"), "--n-topics", "2"],
                  "does not exist"))
    (tmp_path / "t.csv").write_text("a,b\nx,y\n")
    cases.append((["topics", "fit", str(tmp_path / "t.csv"), "--format", "csv", "--n-topics",
                   "2"], "column 'text' is not in the CSV file"))
    (tmp_path / "short.txt").write_text("alpha beta\ngamma delta\nalpha gamma\n" * 10)
    cases.append((["topics", "fit", str(tmp_path / "short.txt"), "--n-topics", "2"],
                  "fewer than 3 tokens"))
    (tmp_path / "stop.txt").write_text("the and of\nto a in\n")
    cases.append((["topics", "fit", str(tmp_path / "stop.txt"), "--n-topics", "2"],
                  "cannot count words"))
    (tmp_path / "file").write_text("x")
    cases.append((["topics", "fit", str(tmp_path / "short.txt"), "--n-topics", "2", "--out",
                   str(tmp_path / "file")], "exists and is not a folder"))
    for argv, message in cases:
        if "--out" not in argv:
            argv = argv + ["--out", str(tmp_path / "o")]
        rc = main(argv + ["--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2, argv
        assert len(err) == 1 and message in err[0], (argv, err)


def test_topics_without_action_prints_help(capsys):
    assert main(["topics"]) == 2
    assert "fit" in capsys.readouterr().out
