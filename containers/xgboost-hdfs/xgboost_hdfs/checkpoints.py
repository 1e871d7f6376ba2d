"""Checkpoints for managed spot training: the booster is saved every `checkpoint_frequency` rounds
and when SIGTERM arrives, and a job started again with the same checkpoint folder resumes from the
latest one, ending with the same model as an uninterrupted run.

Files: <checkpoint dir>/xgboost-checkpoint.<rounds done>.ubj, XGBoost's UBJSON model with the early
stopping state (best_iteration, best_score) and the hyperparameters in its attributes. Each is
written to a hidden temporary file, fsync'ed and renamed, so no reader (nor SageMaker's sync to S3)
sees a half-written file under a checkpoint's name; the latest KEEP are kept (SageMaker deletes in
S3 what is deleted here). Resuming takes the newest file that loads and holds the rounds its name
says, skipping corrupt or truncated ones.

Several hosts: only the leader (rank 0) reads, writes or prunes the folder. It sends the checkpoint
it resumes from to every host, so all resume from the same trees whatever their own folders hold,
and the hosts agree each round on whether any of them got SIGTERM, so all stop at the same round.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import xgboost as xgb

from byoc.errors import UserError
from byoc.training import Stopped, stop_signal

from .distributed import Cluster

log = logging.getLogger(__name__)

PREFIX, SUFFIX = "xgboost-checkpoint.", ".ubj"
KEEP = 3
PARAMS_ATTR = "byoc_checkpoint_params"
_NOT_FINGERPRINTED = {"nthread", "verbosity"}  # may differ between runs without changing the trees


def path_for(folder: Path, rounds: int) -> Path:
    return folder / f"{PREFIX}{rounds}{SUFFIX}"


def write_atomic(path: Path, data: bytes) -> None:
    """The file appears complete under its name or not at all, also across a power loss."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself
    finally:
        os.close(folder)


def listed(folder: Path) -> list[tuple[int, Path]]:
    """Checkpoints by rounds done, newest first; other names (temporary files) are not ours."""
    found = []
    for path in folder.glob(f"{PREFIX}*{SUFFIX}"):
        middle = path.name[len(PREFIX):-len(SUFFIX)]
        if middle.isdigit():
            found.append((int(middle), path))
    return sorted(found, reverse=True)


def latest(folder: Path) -> tuple[Path, bytes] | None:
    """The newest checkpoint that loads and holds the rounds its name says, as raw bytes."""
    for rounds, path in listed(folder):
        try:
            raw = path.read_bytes()
            held = xgb.Booster(model_file=bytearray(raw)).num_boosted_rounds()
        except (OSError, xgb.core.XGBoostError) as exc:
            log.warning("skipping checkpoint %s: it does not load (%s)", path.name, str(exc).splitlines()[0][:200])
            continue
        if held != rounds:
            log.warning("skipping checkpoint %s: it holds %d rounds, not %d", path.name, held, rounds)
            continue
        return path, raw
    return None


def save(folder: Path, booster: xgb.Booster, fingerprint: str, keep: int = KEEP) -> Path:
    """Write the booster's checkpoint, then drop all but the newest `keep` (stale temporaries too)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = path_for(folder, booster.num_boosted_rounds())
    booster.set_attr(**{PARAMS_ATTR: fingerprint})
    try:
        write_atomic(path, bytes(booster.save_raw("ubj")))
    finally:
        booster.set_attr(**{PARAMS_ATTR: None})  # the final model carries no checkpoint bookkeeping
    for _, old in listed(folder)[keep:]:
        old.unlink(missing_ok=True)
    for stale in folder.glob(f".{PREFIX}*.tmp"):
        if stale.name != f".{path.name}.tmp":
            stale.unlink(missing_ok=True)
    return path


def fingerprint(params: dict, num_round: int, early_stopping_rounds: int | None) -> str:
    """What must be equal for a resumed run to end with the uninterrupted run's model."""
    kept = {k: v for k, v in params.items() if k not in _NOT_FINGERPRINTED}
    kept.update(num_round=num_round, early_stopping_rounds=early_stopping_rounds)
    return json.dumps(kept, sort_keys=True, default=str)


def _check_same_params(name: str, saved: str | None, now: str) -> None:
    if saved == now:
        return
    before, after = json.loads(saved or "{}"), json.loads(now)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    detail = ", ".join(f"{k}: {before.get(k)!r} in the checkpoint, {after.get(k)!r} now" for k in changed[:5])
    raise UserError(f"checkpoint {name} was trained with other hyperparameters ({detail}); resume with the "
                    "same ones, or give the job a new (empty) checkpoint S3 URI to start over")


class _ResumableEarlyStopping(xgb.callback.EarlyStopping):
    """XGBoost's early stopping starts from an empty history when training continues from a model:
    seeded here with the checkpoint's best score and the rounds since, a resumed job stops at the
    same round with the same best_iteration as an uninterrupted one."""

    def before_training(self, model: xgb.Booster) -> xgb.Booster:
        model = super().before_training(model)
        best = model.attr("best_score"), model.attr("best_iteration")
        self._resumed = (float(best[0]), int(best[1])) if None not in best else None
        return model

    def _update_rounds(self, *, score, name, metric, model, epoch) -> bool:
        if self._resumed is not None and not self.stopping_history:
            best_score, best_iteration = self._resumed
            self.stopping_history = {name: {metric: [best_score]}}
            self.best_scores = {name: {metric: [best_score]}}
            self.current_rounds = self.starting_round - 1 - best_iteration
        return super()._update_rounds(score=score, name=name, metric=metric, model=model, epoch=epoch)


class _SaveAndStop(xgb.callback.TrainingCallback):
    """After each round: stop if any host got SIGTERM, writing a checkpoint first when there is a folder."""

    def __init__(self, folder: Path | None, frequency: int, fingerprint: str, num_round: int, cluster: Cluster):
        super().__init__()
        self.folder = folder if cluster.is_leader else None
        self.frequency, self.fingerprint, self.num_round, self.cluster = frequency, fingerprint, num_round, cluster
        self.saved_rounds = -1

    def before_training(self, model: xgb.Booster) -> xgb.Booster:
        self.saved_rounds = model.num_boosted_rounds()  # a resumed model is already in its checkpoint
        return model

    def _save(self, model: xgb.Booster) -> Path | None:
        rounds = model.num_boosted_rounds()
        if self.folder is None or rounds == self.saved_rounds:
            return None
        path = save(self.folder, model, self.fingerprint)
        self.saved_rounds = rounds
        log.info("checkpoint %s", path)
        return path

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log) -> bool:
        stop = stop_signal.requested
        if self.cluster.any_stops(stop is not None):  # all hosts stop at one round, or the others would wait in vain
            stop = stop or "SIGTERM"
        rounds = model.num_boosted_rounds()
        if stop or rounds % self.frequency == 0:
            self._save(model)
        if stop:
            raise Stopped(stop, self._stopped_detail(rounds))
        return False

    def _stopped_detail(self, rounds: int) -> str:
        where = f"at round {rounds} of {self.num_round}"
        if not self.cluster.is_leader:
            return f"{where}; {self.cluster.hosts[0]} saved the checkpoint, if the job has a checkpoint configuration"
        if self.folder is None:
            return (f"{where}; no checkpoint saved: the job has no checkpoint configuration "
                    "(set checkpoint_s3_uri to let a restarted job resume)")
        return (f"{where}; checkpoint {path_for(self.folder, rounds).name} saved in {self.folder}: "
                "a job started again with the same checkpoint configuration resumes from it")

    def after_training(self, model: xgb.Booster) -> xgb.Booster:
        self._save(model)  # a stop while evaluating or saving the model then costs no rounds
        return model


def train(params: dict, dtrain: xgb.DMatrix, num_round: int, evals: list, *, folder: Path | None, frequency: int,
          early_stopping_rounds: int | None, cluster: Cluster, callbacks: list) -> xgb.Booster:
    """xgb.train, resumed from the latest checkpoint in `folder` and writing checkpoints there;
    SIGTERM stops it at the end of a round. With no folder only the clean stop remains."""
    stamp = fingerprint(params, num_round, early_stopping_rounds)
    start = _resume_point(folder, stamp, cluster)
    done = start.num_boosted_rounds() if start is not None else 0
    stopper = _ResumableEarlyStopping(rounds=early_stopping_rounds) if early_stopping_rounds else None
    if start is not None and stopper is not None and start.attr("best_iteration") is not None:
        if done - 1 - int(start.attr("best_iteration")) >= early_stopping_rounds:
            done = num_round  # the checkpoint was written when early stopping ended the run
    saver = _SaveAndStop(folder, frequency, stamp, num_round, cluster)
    with stop_signal.deferred():
        return xgb.train(params, dtrain, num_round - done, evals=evals, verbose_eval=False, xgb_model=start,
                         callbacks=[*callbacks, *([stopper] if stopper else []), saver])


def _resume_point(folder: Path | None, stamp: str, cluster: Cluster) -> xgb.Booster | None:
    found = latest(folder) if folder is not None and cluster.is_leader and folder.is_dir() else None
    name, raw = cluster.gather((found[0].name, found[1]) if found else (None, None))[0]
    if raw is None:
        if folder is not None and cluster.is_leader:
            log.info("no checkpoint in %s: training from round 0", folder)
        return None
    booster = xgb.Booster(model_file=bytearray(raw))
    _check_same_params(name, booster.attr(PARAMS_ATTR), stamp)
    booster.set_attr(**{PARAMS_ATTR: None})
    log.info("resuming from checkpoint %s: %d rounds done", name, booster.num_boosted_rounds())
    return booster
