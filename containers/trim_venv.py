"""Shrink an installed venv for a serving image. Each cut removes bytes nothing runs:

- the test suites big packages ship (scipy, pandas, numpy, scikit-learn: tens of MB);
- symbols in compiled extensions (strip --strip-unneeded), except in the `<package>.libs`
  folders, whose libraries auditwheel rewrote with patchelf and strip would break;
- what only building against a package needs: C headers and Cython sources (.h, .pxd, .pyx),
  type stubs (.pyi); and pip's bytecode (pip runs only to install a script's requirements);
- botocore's API models for services no code in these images calls (it ships ~440 of them);
  a user script that needs another service can bring boto3 in its requirements.txt.
"""
import shutil
import subprocess
import sys
from pathlib import Path

BOTOCORE_SERVICES = {
    "s3", "sts", "sso", "sso-oidc", "sagemaker", "sagemaker-runtime", "codeartifact", "secretsmanager",
    "ssm", "kms", "logs", "cloudwatch", "ecr", "dynamodb", "sqs", "sns", "athena", "glue", "lambda",
}

site = next(Path(sys.argv[1]).glob("lib/python3*/site-packages"))


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def remove(paths) -> int:
    freed = 0
    for path in paths:
        if path.exists():
            freed += size(path)
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    return freed


tests = remove(sorted((p for p in site.glob("*/**/tests") if p.is_dir()), key=lambda p: len(p.parts), reverse=True))
build_only = remove(f for pattern in ("*.h", "*.hpp", "*.pxd", "*.pxi", "*.pyx", "*.pyi")
                    for f in site.rglob(pattern) if f.is_file())
build_only += remove(sorted(p for p in (site / "pip").rglob("__pycache__") if p.is_dir()))
botocore = remove(p for p in (site / "botocore" / "data").glob("*") if p.is_dir() and p.name not in BOTOCORE_SERVICES)
before = sum(f.stat().st_size for f in site.rglob("*.so*") if f.is_file())
libraries = [str(f) for f in site.rglob("*.so*") if f.is_file() and not any(p.endswith(".libs") for p in f.parts)]
if shutil.which("strip"):
    subprocess.run(["strip", "--strip-unneeded", *libraries], check=True)
stripped = before - sum(f.stat().st_size for f in site.rglob("*.so*") if f.is_file())
print(f"trim_venv: removed {tests / 1e6:.1f} MB of test suites, {build_only / 1e6:.1f} MB of build-only files, "
      f"{botocore / 1e6:.1f} MB of unused botocore "
      f"API models, {stripped / 1e6:.1f} MB of symbols from {site}")
