"""JUnit XML for checks that do not run under pytest (collection audit, preflight)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from goldenpath.core.files import write_atomically


@dataclass(frozen=True)
class Case:
    name: str
    failure: str | None = None
    seconds: float = 0.0


def write_junit(path: Path, suite: str, cases: Sequence[Case]) -> None:
    failures = sum(1 for case in cases if case.failure)
    root = ET.Element("testsuites")
    element = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)),
                            failures=str(failures), errors="0", skipped="0")
    for case in cases:
        node = ET.SubElement(element, "testcase", classname=suite, name=case.name,
                             time=f"{case.seconds:.3f}")
        if case.failure:
            ET.SubElement(node, "failure", message=case.failure.splitlines()[0]).text = case.failure
    write_atomically(path, ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n")
