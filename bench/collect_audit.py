"""Collection audit benchmark: the audit against plain ``pytest --collect-only``, side by side.

Both run over the same generated application repository (tests/integration/app_repo.py:
hundreds of test files, most of them broken) with the same interpreter. Plain pytest gets
the same ``--maxfail`` override the audit passes, or it would stop after the repository's
own ``--maxfail=10`` and compare less work with more. The audit is timed end to end as a
user runs it (``python -m goldenpath.checks.collect_cli --app-root ...``: pytest with the
collect-only plugin, the rename suggestions with their git searches, the summary drawn).
The two alternate, each repeated; the fastest of each is kept. Target: at most 1.1x.

    python bench/collect_audit.py [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from goldenpath.checks.collect import MAXFAIL  # noqa: E402
from tests.integration.app_repo import COLLECTED, TEST_FILES, build  # noqa: E402

TARGET_RATIO = 1.1


def timed(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=600, check=False, env={"PATH": "/usr/bin:/bin", "COLUMNS": "160",
                                                  "PYTHONPATH": str(ROOT)})
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build the repository here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gp-bench-app-") as tmp:
        app = args.keep or Path(tmp) / "app"
        build(app)
        plain = [sys.executable, "-m", "pytest", "--collect-only", "-q", f"--maxfail={MAXFAIL}"]
        audit = [sys.executable, "-m", "goldenpath.checks.collect_cli",
                 "--pyproject", str(ROOT / "pyproject.toml"), "--app-root", str(app),
                 "--app-python", sys.executable]
        timed(plain, app)  # warm the file cache and the bytecode of both
        timed(audit, ROOT)
        plain_s: list[float] = []
        audit_s: list[float] = []
        for _ in range(max(1, args.repeat)):
            plain_s.append(timed(plain, app))
            audit_s.append(timed(audit, ROOT))
    best_plain, best_audit = min(plain_s), min(audit_s)
    ratio = best_audit / best_plain
    print(f"repository: {TEST_FILES} test files, {COLLECTED} tests collect, the rest broken")
    print(f"plain pytest --collect-only: best {best_plain:.2f}s of {', '.join(f'{s:.2f}' for s in plain_s)}")
    print(f"collection audit:            best {best_audit:.2f}s of {', '.join(f'{s:.2f}' for s in audit_s)}")
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    print(f"ratio audit/plain = {ratio:.2f} ({verdict} the {TARGET_RATIO}x target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
