"""Script mode: a user's SageMaker scikit-learn script, trained and served unchanged.

The program comes from SAGEMAKER_PROGRAM or the sagemaker_program hyperparameter, the code from
sagemaker_submit_directory / SAGEMAKER_SUBMIT_DIRECTORY (a folder, a file:// or s3:// tar.gz).
sagemaker-training provides the SM_* environment and the --name value arguments, exactly as
SageMaker's own scikit-learn container does.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from byoc import codecs
from byoc.errors import RequestError, UserError
from byoc.hyperparameters import unwrap
from byoc.runtime import ModelRuntime
from byoc.training import TrainingEnv

log = logging.getLogger(__name__)
CODE_DIR = "/opt/ml/code"


def program(hyperparameters: dict | None = None) -> str | None:
    """The user's entry point, or None for the built-in algorithm."""
    value = unwrap((hyperparameters or {}).get("sagemaker_program", "")) or os.environ.get("SAGEMAKER_PROGRAM", "")
    return value or None


def fetch_code(source: str | None, destination: str) -> Path:
    """The submit directory as a local folder (downloaded and unpacked when it is a tar.gz)."""
    from sagemaker_training import files

    source = (source or destination).removeprefix("file://")
    if Path(source).is_dir():
        return Path(source)
    if not source.startswith("s3://") and not Path(source).exists():
        raise UserError(f"sagemaker_submit_directory {source!r} does not exist")
    files.download_and_extract(uri=source, path=destination)
    return Path(destination)


def install_requirements(code_dir: Path) -> None:
    """pip install the script's requirements.txt. Where that fails (no package index reachable),
    say exactly which requirements were skipped and go on with the image's own packages."""
    requirements = code_dir / "requirements.txt"
    if not requirements.exists():
        return
    log.info("installing %s", requirements)
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
                             "--timeout", "15", "--retries", "1", "-r", str(requirements)],
                            capture_output=True, text=True)
    print(result.stdout[-2000:], end="", flush=True)
    if result.returncode == 0:
        return
    reason = next((l for l in reversed(result.stderr.splitlines()) if l.strip()), "pip failed")
    missing = _unsatisfied(requirements)
    log.warning("requirements.txt: pip could not install it (%s). Skipped, not installed: %s. "
                "The script runs with the image's packages.", reason, ", ".join(missing) or "nothing")


def _unsatisfied(requirements: Path) -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import InvalidRequirement, Requirement

    missing = []
    for line in requirements.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            requirement = Requirement(line)
            if not requirement.specifier.contains(version(requirement.name), prereleases=True):
                missing.append(line)
        except (InvalidRequirement, PackageNotFoundError):
            missing.append(line)
    return missing


def train(env: TrainingEnv) -> None:
    """Run the user's script with SageMaker's environment; its exit code is the job's."""
    from sagemaker_training import environment

    entry_point = program(env.hyperparameters)
    code_dir = fetch_code(unwrap(env.hyperparameters.get("sagemaker_submit_directory", "")) or
                          os.environ.get("SAGEMAKER_SUBMIT_DIRECTORY"), CODE_DIR)
    if not (code_dir / entry_point).is_file():
        raise UserError(f"sagemaker_program {entry_point!r} is not in {code_dir}: found "
                        f"{sorted(p.name for p in code_dir.iterdir())}; set entry_point to one of them")
    install_requirements(code_dir)
    sm = environment.Environment()
    variables = {**os.environ, **sm.to_env_vars(),
                 "PYTHONPATH": os.pathsep.join([str(code_dir), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, str(code_dir / entry_point), *sm.to_cmd_args()]
    log.info("script mode: %s", " ".join(command))
    process = subprocess.Popen(command, cwd=code_dir, env=variables, stderr=subprocess.PIPE, text=True)
    tail: list[str] = []
    for line in process.stderr:  # pass stderr through, keeping the end for the failure reason
        sys.stderr.write(line)
        tail = (tail + [line.rstrip()])[-20:]
    if process.wait() != 0:
        last = next((l for l in reversed(tail) if l.strip()), "no error output")
        raise UserError(f"{entry_point} exited with code {process.returncode}: {last} "
                        "(fix the script or its arguments; its full output is in the job's log)")


class ScriptRuntime(ModelRuntime):
    """Serving through the user's model_fn, with input_fn / predict_fn / output_fn / transform_fn
    where defined and the shared codecs where not."""

    content_types = (codecs.CSV, codecs.JSON, codecs.JSONLINES, codecs.NPY)
    dtype = np.float64  # the default input_fn's: scikit-learn computes in float64 (1622535661 stays exact)

    def load(self) -> None:
        entry_point = program()
        code_dir = fetch_code(os.environ.get("SAGEMAKER_SUBMIT_DIRECTORY"), CODE_DIR)
        spec = importlib.util.spec_from_file_location("user_module", code_dir / entry_point)
        if spec is None or not (code_dir / entry_point).is_file():
            raise FileNotFoundError(f"SAGEMAKER_PROGRAM {entry_point!r} is not in {code_dir}")
        sys.path.insert(0, str(code_dir))
        self.user = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.user)
        if not hasattr(self.user, "model_fn"):
            raise AttributeError(f"{entry_point} defines no model_fn(model_dir); serving needs it to load the model")
        self.model = self.user.model_fn(str(self.model_dir))

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[bytes, str]:
        kind = codecs.media_type(content_type)
        transform_fn = getattr(self.user, "transform_fn", None)
        if transform_fn:
            return self._response(self._call(transform_fn, self.model, body, kind, accept), accept or codecs.JSON)
        if not hasattr(self.user, "input_fn") and kind not in self.content_types:
            raise codecs.UnsupportedMediaType(f"Content-Type {content_type!r} is not supported; use one of {list(self.content_types)}")
        response_type = codecs.negotiate(accept, kind, self.accept_types) if not hasattr(self.user, "output_fn") \
            else (codecs.media_type(accept) if accept and accept != "*/*" else kind or codecs.JSON)
        data = self._call(self.user.input_fn, body, kind) if hasattr(self.user, "input_fn") else self.decode(body, kind)
        predict = getattr(self.user, "predict_fn", None)
        prediction = self._call(predict, data, self.model) if predict else self._call(self.model.predict, data)
        if hasattr(self.user, "output_fn"):
            return self._response(self._call(self.user.output_fn, prediction, response_type), response_type)
        return codecs.encode(prediction, response_type), response_type

    @staticmethod
    def _call(function, *args) -> Any:
        """User code that rejects its input (ValueError, TypeError, KeyError) is the client's error: 400."""
        try:
            return function(*args)
        except (ValueError, TypeError, KeyError) as exc:
            raise RequestError(f"{getattr(function, '__name__', 'user code')}: {type(exc).__name__}: {exc}") from None

    @staticmethod
    def _response(result: Any, default_type: str) -> tuple[bytes, str]:
        body, kind = result if isinstance(result, tuple) else (result, default_type)
        return (body.encode() if isinstance(body, str) else bytes(body)), kind
