"""`python -m goldenpath.checks.collect_cli`: the collection audit from the command line.

The audit itself is ``goldenpath.checks.collect``; this module parses the flags, prints
the tables and writes the JSON and JUnit reports. Exit 0 clean, 1 errors, 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from goldenpath.checks.collect import audit, junit_cases, write_json
from goldenpath.core.errors import ConfigError
from goldenpath.core.layers import load_project
from goldenpath.output.junit import write_junit
from goldenpath.output.tables import print_collect


def main(argv: Sequence[str] | None = None) -> int:

    parser = argparse.ArgumentParser(
        prog="python -m goldenpath.checks.collect_cli",
        description="pytest --collect-only over every layer's paths, errors grouped by kind.")
    parser.add_argument("--pyproject", default="pyproject.toml", help="where the layers are declared")
    parser.add_argument("--layer", action="append", help="audit only this layer (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the result as JSON to this file")
    parser.add_argument("--junit", type=Path, help="also write the result as JUnit XML")
    args = parser.parse_args(argv)
    console = Console(stderr=False)
    try:
        project = load_project(args.pyproject)
    except ConfigError as exc:
        console.print(f"collect: {exc}", markup=False)
        return 2
    unknown = sorted(set(args.layer or ()) - set(project.layers))
    if unknown:
        console.print(f"collect: unknown layer(s) {', '.join(unknown)}; "
                      f"layers: {', '.join(project.layers)}", markup=False)
        return 2
    chosen = args.layer or list(project.layers)
    root = Path(args.pyproject).resolve().parent
    result = audit({n: project.layers[n].paths for n in chosen}, project.renames, root=root)
    print_collect(result, console)
    try:
        if args.json:
            write_json(result, args.json)
        if args.junit:
            write_junit(args.junit, "collect", junit_cases(result))
    except OSError as exc:
        console.print(f"collect: cannot write the report: {exc}", markup=False)
        return 2
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
