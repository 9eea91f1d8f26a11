"""The JUnit report is well-formed XML whatever the scenarios' names and messages hold."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from mcp_server.scenarios.junit import Case, write_junit


def test_characters_xml_cannot_hold_are_left_out(tmp_path: Path) -> None:
    # YAML's double-quoted escapes let a scenario's name hold any control character ("\e[31m" is ESC [31m)
    report = tmp_path / "report.xml"
    write_junit(report, [Case(Path("a.yaml"), "Red \x1b[31mtext\x1b[0m", 0.5, failure="first\x07line\nsecond\tline"),
                         Case(Path("b.yaml"), "b.yaml", 0.0, error="b.yaml, line 2: bad \x00 byte")])
    cases = list(ET.parse(report).getroot().iter("testcase"))
    assert [case.get("name") for case in cases] == ["Red [31mtext[0m", "b.yaml"]
    failure, error = cases[0].find("failure"), cases[1].find("error")
    assert failure is not None and error is not None
    assert (failure.get("message"), failure.text) == ("firstline", "firstline\nsecond\tline")  # tab and newline stay
    assert error.text == "b.yaml, line 2: bad  byte"
