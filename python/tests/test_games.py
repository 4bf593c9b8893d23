"""Games from NumPy and SciPy, their files, the generator, and every validation error."""
import json

import numpy as np
import pytest

import pruning_game as pg
from conftest import random_game

sp = pytest.importorskip("scipy.sparse")


def test_arrays_and_views(rng):
    g, C, b, a, gamma, u = random_game(rng, 30)
    assert g.players == len(g) == 30
    np.testing.assert_array_equal(g.benefit, b)
    np.testing.assert_array_equal(g.self_cost, a)
    np.testing.assert_array_equal(g.participation_cost, gamma)
    np.testing.assert_array_equal(g.net_benefit, b - gamma)
    np.testing.assert_array_equal(g.competition.toarray(), C)
    assert g.storage == "sparse" and g.nnz == np.count_nonzero(C)
    # Views of the game's own memory: read-only, never the caller's array.
    view = g.benefit
    assert not view.flags.writeable
    with pytest.raises(ValueError):
        view[0] = 1.0
    assert np.shares_memory(g.benefit, g.benefit)
    assert not np.shares_memory(g.benefit, b)


def test_scalars_dense_and_every_sparse_format(rng):
    n = 12
    _, C, b, a, gamma, _ = random_game(rng, n, sparse=False)
    dense = pg.PruningGame(b, a, 0.1, C)
    assert dense.storage == "dense"
    np.testing.assert_array_equal(dense.participation_cost, np.full(n, 0.1))
    np.testing.assert_array_equal(dense.upper, np.ones(n))
    reference = pg.solve(dense).participation
    for fmt in ("csr", "csc", "coo", "lil", "dok", "bsr"):
        g = pg.PruningGame(b, a, 0.1, sp.csr_matrix(C).asformat(fmt))
        assert g.storage == "sparse", fmt
        np.testing.assert_allclose(pg.solve(g).participation, reference, atol=1e-12, err_msg=fmt)
    # Fortran order and strided (non-contiguous) inputs read the same values.
    np.testing.assert_array_equal(
        pg.PruningGame(b, a, 0.1, np.asfortranarray(C)).competition.toarray(), C)
    wide = np.zeros((n, 2 * n))
    wide[:, ::2] = C
    np.testing.assert_array_equal(pg.PruningGame(b, a, 0.1, wide[:, ::2]).competition.toarray(), C)
    np.testing.assert_array_equal(pg.PruningGame(np.repeat(b, 2)[::2], a, 0.1).benefit, b)
    # int64 indices and a csr_array.
    m = sp.csr_matrix(C)
    m.indices = m.indices.astype(np.int64)
    m.indptr = m.indptr.astype(np.int64)
    assert pg.PruningGame(b, a, 0.1, m).nnz == np.count_nonzero(C)
    if hasattr(sp, "csr_array"):
        assert pg.PruningGame(b, a, 0.1, sp.csr_array(C)).nnz == np.count_nonzero(C)


def test_inputs_not_mutated(rng):
    """The core reads the caller's arrays and copies them once; nothing is written back, even
    when it sorts unsorted CSR rows or drops explicit diagonal zeros in its copy."""
    n = 20
    _, C, b, a, gamma, u = random_game(rng, n, sparse=False)
    m = sp.csr_matrix(C)
    # Reverse the columns within each row: a valid CSR matrix with unsorted indices.
    for i in range(n):
        lo, hi = m.indptr[i], m.indptr[i + 1]
        m.indices[lo:hi] = m.indices[lo:hi][::-1].copy()
        m.data[lo:hi] = m.data[lo:hi][::-1].copy()
    m.has_sorted_indices = False
    arrays = {"b": b, "a": a, "gamma": gamma, "u": u, "indptr": m.indptr, "indices": m.indices,
              "data": m.data}
    before = {k: v.copy() for k, v in arrays.items()}
    initial = rng.random(n)
    initial_before = initial.copy()
    g = pg.PruningGame(b, a, gamma, m, upper=u)
    r = pg.solve(g, initial=initial)
    pg.analyze(g, at=r.participation)
    for k, v in arrays.items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
        assert not np.shares_memory(v, g.benefit)
    np.testing.assert_array_equal(initial, initial_before)
    assert not m.has_sorted_indices
    np.testing.assert_array_equal(g.competition.toarray(), C)


def test_files_round_trip(rng, tmp_path):
    g, C, *_ = random_game(rng, 25)
    for name in ("g.json", "g.safetensors"):
        path = tmp_path / name
        g.write(path)
        back = pg.read(path)
        np.testing.assert_array_equal(back.benefit, g.benefit)
        np.testing.assert_array_equal(back.self_cost, g.self_cost)
        np.testing.assert_array_equal(back.competition.toarray(), C)
        assert back.to_json() == g.to_json()
    doc = json.loads(g.to_json())
    assert set(doc) >= {"benefit", "self_cost", "participation_cost", "competition"}


def test_generate_is_seeded():
    a = pg.generate(300, seed=4, sparse=6, symmetric=True, beta=0.3)
    b = pg.generate(300, seed=4, sparse=6, symmetric=True, beta=0.3)
    c = pg.generate(300, seed=5, sparse=6, symmetric=True, beta=0.3)
    assert a.to_json() == b.to_json() != c.to_json()
    assert a.symmetric and a.storage == "sparse" and a.nnz == 300 * 6
    assert pg.generate(50, random_degree=4.0).storage == "sparse"
    assert pg.generate(20, density=0.5).storage == "dense"
    frac = float(np.mean(pg.generate(4000, seed=1, sparse=4).net_benefit < 0))
    assert abs(frac - 0.3) < 0.05


# Every check of the game's fields, with the message of the core and the field and index it
# names. A game of three players; each case changes one argument.
B, A, G = [1.0, 2.0, 3.0], [1.0, 1.0, 1.0], 0.1
CASES = [
    (dict(self_cost=[1.0, 2.0]), "self_cost: expected 3 entries (one per player), got 2",
     "self_cost", None),
    (dict(self_cost=[1.0, -2.0, 1.0]), "self_cost[1] = -2 is negative; it must be >= 0",
     "self_cost", 1),
    (dict(self_cost=-1.0), "self_cost[0] = -1 is negative; it must be >= 0", "self_cost", 0),
    (dict(participation_cost=[0.1, 0.1, -0.5]),
     "participation_cost[2] = -0.5 is negative; it must be >= 0", "participation_cost", 2),
    (dict(benefit=[1.0, np.nan, 3.0]), "benefit[1] is not a finite number (NaN)", "benefit", 1),
    (dict(self_cost=[1.0, np.inf, 1.0]), "self_cost[1] is not a finite number (inf)",
     "self_cost", 1),
    (dict(upper=[1.0, 0.0, 1.0]), "upper[1] = 0 must be > 0", "upper", 1),
    (dict(upper=[1.0, 1.0]), "upper: expected 3 entries (one per player), got 2", "upper", None),
    (dict(benefit=[]), "the game has no players", None, None),
    (dict(competition=np.zeros((3, 2))), "competition.dense (columns): expected 3", None, None),
    (dict(competition=np.zeros((2, 2))), "competition (rows): expected 3", None, None),
    (dict(competition=np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 0.0]])),
     "competition.dense[1][0] = -1 is negative; it must be >= 0", "competition.dense[1]", 0),
    (dict(competition=np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0.2]])),
     "competition[2][2] = 0.2: the diagonal must be 0", "competition", 2),
    (dict(competition=np.array([[0, np.nan, 0], [1, 0, 0], [0, 0, 0.0]])),
     "competition.dense[0][1] is not a finite number (NaN)", "competition.dense[0]", 1),
    (dict(benefit=[[1.0, 2.0, 3.0]]), "benefit: expected a 1-d array", "benefit", None),
    (dict(benefit=["a", "b", "c"]), "benefit: expected an array of numbers", "benefit", None),
    (dict(competition=np.zeros(3)), "competition: expected a 2-d array", "competition", None),
]


def _game(**change):
    args = dict(benefit=B, self_cost=A, participation_cost=G, competition=None, upper=1.0)
    args.update(change)
    return pg.PruningGame(**args)


@pytest.mark.parametrize("change,message,field,index", CASES)
def test_every_field_error(change, message, field, index):
    with pytest.raises(pg.ValidationError) as e:
        _game(**change)
    assert message in str(e.value)
    assert isinstance(e.value, ValueError)
    if field is not None:
        assert e.value.field == field
    assert e.value.index == index


def _csr(data, indices, indptr, shape=(3, 3)):
    m = sp.csr_matrix((np.array(data, float), np.array(indices), np.array(indptr)), shape=shape)
    return m


SPARSE_CASES = [
    (_csr([1.0, 2.0], [1, 5], [0, 1, 2, 2]), "indices[1]: column 5 is out of range for 3 players"),
    (_csr([1.0, 2.0], [1, 1], [0, 2, 2, 2]), "(row 0): column 1 appears more than once"),
    (_csr([1.0, -2.0], [1, 2], [0, 2, 2, 2]), "values[1] = -2 is negative; it must be >= 0"),
    (_csr([1.0, 2.0], [1, -1], [0, 2, 2, 2]), "indices[1] = -1 is negative; it must be >= 0"),
    (_csr([1.0, np.nan], [1, 2], [0, 2, 2, 2]), "values[1] is not a finite number (NaN)"),
    (_csr([1.0, 2.0], [1, 2], [0, 2, 2, 2], shape=(3, 4)), "competition (columns): expected 3"),
    (_csr([1.0, 2.0, 3.0], [1, 2, 0], [0, 2, 2, 2, 3], shape=(4, 4)), "(rows): expected 3"),
    (sp.coo_matrix(([1.0, 0.5], ([0, 2], [1, 2])), shape=(3, 3)),
     "competition[2][2] = 0.5: the diagonal must be 0"),
]


@pytest.mark.parametrize("matrix,message", SPARSE_CASES)
def test_every_sparse_error(matrix, message):
    with pytest.raises(pg.ValidationError, match=None) as e:
        _game(competition=matrix)
    assert message in str(e.value), str(e.value)


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        pg.read(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"benefit": [1, 2], "self_cost": 1, "participation_cost": "x"}')
    with pytest.raises(pg.FormatError, match=r"participation_cost: invalid type.*line 1 column"):
        pg.read(bad)
    neg = tmp_path / "neg.json"
    neg.write_text('{"benefit": [1, 2], "self_cost": [1, -2], "participation_cost": 0.1}')
    # A bad value in a file is a file error that names the file, then the field and index.
    with pytest.raises(pg.FormatError, match=r"neg.json: self_cost\[1\] = -2 is negative"):
        pg.read(neg)


def test_generator_errors():
    with pytest.raises(pg.ValidationError, match="no players"):
        pg.generate(0)
    with pytest.raises(pg.ValidationError, match="even number of neighbours"):
        pg.generate(10, sparse=3, symmetric=True)
    with pytest.raises(pg.ValidationError, match="not both"):
        pg.generate(10, sparse=2, random_degree=3.0)
