"""Shared helpers: random games built in NumPy, and an independent KKT check."""
import numpy as np
import pytest

import pruning_game as pg

#: Tolerance on the sign conditions of an equilibrium computed to residual 1e-10.
KKT_TOL = 1e-8


def random_game(rng, n, *, density=0.2, beta=0.5, dominance=1.2, negative=0.3, sparse=True,
                upper=None, zero_self_cost=0.0):
    """A random game with non-negative C (zero diagonal), a_i above the row sums by
    ``dominance`` (unique equilibrium), and about ``negative`` of the players with q_i < 0.
    Returns (game, C as a dense array, b, a, gamma, u)."""
    mask = rng.random((n, n)) < density
    np.fill_diagonal(mask, False)
    C = np.where(mask, beta * rng.random((n, n)), 0.0)
    a = dominance * np.maximum(C.sum(1), C.sum(0)) + rng.uniform(0.5, 1.5, n)
    if zero_self_cost:
        # Players without self cost (linear utility) and without competitors in their row.
        zero = rng.random(n) < zero_self_cost
        C[zero, :] = 0.0
        a = np.where(zero, 0.0, a)
    gamma = rng.uniform(0.0, 0.3, n)
    q = np.where(rng.random(n) < negative, -rng.uniform(0.01, 1.0, n), rng.uniform(0.01, 1.0, n))
    b = q + gamma
    u = np.ones(n) if upper is None else upper
    if sparse:
        import scipy.sparse as sp

        comp = sp.csr_matrix(C)
    else:
        comp = C
    return pg.PruningGame(b, a, gamma, comp, upper=u), C, b, a, gamma, u


def kkt_violation(s, C, b, a, gamma, u):
    """Largest violation of the box-VI sign conditions at s, with F = a s + C s − (b − γ)
    computed here in NumPy, independently of the core."""
    F = a * s + C @ s - (b - gamma)
    at_zero = s <= 0.0
    at_top = s >= u
    inside = ~(at_zero | at_top)
    v = 0.0
    if at_zero.any():
        v = max(v, float(np.max(-F[at_zero], initial=0.0)))
    if at_top.any():
        v = max(v, float(np.max(F[at_top], initial=0.0)))
    if inside.any():
        v = max(v, float(np.max(np.abs(F[inside]))))
    box = max(float(np.max(-s, initial=0.0)), float(np.max(s - u, initial=0.0)))
    return max(v, box)


@pytest.fixture
def rng():
    return np.random.default_rng(20261202)
