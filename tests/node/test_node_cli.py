"""``lienthong send``, ``status``, ``inbox`` and ``answer`` as a clerk types them, mistakes included.

The commands work on a node's config and database directly, so no server runs here: what they queue stays
queued. Each mistake must end with a message naming what is wrong, a non-zero exit and nothing half-done.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select
from typer.testing import CliRunner

from node.cli import app
from node.config import load_settings
from node.network import Network, write_network
from node.runtime import NodeRuntime
from storage.exchange import EnvelopeRow
from tests.conftest import REPO
from tests.node.exchange_network import ONE_AXIS, SENDER_AND_MINISTRY

EXAMPLE = REPO / "docs" / "examples" / "monthly-report.yaml"
runner = CliRunner()


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Network:
    # nothing here reaches the PKI's responders: no timestamps, and nothing is verified
    return write_network(
        tmp_path_factory.mktemp("cli"),
        ONE_AXIS,
        SENDER_AND_MINISTRY,
        pki_base_url="http://127.0.0.1:9",
        timestamps=False,
    )


@pytest.fixture
def department(network: Network) -> Path:
    return network.node("so-tai-chinh").config


def envelopes(config: Path) -> int:
    runtime = NodeRuntime(load_settings(config))
    try:
        with runtime.session() as s:
            return int(s.scalar(select(func.count()).select_from(EnvelopeRow)) or 0)
    finally:
        runtime.close()


def spec_copy(directory: Path, number: str, pdf: bytes | None = None) -> Path:
    """The example spec with its own number (a DocumentId of its own), the PDF next to it."""
    spec = directory / f"bc-{number}.yaml"
    spec.write_text(EXAMPLE.read_text(encoding="utf-8").replace('"245"', f'"{number}"'), encoding="utf-8")
    (directory / "bao-cao-thang-10.pdf").write_bytes(
        pdf if pdf is not None else (EXAMPLE.parent / "bao-cao-thang-10.pdf").read_bytes()
    )
    return spec


def test_send_of_a_file_that_is_not_a_pdf_names_the_problem_and_queues_nothing(
    department: Path, tmp_path: Path
) -> None:
    # the seal could not be added: a traceback ended the command, the clerk learnt nothing useful
    spec = spec_copy(tmp_path, "901", pdf=b"Hello, this is a Word file renamed .pdf\n")
    before = envelopes(department)
    result = runner.invoke(app, ["send", str(spec), "--config", str(department)])
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert "error:" in result.output and "not a PDF" in result.output
    assert envelopes(department) == before


@pytest.fixture
def misspelt_seal(department: Path) -> Iterator[Path]:
    """The department's config with a typo in its seal's file name, beside the real one (same data)."""
    config = yaml.safe_load(department.read_text(encoding="utf-8"))
    seal = config["organisations"][0]["seal"]
    seal["key"] = str(Path(seal["key"]).with_name("organisaton.p12"))
    typo = department.with_name("typo.yaml")
    typo.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    yield typo
    typo.unlink()


def test_send_with_a_misspelt_seal_file_in_the_config_names_the_file(
    department: Path, misspelt_seal: Path, tmp_path: Path
) -> None:
    before = envelopes(department)
    result = runner.invoke(app, ["send", str(spec_copy(tmp_path, "902")), "--config", str(misspelt_seal)])
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert "organisaton.p12" in result.output
    assert envelopes(department) == before


def test_recall_with_a_misspelt_seal_file_in_the_config_names_the_file(
    department: Path, misspelt_seal: Path, tmp_path: Path
) -> None:
    sent = runner.invoke(app, ["send", str(spec_copy(tmp_path, "903")), "--config", str(department)])
    assert sent.exit_code == 0, sent.output
    before = envelopes(department)
    result = runner.invoke(
        app,
        ["recall", "000.01.41.H41,2026/11/16,903/BC-STC", "--as", "000.01.41.H41", "--config", str(misspelt_seal)],
    )
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert "organisaton.p12" in result.output
    assert envelopes(department) == before


def test_status_of_a_document_this_node_never_saw_says_so_and_fails(department: Path) -> None:
    # it said "No status is known for … yet." and exit 0: a mistyped DocumentId looked like a slow recipient
    result = runner.invoke(app, ["status", "000.01.41.H41,2026/11/16,0245/BC-STC", "--config", str(department)])
    assert result.exit_code == 1, result.output
    assert "neither sent nor received" in result.output and "0245/BC-STC" in result.output


def test_status_of_a_queued_document_says_it_waits_for_the_node(department: Path, tmp_path: Path) -> None:
    sent = runner.invoke(app, ["send", str(spec_copy(tmp_path, "904")), "--config", str(department)])
    assert sent.exit_code == 0, sent.output
    result = runner.invoke(app, ["status", "000.01.41.H41,2026/11/16,904/BC-STC", "--config", str(department)])
    assert result.exit_code == 0, result.output
    assert "Waiting:" in result.output and "queued for truc" in result.output
    assert "lienthong serve" in result.output


def test_status_of_a_document_the_axis_refused_shows_why_and_fails(department: Path, tmp_path: Path) -> None:
    # the axis refused it (an unknown recipient): only the node's log said so, the clerk saw "no status yet"
    from sqlalchemy import update

    from storage.exchange import OutboxRow

    sent = runner.invoke(app, ["send", str(spec_copy(tmp_path, "905")), "--config", str(department), "--json"])
    assert sent.exit_code == 0, sent.output
    envelope_id = json.loads(sent.stdout)["envelope_id"]
    why = "HTTP 422: Unknown recipient — no node is registered for 000.00.00.G99"
    runtime = NodeRuntime(load_settings(department))
    try:
        with runtime.session() as s:
            s.execute(
                update(OutboxRow)
                .where(OutboxRow.envelope_id == envelope_id)
                .values(state="dead", attempts=1, last_error=why)
            )
    finally:
        runtime.close()
    document_id = "000.01.41.H41,2026/11/16,905/BC-STC"
    result = runner.invoke(app, ["status", document_id, "--config", str(department)])
    assert result.exit_code == 1, result.output
    assert "NOT DELIVERED" in result.output and why in result.output
    as_json = runner.invoke(app, ["status", document_id, "--config", str(department), "--json"])
    assert as_json.exit_code == 1
    (copy,) = json.loads(as_json.stdout)["sent"]
    assert copy["state"] == "dead" and copy["last_error"] == why


def test_inbox_shows_whole_document_ids_in_vietnam_time_and_the_senders_text_inert(network: Network) -> None:
    # the table cut the DocumentId to "000.01.4…" in 80 columns, showed UTC times without saying so, and took
    # the sender's subject as Rich markup
    from datetime import UTC, datetime

    ministry = network.node("bo-tai-chinh").config
    document_id = "000.01.41.H41,2026/11/16,906/BC-STC"
    runtime = NodeRuntime(load_settings(ministry))
    try:
        with runtime.session() as s:
            s.add(
                EnvelopeRow(
                    direction="in",
                    kind="document",
                    message_id="ab" * 32,
                    sender="000.01.41.H41",
                    recipient="000.00.00.G12",
                    recipients=["000.00.00.G12"],
                    document_id=document_id,
                    subject="Báo cáo [bold red]ĐÃ DUYỆT[/] \u202etháng 10",
                    code="906/BC-STC",
                    object_key="sha256/" + "0" * 64,
                    sha256="0" * 64,
                    size=1,
                    verified="TOTAL_PASSED",
                    created_at=datetime(2026, 11, 23, 14, 6, 50, tzinfo=UTC),
                )
            )
    finally:
        runtime.close()
    result = runner.invoke(app, ["inbox", "--config", str(ministry)])  # CliRunner: an 80-column console
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"  {document_id}" in lines
    assert any(line.startswith("2026-11-23 21:06:50") for line in lines)
    assert "[bold red]ĐÃ DUYỆT[/]" in result.output and "\\u202e" in result.output


def test_status_descriptions_from_the_recipient_are_shown_inert(department: Path, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from storage.exchange import StatusRow

    sent = runner.invoke(app, ["send", str(spec_copy(tmp_path, "907")), "--config", str(department)])
    assert sent.exit_code == 0, sent.output
    document_id = "000.01.41.H41,2026/11/16,907/BC-STC"
    runtime = NodeRuntime(load_settings(department))
    try:
        with runtime.session() as s:
            s.add(
                StatusRow(
                    document_id=document_id,
                    document_sender="000.01.41.H41",
                    reporter="000.00.00.G12",
                    status_code="03",
                    description="[b]06[/b] \u202e",
                    stated_at=datetime(2026, 11, 23, 14, 8, tzinfo=UTC),
                    message_id="cd" * 32,
                    direction="in",
                )
            )
    finally:
        runtime.close()
    result = runner.invoke(app, ["status", document_id, "--config", str(department)])
    assert result.exit_code == 0, result.output
    assert "[b]06[/b]" in result.output and "\\u202e" in result.output
    assert "2026-11-23 21:08:00" in result.output


@pytest.mark.parametrize("command", [["inbox"], ["status", "000.01.41.H41,2026/11/16,245/BC-STC"], ["db", "current"]])
def test_a_command_without_a_config_says_to_give_one(
    command: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # it said "invalid configuration: role: Field required; node_id: Field required"
    monkeypatch.delenv("LIENTHONG_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, command)
    assert result.exit_code == 1, result.output
    assert "--config" in result.output and "lienthong init" in result.output


def test_answering_02_by_hand_says_the_node_sends_it_itself(network: Network) -> None:
    ministry = network.node("bo-tai-chinh").config
    document_id = "000.01.41.H41,2026/11/16,245/BC-STC"
    result = runner.invoke(app, ["answer", document_id, "2", "--as", "000.00.00.G12", "--config", str(ministry)])
    assert result.exit_code == 1, result.output
    assert "sent by the node itself" in result.output and "03, 04, 05, 06" in result.output


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["token", "--help"], ["Revoke a token", "whether revoked"]),
        (["answer", "--help"], ["Đã vào sổ", "StaffInfo"]),
    ],
)
def test_token_and_answer_help_say_what_each_command_and_option_is_for(command: list[str], expected: list[str]) -> None:
    result = runner.invoke(app, command, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for text in expected:
        assert text in result.output


def test_answering_a_document_id_two_senders_used_asks_which_and_answers_the_one_named(network: Network) -> None:
    """Two senders picked the same DocumentId (UUIDs are the sender's choice): the clerk names the sender."""
    import secrets
    import uuid

    ministry = network.node("bo-tai-chinh").config
    shared, senders = str(uuid.uuid4()), ("000.01.41.H41", "000.00.00.G09")
    before = envelopes(ministry)
    runtime = NodeRuntime(load_settings(ministry))
    try:
        with runtime.session() as s:  # as receiving leaves them: two received documents, one id
            for sender in senders:
                s.add(
                    EnvelopeRow(
                        direction="in",
                        kind="document",
                        message_id=secrets.token_hex(32),
                        sender=sender,
                        recipient="000.00.00.G12",
                        document_id=shared,
                        code=f"1/BC-{sender[-3:]}",
                        object_key="none",
                        sha256="0" * 64,
                        size=0,
                    )
                )
    finally:
        runtime.close()
    answer = ["answer", shared, "3", "--as", "000.00.00.G12", "--config", str(ministry)]
    result = runner.invoke(app, answer)
    assert result.exit_code == 1, result.output
    assert "2 senders" in result.output and "--sender" in result.output
    assert envelopes(ministry) == before + 2, "nothing queued"

    result = runner.invoke(app, [*answer, "--sender", senders[1]])
    assert result.exit_code == 0, result.output
    assert senders[1] in result.output  # queued for the one named
    shown = runner.invoke(app, ["status", shared, "--config", str(ministry), "--sender", senders[1], "--json"])
    history = json.loads(shown.output)["history"]
    assert [(h["code"], h["document_sender"]) for h in history] == [("03", senders[1])]


@pytest.mark.parametrize("command", [["status", "000.01.41.H41,2026/11/16,245/BC-STC"], ["db", "current"]])
def test_a_database_that_cannot_be_reached_is_one_sentence_with_the_password_hidden(
    department: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    import socket

    with socket.socket() as free:  # a port nothing listens on: the database server is down
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    monkeypatch.setenv("LIENTHONG_DATABASE_URL", f"postgresql+psycopg://lienthong:s3cret@127.0.0.1:{port}/lienthong")
    result = runner.invoke(app, [*command, "--config", str(department)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # a message, not a traceback
    assert "database" in result.output and f"127.0.0.1:{port}" in result.output
    assert "s3cret" not in result.output


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://lienthong:s3cret@db:5432/lt", "postgresql+psycopg://lienthong:***@db:5432/lt"),
        ("s3://AKIA:s3cret@minio:9000/bucket?secure=false", "s3://AKIA:***@minio:9000/bucket?secure=false"),
        ("sqlite:///var/node.db", "sqlite:///var/node.db"),
    ],
)
def test_serve_names_its_backends_without_their_passwords(url: str, shown: str) -> None:
    from node.cli.node_cmds import _without_password

    assert _without_password(url) == shown


def test_a_refused_document_is_undelivered_even_beside_a_recall_that_got_through(
    department: Path, tmp_path: Path
) -> None:
    """`status` fails when no copy of the document got through, whatever happened to the statuses about it."""
    from datetime import UTC, datetime

    from sqlalchemy import update

    from storage.exchange import EnvelopeRow, OutboxRow

    sent = runner.invoke(app, ["send", str(spec_copy(tmp_path, "906")), "--config", str(department), "--json"])
    assert sent.exit_code == 0, sent.output
    document_id = "000.01.41.H41,2026/11/16,906/BC-STC"
    recall = runner.invoke(app, ["recall", document_id, "--as", "000.01.41.H41", "--config", str(department)])
    assert recall.exit_code == 0, recall.output
    runtime = NodeRuntime(load_settings(department))
    try:
        with runtime.session() as s:
            of = select(EnvelopeRow.id).where(EnvelopeRow.document_id == document_id)
            document = of.where(EnvelopeRow.kind == "document").scalar_subquery()
            status = of.where(EnvelopeRow.kind == "status").scalar_subquery()
            s.execute(update(OutboxRow).where(OutboxRow.envelope_id == document).values(state="dead", attempts=1))
            delivered = {"state": "done", "attempts": 1, "done_at": datetime.now(UTC)}
            s.execute(update(OutboxRow).where(OutboxRow.envelope_id == status).values(**delivered))
    finally:
        runtime.close()
    result = runner.invoke(app, ["status", document_id, "--config", str(department)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # a verdict, not a crash
    assert "NOT DELIVERED" in result.output and "Sent: message" in result.output
