"""Shrink an installed venv for a serving image: drop the test suites that big packages ship
(scipy, pandas, numpy, scikit-learn carry tens of MB of tests nothing imports at run time)."""
import shutil
import sys
from pathlib import Path

site = next(Path(sys.argv[1]).glob("lib/python3*/site-packages"))
freed = 0
for folder in sorted(site.glob("*/**/tests"), key=lambda p: len(p.parts), reverse=True):
    if folder.is_dir():
        freed += sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        shutil.rmtree(folder)
print(f"trim_venv: removed {freed / 1e6:.1f} MB of test suites from {site}")
