"""Checks the binary game file against NumPy/SciPy and the `safetensors` package.

Run from the repository root after `cargo build --release` (or set PRUNING_GAME to the
binary):  python3 tests/game_binary_check.py

1. `generate` writes the same game as JSON and as safetensors; the safetensors file, read by
   `safetensors.numpy.load_file` and assembled into a `scipy.sparse.csr_matrix`, equals the
   JSON game entry for entry (sparse ring and dense).
2. A game written from SciPy with `save_file` (int32 indices, unsorted rows, a per-player
   `upper`) is solved by `pruning-game solve`, and the equilibrium is checked here with the
   natural residual computed in NumPy.
3. A tampered file (a NaN in `values`) is refused with a one-line error naming the file and
   the tensor.

Exits 0 with a "skipped" line when numpy, scipy or safetensors is missing.
"""

import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import scipy.sparse as sp
    from safetensors.numpy import load_file, save_file
except ImportError as missing:  # pragma: no cover - depends on the machine
    print(f"game_binary_check: skipped ({missing.name} is not installed)")
    sys.exit(0)

BINARY = os.environ.get("PRUNING_GAME", "target/release/pruning-game")


def run(*args, check=True):
    result = subprocess.run([BINARY, *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {result.stderr}")
    return result


def per_player(value, n):
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,))


def from_json(path):
    g = json.load(open(path))
    n = len(g["benefit"])
    comp = g.get("competition")
    if comp is None:
        c = sp.csr_matrix((n, n))
    elif "sparse" in comp:
        t = np.array(comp["sparse"], dtype=np.float64).reshape(-1, 3)
        c = sp.csr_matrix((t[:, 2], (t[:, 0].astype(int), t[:, 1].astype(int))), shape=(n, n))
    else:
        c = sp.csr_matrix(np.array(comp["dense"]))
    return {
        "benefit": np.array(g["benefit"]),
        "self_cost": per_player(g["self_cost"], n),
        "participation_cost": per_player(g["participation_cost"], n),
        "upper": per_player(g.get("upper", 1.0), n),
        "C": c,
    }


def from_safetensors(path):
    t = load_file(path)
    n = t["benefit"].shape[0]
    if "indptr" in t:
        c = sp.csr_matrix((t["values"], t["indices"], t["indptr"]), shape=(n, n))
    elif "competition" in t:
        assert t["competition"].shape == (n, n)
        c = sp.csr_matrix(t["competition"])
    else:
        c = sp.csr_matrix((n, n))
    return {
        "benefit": t["benefit"],
        "self_cost": per_player(t["self_cost"], n),
        "participation_cost": per_player(t["participation_cost"], n),
        "upper": per_player(t.get("upper", 1.0), n),
        "C": c,
    }


def same_game(a, b):
    for key in ("benefit", "self_cost", "participation_cost", "upper"):
        assert np.array_equal(a[key], b[key]), key
    diff = (a["C"] - b["C"]).tocsr()
    assert diff.nnz == 0 or np.abs(diff.data).max() == 0.0, "competition differs"


def natural_residual(g, s):
    f = g["self_cost"] * s + g["C"] @ s - (g["benefit"] - g["participation_cost"])
    return np.abs(s - np.clip(s - f, 0.0, g["upper"])).max()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags in (("ring", ["--sparse", "16"]), ("dense", [])):
            common = ["generate", "--players", "300", "--seed", "4", *flags]
            js, st = f"{tmp}/{name}.json", f"{tmp}/{name}.safetensors"
            run(*common, "--out", js)
            run(*common, "--out", st)
            same_game(from_json(js), from_safetensors(st))
            print(f"{name}: safetensors file equals the JSON game")

        rng = np.random.default_rng(7)
        n = 500
        c = sp.random(n, n, density=0.02, format="csr", random_state=7) * 0.1
        c.setdiag(0)
        c.eliminate_zeros()
        c = c.tocsr()
        # Reverse each row's columns: the reader must sort them.
        indices = c.indices.copy()
        data = c.data.copy()
        for i in range(n):
            lo, hi = c.indptr[i], c.indptr[i + 1]
            indices[lo:hi] = indices[lo:hi][::-1]
            data[lo:hi] = data[lo:hi][::-1]
        game = {
            "benefit": rng.uniform(-0.5, 1.0, n),
            "self_cost": np.asarray(c.sum(axis=1)).ravel() * 1.5 + 1.0,
            "participation_cost": np.array([0.1]),
            "upper": rng.uniform(0.5, 2.0, n),
            "indptr": c.indptr.astype(np.int64),
            "indices": indices.astype(np.int32),
            "values": data.astype(np.float64),
        }
        path = f"{tmp}/scipy.safetensors"
        save_file(game, path, metadata={"format": "pruning-game", "version": "1"})
        run("solve", "--game", path, "--tol", "1e-10", "--out", f"{tmp}/eq.json")
        s = np.array(json.load(open(f"{tmp}/eq.json"))["participation"])
        residual = natural_residual(from_safetensors(path), s)
        assert residual <= 1e-9, residual
        print(f"scipy game: solved, natural residual {residual:.1e} (NumPy)")

        game["values"] = game["values"].copy()
        game["values"][3] = np.nan
        bad = f"{tmp}/nan.safetensors"
        save_file(game, bad)
        result = run("analyze", "--game", bad, check=False)
        message = result.stderr.strip()
        assert result.returncode != 0 and "\n" not in message, message
        assert "nan.safetensors" in message and "values" in message, message
        print(f"tampered file refused: {message}")
    print("game_binary_check: 3 passed, 0 failed")


if __name__ == "__main__":
    main()
