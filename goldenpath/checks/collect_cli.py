"""`python -m goldenpath.checks.collect_cli`: the collection audit from the command line.

The audit itself is ``goldenpath.checks.collect``; this module parses the flags, chooses
the interpreter, prints the summary and writes the JSON and JUnit reports. Exit 0 clean,
1 errors, 2 usage.

Without ``--app-root`` it audits goldenpath's own layers. With it, it audits the
application's repository: ``[tool.goldenpath.app] paths`` (default: the application's own
testpaths), with ``--app-python`` (GOLDENPATH_APP_PYTHON) or else this interpreter, in
which the collect session installed the application's own pytest pin.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.console import Console

from goldenpath.checks.app import app_interpreter, load_app, pytest_pin
from goldenpath.checks.collect import CollectResult, Runner, audit, write_json
from goldenpath.core.errors import ConfigError
from goldenpath.core.layers import load_project
from goldenpath.output.junit import Case, write_junit
from goldenpath.output.tables import print_collect


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m goldenpath.checks.collect_cli",
        description="pytest --collect-only over every layer's paths, errors grouped and ranked.")
    parser.add_argument("--pyproject", default="pyproject.toml", help="where the layers are declared")
    parser.add_argument("--layer", action="append", help="audit only this layer (repeatable)")
    parser.add_argument("--app-root", type=Path, help="audit the application's repository instead")
    parser.add_argument("--app-python", help="the application's venv or interpreter (with --app-root)")
    parser.add_argument("--json", type=Path, help="also write the result as JSON to this file")
    parser.add_argument("--junit", type=Path, help="also write the result as JUnit XML")
    return parser.parse_args(argv)


def app_runner(args: argparse.Namespace, renames: Mapping[str, str]) -> tuple[Runner, dict[str, list[str]]]:
    """The application's interpreter and test groups; the choice is said in the output."""
    config = load_app(Path(args.pyproject), args.app_root)
    root = config.root
    if args.app_python:
        python = str(app_interpreter(root, args.app_python))
        choice = f"the application's interpreter (GOLDENPATH_APP_PYTHON={args.app_python})"
    else:
        python = sys.executable
        pin = pytest_pin(root)
        pinned = (f"the application's pin {pin.requirement} ({pin.source})" if pin
                  else "no pytest pin found in the application (requirements*.txt, pyproject.toml)")
        choice = (f"goldenpath's collect venv with {pinned}; the application's own dependencies "
                  "are not installed there: set GOLDENPATH_APP_PYTHON to its venv for a faithful audit")
    groups = {path: [path] for path in config.paths} or {"app": []}
    return Runner(python=python, root=root, renames=renames, choice=choice), groups


def junit_cases(result: CollectResult) -> list[Case]:
    cases = [Case(f"{e.kind}: {e.file} {e.name}".strip(), e.hint or e.detail) for e in result.errors]
    if not result.errors:
        failure = None if result.ok else "no tests collected"
        cases.append(Case(f"collect {', '.join(result.layers)}", failure))
    return cases


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    console = Console(stderr=False)
    try:
        project = load_project(args.pyproject)
        if args.app_root is not None:
            if args.layer:
                raise ConfigError("--layer selects goldenpath's own layers; with --app-root, "
                                  "name the application's test groups in [tool.goldenpath.app] paths")
            runner, groups = app_runner(args, project.renames)
        else:
            if args.app_python:
                raise ConfigError("--app-python goes with --app-root")
            unknown = sorted(set(args.layer or ()) - set(project.layers))
            if unknown:
                raise ConfigError(f"unknown layer(s) {', '.join(unknown)}; "
                                  f"layers: {', '.join(project.layers)}")
            chosen = args.layer or list(project.layers)
            groups = {n: list(project.layers[n].paths) for n in chosen}
            runner = Runner(python=sys.executable, root=Path(args.pyproject).resolve().parent,
                            renames=project.renames, choice="goldenpath's collect venv")
    except ConfigError as exc:
        console.print(f"collect: {exc}", markup=False, highlight=False)
        return 2
    result = audit(groups, runner)
    print_collect(result, console)
    try:
        if args.json:
            write_json(result, args.json)
        if args.junit:
            write_junit(args.junit, "collect", junit_cases(result))
    except OSError as exc:
        console.print(f"collect: cannot write the report: {exc}", markup=False, highlight=False)
        return 2
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
