import subprocess
import sys
import threading

import numpy as np
import pytest
import tensorly as tl

from tensornet._backend import backend_for, backend_name, require_backend


def test_import_does_not_touch_tensorly_backend():
    code = ("import tensorly as tl, sys\n"
            "mgr = type(sys.modules['tensorly.backend'])\n"
            "before = (tl.get_backend(), mgr._default_backend)\n"
            "import tensornet, tensornet.decomposition, tensornet.nn, tensornet.contraction\n"
            "assert (tl.get_backend(), mgr._default_backend) == before, before\n"
            "assert 'cupy' not in sys.modules\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_backend_name_follows_data():
    torch = pytest.importorskip("torch")
    assert backend_name(np.ones(2)) == "numpy"
    assert backend_name(torch.ones(2)) == "pytorch"
    assert backend_name(None, 3, torch.ones(2)) == "pytorch"
    assert backend_name() == "numpy"
    with pytest.raises(TypeError, match="one array library"):
        backend_name(np.ones(2), torch.ones(2))


def test_backend_for_is_thread_local_and_restores_exactly():
    pytest.importorskip("torch")
    seen = {}

    def worker():
        with backend_for("pytorch"):
            seen["inside"] = tl.get_backend()
            seen["main_during"] = None
        seen["after"] = tl.get_backend()

    with backend_for("numpy"):
        pass
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == {"inside": "pytorch", "main_during": None, "after": "numpy"}
    assert tl.get_backend() == "numpy"
    # nested use on one thread
    with backend_for("pytorch"):
        with backend_for("numpy"):
            assert tl.get_backend() == "numpy"
        assert tl.get_backend() == "pytorch"
    assert tl.get_backend() == "numpy"


def test_user_backend_choice_is_respected():
    torch = pytest.importorskip("torch")
    from tensornet import contract

    tl.set_backend("pytorch")
    try:
        out = contract("ij,jk->ik", np.ones((2, 3)), np.ones((3, 2)))
        assert isinstance(out, np.ndarray)
        assert tl.get_backend() == "pytorch"
        out = contract("ij,jk->ik", torch.ones(2, 3), torch.ones(3, 2))
        assert isinstance(out, torch.Tensor)
    finally:
        tl.set_backend("numpy")


def test_unknown_and_missing_backends():
    with pytest.raises(ValueError, match="backend must be one of"):
        with backend_for("jax"):
            pass
    with pytest.raises(ValueError, match="backend must be one of"):
        require_backend("mxnet")
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"pip install tensornet\[gpu\]"):
            require_backend("cupy")
