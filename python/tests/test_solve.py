"""Solving and analysis through Python: T3, solver agreement, independent checks, errors,
the GIL and Ctrl-C."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import pruning_game as pg
from conftest import KKT_TOL, kkt_violation, random_game

sp = pytest.importorskip("scipy.sparse")
optimize = pytest.importorskip("scipy.optimize")

SEEDS = range(12)


def _games(sparse=True, **kw):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        n = int(rng.integers(5, 120))
        yield seed, random_game(rng, n, density=float(rng.uniform(0.02, 0.4)),
                                beta=float(rng.uniform(0.0, 2.0)), sparse=sparse, **kw)


@pytest.mark.parametrize("solver", pg.SOLVERS)
def test_t3_negative_net_benefit_is_exactly_zero(solver):
    """T3: q_i < 0 ⇒ s_i = 0 exactly, at the equilibrium every solver returns. Best response
    also gets players with a_i = 0 (linear utilities, where F is not strongly monotone: the
    fixed-step methods are not guaranteed to converge, and Newton takes minutes there)."""
    zero = 0.1 if solver == "best-response" else 0.0
    for seed, (g, C, b, a, gamma, u) in _games(zero_self_cost=zero):
        r = pg.solve(g, solver, tol=1e-10, max_iter=100_000)
        assert r.converged, (seed, r)
        q = b - gamma
        negative = np.flatnonzero(q < 0)
        assert len(negative) > 0
        assert np.all(r.participation[negative] == 0.0), (seed, r.participation[negative])
        assert set(negative) <= set(r.pruned)
        # Everything the proofs claim is pruned is pruned, and T3's players are claimed.
        assert set(r.dominated) <= set(r.pruned)
        assert set(negative) <= set(r.dominated)


def test_solvers_agree_and_satisfy_kkt():
    for seed, (g, C, b, a, gamma, u) in _games():
        results = {s: pg.solve(g, s, tol=1e-11, max_iter=200_000) for s in pg.SOLVERS}
        ref = results["newton"].participation
        for name, r in results.items():
            assert r.converged, (seed, name, r)
            assert r.residual <= 1e-11 and r.nash_gap <= 1e-9, (seed, name, r)
            # The certificate the core reports is the one the game recomputes.
            gap, res = g.certificate(r.participation)
            assert res == pytest.approx(r.residual, abs=1e-15)
            assert kkt_violation(r.participation, C, b, a, gamma, u) <= KKT_TOL, (seed, name)
            np.testing.assert_allclose(r.participation, ref, atol=1e-8, err_msg=f"{seed} {name}")


def test_symmetric_games_match_scipy_potential_maximiser():
    """With C symmetric the equilibrium maximises Φ(s) = qᵀs − ½ sᵀ(diag(a) + C)s on the box:
    SciPy's L-BFGS-B on −Φ is an independent solver."""
    for seed in SEEDS:
        rng = np.random.default_rng(100 + seed)
        n = int(rng.integers(5, 80))
        mask = np.triu(rng.random((n, n)) < 0.3, 1)
        C = np.where(mask, rng.random((n, n)), 0.0)
        C = C + C.T
        a = 1.3 * C.sum(1) + rng.uniform(0.5, 1.5, n)
        q = rng.normal(0.1, 0.5, n)
        u = rng.uniform(0.5, 2.0, n)
        g = pg.PruningGame(q + 0.1, a, 0.1, sp.csr_matrix(C), upper=u)
        assert g.symmetric
        M = np.diag(a) + C

        def f(s):
            return -(q @ s - 0.5 * s @ M @ s), -(q - M @ s)

        ref = optimize.minimize(f, np.zeros(n), jac=True, method="L-BFGS-B",
                                bounds=list(zip(np.zeros(n), u)),
                                options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000}).x
        for solver in pg.SOLVERS:
            r = pg.solve(g, solver, tol=1e-11, max_iter=200_000)
            np.testing.assert_allclose(r.participation, ref, atol=1e-6, err_msg=f"{seed} {solver}")
            assert g.potential(r.participation) >= -f(ref)[0] - 1e-9


def test_dense_and_sparse_agree(rng):
    g, C, b, a, gamma, u = random_game(rng, 60, sparse=False)
    g2 = pg.PruningGame(b, a, gamma, sp.csr_matrix(C), upper=u)
    np.testing.assert_allclose(pg.solve(g).participation, pg.solve(g2).participation, atol=1e-12)


def test_result_fields(rng):
    g, C, b, a, gamma, u = random_game(rng, 40)
    r = pg.solve(g, "projection", tol=1e-9, record_history=True)
    assert r.solver == "projection" and r.termination == "converged" and r.converged
    assert r.participation.dtype == np.float64 and r.participation.shape == (40,)
    assert r.pruned.dtype == np.int64
    np.testing.assert_array_equal(r.pruned, np.flatnonzero(r.participation == 0.0))
    assert len(r.residual_history) == r.iterations + 1
    assert r.residual_history[-1] == pytest.approx(r.residual)
    short = pg.solve(g, "projection", tol=1e-14, max_iter=2)
    assert not short.converged and short.termination == "max_iterations" and short.iterations == 2
    warm = pg.solve(g, "newton", initial=pg.solve(g).participation)
    assert warm.iterations <= 1
    assert len(pg.solve(g, prove=False).dominated) == 0


def test_analyze(rng):
    g, C, b, a, gamma, u = random_game(rng, 50, sparse=False)
    an = pg.analyze(g)
    r = pg.solve(g)
    q = b - gamma
    assert an.players == 50 and an.storage == "dense"
    # T3: the dominated players are those with q < 0 (or q = 0 < a), with margins −q_i.
    np.testing.assert_array_equal(an.dominance.dominated, np.flatnonzero(q < 0))
    np.testing.assert_array_equal(an.margin_players, np.flatnonzero(q < 0))
    np.testing.assert_allclose(an.margins, -q[q < 0])
    assert an.dominance.min_margin == pytest.approx(float(np.min(-q[q < 0])))
    # T4: the bracket holds the equilibrium; its pruned players are pruned.
    s = r.participation
    assert np.all(an.lower <= s + 1e-9) and np.all(s <= an.upper + 1e-9)
    assert set(an.provably_pruned) <= set(r.pruned)
    # T2: diagonally dominant by construction, so unique, and the deciding test is named.
    assert an.unique and an.uniqueness_test in (
        "symmetric_part_eigenvalue", "symmetric_part_gershgorin", "row_diagonal_dominance",
        "jacobi_contraction")
    assert an.uniqueness.min_eigenvalue > 0
    # T5 and T6.
    assert an.potential.exact_potential == g.symmetric
    c = an.convergence
    assert c.lipschitz_estimate <= c.lipschitz_upper + 1e-12
    M = np.diag(a) + C
    assert c.lipschitz_upper >= np.linalg.norm(M, 2) - 1e-9
    sym = pg.analyze(pg.generate(30, sparse=4, symmetric=True), at=np.zeros(30))
    assert sym.potential.exact_potential and sym.potential.value == 0.0


def test_solve_errors(rng):
    g, *_ = random_game(rng, 10)
    cases = [
        (dict(solver="newtonian"), "solver", "is not one of best-response"),
        (dict(tol=-1.0), "tolerance", "must be finite and > 0"),
        (dict(tol=float("nan")), "tolerance", "must be finite and > 0"),
        (dict(solver="best-response", damping=2.0), "damping", "must lie in (0, 1]"),
        (dict(solver="projection", step=0.0), "step", "must be finite and > 0"),
        (dict(initial=np.zeros(3)), "initial", "expected 10 entries (one per player), got 3"),
        (dict(initial=np.array([0.0] * 9 + [np.nan])), "initial", "initial[9] is not a finite"),
    ]
    for kwargs, field, message in cases:
        with pytest.raises(pg.ValidationError) as e:
            pg.solve(g, **kwargs)
        assert message in str(e.value), (kwargs, str(e.value))
        assert e.value.field == field
    with pytest.raises(pg.ValidationError, match="profile: expected 10 entries"):
        pg.analyze(g, at=np.zeros(3))
    with pytest.raises(pg.ValidationError, match="profile: expected 10 entries"):
        g.potential(np.zeros(4))
    with pytest.raises(TypeError):
        pg.solve("not a game")


def _slow_game():
    # Weak diagonal dominance and a tolerance no solver reaches: projection runs until it
    # stalls, thousands of steps of O(nnz) each.
    return pg.generate(200_000, seed=3, sparse=16, beta=1.0, dominance=1.001)


def test_gil_is_released_during_solve():
    g = _slow_game()
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.005)

    t = threading.Thread(target=tick)
    start = time.perf_counter()
    t.start()
    r = pg.solve(g, "projection", tol=1e-300, max_iter=300, prove=False)
    stop.set()
    t.join()
    elapsed = time.perf_counter() - start
    assert r.iterations == 300 and elapsed > 0.2
    during = [x for x in ticks if x < start + elapsed]
    # A thread that waited for the GIL would tick a handful of times at most.
    assert len(during) > 0.3 * elapsed / 0.005


def test_ctrl_c_interrupts_a_long_solve(tmp_path):
    script = tmp_path / "long_solve.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        import pruning_game as pg
        g = pg.generate(200_000, seed=3, sparse=16, beta=1.0, dominance=1.001)
        print("ready", flush=True)
        start = time.perf_counter()
        try:
            pg.solve(g, "projection", tol=1e-300, max_iter=10**9, prove=False)
            print("finished", flush=True)
        except KeyboardInterrupt:
            print(f"interrupted {time.perf_counter() - start:.3f}", flush=True)
    """))
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(1.5)
    sent = time.perf_counter()
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    latency = time.perf_counter() - sent
    assert out.startswith("interrupted"), out
    assert float(out.split()[1]) >= 1.0  # it was still solving when the signal came
    assert latency < 5.0, latency
    assert p.returncode == 0
