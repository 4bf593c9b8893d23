"""Sweeps and the pruning pipeline through Python."""
import json

import numpy as np
import pytest

import pruning_game as pg

CONFIG = """
name = "py-test"
seed = 11
replicates = 2
[grid]
players = 40
topology = { kind = "random", degree = 4.0 }
gamma = [0.0, 0.3]
beta = { from = 0.0, to = 1.0, steps = 3 }
solver = "best-response"
tolerance = 1e-9
"""


def test_simulate_rows_summary_and_forms(tmp_path):
    seen = []
    rows, summary = pg.simulate(CONFIG, tmp_path / "out", as_frame=False,
                                progress=lambda done, total: seen.append((done, total)))
    assert len(rows) == 2 * 3 * 2 and summary.games == 12 and len(summary.cells) == 6
    assert summary.run.complete and summary.run.ran == 12
    assert seen[-1] == (12, 12)
    assert [(r["cell"], r["replicate"]) for r in rows] == sorted((r["cell"], r["replicate"]) for r in rows)
    for r in rows:
        assert r["converged"] and r["termination"] == "converged"
        # T3 and T3 ∪ T4 are lower bounds of the pruned fraction on unique equilibria.
        assert r["negative_q_fraction"] <= r["pruned_fraction"] + 1e-12
        assert r["proved_pruned_fraction"] <= r["pruned_fraction"] + 1e-12
    # The rows are those of the CLI's results file.
    header = (tmp_path / "out" / "results.csv").read_text().splitlines()[0].split(",")
    assert list(rows[0]) == header
    # Same sweep as a dict and as a file; a second call into the folder resumes.
    as_dict = {"name": "py-test", "seed": 11, "replicates": 2,
               "grid": {"players": 40, "topology": {"kind": "random", "degree": 4.0},
                        "gamma": [0.0, 0.3], "beta": {"from": 0.0, "to": 1.0, "steps": 3},
                        "solver": "best-response", "tolerance": 1e-9}}
    rows2, _ = pg.simulate(as_dict, as_frame=False)
    path = tmp_path / "sweep.toml"
    path.write_text(CONFIG)
    rows3, again = pg.simulate(path, tmp_path / "out", as_frame=False)
    assert again.run.resumed == 12 and again.run.ran == 0
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(rows) == strip(rows2) == strip(rows3)


def test_simulate_frame_shards_and_merge(tmp_path):
    pd = pytest.importorskip("pandas")
    rows, summary = pg.simulate(CONFIG)
    assert isinstance(rows, pd.DataFrame) and len(rows) == 12
    shards = []
    for k in (1, 2):
        out = tmp_path / f"s{k}"
        part, _ = pg.simulate(CONFIG, out, shard=f"{k}/2")
        assert 0 < len(part) < 12
        shards.append(out)
    merged, msummary = pg.merge(shards, tmp_path / "merged")
    pd.testing.assert_frame_equal(merged.drop(columns="seconds"), rows.drop(columns="seconds"))
    assert msummary.games == 12


def test_simulate_errors(tmp_path):
    with pytest.raises(pg.FormatError, match="unknown field `colour`"):
        pg.simulate(CONFIG + "colour = 1\n")
    with pytest.raises(pg.PruningGameError, match="invalid replicates: must be at least 1"):
        pg.simulate(CONFIG.replace("replicates = 2", "replicates = 0"))
    with pytest.raises(pg.ValidationError, match="shard"):
        pg.simulate(CONFIG, tmp_path / "x", shard="3/2")
    with pytest.raises(FileNotFoundError):
        pg.simulate(tmp_path / "missing.toml")
    with pytest.raises(TypeError):
        pg.simulate(42)


def test_prune_teacher_runs_the_pipeline(tmp_path):
    events = []
    report = pg.prune(tmp_path / "run", hidden=[16], seed=3,
                      settings={"epochs": 2, "finetune_epochs": 0},
                      progress=events.append)
    assert (tmp_path / "run" / "report.json").exists()
    on_disk = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report.seed == on_disk["seed"] == 3
    assert report.job.config.epochs == 2
    assert report.kept_per_group[0]["before"] == 16
    assert 0.0 <= report.finetuned_accuracy <= 1.0
    assert events and events[-1].stage == "done" and events[-1].checkpoints >= 1
    with pytest.raises(pg.ValidationError, match="no_such_key"):
        pg.prune(tmp_path / "bad", settings={"no_such_key": 1})
    with pytest.raises(pg.ValidationError, match="model"):
        pg.prune(tmp_path / "bad", model="transformer")
