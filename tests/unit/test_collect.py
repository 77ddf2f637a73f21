"""The collection audit reports every error of a generated broken tree, by kind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from textwrap import dedent
from typing import Any

PYPROJECT = """
[tool.goldenpath.layers.alpha]
paths = ["tests_a"]
[tool.goldenpath.layers.beta]
paths = ["tests_b"]
[tool.goldenpath.layers.gamma]
paths = ["tests_c"]
[tool.goldenpath.renames]
OldEmitter = "NewEmitter"
[tool.pytest.ini_options]
pythonpath = ["."]
markers = ["known: a registered marker"]
"""

FILES = {
    "helpers.py": "class NewEmitter: ...\n",
    "tests_a/test_missing_module.py": "import not_a_module_xyz\n",
    "tests_a/test_renamed.py": "from helpers import OldEmitter\n",
    "tests_a/test_syntax.py": "def test_x(:\n    pass\n",
    "tests_a/test_fixture.py": "def test_y(no_such_fixture):\n    pass\n",
    "tests_a/test_good.py": "import pytest\n\n@pytest.mark.known\ndef test_ok():\n    pass\n",
    "tests_b/test_marker.py": "import pytest\n\n@pytest.mark.unregistered\ndef test_z():\n    pass\n",
    "tests_b/sub/conftest.py": "import gone_module\n",
    "tests_b/sub/test_under_conftest.py": "def test_w():\n    pass\n",
    # A broken conftest at a layer's root stops pytest before collection starts.
    "tests_c/conftest.py": "from helpers import OldEmitter\n",
    "tests_c/test_c.py": "def test_c():\n    pass\n",
}


def write_tree(root: Path, files: dict[str, str]) -> None:
    (root / "pyproject.toml").write_text(dedent(PYPROJECT))
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def run_audit(root: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "goldenpath.checks.collect_cli", "--json", "out.json", "--junit", "out.xml"],
        cwd=root, capture_output=True, text=True, timeout=120, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
             "COLUMNS": "200"},
    )
    return proc, json.loads((root / "out.json").read_text())


def test_every_error_of_a_broken_tree_is_reported_by_kind(tmp_path: Path) -> None:
    write_tree(tmp_path, FILES)
    proc, report = run_audit(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = {(e["kind"], e["file"], e["name"]): e for e in report["errors"]}
    assert ("module not found", "tests_a/test_missing_module.py", "not_a_module_xyz") in errors
    renamed = errors[("cannot import name", "tests_a/test_renamed.py", "OldEmitter")]
    assert renamed["hint"] == "OldEmitter was renamed to NewEmitter"
    assert ("syntax error", "tests_a/test_syntax.py", "line 1") in errors
    assert ("fixture error", "tests_a/test_fixture.py", "no_such_fixture") in errors
    # The tree's own configuration is not strict about markers, and the audit injects
    # nothing of its own: an unknown marker is a warning, not an error.
    warnings = {(w["kind"], w["file"], w["name"]) for w in report["warnings"]}
    assert warnings == {("unknown marker", "tests_b/test_marker.py", "unregistered")}
    assert ("conftest error (module not found)", "tests_b/sub/conftest.py", "gone_module") in errors
    root_conftest = errors[("conftest error (cannot import name)", "tests_c/conftest.py", "OldEmitter")]
    assert root_conftest["hint"] == "OldEmitter was renamed to NewEmitter"
    assert len(errors) == 6
    # The rename explains two errors (a test file and a layer's root conftest): ranked first.
    first = report["root_causes"][0]
    assert (first["summary"], first["hint"]) == ("cannot import OldEmitter from helpers (2)",
                                                 "OldEmitter was renamed to NewEmitter")
    assert first["files"] == ["tests_a/test_renamed.py", "tests_c/conftest.py"]
    assert report["counts"]["unknown marker"] == 1
    assert "--maxfail=1000000" in report["notes"][0]
    # The table a person reads names the same things.
    for text in ("not_a_module_xyz", "OldEmitter was renamed to NewEmitter", "no_such_fixture",
                 "Root causes", "6 error(s), 1 warning(s): FAILED"):
        assert text in proc.stdout
    assert (tmp_path / "out.xml").read_text().count("<failure") == 6


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "tests_a/test_a.py": "def test_a():\n    pass\n",
        "tests_b/test_b.py": "def test_b():\n    pass\n",
        "tests_c/test_c.py": "def test_c():\n    pass\n",
    })
    proc, report = run_audit(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["ok"] is True
    assert report["collected"] == 3


def test_a_layer_whose_path_is_missing_fails(tmp_path: Path) -> None:
    write_tree(tmp_path, {"tests_a/test_a.py": "def test_a():\n    pass\n",
                          "tests_b/test_b.py": "def test_b():\n    pass\n"})
    proc, report = run_audit(tmp_path)
    assert proc.returncode == 1
    assert [e["kind"] for e in report["errors"]] == ["missing path"]
