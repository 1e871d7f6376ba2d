"""Script mode, shared by every image: a user's SageMaker framework script (scikit-learn, XGBoost),
trained unchanged; script_serving.ScriptRuntime serves it.

The program comes from SAGEMAKER_PROGRAM or the sagemaker_program hyperparameter, the code from
sagemaker_submit_directory / SAGEMAKER_SUBMIT_DIRECTORY (a folder, a file:// or s3:// tar.gz).
sagemaker-training provides the SM_* environment and the --name value arguments, exactly as
SageMaker's own framework containers do. The script runs in its own process group, which a
stop signal reaches (byoc.training.run_child); the code's requirements.txt is installed for
training and at endpoint start, by one function.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from .errors import UserError
from .hyperparameters import unwrap
from .training import TrainingEnv, describe_exit, run_child

log = logging.getLogger(__name__)
CODE_DIR = "/opt/ml/code"


def program(hyperparameters: dict | None = None) -> str | None:
    """The user's entry point, or None for the built-in algorithm."""
    value = unwrap((hyperparameters or {}).get("sagemaker_program", "")) or os.environ.get("SAGEMAKER_PROGRAM", "")
    return value or None


def entry_points(builtin_train: Callable[[TrainingEnv], None], builtin_runtime: Callable[[Any], Any],
                 script_runtime: Callable[[Any], Any]) -> tuple[Callable, Callable]:
    """An image's train(env) and Runtime(model_dir), as the core calls them: the user's script when
    script mode is chosen (sagemaker_program / SAGEMAKER_PROGRAM), else the image's own algorithm."""
    def image_train(env: TrainingEnv) -> None:
        (train if program(env.hyperparameters) else builtin_train)(env)

    def image_runtime(model_dir):
        return (script_runtime if program() else builtin_runtime)(model_dir)

    return image_train, image_runtime


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


def install_requirements(code_dir: Path, required: bool) -> list[str]:
    """pip install the code's requirements.txt, as SageMaker's framework containers do for
    training and at endpoint start. Where pip fails (often: no package index reachable), the log
    names the requirements the image's own packages do not satisfy. required: those are an error
    (serving: the server stops, saying so); else they are skipped and the script runs without them.
    Returns the distributions pip installed, as 'name-version'."""
    requirements = code_dir / "requirements.txt"
    if not requirements.exists():
        return []
    log.info("installing %s", requirements)
    started = time.monotonic()
    # In the code's folder: relative paths in it (-f wheels/, ./pkg) mean what they say.
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                             "--timeout", "15", "--retries", "1", "-r", str(requirements)],
                            cwd=code_dir, capture_output=True, text=True, errors="replace")
    print(result.stdout[-2000:], end="", flush=True)
    if result.returncode == 0:
        installed = next((l for l in result.stdout.splitlines() if l.startswith("Successfully installed")), "")
        log.info("requirements.txt: %s (pip took %.1f s)", installed or "everything already installed",
                 time.monotonic() - started)
        importlib.invalidate_caches()  # so that this process (serving) imports what pip just added
        return installed.split()[2:]
    reason = next((l for l in reversed(result.stderr.splitlines()) if l.strip()), "pip failed")
    missing = _unsatisfied(requirements)
    if not missing:
        log.warning("requirements.txt: pip failed (%s), but the image's packages satisfy every line of it", reason)
    elif required:
        raise UserError(f"{requirements}: pip could not install {', '.join(missing)} ({reason}). Put the packages "
                        "in the code bundle (a wheel and '--find-links <folder>' in requirements.txt), or give "
                        "the endpoint access to a package index")
    else:
        log.warning("requirements.txt: pip could not install it (%s). Skipped, not installed: %s. "
                    "The script runs with the image's packages.", reason, ", ".join(missing))
    return []


def warn_if_already_imported(installed: list[str]) -> None:
    """A package this server imported before the install (numpy, scikit-learn, xgboost) stays the old version
    in it: say so, rather than serve with other versions than the log suggests."""
    from importlib.metadata import packages_distributions

    names = {entry.rsplit("-", 1)[0].lower().replace("_", "-") for entry in installed}
    stale = sorted({module for module, dists in packages_distributions().items() if module in sys.modules
                    and any(d.lower().replace("_", "-") in names for d in dists)})
    if stale:
        log.warning("requirements.txt replaced %s, which the server had already imported: it keeps using the "
                    "image's version. Leave these out of requirements.txt, or pin the image's versions", ", ".join(stale))


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
    install_requirements(code_dir, required=False)
    sm = environment.Environment()
    variables = {**os.environ, **sm.to_env_vars(),
                 "PYTHONPATH": os.pathsep.join([str(code_dir), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, str(code_dir / entry_point), *sm.to_cmd_args()]
    log.info("script mode: %s", " ".join(command))
    tail: deque[str] = deque(maxlen=20)  # the end of stderr, for the failure reason

    def pass_through(line: bytes) -> None:
        text = line.decode("utf-8", errors="replace")  # a script may write any bytes
        sys.stderr.write(text)
        sys.stderr.flush()
        tail.append(text.rstrip())

    returncode = run_child(command, entry_point, pass_through, cwd=code_dir, env=variables)
    if returncode != 0:
        last = next((l for l in reversed(tail) if l.strip()), "no error output")
        raise UserError(f"{entry_point} {describe_exit(returncode)}: {last} "
                        "(fix the script or its arguments; its full output is in the job's log)")
