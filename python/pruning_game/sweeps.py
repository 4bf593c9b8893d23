"""Sweeps of synthetic games and the equilibrium pruner, run by the core."""
import json
import os
import pathlib
import tempfile
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from . import _core
from .records import Record


def _config_source(config: Any) -> Dict[str, Any]:
    """Keyword arguments naming a sweep configuration for the core."""
    if isinstance(config, Mapping):
        return {"text": json.dumps(dict(config)), "form": "json"}
    if isinstance(config, (os.PathLike, pathlib.Path)):
        return {"path": os.fspath(config)}
    if isinstance(config, str):
        if "\n" not in config and os.path.exists(config):
            return {"path": config}
        if "=" in config:
            return {"text": config, "form": "toml"}
        return {"path": config}  # a missing file: the core names it
    raise TypeError(f"config: expected a path, TOML text or a dict, got {type(config).__name__}")


def _frame(rows: List[dict], as_frame: Optional[bool]):
    if as_frame is False:
        return rows
    try:
        import pandas as pd
    except ImportError:
        if as_frame:
            raise
        return rows
    return pd.DataFrame(rows)


def simulate(config: Union[str, "os.PathLike[str]", Mapping[str, Any]],
             out: Optional[Union[str, "os.PathLike[str]"]] = None, *,
             shard: Optional[str] = None, stop_after: Optional[int] = None,
             progress: Optional[Callable[[int, int], None]] = None,
             as_frame: Optional[bool] = None) -> Tuple[Any, Record]:
    """Runs a sweep (the sweep file of ``pruning-game simulate``) and returns ``(rows, summary)``.

    ``config`` is a ``.toml`` / ``.json`` file, TOML text, or a dict in the file's layout.
    ``rows`` has one entry per game, in cell and replicate order, with the columns of
    ``results.csv``: a pandas DataFrame when pandas is installed (``as_frame=False`` for the
    list of dicts). ``summary`` holds the per-cell statistics of ``summary.json``, and
    ``summary.run`` what this call did (``total``, ``resumed``, ``ran``, ``complete``).

    With ``out`` the results folder stays (and a second call resumes it, as the CLI does);
    without it the sweep runs in a temporary folder. ``shard="K/N"`` runs one shard;
    ``progress(done, total)`` is called as games finish.
    """
    source = _config_source(config)

    def run(folder: str):
        rows, summary, info = _core.simulate(folder, shard=shard, stop_after=stop_after,
                                             progress=progress, **source)
        summary = Record(summary)
        summary["run"] = Record(info)
        return _frame(rows, as_frame), summary

    if out is not None:
        return run(os.fspath(out))
    with tempfile.TemporaryDirectory(prefix="pruning-game-sweep-") as tmp:
        return run(os.path.join(tmp, "sweep"))


def merge(shards: List[Union[str, "os.PathLike[str]"]], out: Union[str, "os.PathLike[str]"], *,
          allow_partial: bool = False, as_frame: Optional[bool] = None) -> Tuple[Any, Record]:
    """Joins complete shard folders of one sweep into ``out`` (``pruning-game merge``) and
    returns ``(rows, summary)`` of the merged results. Shards of different sweeps, a shard
    given twice or (unless ``allow_partial``) a missing shard are refused."""
    rows, summary = _core.merge([os.fspath(s) for s in shards], os.fspath(out),
                                allow_partial=allow_partial)
    return _frame(rows, as_frame), Record(summary)


def prune(out: Union[str, "os.PathLike[str]"], *, model: str = "mlp",
          dataset: str = "teacher", data_dir: Optional[Union[str, "os.PathLike[str]"]] = None,
          hidden: Optional[List[int]] = None, depth: int = 8,
          init: Optional[Union[str, "os.PathLike[str]"]] = None, seed: int = 42,
          target_kept: Optional[float] = None, baselines: bool = False, resume: bool = False,
          settings: Optional[Mapping[str, Any]] = None,
          progress: Optional[Callable[[Record], None]] = None) -> Record:
    """Runs ``pruning-game prune`` — train, prune by equilibrium, refit, fine-tune — into the
    run folder ``out`` and returns its report (the contents of ``report.json``).

    ``model`` is ``mlp`` (widths ``hidden``), ``cnn``, ``bn-cnn`` or ``resnet`` (``depth``);
    ``init`` prunes a trained model file instead (no dense training; see
    :func:`from_torch`). ``settings`` sets any key of the run's ``config.json`` (``{"epochs": 2,
    "optimizer.lr": 5e-4}``), exactly as the CLI's ``--set`` does; unknown keys and
    ill-typed values raise :class:`ValidationError` naming the key. ``progress(event)`` is
    called as the run advances: ``event.stage`` (``game``, ``refit``, ``dense``, ``done``),
    ``event.checkpoints`` (epochs of the game checkpointed so far) and ``event.seconds``.
    Ctrl-C is answered when the pipeline returns (it cannot be stopped mid-epoch); the run
    folder stays resumable with ``resume=True``.
    """
    overrides = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
                 for k, v in (settings or {}).items()]
    callback = None if progress is None else (lambda event: progress(Record(event)))
    report = _core.prune(os.fspath(out), model=model, dataset=dataset,
                         data_dir=None if data_dir is None else os.fspath(data_dir),
                         hidden=hidden, depth=depth,
                         init=None if init is None else os.fspath(init),
                         seed=seed, target_kept=target_kept,
                         baselines=baselines, resume=resume, settings=overrides,
                         progress=callback)
    return Record(report)
