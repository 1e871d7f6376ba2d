"""One model trained across the hosts of a SageMaker job with XGBoost's own collective (Rabit).

The tracker runs on the first host of resourceconfig.json; every host, that one included, joins as
a worker whose rank is its place in the host list, so rank 0 is always the host that saves the
model. Tree building then sums gradient histograms over all hosts each level, and evaluation
metrics are reduced over all hosts, so every host stops early at the same round.
"""
from __future__ import annotations

import logging
import socket
import time
import warnings

import numpy as np
from xgboost import collective, tracker

from byoc.errors import DataError
from byoc.training import TrainingEnv, stop_signal

log = logging.getLogger(__name__)

TRACKER_PORT = 9099


def _address(host: str, deadline: float) -> str:
    """Hosts come up in any order and their DNS names appear with them: retry until the deadline."""
    while True:
        try:
            return socket.gethostbyname(host)
        except socket.gaierror:
            if time.monotonic() > deadline:
                raise DataError(f"cannot resolve host {host!r} of resourceconfig.json; "
                                "the hosts of a multi-instance job must reach each other") from None
            time.sleep(1)


class Cluster:
    """The hosts of this job; with one host every method is a no-op on local values."""

    def __init__(self, env: TrainingEnv, timeout: int):
        self.hosts, self.rank, self.timeout = env.hosts, env.rank, timeout
        self.size = len(self.hosts)
        self._tracker = None
        self._failed_together = False  # every host knows of the failure: shut down in order

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    def __enter__(self) -> "Cluster":
        if self.size == 1:
            return self
        deadline = time.monotonic() + self.timeout
        leader = _address(self.hosts[0], deadline)
        if self.is_leader:
            self._tracker = tracker.RabitTracker(n_workers=self.size, host_ip=leader, port=TRACKER_PORT,
                                                 sortby="task", timeout=self.timeout)
            self._tracker.start()
        log.info("joining the tracker on %s (%s:%d) as rank %d of %d", self.hosts[0], leader, TRACKER_PORT,
                 self.rank, self.size)
        with warnings.catch_warnings():  # one warning per retry while the tracker's host starts: noise
            warnings.filterwarnings("ignore", message=r".*(Failed to connect|Retrying connection)")
            collective.init(dmlc_tracker_uri=leader, dmlc_tracker_port=TRACKER_PORT,
                            dmlc_task_id=f"{self.rank:05d}", dmlc_timeout=self.timeout, dmlc_retry=self.timeout // 2)
        return self

    def __exit__(self, kind, error, trace) -> None:
        if self.size == 1:
            return
        if error is not None and not self._failed_together:
            # This process exits, closing its sockets, which ends the peers' waits. Freeing a tracker
            # that still waits for workers crashes libxgboost: leave it to the process's end.
            if self._tracker is not None:
                del self._tracker.handle
            return
        # Nothing is lost by a stop signal now (the model is saved, or every host fails together):
        # leave the collective in order rather than stop half way (local mode stops the other
        # containers as soon as one exits).
        with stop_signal.deferred():
            collective.finalize()
            if self._tracker is not None:
                self._tracker.wait_for(self.timeout)

    def total(self, values) -> np.ndarray:
        """Element-wise sum over all hosts."""
        values = np.asarray(values, dtype=np.float64)
        return collective.allreduce(values, collective.Op.SUM) if self.size > 1 else values

    def barrier(self) -> None:
        """Wait until every host gets here."""
        if self.size > 1:
            self.total([0.0])

    def gather(self, value) -> list:
        """Every host's value, in rank order, on every host."""
        if self.size == 1:
            return [value]
        # broadcast pickles any object but refuses None, hence the one-element tuples
        return [collective.broadcast((value,) if rank == self.rank else None, rank)[0] for rank in range(self.size)]

    def any_stops(self, stop: bool) -> bool:
        """Whether any host got a stop signal (each round, so all stop at the same one); if so, every
        host knows, and leaves the collective in order."""
        if self.size == 1:
            return stop
        stopping = bool(self.total([1.0 if stop else 0.0])[0] > 0)
        self._failed_together = self._failed_together or stopping
        return stopping

    def agree(self, problem: Exception | None) -> None:
        """A data error on any host fails every host, each naming the host that has the problem."""
        failed = self.gather(None if problem is None else f"{self.hosts[self.rank]}: {problem}")
        self._failed_together = any(failed)
        if problem is not None:
            raise problem
        others = [f for f in failed if f]
        if others:
            raise DataError(f"another host of this job could not load its data: {others[0]}")

