"""``tensornet info``: versions, available backends and devices."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform

from ._io import echo

PACKAGES = ("tensornet", "numpy", "scipy", "tensorly", "opt_einsum", "torch", "cupy-cuda12x",
            "scikit-learn", "dask", "distributed")


def add_parser(sub):
    return sub.add_parser("info", help="versions, backends and devices",
                          description="Print versions, the array backends that can be used "
                                      "and the compute devices found.\n\nexample:\n  tensornet info",
                          formatter_class=__import__("argparse").RawDescriptionHelpFormatter)


def collect() -> dict:
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            versions[p] = None
    backends = {"numpy": True,
                "pytorch": importlib.util.find_spec("torch") is not None,
                "cupy": importlib.util.find_spec("cupy") is not None}
    devices = ["cpu"]
    try:
        import torch

        devices += [f"cuda:{i} ({torch.cuda.get_device_name(i)})"
                    for i in range(torch.cuda.device_count())]
        threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        threads = None
    return {"python": platform.python_version(), "platform": platform.platform(),
            "versions": versions, "backends": backends, "devices": devices,
            "torch_threads": threads}


def run(args) -> int:
    info = collect()
    echo(f"python     {info['python']} on {info['platform']}")
    for name, v in info["versions"].items():
        echo(f"{name:<12} {v or '-- not installed'}")
    echo("backends   " + ", ".join(f"{k}{'' if ok else ' (missing)'}"
                                    for k, ok in info["backends"].items()))
    if not info["backends"]["cupy"]:
        echo("           (CuPy: pip install tensornet[gpu])")
    echo("devices    " + ", ".join(info["devices"]))
    echo(f"threads    {info['torch_threads']}")
    return 0
