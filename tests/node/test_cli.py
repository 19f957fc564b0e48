"""The ``lienthong edxml`` and ``lienthong demo`` commands, as a clerk runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from node.cli import app
from schemas import ParseMode, parse_message
from tests.conftest import REPO

EXAMPLE = REPO / "docs" / "examples" / "monthly-report.yaml"
runner = CliRunner()


@pytest.fixture
def built(tmp_path: Path) -> Path:
    out = tmp_path / "report.edxml"
    result = runner.invoke(app, ["edxml", "build", str(EXAMPLE), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_build_writes_a_strictly_valid_message_from_the_example_spec(built: Path) -> None:
    parsed = parse_message(built, mode=ParseMode.STRICT)
    header = parsed.message.header
    assert header.document_id == "000.01.41.H41,2026/11/16,245/BC-STC"  # derived from from/date/code
    assert parsed.message.business.document_id == header.document_id
    (attachment,) = parsed.message.attachments
    assert attachment.name == "bao-cao-thang-10.pdf"
    assert attachment.content_type == "application/pdf"
    assert attachment.data == (EXAMPLE.parent / "bao-cao-thang-10.pdf").read_bytes()


def test_build_is_deterministic(built: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.edxml"
    assert runner.invoke(app, ["edxml", "build", str(EXAMPLE), "-o", str(again)]).exit_code == 0
    assert again.read_bytes() == built.read_bytes()


def _spec(tmp_path: Path, old: str, new: str) -> Path:
    """The example spec with ``old`` replaced by ``new``, its PDF beside it."""
    spec = tmp_path / "bad.yaml"
    spec.write_text(EXAMPLE.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    shutil.copy(EXAMPLE.parent / "bao-cao-thang-10.pdf", tmp_path)
    return spec


def _build(spec: Path, tmp_path: Path) -> Result:
    return runner.invoke(app, ["edxml", "build", str(spec), "-o", str(tmp_path / "x.edxml")])


def test_build_names_the_bad_field(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "organ_id: 000.00.00.G12", "organ_id: bo-tai-chinh")
    result = _build(spec, tmp_path)
    assert result.exit_code == 1
    assert "to.0.organ_id" in result.output
    assert "bo-tai-chinh" in result.output
    assert not (tmp_path / "x.edxml").exists()


def test_build_names_only_the_bad_recipient_not_an_empty_list_as_well(tmp_path: Path) -> None:
    # a bad code in the only `to` also reported "to: Tuple should have at least 1 item": a second mistake
    # that was not there
    result = _build(_spec(tmp_path, "organ_id: 000.00.00.G12", "organ_id: bo-tai-chinh"), tmp_path)
    assert result.exit_code == 1
    assert "1 problem(s)" in result.output and "at least 1 item" not in result.output

    no_recipient = "to: []\n"
    spec = _spec(tmp_path, "to:\n  - organ_id: 000.00.00.G12\n    organ_name: Bộ Tài chính\n", no_recipient)
    assert no_recipient in spec.read_text(encoding="utf-8")
    result = _build(spec, tmp_path)
    assert result.exit_code == 1
    assert "to: Tuple should have at least 1 item" in result.output  # an empty list still says so


def test_build_reports_a_missing_attachment_file(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")  # PDF not copied next to it
    result = runner.invoke(app, ["edxml", "build", str(spec), "-o", str(tmp_path / "x.edxml")])
    assert result.exit_code == 1
    assert "bao-cao-thang-10.pdf" in result.output


def test_validate_exit_codes(built: Path, tmp_path: Path) -> None:
    assert runner.invoke(app, ["edxml", "validate", "--strict", str(built)]).exit_code == 0
    assert runner.invoke(app, ["edxml", "validate", str(built)]).exit_code == 0

    broken = tmp_path / "broken.edxml"
    text = built.read_text(encoding="utf-8")
    broken.write_text(
        text.replace("<edXML:OrganId>000.00.00.G12</edXML:OrganId>", "<edXML:OrganId>000.00.00.g12</edXML:OrganId>"),
        encoding="utf-8",
    )
    result = runner.invoke(app, ["edxml", "validate", str(broken)])
    assert result.exit_code == 1
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "000.00.00.G12" in s)
    assert f"line {line}, /edXML/edXMLEnvelope/edXMLHeader/MessageHeader/To/OrganId" in result.output

    garbage = tmp_path / "garbage.edxml"
    garbage.write_bytes(b"\x00\x01 not xml")
    assert runner.invoke(app, ["edxml", "validate", str(garbage)]).exit_code == 2
    assert runner.invoke(app, ["edxml", "validate", str(tmp_path / "missing.edxml")]).exit_code == 2

    bomb = tmp_path / "bomb.edxml"
    bomb.write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><edXML>&a;</edXML>')
    result = runner.invoke(app, ["edxml", "validate", str(bomb)])
    assert result.exit_code == 2
    assert "DOCTYPE" in result.output


def test_strict_refuses_what_tolerant_accepts_with_a_warning(built: Path, tmp_path: Path) -> None:
    quirky = tmp_path / "quirky.edxml"
    quirky.write_bytes(
        built.read_bytes().replace(b"2026/11/16</edXML:PromulgationDate>", b"16/11/2026</edXML:PromulgationDate>")
    )
    tolerant = runner.invoke(app, ["edxml", "validate", str(quirky)])
    assert tolerant.exit_code == 0
    assert "day-first-date" in tolerant.output
    strict = runner.invoke(app, ["edxml", "validate", "--strict", str(quirky)])
    assert strict.exit_code == 1
    assert "dd/MM/yyyy" in strict.output


def test_show_human_and_json(built: Path) -> None:
    human = runner.invoke(app, ["edxml", "show", str(built)])
    assert human.exit_code == 0
    assert "Bộ Tài chính" in human.output
    assert "bao-cao-thang-10.pdf" in human.output
    as_json = runner.invoke(app, ["edxml", "show", "--json", str(built)])
    assert as_json.exit_code == 0
    data = json.loads(as_json.stdout)
    assert data["message"]["header"]["from"]["organ_id"] == "000.01.41.H41"
    (att,) = data["message"]["attachments"]
    assert att["size"] == (EXAMPLE.parent / "bao-cao-thang-10.pdf").stat().st_size
    assert len(att["sha256"]) == 64


def test_status_spec(tmp_path: Path) -> None:
    spec = tmp_path / "status.yaml"
    spec.write_text(
        "kind: status\n"
        "from: {organ_id: 000.00.00.G12, organ_name: Bộ Tài chính}\n"
        "response_for: {organ_id: 000.01.41.H41, code: 245/BC-STC, promulgation_date: 2026-11-16,\n"
        "               document_id: '000.01.41.H41,2026/11/16,245/BC-STC'}\n"
        "status_code: 3\n"
        "description: Đã vào sổ văn bản đến\n"
        "timestamp: 2026-11-16T10:00:00+07:00\n",
        encoding="utf-8",
    )
    out = tmp_path / "status.edxml"
    assert runner.invoke(app, ["edxml", "build", str(spec), "-o", str(out)]).exit_code == 0
    assert b"<edXML:StatusCode>03</edXML:StatusCode>" in out.read_bytes()
    shown = runner.invoke(app, ["edxml", "show", str(out)])
    assert "03 đã tiếp nhận" in shown.output


def test_demo_runs_as_an_installed_command(tmp_path: Path) -> None:
    """``lienthong demo --json``: seven real processes exchange three reports; the last line sums it up."""
    exe = Path(sys.executable).with_name("lienthong")
    assert exe.exists(), "the lienthong console script is not installed in this environment"
    result = subprocess.run(
        [str(exe), "demo", "--json", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["sent"] == summary["delivered"] == summary["verified"] == 3
    by_document: dict[str, set[str]] = {}
    for status in summary["statuses"]:
        by_document.setdefault(status["document_id"], set()).add(status["code"])
    ministry_report = next(d for d in by_document if d.startswith("000.01.41.H41,"))
    assert by_document[ministry_report] == {"01", "03", "04", "05", "06"}
    assert all({"01", "03"} <= codes for codes in by_document.values())
    assert len(by_document) == 3
    assert "Bộ Tài chính" in result.stderr
    assert "HỢP LỆ / VALID" in result.stderr  # the ministry's verification report is shown
    assert (tmp_path / "truc-quoc-gia" / "node.yaml").is_file()
    # as the README has it: `make demo`, then `lienthong demo --json` in the same place (its databases held
    # the first run's admin tokens: 'a token named admin exists already')
    rerun = [str(exe), "demo", "--json", "--workdir", str(tmp_path)]
    again = subprocess.run(rerun, capture_output=True, text=True, timeout=240, check=False)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["sent"] == 3


def test_the_demo_replaces_only_a_directory_it_wrote(tmp_path: Path) -> None:
    import typer

    from node.cli.demo import DEMO_MARKER, fresh_workdir

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.pdf").write_bytes(b"%PDF-1.7 years of work")
    with pytest.raises(typer.BadParameter, match="did not write"):
        fresh_workdir(foreign)
    assert (foreign / "thesis.pdf").read_bytes() == b"%PDF-1.7 years of work"
    previous = tmp_path / "demo"
    fresh_workdir(previous)
    (previous / "truc-quoc-gia").mkdir()
    (previous / "truc-quoc-gia" / "node.db").write_bytes(b"old run")
    fresh_workdir(previous)
    assert sorted(p.name for p in previous.iterdir()) == [DEMO_MARKER]
