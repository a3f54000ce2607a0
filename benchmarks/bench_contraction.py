"""Contraction: tensornet's cached plans against einsum implementations.

Cases
-----
* ``tt_layer``: a TT-matrix times a batch, shaped like a layer (4 cores,
  mode sizes 8, rank 16, batch 256): ``bijkl,aimc,cjnd,dkoe,elpf->bmnop``.
* ``tucker_layer``: a Tucker-factorized 1024x1024 weight applied to a batch.
* ``chain``: a 3-matrix chain where the order matters.
* ``tiny``: the TT-layer expression on size-2 operands, to expose per-call overhead.

Contenders (all in one process, alternating): ``ContractionPlan.__call__``
(tensornet), opt_einsum ``contract_expression`` (pre-built), ``torch.einsum``
(with opt_einsum path optimisation enabled, its default when opt_einsum is
installed) and ``numpy.einsum(optimize=True)``. Each case also times a dense
GEMM of a known FLOP count in the same run and reports the plan's achieved
FLOP rate as a fraction of the GEMM's.

Run: ``python -m benchmarks.bench_contraction [--quick] [--device cuda]``.
"""

from __future__ import annotations

import numpy as np
import opt_einsum as oe
import torch

from tensornet import contract_plan

from ._harness import (compare, fmt_range, machine, markdown_table, parse_args, summary,
                       update_readme, write_results)

NAME = "bench_contraction"


def _cases(quick: bool):
    n, r, b = 8, 16, 256
    tt = ("bijkl,aimc,cjnd,dkoe,elpf->bmnop",
          [(b, n, n, n, n), (1, n, n, r), (r, n, n, r), (r, n, n, r), (r, n, n, 1)])
    tucker = ("bij,ia,jc,acde,kd,le->bkl",
              [(b, 32, 32), (32, 16), (32, 16), (16, 16, 16, 16), (32, 16), (32, 16)])
    chain = ("ij,jk,kl->il", [(2048, 64), (64, 2048), (2048, 256)])
    tiny = (tt[0], [tuple(2 for _ in s) for s in tt[1]])
    cases = {"tt_layer": tt, "tucker_layer": tucker, "chain": chain, "tiny": tiny}
    if quick:
        cases["tt_layer"] = (tt[0], [(64,) + tt[1][0][1:]] + tt[1][1:])
    return cases


def _dense_gemm(device, dtype):
    m, k, n = 256, 4096, 4096
    a = torch.randn(m, k, device=device, dtype=dtype)
    w = torch.randn(k, n, device=device, dtype=dtype)
    return (lambda: a @ w), 2 * m * k * n


def run(args):
    device = args.device
    dtype = torch.float32
    rng = np.random.default_rng(0)
    gemm, gemm_flops = _dense_gemm(device, dtype)
    results = {"machine": machine(device, args.threads), "cases": {}}
    rows = []
    for name, (eq, shapes) in _cases(args.quick).items():
        ops_np = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        ops_t = [torch.as_tensor(o, device=device) for o in ops_np]
        plan = contract_plan(eq, *shapes)
        expr = oe.contract_expression(eq, *shapes)
        reference = np.einsum(eq, *[o.astype(np.float64) for o in ops_np], optimize=True)
        got = plan(*ops_t).double().cpu().numpy()
        rel_err = float(np.linalg.norm(got - reference) / max(np.linalg.norm(reference), 1e-30))
        contenders = {
            "tensornet plan (torch)": lambda: plan(*ops_t),
            "opt_einsum expression (torch)": lambda: expr(*ops_t),
            "torch.einsum": lambda: torch.einsum(eq, *ops_t),
        }
        slow = {}
        if device == "cpu":
            contenders["tensornet plan (numpy)"] = lambda: plan(*ops_np)
            contenders["opt_einsum expression (numpy)"] = lambda: expr(*ops_np)
            np_einsum = lambda: np.einsum(eq, *ops_np, optimize=True)  # noqa: E731
            # numpy.einsum needs ~a minute per call on the TT layer: one timed call only
            (slow if name == "tt_layer" else contenders)["numpy.einsum(optimize=True)"] = np_einsum
        if name != "tiny":
            contenders["dense GEMM 256x4096x4096"] = gemm
        number = 200 if name == "tiny" else 1
        times = compare(contenders, repeat=args.repeat, warmup=2, device=device, number=number)
        times.update(compare(slow, repeat=1, warmup=0, device=device))
        med = {k: summary(v)["median"] for k, v in times.items()}
        case = {"subscripts": eq, "shapes": shapes, "flops": plan.flops, "path": plan.path,
                "largest_intermediate": plan.largest_intermediate, "rel_error_vs_float64": rel_err,
                "times_s": times, "median_s": med}
        base = med["tensornet plan (torch)"]
        if name != "tiny":
            plan_rate = plan.flops / base
            gemm_rate = gemm_flops / med["dense GEMM 256x4096x4096"]
            case["plan_gflops"] = plan_rate / 1e9
            case["gemm_gflops"] = gemm_rate / 1e9
            case["flop_rate_fraction_of_gemm"] = plan_rate / gemm_rate
        results["cases"][name] = case
        for k, v in times.items():
            if k.startswith("dense"):
                continue
            ref = med["tensornet plan (numpy)"] if "numpy" in k and device == "cpu" else base
            rows.append([name, k, fmt_range(v), f"{med[k] / ref:.2f}×"])
    return results, rows


def _markdown(results, rows, args):
    m = results["machine"]
    lines = [
        f"### Contraction ({'quick' if args.quick else 'full'} run, device {args.device})",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {args.threads} threads for every contender; "
        f"torch {m['versions']['torch']}, numpy {m['versions']['numpy']}, "
        f"opt_einsum {m['versions']['opt_einsum']}. float32, median of {args.repeat} "
        "alternating repetitions after warm-up (min–max in brackets; numpy.einsum on the "
        "TT layer is timed once, it takes about a minute per call). "
        "`time / plan` is each contender's median over tensornet's plan on the same "
        "array library (above 1 means tensornet is faster).",
        "",
        markdown_table(["case", "contender", "time per call", "time / plan"], rows),
        "",
    ]
    flop_rows = []
    for name, c in results["cases"].items():
        if "plan_gflops" in c:
            flop_rows.append([name, f"{c['flops'] / 1e9:.2f}", f"{c['plan_gflops']:.1f}",
                              f"{c['gemm_gflops']:.1f}", f"{100 * c['flop_rate_fraction_of_gemm']:.0f}%",
                              f"{c['rel_error_vs_float64']:.1e}"])
    lines += ["Achieved FLOP rate of the plan against a dense 256×4096×4096 GEMM timed in the "
              "same run:", "",
              markdown_table(["case", "GFLOP per call", "plan GFLOP/s", "GEMM GFLOP/s",
                              "fraction of GEMM rate", "rel. error vs float64"], flop_rows)]
    lines += ["", "Targets (issue 2), on the TT layer unless stated:", ""] + _targets(results)
    return "\n".join(lines)


def _targets(results):
    def verdict(ok):
        return "met" if ok else "**missed**"

    out = []
    tt = results["cases"]["tt_layer"]["median_s"]
    for lib in ("torch", "numpy"):
        plan, expr = f"tensornet plan ({lib})", f"opt_einsum expression ({lib})"
        if plan in tt and expr in tt:
            r = tt[expr] / tt[plan]
            out.append(f"- at least as fast as `contract_expression` ({lib}): "
                       f"{r:.2f}× — {verdict(r >= 1.0)}")
    r = tt["torch.einsum"] / tt["tensornet plan (torch)"]
    out.append(f"- ≥ 1.3× faster than `torch.einsum`: {r:.2f}× — {verdict(r >= 1.3)}")
    tiny = results["cases"]["tiny"]["median_s"]
    for lib in ("torch", "numpy"):
        key = f"tensornet plan ({lib})"
        if key in tiny:
            us = tiny[key] * 1e6
            out.append(f"- plan-call overhead on tiny operands ({lib}) < 50 µs: {us:.0f} µs — "
                       f"{verdict(us < 50)}")
    frac = results["cases"]["tt_layer"].get("flop_rate_fraction_of_gemm")
    if frac is not None:
        out.append(f"- achieved FLOP rate ≥ 60 % of a dense GEMM's: {100 * frac:.0f} % — "
                   f"{verdict(frac >= 0.6)}")
    return out


def main(argv=None):
    args = parse_args(__doc__.splitlines()[0], argv)
    results, rows = run(args)
    results["settings"] = vars(args)
    write_results(NAME, results, args.device)
    md = _markdown(results, rows, args)
    if not args.no_readme:
        update_readme(f"{NAME}-{args.device}", md)
    print(md)


if __name__ == "__main__":
    main()
