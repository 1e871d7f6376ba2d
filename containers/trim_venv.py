"""Shrink an installed venv for a serving image: drop the test suites that big packages ship.

Only folders named tests/testing that nothing imports at run time go; numpy.testing stays
because scipy and pandas import it.
"""
import shutil
import sys
from pathlib import Path

KEEP = {"numpy/testing", "numpy/_core/tests/_locales"}

site = next(Path(sys.argv[1]).glob("lib/python3*/site-packages"))
freed = 0
for folder in sorted(site.glob("*/**/tests"), key=lambda p: len(p.parts), reverse=True):
    relative = folder.relative_to(site).as_posix()
    if folder.is_dir() and not any(relative.startswith(k) for k in KEEP):
        freed += sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        shutil.rmtree(folder)
print(f"trim_venv: removed {freed / 1e6:.1f} MB of test suites from {site}")
