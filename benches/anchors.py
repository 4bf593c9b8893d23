"""Side-by-side anchors: the project's `solve` against off-the-shelf QP solvers.

Every answer — ours and each anchor's — is scored by the same natural residual
`‖s − Π(s − F(s))‖_∞` with `F(s) = M s − q`, computed here in NumPy after projecting the
answer on the box. The games are the generator's potential games (symmetric competition, so
the equilibrium is the minimiser of `½ sᵀMs − qᵀs` on the box `[0, u]`):

* dominant          — `generate --symmetric` (δ = 1.5, α = 1): well conditioned;
* ill-conditioned   — `generate --symmetric --dominance 0.47 --alpha 0`: δ just above the
                      loss of positive definiteness (λ_min((M+Mᵀ)/2) ≈ 10⁻² at N = 1000).

Dense N = 1000, 4000; sparse (a ring with 16 competitors) N = 10^4, 10^5, 10^6.

Setup (not a project dependency):

    pip install numpy scipy safetensors "qpsolvers[clarabel,daqp,highs,osqp,piqp,proxqp]"
    cargo build --release
    python3 benches/anchors.py                      # every case
    python3 benches/anchors.py --quick              # dense 1000, sparse 10^4 and 10^5
    python3 benches/anchors.py --cases dense:1000:dominant,sparse:100000:ill

Columns: `seconds` is the anchor's bare `solve_qp` call (matrices built before the clock
starts) or, for us, the whole `pruning-game solve` process (binary game file in, equilibrium
file out) and, in brackets, the solver alone as it reports itself. `residual` is the natural
residual of the answer. An anchor whose residual is above 1e-6 is marked, and its time is not
a fair comparison.
"""

import argparse
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from safetensors.numpy import load_file

BINARY = os.environ.get("PRUNING_GAME", "target/release/pruning-game")
ANCHORS = ["clarabel", "osqp", "proxqp", "daqp", "highs", "piqp"]
TARGET = 1e-8
# DAQP is a dense active-set solver: it turns a sparse M into an N × N array, so past this size
# it only measures the machine's memory.
DENSE_ANCHOR_LIMIT = {"daqp": 5000}

VARIANTS = {
    "dominant": ["--symmetric"],
    "ill": ["--symmetric", "--dominance", "0.47", "--alpha", "0"],
}


def game_file(tmp, storage, n, variant):
    path = os.path.join(tmp, f"{storage}-{n}-{variant}.safetensors")
    if not os.path.exists(path):
        topology = ["--sparse", "16"] if storage == "sparse" else []
        subprocess.run(
            [BINARY, "generate", "--players", str(n), "--seed", "1", *topology,
             *VARIANTS[variant], "--out", path],
            check=True, capture_output=True)
    return path


def load(path):
    t = load_file(path)
    n = t["benefit"].shape[0]
    if "indptr" in t:
        c = sp.csr_matrix((t["values"], t["indices"], t["indptr"]), shape=(n, n))
    else:
        c = sp.csr_matrix(t["competition"])
    a = np.broadcast_to(t["self_cost"], (n,))
    gamma = np.broadcast_to(t["participation_cost"], (n,))
    u = np.broadcast_to(t.get("upper", np.ones(1)), (n,)).copy()
    m = (c + sp.diags(a)).tocsc()
    q = t["benefit"] - gamma
    return m, q, u


def natural_residual(m, q, u, s):
    s = np.clip(np.asarray(s, dtype=np.float64), 0.0, u)
    f = m @ s - q
    return float(np.abs(s - np.clip(s - f, 0.0, u)).max())


def ours(path, tmp):
    out = os.path.join(tmp, "eq.json")
    start = time.perf_counter()
    result = subprocess.run(
        [BINARY, "solve", "--game", path, "--tol", str(TARGET), "--out", out],
        capture_output=True, text=True)
    seconds = time.perf_counter() - start
    solver = re.search(r"iterations in ([0-9.]+) s;", result.stderr)
    s = json.load(open(out))["participation"]
    return s, seconds, float(solver.group(1)) if solver else float("nan")


def anchor(name, m, q, u):
    import qpsolvers

    options = {
        "clarabel": dict(tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10),
        "osqp": dict(eps_abs=1e-10, eps_rel=1e-10, max_iter=100000, polish=True),
        "proxqp": dict(eps_abs=1e-10, eps_rel=0.0),
        "daqp": dict(),
        "highs": dict(),
        "piqp": dict(eps_abs=1e-10, eps_rel=1e-10),
    }[name]
    lb = np.zeros_like(q)
    start = time.perf_counter()
    s = qpsolvers.solve_qp(m, -q, lb=lb, ub=u, solver=name, **options)
    seconds = time.perf_counter() - start
    return s, seconds


def lbfgsb(m, q, u):
    def fun(s):
        ms = m @ s
        return 0.5 * s @ ms - q @ s, ms - q

    start = time.perf_counter()
    result = scipy.optimize.minimize(
        fun, np.zeros_like(q), jac=True, method="L-BFGS-B",
        bounds=list(zip(np.zeros_like(q), u)),
        options=dict(maxiter=100000, maxfun=200000, ftol=0.0, gtol=1e-10))
    return result.x, time.perf_counter() - start


def timed(name, m, q, u, limit):
    """One anchor solve in a forked child that is stopped after `limit` seconds: some anchors
    run for many minutes on the ill-conditioned sparse games. Returns (x, seconds) or a string
    saying why there is no answer."""
    if len(q) > DENSE_ANCHOR_LIMIT.get(name, len(q)):
        return f"skipped above N = {DENSE_ANCHOR_LIMIT[name]} (densifies M)"
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def child():
        try:
            send.send(lbfgsb(m, q, u) if name == "lbfgsb" else anchor(name, m, q, u))
        except Exception as error:  # an anchor that fails is reported, not fatal
            send.send(f"failed: {type(error).__name__}")

    process = context.Process(target=child)
    process.start()
    answer = receive.recv() if receive.poll(limit) else f"stopped after {limit:.0f} s"
    process.kill()
    process.join()
    return answer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cases", help="storage:N:variant,... (variant dominant or ill)")
    parser.add_argument("--anchors", default=",".join(ANCHORS + ["lbfgsb"]))
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds per case: ours, then every anchor, again; medians reported")
    parser.add_argument("--limit", type=float, default=300.0,
                        help="seconds an anchor may take on one solve before it is stopped")
    args = parser.parse_args()
    if args.cases:
        cases = [(c.split(":")[0], int(c.split(":")[1]), c.split(":")[2])
                 for c in args.cases.split(",")]
    else:
        sizes = [("dense", 1000), ("sparse", 10_000), ("sparse", 100_000)]
        if not args.quick:
            sizes = [("dense", 1000), ("dense", 4000), ("sparse", 10_000),
                     ("sparse", 100_000), ("sparse", 1_000_000)]
        cases = [(st, n, v) for st, n in sizes for v in ("dominant", "ill")]
    wanted = args.anchors.split(",")
    print(f"load average before: {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    print("| N | storage | variant | solver | seconds | residual | anchor / ours (whole process) |")
    print("|---:|---|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for storage, n, variant in cases:
            path = game_file(tmp, storage, n, variant)
            m, q, u = load(path)
            # Rounds interleave our whole process with every anchor, so that the machine's load
            # falls on both sides alike; each row reports the median of its rounds.
            runs = {}
            for _ in range(args.repeat):
                s, whole, solver_only = ours(path, tmp)
                runs.setdefault("ours", []).append((whole, solver_only, s))
                for name in wanted:
                    if isinstance(runs.get(name), str):
                        continue
                    answer = timed(name, m, q, u, args.limit)
                    if isinstance(answer, str):
                        runs[name] = answer
                        continue
                    x, seconds = answer
                    runs.setdefault(name, []).append((seconds, None, x))
            ours_runs = runs["ours"]
            whole = float(np.median([w for w, _, _ in ours_runs]))
            solver_only = float(np.median([o for _, o, _ in ours_runs]))
            r = natural_residual(m, q, u, ours_runs[-1][2])
            print(f"| {n} | {storage} | {variant} | pruning-game solve | {whole:.3f} ({solver_only:.3f}) | {r:.1e} | 1 |",
                  flush=True)
            for name in wanted:
                got = runs.get(name)
                label = "L-BFGS-B" if name == "lbfgsb" else name
                if isinstance(got, str):
                    print(f"| {n} | {storage} | {variant} | {label} | – | {got} | – |", flush=True)
                    continue
                seconds = float(np.median([t for t, _, _ in got]))
                x = got[-1][2]
                if x is None:
                    print(f"| {n} | {storage} | {variant} | {label} | {seconds:.3f} | no answer | – |", flush=True)
                    continue
                rx = natural_residual(m, q, u, x)
                mark = "" if rx <= 1e-6 else " (inaccurate)"
                print(f"| {n} | {storage} | {variant} | {label} | {seconds:.3f} | {rx:.1e}{mark} | {seconds / whole:.2f} |",
                      flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
