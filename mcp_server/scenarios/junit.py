"""A JUnit XML report: one testcase per scenario file, so CI systems show each scenario."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

# What XML 1.0 cannot hold, escaped or not (ElementTree writes it as is, and no reader parses the report then):
# control characters but tab, newline and carriage return; surrogates; U+FFFE and U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml(text: str) -> str:
    return _NOT_XML.sub("", text)


@dataclass(frozen=True)
class Case:
    file: Path
    name: str  # the scenario's name (the file's name when it could not be read)
    seconds: float
    failure: str | None = None  # the differences, or the error that stopped it
    error: str | None = None  # the file could not be read


def classname(file: Path) -> str:
    """examples/scenarios/mid-month-upgrade.yaml -> examples.scenarios.mid-month-upgrade"""
    try:
        relative = file.resolve().relative_to(Path.cwd())
    except ValueError:
        relative = Path(*file.resolve().parts[1:])
    return ".".join(relative.with_suffix("").parts)


def write_junit(path: Path, cases: list[Case]) -> None:
    suite = ET.Element("testsuite", name="togai-engine scenarios", tests=str(len(cases)),
                       failures=str(sum(case.failure is not None for case in cases)),
                       errors=str(sum(case.error is not None for case in cases)), skipped="0",
                       time=f"{sum(case.seconds for case in cases):.3f}")
    for case in cases:
        element = ET.SubElement(suite, "testcase", classname=_xml(classname(case.file)), name=_xml(case.name),
                                file=_xml(str(case.file)), time=f"{case.seconds:.3f}")
        for tag, text in (("failure", case.failure), ("error", case.error)):
            if text is not None:
                text = _xml(text)
                problem = ET.SubElement(element, tag, message=text.splitlines()[0] if text else tag)
                problem.text = text
    tree = ET.ElementTree(ET.Element("testsuites"))
    tree.getroot().append(suite)
    ET.indent(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)
