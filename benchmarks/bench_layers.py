"""Tensorized layers against dense layers and tensorly-torch 0.5: speed, size, FLOPs.

Cases (all with bias, float32):

* ``Linear 1024x1024``, modes ``(16, 8, 8)`` for input and output;
* ``Linear 1024x1024``, modes ``(4, 8, 8, 4)``, TT at rank 8 and at the
  uneven ranks ``(1, 3, 7, 2, 1)`` a rank-pruned (Bregman) layer ends with;
* ``Linear 4096x4096``, modes ``(16, 16, 16)``;
* ``Conv 3x3 256->256`` on 32x32 maps, padding 1;

each at batch 1, 32 and 256, with TT (TT-matrix), CP and Tucker layers at
ranks that cut the parameters 10x or more. Contenders, timed in one process,
alternating, after a warm-up, with the same thread count:

* the dense ``nn.Linear`` / ``nn.Conv2d``;
* tensornet's ``TTLinear`` / ``CPLinear`` / ``TuckerLinear`` / ``CPConv2d`` /
  ``TuckerConv2d`` / ``TTConv2d`` (forward path chosen per input shape);
* tensorly-torch 0.5 ``FactorizedLinear`` (``blocktt`` / ``cp`` / ``tucker``)
  and ``FactorizedConv`` (``tt`` / ``cp`` / ``tucker`` with full spatial
  ranks) at the same shapes and ranks, with both of its implementations,
  ``'factorized'`` and ``'reconstructed'``; the faster one is the peer.
  (For the convolution at batch 256, and in ``--quick`` runs, only
  ``'factorized'`` is timed: ``'reconstructed'`` rebuilds the kernel and runs
  the dense convolution, so it cannot beat the dense layer, and it costs
  minutes there.)

Measured: forward + backward time (input requires grad, a fixed random
output gradient), forward time without autograd, and the forward latency at
batch 1. FLOPs count a multiply-add as 2; tensornet's are those of the path
it picks, the FLOP rate is FLOPs / forward time. Quality: every layer's
output is compared with its own rebuilt dense weight (float32 round-off).

Run: ``python -m benchmarks.bench_layers [--quick] [--device cuda] [--threads N]``.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from ._harness import (compare, fmt_range, fmt_time, machine, markdown_table, parse_args,
                       update_readme, write_results)

NAME = "bench_layers"


def _extra(p):
    p.add_argument("--no-tltorch", action="store_true", help="skip tensorly-torch")
    p.add_argument("--report-only", action="store_true",
                   help="rebuild the README section from the saved JSON")
    p.add_argument("--kinds", default="linear,conv",
                   help="comma-separated layer kinds to time (linear, conv)")
    p.add_argument("--merge", action="store_true",
                   help="keep the saved rows of the kinds not timed in this run (each row "
                        "records the commit it was measured at)")


# ----------------------------------------------------------------------------- cases
def cases(quick: bool):
    lin1k = dict(kind="linear", n=1024, shape=(16, 8, 8))
    lin1k4 = dict(kind="linear", n=1024, shape=(4, 8, 8, 4), label="(4,8,8,4)")
    lin4k = dict(kind="linear", n=4096, shape=(16, 16, 16))
    conv = dict(kind="conv", c=256, k=3, hw=32)
    out = [
        (lin1k, "tt", 4), (lin1k, "cp", 128), (lin1k, "tucker", 4),
    ]
    if not quick:
        out += [
            (lin1k, "tt", 16), (lin1k, "cp", 0.1), (lin1k, "tucker", 8),
            # a TT layer before and after (Bregman) rank pruning to uneven ranks
            (lin1k4, "tt", 8), (lin1k4, "tt", (1, 3, 7, 2, 1)),
            (lin4k, "tt", 4), (lin4k, "tt", 16), (lin4k, "cp", 256), (lin4k, "tucker", 8),
            (conv, "cp", 64), (conv, "tucker", (64, 64)), (conv, "tt", (32, 32, 32)),
        ]
    return out


def case_name(cfg):
    if cfg["kind"] == "linear":
        return f"Linear {cfg['n']}x{cfg['n']}" + (f" {cfg['label']}" if "label" in cfg else "")
    return f"Conv {cfg['k']}x{cfg['k']} {cfg['c']}->{cfg['c']} @{cfg['hw']}x{cfg['hw']}"


def build(cfg, fac, rank, device):
    """(dense, ours, {tltorch impl: module}) for one case."""
    from tensornet.nn import CPConv2d, CPLinear, TTConv2d, TTLinear, TuckerConv2d, \
        TuckerLinear

    torch.manual_seed(0)
    kw = dict(device=device)
    if cfg["kind"] == "linear":
        n, shp = cfg["n"], cfg["shape"]
        dense = nn.Linear(n, n, **kw)
        cls = {"tt": TTLinear, "cp": CPLinear, "tucker": TuckerLinear}[fac]
        ours = cls(n, n, rank, in_shape=shp, out_shape=shp, **kw)
    else:
        c, k = cfg["c"], cfg["k"]
        dense = nn.Conv2d(c, c, k, padding=k // 2, **kw)
        cls = {"tt": TTConv2d, "cp": CPConv2d, "tucker": TuckerConv2d}[fac]
        ours = cls(c, c, k, rank, padding=k // 2, **kw)
    return dense, ours


def build_tltorch(cfg, fac, ours, device):
    import tltorch

    out = {}
    for impl in ("factorized", "reconstructed"):
        torch.manual_seed(0)
        if cfg["kind"] == "linear":
            shp = cfg["shape"]
            if fac == "tt":
                t_fac, t_rank = "blocktt", list(ours.rank)
            elif fac == "cp":
                t_fac, t_rank = "cp", ours.rank[0]
            else:
                t_fac, t_rank = "tucker", tuple(ours.rank)
            m = tltorch.FactorizedLinear(shp, shp, bias=True, factorization=t_fac, rank=t_rank,
                                         implementation=impl, device=device)
        else:
            c, k = cfg["c"], cfg["k"]
            if fac == "tt":
                t_rank = list(ours.rank)
            elif fac == "cp":
                t_rank = ours.rank[0]
            else:
                t_rank = (ours.rank[0], ours.rank[1], k, k)
            m = tltorch.FactorizedConv(c, c, (k, k), padding=k // 2, bias=True,
                                       factorization=fac, rank=t_rank, implementation=impl,
                                       device=device)
            m.reset_parameters()  # FactorizedConv leaves its tensors uninitialised
            with torch.no_grad():
                m.bias.zero_()
        out[impl] = m
    return out


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def _number_for(fn, device, target=0.02):
    """How many calls to time together so that one sample lasts about ``target`` seconds."""
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return max(1, min(200, int(target / max(dt, 1e-7))))


# ----------------------------------------------------------------------------- run
def run_case(cfg, fac, rank, batches, args, use_tltorch):
    device = args.device
    dense, ours = build(cfg, fac, rank, device)
    tl = {}
    if use_tltorch:
        tl = build_tltorch(cfg, fac, ours, device)
    rows = []
    for B in batches:
        if cfg["kind"] == "linear":
            shape = (B, cfg["n"])
            flops_d = dense_flops = 2 * B * cfg["n"] ** 2
        else:
            shape = (B, cfg["c"], cfg["hw"], cfg["hw"])
            dense_flops = ours.dense_flops(B, (cfg["hw"], cfg["hw"]))
            flops_d = dense_flops
        torch.manual_seed(1)
        x = torch.randn(shape, device=device)
        xg = x.clone().requires_grad_()
        with torch.no_grad():
            y_ref = dense(x)
        g = torch.randn_like(y_ref)
        models = {"dense": dense, "tensornet": ours}
        for impl, m in tl.items():
            if impl == "reconstructed" and (args.quick or cfg["kind"] == "conv" and B >= 256):
                continue
            models[f"tltorch-{impl}"] = m

        def fb(m):
            def f():
                m(xg).backward(g)
            return f

        def fw(m):
            def f():
                with torch.no_grad():
                    m(x)
            return f

        # quality: every layer against its own rebuilt weight
        quality = {}
        with torch.no_grad():
            y_ours = ours(x)
            y_dense_ours = ours.to_dense()(x)
            quality["tensornet"] = float((y_ours - y_dense_ours).norm() / y_dense_ours.norm())
        reps = args.repeat
        if cfg["kind"] == "conv" and B >= 256 and not args.quick:
            reps = max(5, min(reps, 5))
        target = 0.01 if args.quick else 0.02
        number_fb = min(_number_for(fb(m), device, target) for m in models.values())
        t_fb = compare({k: fb(m) for k, m in models.items()}, repeat=reps, warmup=1,
                       device=device, number=number_fb)
        number_fw = min(_number_for(fw(m), device, target) for m in models.values())
        t_fw = compare({k: fw(m) for k, m in models.items()}, repeat=reps, warmup=1,
                       device=device, number=number_fw)
        our_flops = ours.flops(B) if cfg["kind"] == "linear" \
            else ours.flops(B, (cfg["hw"], cfg["hw"]))
        # the fewest FLOPs any of the layer's paths needs (its intrinsic cost)
        min_flops = min(c[0][1] for c in type(ours)._candidates(ours.spec, shape, False))
        row = {
            "case": case_name(cfg), "factorization": fac, "rank": list(ours.rank)
            if isinstance(ours.rank, tuple) else ours.rank, "rank_arg": rank, "batch": B,
            "params": {k: n_params(m) for k, m in models.items()},
            "flops": {"dense": flops_d, "tensornet": our_flops, "tensornet_min": min_flops},
            "path": ours.path(shape, grad=True), "path_nograd": ours.path(shape, grad=False),
            "fwdbwd": {k: v for k, v in t_fb.items()},
            "fwd": {k: v for k, v in t_fw.items()},
            "quality_rel_err_vs_own_dense": quality,
        }
        rows.append(row)
        med = {k: statistics.median(v) for k, v in t_fb.items()}
        peer = min((v, k) for k, v in med.items() if k.startswith("tltorch")) if tl else None
        print(f"  {case_name(cfg)} {fac} rank={row['rank']} B={B}: dense {fmt_time(med['dense'])}"
              f" | tensornet {fmt_time(med['tensornet'])} ({med['dense'] / med['tensornet']:.2f}x)"
              + (f" | {peer[1]} {fmt_time(peer[0])}" if peer else "")
              + f" | path {row['path']}", flush=True)
    return rows


# ----------------------------------------------------------------------------- report
def _med(xs):
    return statistics.median(xs)


def analyse(rows):
    """Per-row ratios and the targets of issue 3."""
    out = []
    for r in rows:
        fb, fw = r["fwdbwd"], r["fwd"]
        d_fb, o_fb = _med(fb["dense"]), _med(fb["tensornet"])
        d_fw, o_fw = _med(fw["dense"]), _med(fw["tensornet"])
        tl_fb = {k: _med(v) for k, v in fb.items() if k.startswith("tltorch")}
        tl_fw = {k: _med(v) for k, v in fw.items() if k.startswith("tltorch")}
        peer_fb = min(tl_fb.items(), key=lambda kv: kv[1]) if tl_fb else None
        peer_fw = min(tl_fw.items(), key=lambda kv: kv[1]) if tl_fw else None
        p_ratio = r["params"]["dense"] / r["params"]["tensornet"]
        f_ratio = r["flops"]["dense"] / r["flops"]["tensornet"]
        f_ratio_min = r["flops"]["dense"] / r["flops"]["tensornet_min"]
        rate = (r["flops"]["tensornet"] / o_fw) / (r["flops"]["dense"] / d_fw)
        out.append(dict(r, speedup_fb=d_fb / o_fb, speedup_fw=d_fw / o_fw,
                        vs_tl_fb=(peer_fb[1] / o_fb) if peer_fb else None,
                        vs_tl_fw=(peer_fw[1] / o_fw) if peer_fw else None,
                        peer_fb=peer_fb[0] if peer_fb else None,
                        params_ratio=p_ratio, flops_ratio=f_ratio, flops_ratio_min=f_ratio_min,
                        flop_rate=rate))
    return out


def targets(an):
    # target 1 applies where the factorization itself (its cheapest path) needs 4x fewer
    # FLOPs, whichever path the layer then runs
    t1 = [a for a in an if a["params_ratio"] >= 10 and a["flops_ratio_min"] >= 4]
    t2 = [a for a in an if a["batch"] >= 32]
    t3 = [a for a in an if a["batch"] == 1]
    t4 = [a for a in an if a["vs_tl_fb"] is not None]
    t4b = [a for a in t4 if (a["case"].startswith("Linear 1024") and a["batch"] in (1, 32))
           or (a["factorization"] == "tt" and a["case"].startswith("Linear")
               and max(a["rank"]) <= 4)]

    def worst(rows, key):
        return min(rows, key=lambda a: a[key]) if rows else None

    res = {
        "1_fwdbwd_2x_faster_when_10x_params_4x_flops": {
            "n": len(t1), "met": sum(a["speedup_fb"] >= 2 for a in t1),
            "worst": _brief(worst(t1, "speedup_fb"), "speedup_fb")},
        "2_flop_rate_60pct_of_dense_batch_ge_32": {
            "n": len(t2), "met": sum(a["flop_rate"] >= 0.6 for a in t2),
            "worst": _brief(worst(t2, "flop_rate"), "flop_rate")},
        "3_batch1_latency_not_above_dense": {
            "n": len(t3), "met": sum(a["speedup_fw"] >= 1 for a in t3),
            "worst": _brief(worst(t3, "speedup_fw"), "speedup_fw")},
        "4a_never_slower_than_tltorch_fwdbwd": {
            "n": len(t4), "met": sum(a["vs_tl_fb"] >= 1 for a in t4),
            "worst": _brief(worst(t4, "vs_tl_fb"), "vs_tl_fb")},
        "4b_3x_faster_than_tltorch_where_overhead_bound": {
            "n": len(t4b), "met": sum(min(a["vs_tl_fb"], a["vs_tl_fw"]) >= 3 for a in t4b),
            "worst": _brief(worst(t4b, "vs_tl_fb"), "vs_tl_fb")},
    }
    return res


def _brief(a, key):
    if a is None:
        return None
    return {"case": a["case"], "factorization": a["factorization"], "rank": a["rank"],
            "batch": a["batch"], key: round(a[key], 3)}


def readme(an, tg, info, args):
    lines = [f"### Tensorized layers (`bench_layers`{', quick' if args.quick else ''})", "",
             f"{info['cpu']}, {args.threads} threads, device {args.device}, torch "
             f"{info['versions']['torch']}, tensorly-torch {info['versions']['tensorly-torch']}; "
             f"medians of {_reps(an)} alternating repetitions (min–max in "
             f"`results/{NAME}.json`). Speed-ups are dense / tensornet and tltorch / tensornet "
             "(> 1: tensornet faster); tltorch is the faster of its two implementations. "
             "FLOPs ÷: dense FLOPs over those of the path tensornet runs (in brackets: over "
             "the fewest any of its paths needs). FLOP rate: tensornet's FLOPs per forward "
             "second as a share of the dense layer's."]
    load = info.get("load_average_1min")
    if load:
        lines[-1] += (f" The machine (2 cores) was shared: 1-minute load average {load['start']} "
                      f"at the start of the run, {load['end']} at the end; single timings vary "
                      "widely (see the min–max ranges), so read the ratios of medians.")
    by_commit = {}
    for a in an:
        kind = "convolution" if a["case"].startswith("Conv") else "linear"
        by_commit.setdefault(a.get("commit") or "?", set()).add(kind)
    if len(by_commit) > 1:
        lines[-1] += " Rows measured in separate runs (each row's contenders alternate within " \
            "its run): " + "; ".join(f"{', '.join(sorted(v))} at commit `{k}`"
                                      for k, v in by_commit.items()) + "."
    lines.append("")
    header = ["layer", "fact.", "rank", "params ÷", "FLOPs ÷ (min)", "batch", "path",
              "dense fwd+bwd", "tensornet fwd+bwd", "× dense", "tltorch fwd+bwd", "× tltorch",
              "fwd × dense", "fwd × tltorch", "FLOP rate"]
    rows = []
    for a in an:
        fb = a["fwdbwd"]
        tl = fb.get(a["peer_fb"]) if a["peer_fb"] else None
        rows.append([a["case"], a["factorization"], _rank_str(a["rank"]),
                     f"{a['params_ratio']:.0f}",
                     f"{a['flops_ratio']:.1f} ({a['flops_ratio_min']:.1f})", a["batch"],
                     a["path"], fmt_range(fb["dense"]), fmt_range(fb["tensornet"]),
                     f"{a['speedup_fb']:.2f}", fmt_range(tl) if tl else "–",
                     f"{a['vs_tl_fb']:.2f}" if a["vs_tl_fb"] else "–",
                     f"{a['speedup_fw']:.2f}",
                     f"{a['vs_tl_fw']:.2f}" if a["vs_tl_fw"] else "–",
                     f"{100 * a['flop_rate']:.0f}%"])
    lines.append(markdown_table(header, rows))
    lines += ["", "Batch-1 forward latency (no autograd):", ""]
    rows = []
    for a in an:
        if a["batch"] != 1:
            continue
        fw = a["fwd"]
        tl = {k: v for k, v in fw.items() if k.startswith("tltorch")}
        best = min(tl.items(), key=lambda kv: _med(kv[1])) if tl else None
        rows.append([a["case"], a["factorization"], _rank_str(a["rank"]),
                     fmt_range(fw["dense"]), fmt_range(fw["tensornet"]),
                     a["path_nograd"],
                     f"{best[0][8:]} {fmt_range(best[1])}" if best else "–"])
    lines.append(markdown_table(["layer", "fact.", "rank", "dense", "tensornet", "path",
                                 "tltorch (best)"], rows))
    lines += ["", "Targets of issue 3 (met / configurations it applies to; worst case):", ""]
    for k, v in tg.items():
        lines.append(f"- `{k}`: {v['met']}/{v['n']}"
                     + (f" — worst {v['worst']}" if v["worst"] else ""))
    return "\n".join(lines)


def _reps(an):
    counts = sorted({len(a["fwdbwd"]["dense"]) for a in an})
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"


def _load():
    import os

    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _commit():
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _rank_str(r):
    if isinstance(r, (list, tuple)):
        return "(" + ",".join(str(x) for x in r) + ")"
    return str(r)


def main(argv=None):
    args = parse_args(__doc__.splitlines()[0], argv, _extra)
    if args.report_only:
        import json
        import types

        from ._harness import RESULTS

        suffix = ("-quick" if args.quick else "") + \
            ("" if args.device == "cpu" else "-" + args.device.replace(":", ""))
        saved = json.loads((RESULTS / f"{NAME}{suffix}.json").read_text())
        s = saved["settings"]
        args = types.SimpleNamespace(quick=s["quick"], repeat=s["repeat"], threads=s["threads"],
                                     device=saved["machine"]["device"],
                                     no_readme=args.no_readme)
        an = saved["rows"]
        tg = targets(an)
        if not args.no_readme:
            update_readme(NAME + ("-" + args.device.replace(":", "") if args.device != "cpu"
                                  else ""), readme(an, tg, saved["machine"], args))
        for k, v in tg.items():
            print(f"{k}: {v['met']}/{v['n']} worst {v['worst']}")
        return 0
    use_tl = not args.no_tltorch
    if use_tl:
        try:
            import tltorch  # noqa: F401  (sets TensorLy's global backend; fine in a benchmark)
        except ImportError:
            print("tensorly-torch is not installed; running without it")
            use_tl = False
    batches = (1, 32) if args.quick else (1, 32, 256)
    kinds = {k.strip() for k in args.kinds.split(",") if k.strip()}
    if not kinds <= {"linear", "conv"}:
        raise SystemExit(f"--kinds must name linear and/or conv; got {args.kinds!r}")
    commit = _commit()
    rows = []
    t0 = time.time()
    load0 = _load()
    for cfg, fac, rank in cases(args.quick):
        if cfg["kind"] in kinds:
            rows += [dict(r, commit=commit) for r in
                     run_case(cfg, fac, rank, batches, args, use_tl)]
    if args.merge:
        import json

        from ._harness import RESULTS

        suffix = ("-quick" if args.quick else "") + \
            ("" if args.device == "cpu" else "-" + args.device.replace(":", ""))
        old_path = RESULTS / f"{NAME}{suffix}.json"
        if old_path.exists():
            kept = [r for r in json.loads(old_path.read_text())["rows"]
                    if ("Conv" if r["case"].startswith("Conv") else "Linear").lower()
                    not in kinds]
            keep_keys = {k for k in rows[0]} if rows else None
            kept = [{k: v for k, v in r.items() if keep_keys is None or k in keep_keys
                     or k == "commit"} for r in kept]
            rows = [r for r in rows if r["case"].startswith("Linear")] + kept + \
                [r for r in rows if r["case"].startswith("Conv")]
    an = analyse(rows)
    tg = targets(an)
    info = machine(args.device, args.threads)
    payload = {"machine": info, "settings": {"quick": args.quick, "repeat": args.repeat,
                                             "threads": args.threads, "batches": batches},
               "rows": an, "targets": tg, "seconds": time.time() - t0,
               "load_average_1min": {"start": load0, "end": _load()}}
    info["load_average_1min"] = payload["load_average_1min"]  # (payload["machine"] too)
    path = write_results(NAME + ("-quick" if args.quick else ""), payload, args.device)
    print(f"wrote {path}")
    for k, v in tg.items():
        print(f"{k}: {v['met']}/{v['n']} worst {v['worst']}")
    if not args.no_readme:
        update_readme(NAME + ("-" + args.device.replace(":", "") if args.device != "cpu"
                              else ""), readme(an, tg, info, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
