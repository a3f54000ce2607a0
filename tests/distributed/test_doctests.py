"""The Examples sections of tensornet.distributed run as doctests."""

import doctest
import importlib

import pytest

MODULES = ["_signs", "_signsgd", "_dask_lda"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"tensornet.distributed.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
