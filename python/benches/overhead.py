"""Overhead of solving from Python against the Rust solver's own time, file parsing excluded.

    python3 python/benches/overhead.py target/release/pruning-game [players] [rounds]

Generates one sparse game (``generate --sparse 16``), then alternates, ``rounds`` times, a CLI
``solve`` (its own timers: the solve, and the dominance proofs; the file read is timed apart
and left out) and ``pruning_game.solve`` on the game read once (wall time of the call, so
everything the bindings add is in it). Prints each round and the median ratios.
"""
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pruning_game as pg

CLI_LINE = re.compile(r"newton: converged after (\d+) iterations in ([0-9.]+) s.*?"
                      r"bracket rounds, ([0-9.]+) s")


def main():
    binary = sys.argv[1]
    players = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "game.safetensors"
        subprocess.run([binary, "generate", "--players", str(players), "--sparse", "16",
                        "--seed", "1", "--out", str(path)], check=True, capture_output=True)
        game = pg.read(path)
        pg.solve(game)  # warm the thread pool and the caches on both sides
        rows = []
        for k in range(rounds):
            r = subprocess.run([binary, "solve", "--game", str(path), "--solver", "newton",
                                "--tol", "1e-10", "--out", str(Path(tmp) / "eq.json")],
                               check=True, capture_output=True, text=True)
            m = CLI_LINE.search(r.stderr)
            if not m:
                sys.exit(f"unexpected CLI output: {r.stderr}")
            rust_solve, rust_proof = float(m.group(2)), float(m.group(3))
            t = time.perf_counter()
            full = pg.solve(game, "newton", tol=1e-10)
            py_full = time.perf_counter() - t
            t = time.perf_counter()
            bare = pg.solve(game, "newton", tol=1e-10, prove=False)
            py_bare = time.perf_counter() - t
            assert full.converged and bare.iterations == int(m.group(1))
            rows.append((rust_solve, rust_proof, py_bare, py_full, bare.seconds))
            print(f"round {k}: rust solve {rust_solve:.4f} s + proofs {rust_proof:.4f} s | "
                  f"python solve {py_bare:.4f} s (core's own timer {bare.seconds:.4f} s), "
                  f"with proofs {py_full:.4f} s", flush=True)
    med = lambda xs: statistics.median(xs)  # noqa: E731
    solve_ratio = med([r[2] / r[0] for r in rows])
    full_ratio = med([r[3] / (r[0] + r[1]) for r in rows])
    binding_ratio = med([r[2] / r[4] for r in rows])
    best = min(r[2] for r in rows) / min(r[0] for r in rows)
    best_full = min(r[3] for r in rows) / min(r[0] + r[1] for r in rows)
    print(f"{players} players, {rounds} interleaved rounds, medians of per-round ratios: "
          f"python solve / rust solve = {solve_ratio:.3f}; "
          f"python solve+proofs / rust solve+proofs = {full_ratio:.3f}; "
          f"python wall / core timer inside the same call = {binding_ratio:.3f}; "
          f"best-of ratios: solve {best:.3f}, solve+proofs {best_full:.3f}")


if __name__ == "__main__":
    main()
