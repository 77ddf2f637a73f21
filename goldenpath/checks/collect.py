"""Collection audit: ``pytest --collect-only`` over every layer, every error explained.

The strategy's "quick validation" step. Errors are grouped by kind (module not
found, cannot import name, syntax error, fixture or conftest error, ...) with the
file and the missing name; ``[tool.goldenpath.renames]`` turns "cannot import name X"
into "X was renamed to Y".
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from goldenpath.core.files import write_atomically
from goldenpath.output.junit import Case

COLLECT_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class CollectError:
    kind: str
    file: str
    name: str
    detail: str
    hint: str = ""


@dataclass
class CollectResult:
    collected: int = 0
    errors: list[CollectError] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    aborted: bool = False  # pytest stopped before collecting (a path, a conftest, a timeout)

    @property
    def ok(self) -> bool:
        return not self.errors and self.collected > 0


_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("module not found", re.compile(r"ModuleNotFoundError: No module named '(?P<name>[\w.]+)'")),
    ("cannot import name", re.compile(
        r"ImportError: cannot import name '(?P<name>\w+)' from '(?P<module>[\w.]+)'")),
    ("syntax error", re.compile(r"(?P<exc>SyntaxError|IndentationError|TabError): (?P<msg>.+)")),
    ("fixture error", re.compile(r"fixture '(?P<name>\w+)' not found")),
    ("unknown marker", re.compile(r"'(?P<name>[\w]+)' not found in `markers` configuration option")),
)
# A broken conftest shows up two ways: pytest's own message when it loads an initial
# conftest, or a collection traceback whose module frame is a conftest.py.
_CONFTEST = re.compile(
    r"(?:while loading conftest|ConftestImportFailure).*?'(?P<path>[^']+conftest\.py)'"
    r"|^(?P<frame>\S*conftest\.py):\d+: in <module>$",
    re.MULTILINE,
)
_FILE_LINE = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')


def classify(where: str, text: str, renames: Mapping[str, str]) -> CollectError:
    """Turn one collection failure's text into a structured, explained error."""
    conftest = _CONFTEST.search(text)
    file = (conftest.group("path") or conftest.group("frame")) if conftest else where
    for kind, pattern in _PATTERNS:
        match = pattern.search(text)
        if not match:
            continue
        found = match.groupdict()
        name = found.get("name") or ""
        detail = match.group(0)
        if kind == "syntax error":
            location = _last(_FILE_LINE.finditer(text))
            if location:
                file, name = location.group("file"), f"line {location.group('line')}"
        if conftest:
            kind = f"conftest error ({kind})"
        return CollectError(kind, _relative(file), name, detail, _rename_hint(name, renames))
    if conftest:
        return CollectError("conftest error", _relative(file), "", _last_error_line(text))
    return CollectError("other", _relative(file), "", _last_error_line(text))


def _rename_hint(name: str, renames: Mapping[str, str]) -> str:
    for old in (name, name.rsplit(".", 1)[-1]):
        if old and old in renames:
            return f"{old} was renamed to {renames[old]}"
    return ""


def _last(matches: Iterable[re.Match[str]]) -> re.Match[str] | None:
    last = None
    for last in matches:  # noqa: B007 - we want the innermost frame, which comes last
        pass
    return last


def _last_error_line(text: str) -> str:
    lines = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    lines = lines or [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "collection failed without a message"


def _relative(path: str) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return path


def collect_paths(
    paths: Sequence[str],
    renames: Mapping[str, str],
    *,
    python: str = sys.executable,
    root: Path = Path("."),
) -> CollectResult:
    """Run pytest --collect-only over paths in a subprocess and classify what failed."""
    missing = [p for p in paths if not (root / p).exists()]
    if missing:
        return CollectResult(aborted=True, errors=[
            CollectError("missing path", p, "", "test path does not exist",
                         "fix the layer's paths in [tool.goldenpath.core.layers]") for p in missing
        ])
    with tempfile.TemporaryDirectory(prefix="goldenpath-collect-") as tmp:
        report = Path(tmp) / "collect.json"
        env = {**os.environ, "PYTHONPATH": _pythonpath(root)}
        argv = [python, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                # An unregistered marker is a collection error, whatever the tree's own config says.
                "--strict-markers",
                "-p", "goldenpath.testkit.collect_plugin", f"--goldenpath-collect-report={report}",
                *paths]
        try:
            proc = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True,
                                  timeout=COLLECT_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            return CollectResult(aborted=True, errors=[CollectError(
                "timeout", " ".join(paths), "", f"collection took over {COLLECT_TIMEOUT_S:.0f}s",
                "an import at module level is probably blocking (network, input)")])
        if not report.exists():
            # pytest stopped before collecting: a broken initial conftest, bad options...
            text = proc.stderr + proc.stdout
            return CollectResult(aborted=True, errors=[classify(" ".join(paths), text, renames)])
        data = json.loads(report.read_text(encoding="utf-8"))
    errors = [classify(e["where"], e["text"], renames) for e in data["errors"]]
    return CollectResult(collected=int(data["collected"]), errors=_unique(errors))


def _pythonpath(root: Path) -> str:
    here = str(Path(__file__).resolve().parent.parent)
    parts = [str(root.resolve()), here, os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(p for p in dict.fromkeys(parts) if p)


def _unique(errors: Iterable[CollectError]) -> list[CollectError]:
    return list(dict.fromkeys(errors))


def audit(
    layer_paths: Mapping[str, Sequence[str]],
    renames: Mapping[str, str],
    *,
    python: str = sys.executable,
    root: Path = Path("."),
) -> CollectResult:
    """Every layer in one pytest run; when that run cannot start, each layer on its own.

    A broken conftest at a layer's root stops a combined run before it collects anything,
    hiding every other layer's errors; per layer (concurrently), it hides only its own.
    """
    everything = list(dict.fromkeys(path for paths in layer_paths.values() for path in paths))
    combined = collect_paths(everything, renames, python=python, root=root)
    if not combined.aborted:
        combined.layers = list(layer_paths)
        return combined
    with ThreadPoolExecutor(max_workers=max(1, min(4, len(layer_paths)))) as pool:
        futures = {
            name: pool.submit(collect_paths, paths, renames, python=python, root=root)
            for name, paths in layer_paths.items()
        }
    result = CollectResult(layers=list(layer_paths))
    for future in futures.values():
        part = future.result()
        result.collected += part.collected
        result.errors.extend(part.errors)
    result.errors = _unique(result.errors)
    return result


def write_json(result: CollectResult, path: Path) -> None:
    payload = {"ok": result.ok, "collected": result.collected, "layers": result.layers,
               "errors": [asdict(e) for e in result.errors]}
    write_atomically(path, json.dumps(payload, indent=2) + "\n")


def junit_cases(result: CollectResult) -> list[Case]:
    cases = [Case(f"{e.kind}: {e.file} {e.name}".strip(), e.hint or e.detail) for e in result.errors]
    if not result.errors:
        failure = None if result.ok else "no tests collected"
        cases.append(Case(f"collect {', '.join(result.layers)}", failure))
    return cases
