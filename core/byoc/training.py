"""SageMaker's training contract: the /opt/ml tree, its config files, and the failure file.

https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo.html
"""
from __future__ import annotations

import gzip
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import memory
from .errors import DataError, UserError

log = logging.getLogger(__name__)

DEFAULT_ROOT = Path("/opt/ml")
GZIP_MAGIC = b"\x1f\x8b"
# What reading a damaged gzip file raises: a truncated stream, a bad header, bad deflate data or CRC.
GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


def _read_json(path: Path, default: Any) -> Any:
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON ({exc.msg}); fix the file "
                        "so that it holds one JSON object") from None


@dataclass
class TrainingEnv:
    """Everything a training job reads from and writes to under /opt/ml."""

    root: Path = DEFAULT_ROOT
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    input_data_config: dict[str, dict] = field(default_factory=dict)
    resource_config: dict[str, Any] = field(default_factory=dict)
    #: checkpointconfig.json (LocalPath, S3Uri); None when the job has no checkpoint configuration
    checkpoint_config: dict[str, Any] | None = None

    @classmethod
    def load(cls, root: Path | str | None = None) -> "TrainingEnv":
        root = Path(root or os.environ.get("SM_ML_ROOT", DEFAULT_ROOT))
        config = root / "input" / "config"
        env = cls(
            root=root,
            hyperparameters=_read_json(config / "hyperparameters.json", {}),
            input_data_config=_read_json(config / "inputdataconfig.json", {}),
            resource_config=_read_json(config / "resourceconfig.json", {}),
            checkpoint_config=_read_json(config / "checkpointconfig.json", None),
        )
        for name, value in (("hyperparameters.json", env.hyperparameters),
                            ("inputdataconfig.json", env.input_data_config),
                            ("resourceconfig.json", env.resource_config),
                            ("checkpointconfig.json", {} if env.checkpoint_config is None else env.checkpoint_config)):
            if not isinstance(value, dict):
                raise UserError(f"{config / name}: expected a JSON object, got {type(value).__name__}")
        return env

    # Paths -------------------------------------------------------------------------------
    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_data_dir(self) -> Path:
        return self.root / "output" / "data"

    @property
    def failure_file(self) -> Path:
        return self.root / "output" / "failure"

    @property
    def checkpoint_dir(self) -> Path | None:
        """Where checkpoints are written and found again (SageMaker syncs it with S3Uri both ways);
        None when the job has no checkpoint configuration."""
        if self.checkpoint_config is None:
            return None
        local = self.checkpoint_config.get("LocalPath")
        return Path(local) if local else self.root / "checkpoints"

    def channel_dir(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    # Channels ----------------------------------------------------------------------------
    @property
    def channels(self) -> list[str]:
        """Channels declared in inputdataconfig.json, or the folders present when it is absent."""
        if self.input_data_config:
            return list(self.input_data_config)
        data = self.root / "input" / "data"
        return sorted(p.name for p in data.iterdir() if p.is_dir()) if data.is_dir() else []

    def has_channel(self, name: str) -> bool:
        return name in self.channels and self.channel_dir(name).is_dir()

    def content_type(self, name: str) -> str | None:
        """The channel's ContentType without parameters, lower-case; None when not given."""
        value = self.input_data_config.get(name, {}).get("ContentType")
        return value.split(";")[0].strip().lower() if value else None

    def channel_files(self, name: str, required: bool = True) -> list[Path]:
        """Every visible file of a channel, nested folders included, in a stable order."""
        folder = self.channel_dir(name)
        if not folder.is_dir():
            if required:
                present = [c for c in self.channels if self.channel_dir(c).is_dir()]
                raise DataError(
                    f"no '{name}' channel: {folder} does not exist. "
                    f"Pass a '{name}' input (fit({{'{name}': ...}})); channels found: {present or 'none'}"
                )
            return []
        files = sorted(
            p for p in folder.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        )
        if not files and required:
            if self.is_sharded(name) and len(self.hosts) > 1:
                raise DataError(f"ShardedByS3Key gave host {self.current_host} no file of the '{name}' channel; "
                                f"split the data into at least as many files as instances ({len(self.hosts)})")
            raise DataError(f"the '{name}' channel ({folder}) has no files; upload data to its S3 prefix")
        return files

    # Cluster -----------------------------------------------------------------------------
    @property
    def hosts(self) -> list[str]:
        return list(self.resource_config.get("hosts", ["algo-1"]))

    @property
    def current_host(self) -> str:
        return self.resource_config.get("current_host", "algo-1")

    @property
    def rank(self) -> int:
        """This host's place in resourceconfig.json's host list; the first host (rank 0) leads."""
        hosts, current = self.hosts, self.current_host
        if current not in hosts:
            raise UserError(f"resourceconfig.json: current_host {current!r} is not in hosts {hosts}")
        return hosts.index(current)

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    def is_sharded(self, name: str) -> bool:
        """ShardedByS3Key: each host already holds only its own files. FullyReplicated (SageMaker's
        default, and local mode's) gives every host every file, so each must pick its share."""
        kind = self.input_data_config.get(name, {}).get("S3DistributionType", "FullyReplicated")
        return kind == "ShardedByS3Key"


def open_text(path: Path):
    """Open a text file that may be gzip-compressed (detected by its magic bytes, not its name)."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == GZIP_MAGIC:
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="")
    return open(path, "rt", encoding="utf-8", errors="replace", newline="")


def damaged_gzip(path: Path, exc: Exception) -> DataError:
    """The error for a gzip file that cannot be read to its end, naming the file."""
    what = "truncated" if isinstance(exc, EOFError) else f"damaged ({exc})"
    return DataError(f"{path.name} is a {what} gzip file; check it with 'gzip -t {path.name}', "
                     "then compress and upload it again")


def check_gzip(path: Path) -> None:
    """Raise damaged_gzip if a gzip file cannot be read to its end. For error paths: a damaged deflate
    stream can decode into garbage lines, which a parser refuses before the checksum is reached."""
    with open(path, "rb") as probe:
        if probe.read(2) != GZIP_MAGIC:
            return
    try:
        with gzip.open(path) as stream:
            while stream.read(1 << 20):
                pass
    except GZIP_ERRORS as exc:
        raise damaged_gzip(path, exc) from None


def write_failure(env: TrainingEnv, reason: str) -> None:
    """SageMaker shows this file's text as the job's FailureReason (it keeps the first 1 KiB)."""
    env.failure_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = env.failure_file.with_suffix(".tmp")
    tmp.write_text(" ".join(reason.split()) + "\n", encoding="utf-8")  # one line, whatever the message holds
    tmp.replace(env.failure_file)


class Stopped(BaseException):
    """SIGTERM (StopTrainingJob, a spot interruption, MaxRuntimeInSeconds) or SIGINT, as an exception
    that unwinds the training code. A BaseException, so no `except Exception` on the way swallows it."""

    def __init__(self, signal_name: str, detail: str = ""):
        self.signal_name, self.detail = signal_name, detail
        super().__init__(f"stopped by {signal_name}" + (f" {detail}" if detail else
                         " before training finished; no model was written"))

    @property
    def exit_code(self) -> int:
        return 128 + signal.Signals[self.signal_name]  # what a shell reports for a process the signal ended


class _StopSignal:
    """Where a stop signal is turned into Stopped. Outside `deferred()` the handler raises at once;
    inside, it only records the signal, and the code polls `requested` at points where stopping
    leaves a consistent state (between boosting rounds, after writing a checkpoint)."""

    def __init__(self):
        self.requested: str | None = None
        self._deferring = 0

    @contextmanager
    def installed(self):
        signals = (signal.SIGTERM, signal.SIGINT)
        previous = [signal.signal(signum, self._handle) for signum in signals]
        self.requested = None
        try:
            yield self
        finally:
            for signum, handler in zip(signals, previous):
                signal.signal(signum, handler)
            self.requested = None

    def _handle(self, signum, frame) -> None:
        self.requested = signal.Signals(signum).name
        log.warning("received %s", self.requested)
        if not self._deferring:
            raise Stopped(self.requested)

    @contextmanager
    def deferred(self):
        self._deferring += 1
        try:
            yield self
        finally:
            self._deferring -= 1


stop_signal = _StopSignal()

#: Seconds a child process has to exit after a forwarded stop signal before its process group is
#: SIGKILLed. SageMaker SIGKILLs the container 120 s after its SIGTERM; 100 s leaves time to report.
STOP_GRACE_SECONDS = 100.0


def run_child(command: list[str], name: str, on_stderr_line: Callable[[bytes], None], **popen: Any) -> int:
    """Run a child process (a user's script) as a first-class part of the job; return its exit code.

    It runs in its own process group, so a stop signal (SIGTERM, SIGINT) reaches it and whatever it
    started: the signal is forwarded to the group, which has BYOC_STOP_GRACE_SECONDS (default 100)
    to exit before it is SIGKILLed; then Stopped is raised, saying how the child ended.
    Its stderr goes line by line, as bytes (no decoding can fail here), to on_stderr_line."""
    grace = _grace_seconds()
    stopped_at, killed = None, False
    with stop_signal.deferred():  # a stop signal is only recorded from here: never lost between two steps
        process = subprocess.Popen(command, stderr=subprocess.PIPE, start_new_session=True, **popen)
        reader = threading.Thread(target=_pump_lines, args=(process.stderr, on_stderr_line), daemon=True)
        reader.start()
        try:
            while process.poll() is None:
                if stop_signal.requested and stopped_at is None:
                    stopped_at = time.monotonic()
                    _signal_group(process, signal.Signals[stop_signal.requested])
                    log.warning("forwarded %s to %s (process group %d); it has %g s to exit",
                                stop_signal.requested, name, process.pid, grace)
                elif stopped_at is not None and not killed and time.monotonic() - stopped_at > grace:
                    log.error("%s did not exit within %g s of %s: killing its process group",
                              name, grace, stop_signal.requested)
                    _signal_group(process, signal.SIGKILL)
                    killed = True
                try:
                    process.wait(timeout=0.1)  # bounded, so that a stop signal is acted on at once
                except subprocess.TimeoutExpired:
                    pass
        finally:
            if process.poll() is None:  # the job itself is failing: never leave the script orphaned
                _signal_group(process, signal.SIGKILL)
                process.wait()
            _signal_group(process, signal.SIGKILL)  # anything it left running in its group
            reader.join(timeout=5)
        if stopped_at is not None:
            ended = f"did not exit within {grace:g} s and was killed" if killed else describe_exit(process.returncode)
            raise Stopped(stop_signal.requested, f"(forwarded to {name}, which {ended}; "
                                                 f"{time.monotonic() - stopped_at:.2f} s after the signal)")
    return process.returncode


def describe_exit(returncode: int) -> str:
    """How a child ended, from Popen's returncode (negative: the signal that ended it)."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        return f"was ended by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"was ended by signal {-returncode}"


def _grace_seconds() -> float:
    value = os.environ.get("BYOC_STOP_GRACE_SECONDS", "")
    try:
        grace = float(value) if value.strip() else STOP_GRACE_SECONDS
    except ValueError:
        grace = -1.0
    if not 0 <= grace < float("inf"):
        raise UserError(f"BYOC_STOP_GRACE_SECONDS={value!r}: expected a number of seconds >= 0 (default {STOP_GRACE_SECONDS:g})")
    return grace


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    """Signal the child's process group (its id is the child's pid: start_new_session)."""
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):  # the group is gone already
        pass


def _pump_lines(stream, on_line: Callable[[bytes], None], limit: int = 1 << 16) -> None:
    """Hand on each line as it arrives (at most `limit` bytes at a time, so output without
    newlines cannot grow without bound)."""
    with stream:
        for line in iter(lambda: stream.readline(limit), b""):
            try:
                on_line(line)
            except Exception:  # keep draining the pipe: a child blocked on a full pipe would hang the job
                log.exception("could not pass on a line of the child's stderr")


def run(train: Callable[[TrainingEnv], None], root: Path | str | None = None) -> int:
    """Run a training function under the contract: failure file and non-zero exit on any error."""
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # PID 1 in a container has no default action for SIGTERM: without a handler `docker stop` and
    # SageMaker's stop would wait for SIGKILL and leave no failure reason.
    with stop_signal.installed():
        return _run(train, TrainingEnv(root=Path(root or os.environ.get("SM_ML_ROOT", DEFAULT_ROOT))))


def _run(train: Callable[[TrainingEnv], None], env: TrainingEnv) -> int:
    try:
        env.failure_file.unlink(missing_ok=True)  # left by an earlier run on the same tree (local runs)
        env = TrainingEnv.load(env.root)
        train(env)
    except Stopped as stop:
        write_failure(env, str(stop))
        log.error("training %s", stop)
        return stop.exit_code
    except UserError as exc:
        traceback.print_exc()
        write_failure(env, f"{type(exc).__name__}: {exc}")
        log.error("training failed: %s", exc)
        return 1
    except MemoryError:
        traceback.print_exc()
        write_failure(env, "MemoryError: the training data does not fit in this instance's memory; "
                           "use a larger instance type or fewer/smaller input files")
        return 1
    except Exception as exc:  # an unexpected failure is still reported, with a hint it is ours
        traceback.print_exc()
        write_failure(env, f"internal error {type(exc).__name__}: {exc} (see the job's log for the traceback)")
        return 2
    log.info("training finished; model in %s; peak memory %d MiB", env.model_dir, memory.peak() // memory.MIB)
    return 0
