"""``tensornet compress``: tensorize a trained model's dense layers and save the new weights."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from . import CLIError
from ._io import echo

EPILOG = """\
examples:
  tensornet compress --model mypkg.nets:build_model --weights net.pt \\
      --factorization tt --rank 0.1 --out small.pt
  tensornet compress --model mypkg.nets:build_model --weights net.pt \\
      --factorization tucker --rank 0.05 --min-params 10000 --input-shape 1,3,32,32 \\
      --out small.pt --report small.json

The factory (a callable, MODULE:NAME) must build the model without arguments;
--weights is its state_dict saved with torch.save (read with weights_only=True).
The output is the state_dict of the tensorized model. To load it later, build
the same model, tensorize it with the same options and decompose=False (or pass
the ranks listed in --report as rank=), then call load_state_dict:

  model = build_model()
  tensornet.nn.tensorize(model, "tt", rank=0.1, inplace=True, decompose=False)
  model.load_state_dict(torch.load("small.pt", weights_only=True))
"""


def add_parser(sub):
    p = sub.add_parser(
        "compress", help="replace a model's dense layers by tensorized ones",
        description="Build a model from an importable factory, load its trained weights, "
                    "replace every large Linear / Conv2d by a CP, Tucker or tensor-train "
                    "layer initialised from the trained weights, save the new state_dict "
                    "and print a per-layer report (parameters, FLOPs, approximation error).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, metavar="MODULE:FACTORY",
                   help="importable callable returning the torch.nn.Module, e.g. "
                        "mypkg.nets:build_model")
    p.add_argument("--weights", required=True, metavar="PATH",
                   help="state_dict of the trained model (torch.save)")
    p.add_argument("--factorization", default="tt", choices=("tt", "cp", "tucker"),
                   help="kind of tensorized layer (default: tt)")
    p.add_argument("--rank", default="0.1",
                   help="rank of every new layer: a fraction in (0, 1] of each layer's "
                        "parameters (e.g. 0.1), an int, or comma-separated ints "
                        "(default: 0.1)")
    p.add_argument("--min-params", type=int, default=4096, metavar="N",
                   help="keep layers whose weight has fewer than N entries (default: 4096)")
    p.add_argument("--exclude", action="append", default=[], metavar="NAME",
                   help="name of a layer to keep as it is (repeatable)")
    p.add_argument("--input-shape", default=None, metavar="B,C,H,W",
                   help="shape of a random example batch: adds convolution FLOPs and "
                        "output errors to the report")
    p.add_argument("--out", required=True, metavar="PATH",
                   help="where to save the tensorized model's state_dict")
    p.add_argument("--report", default=None, metavar="PATH",
                   help="also write the report as JSON")
    return p


def parse_rank(text: str):
    """``'0.1'`` -> 0.1, ``'8'`` -> 8, ``'4,8'`` -> (4, 8); CLIError otherwise."""
    text = text.strip()
    try:
        if "," in text:
            parts = tuple(int(t) for t in text.split(",") if t.strip())
            if not parts or any(r < 1 for r in parts):
                raise ValueError
            return parts
        if any(c in text for c in ".eE"):
            value = float(text)
            if not 0.0 < value <= 1.0:
                raise ValueError
            return value
        value = int(text)
        if value < 1:
            raise ValueError
        return value
    except ValueError:
        raise CLIError(f"--rank must be a fraction in (0, 1] such as 0.1, a positive int or "
                       f"comma-separated positive ints; got {text!r}") from None


def load_factory(spec: str):
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CLIError(f"--model must look like MODULE:FACTORY (e.g. mypkg.nets:build_model); "
                       f"got {spec!r}")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: modules of the working directory import
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CLIError(f"--model: cannot import module {module_name!r} ({exc})") from None
    try:
        factory = getattr(module, attr)
    except AttributeError:
        raise CLIError(f"--model: module {module_name!r} has no attribute {attr!r}") from None
    if not callable(factory):
        raise CLIError(f"--model: {spec} is not callable")
    return factory


def run(args) -> int:
    import torch
    from torch import nn

    from ..nn import tensorize

    rank = parse_rank(args.rank)
    if args.min_params < 0:
        raise CLIError(f"--min-params must be >= 0; got {args.min_params}")
    example = None
    if args.input_shape:
        try:
            shape = tuple(int(s) for s in args.input_shape.split(","))
            if not shape or any(s < 1 for s in shape):
                raise ValueError
        except ValueError:
            raise CLIError(f"--input-shape must be comma-separated positive ints such as "
                           f"1,3,32,32; got {args.input_shape!r}") from None
        example = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    factory = load_factory(args.model)
    try:
        model = factory()
    except Exception as exc:  # a user's factory can fail in any way
        raise CLIError(f"--model: calling {args.model}() failed: {type(exc).__name__}: "
                       f"{exc}") from None
    if not isinstance(model, nn.Module):
        raise CLIError(f"--model: {args.model}() must return a torch.nn.Module; got "
                       f"{type(model).__name__}")
    path = Path(args.weights)
    if not path.is_file():
        raise CLIError(f"--weights: no such file: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors have many types
        raise CLIError(f"--weights: cannot read {path} as a state_dict saved with torch.save "
                       f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                       ) from None
    if not isinstance(state, dict):
        raise CLIError(f"--weights: {path} holds a {type(state).__name__}, not a state_dict")
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()
        raise CLIError(f"--weights: the state_dict does not fit {args.model}() "
                       f"({' '.join(line.strip() for line in first[:3])})") from None
    model.eval()
    try:
        report = tensorize(model, args.factorization, rank, min_params=args.min_params,
                           inplace=True, exclude=args.exclude, example_input=example)
    except (ValueError, TypeError) as exc:
        raise CLIError(str(exc)) from None
    except RuntimeError as exc:
        raise CLIError(f"--input-shape does not fit the model ({str(exc).splitlines()[0]})"
                       ) from None
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), out)
    except OSError as exc:
        raise CLIError(f"--out: cannot write {out} ({exc.strerror or exc})") from None
    echo(report)
    echo(f"\nsaved the tensorized state_dict to {out} "
          f"({report.params_before:,} -> {report.params_after:,} parameters in the considered "
          f"layers)")
    if args.report:
        payload = {"model": args.model, "weights": str(path), "factorization":
                   args.factorization, "rank": rank if not isinstance(rank, tuple)
                   else list(rank), "summary": report.summary(), "layers": report.to_dicts()}
        try:
            Path(args.report).write_text(json.dumps(payload, indent=1) + "\n")
        except OSError as exc:
            raise CLIError(f"--report: cannot write {args.report} ({exc.strerror or exc})"
                           ) from None
        echo(f"wrote the report to {args.report}")
    return 0
