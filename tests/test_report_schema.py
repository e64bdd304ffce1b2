"""The JSON Schema in tcpdiag/schema describes what tcpdiag writes: every sample's JSON and JSON
Lines output (analyze and flows) validates against it, and it is what `tcpdiag schema` prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from tcpdiag.cli import app
from tcpdiag.reporters.json_report import SCHEMA_VERSION
from tcpdiag.schema import load_schema

SAMPLES = sorted((Path(__file__).resolve().parent.parent / "samples").glob("*.pcap"))
runner = CliRunner()
VALIDATOR = jsonschema.Draft202012Validator(load_schema())


def test_the_schema_is_valid_and_printed_by_tcpdiag_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(load_schema())
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0 and json.loads(result.stdout) == load_schema()
    assert load_schema()["x-schema-version"] == SCHEMA_VERSION


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_every_sample_output_validates(sample: Path) -> None:
    for command in ("analyze", "flows"):
        doc = json.loads(runner.invoke(app, [command, "-f", "json", str(sample)]).stdout)
        assert doc["schema_version"] == SCHEMA_VERSION
        VALIDATOR.validate(doc)
        lines = runner.invoke(app, [command, "-f", "jsonl", str(sample)]).stdout.splitlines()
        assert lines
        for line in lines:
            VALIDATOR.validate(json.loads(line))


def test_the_schema_rejects_output_missing_a_stable_key() -> None:
    mixed = str(Path(__file__).resolve().parent.parent / "samples" / "mixed.pcap")
    doc: dict[str, Any] = json.loads(runner.invoke(app, ["analyze", "-f", "json", mixed]).stdout)
    del doc["captures"][0]["findings"][0]["client_sees"]
    assert not VALIDATOR.is_valid(doc)
    line = json.loads(runner.invoke(app, ["analyze", "-f", "jsonl", mixed]).stdout.splitlines()[1])
    line["impact"] = "maybe"
    assert not VALIDATOR.is_valid(line)
