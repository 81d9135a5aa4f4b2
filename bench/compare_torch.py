#!/usr/bin/env python3
"""Side-by-side throughput of clnorm and PyTorch, forward and backward.

Runs clnorm-bench --json (or reads its output with --clnorm-json), then runs
every case it reports through PyTorch on the same shapes, and prints both
with the speed-up, the backward beside the forward of the same case. Bytes
per case are clnorm-bench's effective byte count (forward: x read once, y
written once, parameters and statistics once; backward: x and dy read once,
dx written once, parameters, statistics and parameter gradients once, the
Triton tutorial's and Liger's model), so GB/s is comparable column to
column and speed-up = torch ms / clnorm ms.

Forward: torch.nn.functional. Backward (a clnorm-bench row with "direction":
"backward"): the forward runs once, untimed, for its saved statistics; then
the timed call is PyTorch's own backward with the output_mask clnorm-bench
used (dx, plus dscale and dbias for an affine layer):
  layer_norm             torch.ops.aten.native_layer_norm_backward
  batch_norm_train/infer torch.ops.aten.native_batch_norm_backward (train = False:
                         from the running statistics)
  group_norm             torch.ops.aten.native_group_norm_backward
  rms_norm, instance_norm(_infer)  autograd: torch.autograd.grad of the
                         functional's output, retain_graph=True, so each timed call
                         is the backward graph alone

  python3 bench/compare_torch.py                       # CPU, default device of clnorm
  python3 bench/compare_torch.py --device cuda -- --device NVIDIA
  python3 bench/compare_torch.py --clnorm-json results.jsonl --device cuda

Arguments after "--" go to clnorm-bench. Torch timing: CPU, wall clock
(time.perf_counter) around each call; CUDA, torch.cuda.Event pairs; warm-up
first, then the median of --reps calls. Before each timed call a 256 MiB
scratch tensor is written (untimed) so caches are cold, as clnorm-bench does;
--warm-cache turns that off on both sides. Torch allocates each output, as its functional API does. "ratio" is
clnorm's fraction of the copy bandwidth, from clnorm-bench.

Storage types (clnorm-bench's "dtype"/"param_dtype": f32, f16, bf16): torch
runs the case in the same dtype, torch.float16 or torch.bfloat16, for x, dy
and (as clnorm-bench's half rows have them) the parameters. Where torch has
no kernel for that dtype on that device (torch 1.13's CPU build has no
float16 layer_norm, group_norm or rsqrt; bfloat16 it has), the case is
probed once with a tiny tensor and skipped with a message ("no <dtype> on
<device>"), not run in float32 under another name.

PyTorch: Debian's python3-torch installs for /usr/bin/python3, not for a pyenv
or venv python3 on PATH. Where this interpreter has no torch and
/usr/bin/python3 does, the script re-runs itself with /usr/bin/python3. Where
no torch can be found it says so and exits 0 (it is not part of the tests).
"""
import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def import_torch():
    try:
        import torch  # noqa: F401
        return torch
    except ImportError:
        pass
    alt = "/usr/bin/python3"
    if (os.path.exists(alt) and os.path.realpath(sys.executable) != os.path.realpath(alt)
            and not os.environ.get("CLNORM_TORCH_REEXEC")):
        probe = subprocess.run([alt, "-c", "import torch"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        if probe.returncode == 0:
            env = dict(os.environ, CLNORM_TORCH_REEXEC="1")
            sys.stdout.flush()
            os.execve(alt, [alt, os.path.abspath(__file__)] + sys.argv[1:], env)
    return None


def find_bench(explicit):
    if explicit:
        return explicit
    for b in ("build", "build-bench", "build-gpu", "build-release"):
        p = os.path.join(ROOT, b, "bench", "clnorm-bench")
        if os.access(p, os.X_OK):
            return p
    p = shutil.which("clnorm-bench")
    if p:
        return p
    sys.exit("compare_torch: clnorm-bench not found; build it (scripts/bench.sh) or pass --bench PATH")


def run_clnorm(args):
    if args.clnorm_json:
        with open(args.clnorm_json) as f:
            lines = f.read().splitlines()
    else:
        bench = find_bench(args.bench)
        cmd = [bench, "--json", "--reps", str(args.reps), "--warmup", str(args.warmup)] + args.bench_args
        if args.warm_cache and "--warm-cache" not in cmd:
            cmd.append("--warm-cache")
        print("compare_torch: running " + " ".join(cmd), file=sys.stderr, flush=True)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, universal_newlines=True)
        lines = p.stdout.splitlines()
        if p.returncode != 0:
            print("compare_torch: clnorm-bench exited with status %d" % p.returncode, file=sys.stderr)
            if not lines:
                sys.exit(1)
    recs = []
    for line in lines:
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            if r.get("op") and r.get("shape"):
                recs.append(r)
    return recs


class TorchCase:
    """Tensors and the call for one case: its forward (torch.nn.functional), or
    with rec["direction"] == "backward" PyTorch's backward of that forward."""

    def __init__(self, torch, rec, dev):
        F = torch.nn.functional
        self.torch = torch
        op, shape, layout = rec["op"], [int(s) for s in rec["shape"]], rec.get("layout", "nchw")
        affine = rec.get("affine", 1)
        backward = rec.get("direction", "forward") == "backward"
        xdt, pdt = torch_dtype(torch, rec.get("dtype")), torch_dtype(torch, rec.get("param_dtype", rec.get("dtype")))
        eps = 1e-5
        g = torch.Generator(device="cpu").manual_seed(1234)

        def rnd(*s, lo=-1.0, hi=1.0, dt=None):
            t = torch.rand(*s, generator=g) * (hi - lo) + lo
            return t.to(device=dev, dtype=dt or xdt)

        def in_layout(t):
            """t stored in the case's layout (channels-last for nhwc)."""
            if layout == "nhwc" and len(shape) >= 3:
                if len(shape) == 4:
                    return t.contiguous(memory_format=torch.channels_last)
                if len(shape) == 5:
                    return t.contiguous(memory_format=torch.channels_last_3d)
                return t.permute(0, 2, 1).contiguous().permute(0, 2, 1)  # N, C, L stored as N, L, C
            return t

        x = in_layout(rnd(*shape, lo=-2.0, hi=3.0))
        dy = in_layout(rnd(*shape)) if backward else None
        self.note = ""
        self.no_grad = True  # autograd backward cases need grad mode on
        # PyTorch's output_mask: dx, and the parameter gradients of an affine layer.
        mask = [True, bool(affine), bool(affine)]
        if op in ("layer_norm", "rms_norm"):
            d = shape[-1]
            w = rnd(d, lo=0.5, hi=1.5, dt=pdt) if affine else None
            b = rnd(d, lo=-0.5, hi=0.5, dt=pdt) if affine and op == "layer_norm" else None
            if op == "layer_norm":
                if backward:
                    _, mean, rstd = torch.ops.aten.native_layer_norm(x, [d], w, b, eps)
                    self.fn = lambda: torch.ops.aten.native_layer_norm_backward(dy, x, [d], mean, rstd, w, b, mask)
                else:
                    self.fn = lambda: F.layer_norm(x, (d,), w, b, eps)
            else:
                if hasattr(F, "rms_norm"):
                    fwd = lambda xx, ww: F.rms_norm(xx, (d,), ww, eps)
                else:
                    self.note = "composed"

                    def fwd(xx, ww):
                        yy = xx * torch.rsqrt(xx.pow(2).mean(-1, keepdim=True) + eps)
                        return yy * ww if ww is not None else yy
                if backward:
                    self._autograd(fwd, x, [w], dy)
                else:
                    self.fn = lambda: fwd(x, w)
        else:
            c = shape[1]
            w = rnd(c, lo=0.5, hi=1.5, dt=pdt) if affine else None
            b = rnd(c, lo=-0.5, hi=0.5, dt=pdt) if affine else None
            if op in ("batch_norm_train", "batch_norm_infer"):
                rm = rnd(c, lo=-0.5, hi=0.5, dt=torch.float32)
                rv = rnd(c, lo=0.5, hi=2.0, dt=torch.float32)
                training = op == "batch_norm_train"
                if backward:
                    # Inference: save_mean/save_invstd come back empty and the
                    # backward reads the running statistics, as autograd does.
                    _, sm, sinv = torch.ops.aten.native_batch_norm(x, w, b, rm, rv, training, 0.1, eps)
                    self.fn = lambda: torch.ops.aten.native_batch_norm_backward(dy, x, w, rm, rv, sm, sinv, training,
                                                                               eps, mask)
                else:
                    self.fn = lambda: F.batch_norm(x, rm, rv, w, b, training, 0.1, eps)
            elif op == "group_norm":
                groups = int(rec.get("groups") or 32)
                if backward:
                    n, hxw = shape[0], 1
                    for s in shape[2:]:
                        hxw *= s
                    _, mean, rstd = torch.ops.aten.native_group_norm(x, w, b, n, c, hxw, groups, eps)
                    self.fn = lambda: torch.ops.aten.native_group_norm_backward(dy, x, mean, rstd, w, n, c, hxw,
                                                                               groups, mask)
                else:
                    self.fn = lambda: F.group_norm(x, groups, w, b, eps)
            elif op in ("instance_norm", "instance_norm_infer"):
                if op == "instance_norm":
                    rm = rv = None
                    use_input_stats = True
                else:  # inference with tracked running statistics
                    rm = rnd(c, lo=-0.5, hi=0.5, dt=torch.float32)
                    rv = rnd(c, lo=0.5, hi=2.0, dt=torch.float32)
                    use_input_stats = False
                fwd = lambda xx, ww, bb: F.instance_norm(xx, rm, rv, ww, bb, use_input_stats, 0.1, eps)
                if backward:
                    self._autograd(fwd, x, [w, b], dy)
                else:
                    self.fn = lambda: fwd(x, w, b)
            else:
                raise ValueError("unknown op " + op)

    def _autograd(self, fwd, x, params, dy):
        """self.fn: the backward of fwd(x, *params) alone: the graph is built
        once, untimed, and each call takes the gradients of x and of every
        parameter present (PyTorch's output_mask) with retain_graph=True."""
        torch = self.torch
        self.no_grad = False
        self.note = (self.note + ", " if self.note else "") + "autograd"
        xg = x.detach().requires_grad_(True)
        ps = [p.detach().requires_grad_(True) if p is not None else None for p in params]
        with torch.enable_grad():
            y = fwd(xg, *ps)
        inputs = [xg] + [p for p in ps if p is not None]
        self.fn = lambda: torch.autograd.grad(y, inputs, dy, retain_graph=True)

    def time_ms(self, dev, warmup, reps, scratch=None):
        torch = self.torch
        with torch.no_grad() if self.no_grad else torch.enable_grad():
            for _ in range(warmup):
                self.fn()
            times = []
            if dev == "cuda":
                torch.cuda.synchronize()
                for i in range(reps):
                    if scratch is not None:
                        with torch.no_grad():
                            scratch.fill_(float(i))
                    s = torch.cuda.Event(enable_timing=True)
                    e = torch.cuda.Event(enable_timing=True)
                    s.record()
                    self.fn()
                    e.record()
                    e.synchronize()
                    times.append(s.elapsed_time(e))
            else:
                for i in range(reps):
                    if scratch is not None:
                        with torch.no_grad():
                            scratch.fill_(float(i))
                    t0 = time.perf_counter()
                    self.fn()
                    times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times), min(times)


DTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}


def dtype_name(r):
    """clnorm-bench's storage type of a row ("f32" for rows from before it)."""
    return r.get("dtype") or "f32"


def torch_dtype(torch, name):
    return getattr(torch, DTYPES.get(name or "f32", "float32"))


def torch_supports(torch, rec, dev, cache):
    """None where torch runs rec's op and direction in its dtype on dev, else
    why not: a probe of the same op on a tiny shape of the same rank, once
    per (op, direction, layout, dtypes)."""
    key = (rec["op"], direction(rec), rec.get("layout", ""), len(rec["shape"]), dtype_name(rec),
           rec.get("param_dtype"))
    if dtype_name(rec) == "f32":
        return None
    if key not in cache:
        small = dict(rec)
        if rec["op"] in ("layer_norm", "rms_norm"):
            small["shape"] = [2] * (len(rec["shape"]) - 1) + [8]
        else:
            small["shape"] = [2, 4] + [2] * (len(rec["shape"]) - 2)
            small["groups"] = 2 if rec["op"] == "group_norm" else rec.get("groups", 0)
        try:
            tc = TorchCase(torch, small, dev)
            with torch.no_grad() if tc.no_grad else torch.enable_grad():
                tc.fn()
            cache[key] = None
        except (RuntimeError, TypeError) as ex:
            cache[key] = "no %s %s %s on %s in torch %s (%s)" % (DTYPES[dtype_name(rec)], rec["op"], direction(rec),
                                                                 dev, torch.__version__, str(ex).split("\n")[0][:70])
    return cache[key]


def direction(r):
    """"forward" or "backward" (clnorm-bench rows from before the backward are forward)."""
    return r.get("direction", "forward")


def case_key(r):
    return (r["op"], r.get("layout", ""), tuple(r["shape"]), r.get("groups", 0), r.get("affine", 1), direction(r),
            dtype_name(r), r.get("param_dtype"))


def shape_str(s):
    return "x".join(str(v) for v in s)


def print_tables(rows, torch_dev, warm_cache):
    """Per device: one line per case, its backward beside its forward (a
    direction clnorm-bench did not run shows as '-'), then the speed-ups'
    summary per direction."""
    by_dev = {}
    for row in rows:
        by_dev.setdefault(row["device"], []).append(row)
    for dev, drows in by_dev.items():
        print("\nclnorm on %s  vs  %s; caches %s" % (dev, torch_dev,
                                                   "warm" if warm_cache else "scrubbed before each call"))
        print("%-19s %-5s %-15s %4s %-4s | %-44s | %-44s" % ("", "", "", "", "", "forward", "backward"))
        half = "%9s %8s %6s %9s %8s" % ("clnorm ms", "GB/s", "ratio", "torch ms", "speed-up")
        print("%-19s %-5s %-15s %4s %-4s | %s | %s" % ("op", "lay", "shape", "G", "type", half, half))
        cases, order = {}, []
        for row in drows:
            k = (row["op"], row["layout"], tuple(row["shape"]), row["groups"], row["dtype"])
            if k not in cases:
                cases[k] = {}
                order.append(k)
            cases[k][row["direction"]] = row
        sp = {"forward": [], "backward": []}
        notes = set()
        for k in order:
            op, lay, shape, groups, dt = k
            g = str(groups) if op == "group_norm" else "-"
            halves = []
            for d in ("forward", "backward"):
                row = cases[k].get(d)
                if row is None:
                    halves.append("%9s %8s %6s %9s %8s" % ("-", "-", "-", "-", "-"))
                    continue
                halves.append("%9.3f %8.2f %6.3f %9.3f %7.2fx" % (row["clnorm_ms"], row["clnorm_gbps"], row["ratio"],
                                                                row["torch_ms"], row["speedup"]))
                if row["speedup"] == row["speedup"] and row["speedup"] > 0:
                    sp[d].append(row["speedup"])
                if row["torch_note"]:
                    notes.add("%s %s%s: %s" % (op, d, "" if dt == "f32" else " " + dt, row["torch_note"]))
            print("%-19s %-5s %-15s %4s %-4s | %s | %s" % (op, lay, shape_str(shape), g, dt, halves[0], halves[1]))
        for d in ("forward", "backward"):
            v = sp[d]
            if v:
                gm = math.exp(sum(math.log(s) for s in v) / len(v))
                print("%s speed-up over torch (medians): min %.2fx, geometric mean %.2fx, max %.2fx (%d cases)"
                      % (d, min(v), gm, max(v), len(v)))
        for n in sorted(notes):
            print("  torch side: " + n)
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="torch device (default cpu)")
    ap.add_argument("--bench", help="path of clnorm-bench (default: build*/bench/clnorm-bench)")
    ap.add_argument("--clnorm-json", help="read clnorm-bench --json output from this file instead of running it")
    ap.add_argument("--reps", type=int, default=20, help="timed runs per case, both sides (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up runs (default 3)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (default: the CPUs this process may use)")
    ap.add_argument("--warm-cache", action="store_true",
                    help="do not scrub the caches before each torch call (default: scrub, as clnorm-bench does)")
    ap.add_argument("--json-out", help="write one combined JSON object per case to this file")
    ap.add_argument("--csv", help="write the side-by-side table as CSV to this file")
    ap.add_argument("bench_args", nargs="*", help="arguments for clnorm-bench (after --)")
    args = ap.parse_args()

    torch = import_torch()
    if torch is None:
        print("compare_torch: PyTorch is not available (tried %s%s); skipping the comparison.\n"
              "  Install it with: apt-get install -y python3-torch   (Debian; then run with /usr/bin/python3)"
              % (sys.executable, " and /usr/bin/python3" if os.path.exists("/usr/bin/python3") else ""))
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("compare_torch: --device cuda but torch.cuda.is_available() is False (torch %s)" % torch.__version__,
              file=sys.stderr)
        return 2
    if args.device == "cpu":
        threads = args.threads
        if not threads:
            threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(threads)
        torch_dev = "torch %s CPU, %d threads" % (torch.__version__, torch.get_num_threads())
    else:
        torch_dev = "torch %s CUDA, %s" % (torch.__version__, torch.cuda.get_device_name(0))

    recs = run_clnorm(args)
    if not recs:
        print("compare_torch: clnorm-bench reported no cases", file=sys.stderr)
        return 1

    scratch = None
    if not args.warm_cache:
        # Same policy as clnorm-bench: write 256 MiB (or 8x the GPU's L2) before each timed call.
        nbytes = 256 << 20
        if args.device == "cuda":
            l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0) or 0
            nbytes = max(nbytes, 8 * l2)
        scratch = torch.empty(nbytes // 4, dtype=torch.float32, device=args.device)
    cache, support = {}, {}
    rows = []
    n = len({case_key(r) for r in recs})
    for r in recs:
        k = case_key(r)
        if k not in cache:
            label = r.get("label") or "%s %s" % (r["op"], shape_str(r["shape"]))
            print("compare_torch: [%d/%d] torch %s" % (len(cache) + 1, n, label), file=sys.stderr, flush=True)
            why = torch_supports(torch, r, args.device, support)
            if why:
                print("compare_torch: skipping torch for %s: %s" % (label, why), file=sys.stderr)
                cache[k] = (float("nan"), float("nan"), why.split(" (")[0])
            else:
                try:
                    tc = TorchCase(torch, r, args.device)
                    med, mn = tc.time_ms(args.device, args.warmup, args.reps, scratch)
                    cache[k] = (med, mn, tc.note)
                    del tc
                except Exception as ex:  # report and go on: one case must not hide the others
                    print("compare_torch: torch failed on %s: %s" % (label, ex), file=sys.stderr)
                    cache[k] = (float("nan"), float("nan"), "failed")
            if args.device == "cuda":
                torch.cuda.empty_cache()
        tmed, tmin, note = cache[k]
        bytes_ = float(r["bytes"])
        tgbps = bytes_ / (tmed * 1e-3) / 1e9 if tmed == tmed else float("nan")
        rows.append(dict(device=r["device"], op=r["op"], direction=direction(r), layout=r.get("layout", ""),
                         shape=r["shape"], groups=r.get("groups", 0), dtype=dtype_name(r), bytes=bytes_, clnorm_ms=r["median_ms"],
                         clnorm_gbps=r["gbps"], copy_gbps=r["copy_gbps"], ratio=r["ratio"], torch_ms=tmed,
                         torch_min_ms=tmin, torch_gbps=tgbps,
                         speedup=tmed / r["median_ms"] if tmed == tmed else float("nan"),
                         speedup_min=tmin / r["min_ms"] if tmin == tmin and r.get("min_ms") else float("nan"),
                         torch_note=note, torch=torch_dev))

    print_tables(rows, torch_dev, args.warm_cache)
    sys.stdout.flush()

    if args.json_out:
        with open(args.json_out, "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    if args.csv:
        cols = ["device", "op", "direction", "layout", "shape", "groups", "dtype", "bytes", "clnorm_ms", "clnorm_gbps", "copy_gbps",
                "ratio", "torch_ms", "torch_gbps", "speedup", "speedup_min", "torch_note", "torch"]
        with open(args.csv, "w") as f:
            f.write(",".join(cols) + "\n")
            for row in rows:
                vals = []
                for c in cols:
                    v = row[c]
                    if c == "shape":
                        v = shape_str(v)
                    elif isinstance(v, float):
                        v = "%.6g" % v
                    v = str(v)
                    if "," in v or '"' in v:
                        v = '"' + v.replace('"', '""') + '"'
                    vals.append(v)
                f.write(",".join(vals) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
