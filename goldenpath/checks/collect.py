"""Collection audit: ``pytest --collect-only`` over every layer, every error explained.

The strategy's "quick validation" step, run against goldenpath's own layers or against
the application's repository (``--app-root``) as that repository configures pytest: its
rootdir, ini file and addopts, its interpreter when one is named. The audit injects only
a collect-only plugin (from a directory of its own on PYTHONPATH) and ``--maxfail``, last
on the command line so that it wins, and says that it did.

Errors are grouped by kind and ranked by root cause (one missing package typically
explains most of them); ``[tool.goldenpath.renames]`` turns "cannot import name X" into
"X was renamed to Y", and without a map the module's current names (read with ``ast``,
never imported) and its git history suggest what X became.
"""

from __future__ import annotations

import ast
import difflib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from goldenpath.core.files import write_atomically

COLLECT_TIMEOUT_S = 600.0
# Large enough that no repository reaches it: every error is listed.
MAXFAIL = 1_000_000
PLUGIN_MODULE = "goldenpath_collect_plugin"
PLUGIN_SOURCE = Path(__file__).resolve().parent.parent / "testkit" / "collect_plugin.py"
# The git history search is a bonus: it may not slow the audit down by more than this.
GIT_BUDGET_S = 3.0
CONFIG_ERROR = "configuration error"


@dataclass(frozen=True)
class CollectError:
    kind: str
    file: str  # the file that failed to collect, relative to the audited root
    name: str  # the missing module or name, "line N" for a syntax error
    detail: str
    hint: str = ""
    source: str = ""  # where the cause lives when it is not `file` (the shared module)
    module: str = ""  # for "cannot import name": the module it was imported from


@dataclass(frozen=True)
class RootCause:
    kind: str
    subject: str
    count: int
    files: tuple[str, ...]
    hint: str = ""

    @property
    def summary(self) -> str:
        n, files = self.count, "file" if self.count == 1 else "files"
        if self.kind == "missing module":
            return f"missing module {self.subject} ({n} {files})"
        if self.kind == "syntax error in a shared module":
            return f"syntax error in a shared module {self.subject}, imported by {n} {files}"
        if self.kind == "cannot import name":
            return f"cannot import {self.subject} ({n})"
        return f"{self.kind}: {self.subject} ({n})"


@dataclass(frozen=True)
class PytestInfo:
    version: str = ""
    python: str = ""
    choice: str = ""  # which interpreter and pytest the audit chose, and why
    rootdir: str = ""
    configfile: str = ""


@dataclass
class CollectResult:
    collected: int = 0
    errors: list[CollectError] = field(default_factory=list)
    warnings: list[CollectError] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    aborted: bool = False  # pytest stopped before collecting (a path, a conftest, its configuration)
    pytest: PytestInfo = field(default_factory=PytestInfo)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and self.collected > 0

    @property
    def config_error(self) -> CollectError | None:
        return next((e for e in self.errors if e.kind == CONFIG_ERROR), None)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(e.kind for e in [*self.errors, *self.warnings]).items()))

    def root_causes(self) -> list[RootCause]:
        return root_causes(self.errors)


_CANNOT_IMPORT = re.compile(
    r"ImportError: cannot import name '(?P<name>\w+)' from '(?P<module>[\w.]+)'"
    r"(?: \((?P<path>[^)]+\.py)\))?")
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("module not found", re.compile(r"ModuleNotFoundError: No module named '(?P<name>[\w.]+)'")),
    ("cannot import name", _CANNOT_IMPORT),
    ("syntax error", re.compile(r"(?P<exc>SyntaxError|IndentationError|TabError): (?P<msg>.+)")),
    ("fixture error", re.compile(r"fixture '(?P<name>\w+)' not found")),
    ("unknown marker", re.compile(r"'(?P<name>\w+)' not found in `markers` configuration option"
                                  r"|Unknown pytest\.mark\.(?P<warned>\w+)")),
)
# A broken conftest shows up two ways: pytest's own message when it loads an initial
# conftest, or a collection traceback whose module frame is a conftest.py.
_CONFTEST = re.compile(
    r"(?:while loading conftest|ConftestImportFailure).*?'(?P<path>[^']+conftest\.py)'"
    r"|^(?P<frame>\S*conftest\.py):\d+: in <module>$",
    re.MULTILINE,
)
_FILE_LINE = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')


def classify(where: str, text: str, renames: Mapping[str, str], root: Path = Path(".")) -> CollectError:
    """Turn one collection failure's text into a structured, explained error."""
    conftest = _CONFTEST.search(text)
    file = (conftest.group("path") or conftest.group("frame")) if conftest else where
    for kind, pattern in _PATTERNS:
        match = pattern.search(text)
        if not match:
            continue
        found = match.groupdict()
        name = found.get("name") or found.get("warned") or ""
        # Python's own message names the module's absolute path: relative, like the rest.
        prefix = f"{root.resolve()}{os.sep}"
        detail, source, module = match.group(0).replace(prefix, ""), "", found.get("module") or ""
        if kind == "syntax error":
            location = _last(_FILE_LINE.finditer(text))
            if location:
                name = f"line {location.group('line')}"
                source = relative(location.group("file"), root)
        elif kind == "cannot import name" and found.get("path"):
            source = relative(found["path"], root)
        if conftest:
            kind = f"conftest error ({kind})"
        file = relative(file, root)
        return CollectError(kind, file, name, detail, _rename_hint(name, renames),
                            "" if source == file else source, module)
    if conftest:
        return CollectError("conftest error", relative(file, root), "", _last_error_line(text))
    return CollectError("other", relative(file, root), "", _last_error_line(text))


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


def relative(path: str, root: Path) -> str:
    """Every path in the audit is relative to the one root audited (the application's)."""
    if not path or not os.path.isabs(path):
        return path
    try:
        return Path(os.path.relpath(path, root.resolve())).as_posix()
    except ValueError:
        return path


# --------------------------------------------------------------------------- running pytest


@dataclass(frozen=True)
class Runner:
    """How to run the audited repository's pytest: which interpreter, where, with what map."""

    python: str
    root: Path
    renames: Mapping[str, str] = field(default_factory=dict)
    choice: str = ""


def collect_paths(paths: Sequence[str], runner: Runner) -> CollectResult:
    """Run pytest --collect-only over paths in a subprocess and classify what failed."""
    root = runner.root
    missing = [p for p in paths if not (root / p).exists()]
    if missing:
        return CollectResult(aborted=True, errors=[
            CollectError("missing path", p, "", "test path does not exist",
                         "fix the paths in [tool.goldenpath.layers] or [tool.goldenpath.app]")
            for p in missing
        ])
    with tempfile.TemporaryDirectory(prefix="goldenpath-collect-") as tmp:
        # The plugin alone in its own directory: nothing of ours shadows the application.
        shutil.copyfile(PLUGIN_SOURCE, Path(tmp) / f"{PLUGIN_MODULE}.py")
        report = Path(tmp) / "collect.json"
        inherited = os.environ.get("PYTHONPATH", "")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (inherited, tmp) if p)}
        argv = [runner.python, "-m", "pytest", "--collect-only", "-q",
                "-p", PLUGIN_MODULE, f"--goldenpath-collect-report={report}",
                *paths, f"--maxfail={MAXFAIL}"]
        try:
            proc = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True,
                                  timeout=COLLECT_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            return CollectResult(aborted=True, errors=[CollectError(
                "timeout", " ".join(paths) or ".", "", f"collection took over {COLLECT_TIMEOUT_S:.0f}s",
                "an import at module level is probably blocking (network, input)")])
        except OSError as exc:
            return CollectResult(aborted=True, errors=[CollectError(
                CONFIG_ERROR, "", "", f"cannot run {runner.python}: {exc.strerror or exc}",
                "GOLDENPATH_APP_PYTHON must name the application's venv or interpreter")])
        if not report.exists():
            return _aborted(paths, proc, runner)
        data = json.loads(report.read_text(encoding="utf-8"))
    errors = [classify(e["where"], e["text"], runner.renames, root) for e in data["errors"]]
    warnings = [classify(e["where"], e["text"], {}, root) for e in data.get("warnings", [])]
    info = PytestInfo(version=data.get("pytest", ""), python=runner.python, choice=runner.choice,
                      rootdir=relative(data.get("rootdir", ""), root) or ".",
                      configfile=relative(data.get("configfile", ""), root))
    return CollectResult(collected=int(data["collected"]), errors=_unique(errors),
                         warnings=_unique(warnings), pytest=info,
                         notes=[maxfail_note(data.get("own_stoppers", []))])


def maxfail_note(own: Sequence[str]) -> str:
    if own:
        return (f"the application's addopts stop collection early ({' '.join(own)}); the audit "
                f"overrode that with --maxfail={MAXFAIL}, last on the command line, so every error is listed")
    return (f"the audit passed --maxfail={MAXFAIL} last on the command line (it wins over any "
            "--maxfail or -x in the application's options), so every error is listed")


def _aborted(paths: Sequence[str], proc: subprocess.CompletedProcess[str], runner: Runner) -> CollectResult:
    """pytest stopped before collecting: a broken initial conftest, or its configuration."""
    info = PytestInfo(version=pytest_version(runner.python), python=runner.python, choice=runner.choice)
    # What the application's conftest printed goes to stdout; pytest's reason to stderr.
    text = proc.stderr.strip() or proc.stdout.strip()
    if _CONFTEST.search(text):
        error = classify(" ".join(paths), text, runner.renames, runner.root)
        return CollectResult(aborted=True, errors=[error], pytest=info)
    reason = "\n".join(line.rstrip() for line in text.splitlines() if line.strip())
    lines = reason.splitlines()
    if len(lines) > 20:
        reason = "\n".join([*lines[:20], f"... ({len(lines) - 20} more lines)"])
    error = CollectError(CONFIG_ERROR, "", f"pytest {info.version or '(version unknown)'}",
                         reason or f"pytest exited {proc.returncode} without a message",
                         "pytest refuses the application's configuration as it is; fix it there")
    return CollectResult(aborted=True, errors=[error], pytest=info)


def pytest_version(python: str) -> str:
    """Without importing pytest (its plugins would load): the installed distribution's version."""
    try:
        proc = subprocess.run(
            [python, "-c", "import importlib.metadata as m; print(m.version('pytest'))"],
            capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _unique(errors: Iterable[CollectError]) -> list[CollectError]:
    return sorted(dict.fromkeys(errors), key=lambda e: (e.kind, e.file, e.name, e.detail))


def audit(layer_paths: Mapping[str, Sequence[str]], runner: Runner) -> CollectResult:
    """Every layer in one pytest run; when that run cannot start, each layer on its own.

    A broken conftest at a layer's root stops a combined run before it collects anything,
    hiding every other layer's errors; per layer (concurrently), it hides only its own. A
    configuration error would stop every layer the same way, so it is reported once.
    """
    everything = list(dict.fromkeys(path for paths in layer_paths.values() for path in paths))
    result = collect_paths(everything, runner)
    if result.aborted and len(layer_paths) > 1 and result.config_error is None:
        with ThreadPoolExecutor(max_workers=max(1, min(4, len(layer_paths)))) as pool:
            parts = list(pool.map(lambda paths: collect_paths(paths, runner), layer_paths.values()))
        result = CollectResult(pytest=next((p.pytest for p in parts if p.pytest.version), result.pytest),
                               notes=next((p.notes for p in parts if p.notes), []))
        for part in parts:
            result.collected += part.collected
            result.errors.extend(part.errors)
            result.warnings.extend(part.warnings)
        result.errors, result.warnings = _unique(result.errors), _unique(result.warnings)
    result.layers = list(layer_paths)
    result.errors = suggest_renames(result.errors, runner.root)
    return result


# --------------------------------------------------------------------------- root causes


def _cause_key(error: CollectError) -> tuple[str, str]:
    kind = error.kind
    if kind.startswith("conftest error ("):
        kind = kind[len("conftest error ("):-1]
    if kind == "module not found":
        return "missing module", error.name
    if kind == "syntax error":
        if error.source:
            return "syntax error in a shared module", f"{error.source} {error.name}"
        return "syntax error", f"{error.file} {error.name}"
    if kind == "cannot import name":
        return "cannot import name", f"{error.name} from {error.module}"
    if kind in ("fixture error", "unknown marker"):
        return kind, error.name
    if kind in ("conftest error", "missing path", "timeout"):
        return kind, error.file
    return kind, error.detail.splitlines()[0] if error.detail else ""


def root_causes(errors: Sequence[CollectError]) -> list[RootCause]:
    """Causes ranked by how many errors each explains, most first."""
    groups: dict[tuple[str, str], list[CollectError]] = {}
    for error in errors:
        groups.setdefault(_cause_key(error), []).append(error)
    causes = [
        RootCause(kind, subject, len(group), tuple(sorted({e.file for e in group if e.file})),
                  next((e.hint for e in group if e.hint), ""))
        for (kind, subject), group in groups.items()
    ]
    return sorted(causes, key=lambda c: (-c.count, c.kind, c.subject))


# --------------------------------------------------------------------------- rename hints


def suggest_renames(errors: list[CollectError], root: Path) -> list[CollectError]:
    """A suggestion for every "cannot import name" the hand-written map does not explain.

    The module's source is parsed with ``ast`` (the application's code is never imported
    into this process) and the closest names it defines now are offered, with the last
    commits that changed the name's count in that file (``git log -S``), when it is a git
    repository. The searches run at once, all within GIT_BUDGET_S.
    """
    wanted = sorted({(e.name, e.module, e.source) for e in errors
                     if e.kind.endswith("cannot import name") or e.kind.endswith("(cannot import name)")
                     if not e.hint and e.name})
    if not wanted:
        return errors
    deadline = time.monotonic() + GIT_BUDGET_S
    with ThreadPoolExecutor(max_workers=min(8, len(wanted))) as pool:
        hints = dict(zip(wanted, pool.map(lambda w: rename_suggestion(*w, root=root, deadline=deadline),
                                         wanted), strict=True))
    return [replace(e, hint=hints.get((e.name, e.module, e.source), "")) if not e.hint else e
            for e in errors]


def rename_suggestion(name: str, module: str, source: str, *, root: Path, deadline: float) -> str:
    path = (root / source) if source else module_file(module, root)
    if path is None or not path.is_file():
        return ""
    rel = relative(str(path.resolve()), root)
    parts: list[str] = []
    names = defined_names(path)
    if names is None:
        parts.append(f"{rel} does not parse")
    else:
        close = closest(name, names)
        if close:
            parts.append(f"{module or rel} defines {', '.join(close)} now")
    history = git_history(name, rel, root, deadline)
    if history:
        parts.append(f"git log -S {name}: {'; '.join(history)}")
    return f"suggestion: {name} may have been renamed: {'; '.join(parts)}" if parts else ""


def module_file(module: str, root: Path) -> Path | None:
    relpath = Path(*module.split("."))
    for base in (root, root / "src"):
        for candidate in (base / relpath.with_suffix(".py"), base / relpath / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def defined_names(path: Path) -> set[str] | None:
    """The names a module defines at its top level (and, for a package, its submodules)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None
    names: set[str] = set()
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update(a.asname or a.name.split(".")[0] for a in node.names if a.name != "*")
        elif isinstance(node, ast.If | ast.Try | ast.With):
            # Names defined under `if TYPE_CHECKING:` or `try: ... except ImportError:` count.
            pending += [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
            pending += [s for h in getattr(node, "handlers", []) for s in h.body]
    if path.name == "__init__.py":
        names.update(p.stem for p in path.parent.glob("*.py") if p.name != "__init__.py")
        names.update(p.parent.name for p in path.parent.glob("*/__init__.py"))
    return names


def closest(name: str, names: Iterable[str], n: int = 3) -> list[str]:
    """difflib's closest matches, compared without case (LegacyHTTPClient ~ LegacyHttpClient)."""
    by_lower: dict[str, str] = {}
    for candidate in sorted(names):
        if candidate != name and not candidate.startswith("__"):
            by_lower.setdefault(candidate.lower(), candidate)
    return [by_lower[m] for m in difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=0.6)]


def git_history(name: str, rel: str, root: Path, deadline: float) -> list[str]:
    remaining = deadline - time.monotonic()
    git = shutil.which("git")
    if remaining <= 0 or git is None or not (root / ".git").exists():
        return []
    try:
        proc = subprocess.run([git, "-C", str(root), "log", "-S", name, "-n", "2",
                               "--format=%h %s", "--", rel],
                              capture_output=True, text=True, timeout=remaining, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line for line in proc.stdout.splitlines() if line.strip()] if proc.returncode == 0 else []


# --------------------------------------------------------------------------- reports


def as_dict(result: CollectResult) -> dict[str, Any]:
    """The audit as data, stable for CI to diff: sorted keys and lists, no timestamps."""
    return {
        "ok": result.ok,
        "collected": result.collected,
        "layers": result.layers,
        "aborted": result.aborted,
        "counts": result.counts(),
        "root_causes": [{**asdict(c), "files": list(c.files), "summary": c.summary}
                        for c in result.root_causes()],
        "errors": [asdict(e) for e in result.errors],
        "warnings": [asdict(e) for e in result.warnings],
        "pytest": asdict(result.pytest),
        "notes": result.notes,
    }


def write_json(result: CollectResult, path: Path) -> None:
    write_atomically(path, json.dumps(as_dict(result), indent=2, sort_keys=True) + "\n")
