"""``lienthong init``, ``serve``, ``send``, ``status``, ``answer``, ``recall``, ``inbox``, ``token``.

Commands that act on a node open its database and store directly (``--config``, or ``$LIENTHONG_CONFIG``);
the running node's workers pick up what they queue.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from node._private.text import inert
from node.errors import AmbiguousDocumentError, NodeError
from signing.errors import SigningError

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="The node's config file (default: $LIENTHONG_CONFIG).", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
SenderOption = Annotated[
    str | None,
    typer.Option(
        "--sender",
        help="The organisation that sent the document: needed only when two senders used the same DocumentId.",
        show_default=False,
    ),
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(Text.assemble(("error: ", "red"), message))
    return typer.Exit(code)


def _settings(config: Path | None):  # type: ignore[no-untyped-def]
    import os

    from node.config import load_settings

    try:
        return load_settings(config)
    except NodeError as e:
        if config is None and "LIENTHONG_CONFIG" not in os.environ:
            # the environment alone rarely configures a node: this is a forgotten --config (or no init yet),
            # which load_settings can only report as missing fields
            raise _fail(
                "no node configuration: give --config DIR/node.yaml (written by `lienthong init`) "
                f"or set $LIENTHONG_CONFIG ({e})"
            ) from None
        raise _fail(str(e)) from None


def _runtime(config: Path | None):  # type: ignore[no-untyped-def]
    from node.runtime import NodeRuntime

    settings = _settings(config)
    try:
        return NodeRuntime(settings)
    except NodeError as e:
        raise _fail(str(e)) from None


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


def _settle_garbage_collector() -> None:
    """Keep the cyclic garbage collector off what a node loads once, and let it run less often.

    A running node makes many short-lived objects per envelope (parsed XML, ASN.1, PDF objects) on top of a
    large heap that lives as long as the process (modules, the ORM, the trust store). With the default
    thresholds a collection starts every 700 allocations and the older generations are walked again and
    again: about a tenth of a busy node's CPU (benchmarks/exchange.py). What is loaded at start is frozen
    out of collection, and collections come less often; reference counting still frees at once everything
    that is not in a cycle.
    """
    import gc
    import importlib

    for module in ("node.receiving", "node.routing", "node.sending"):  # pyHanko, lxml, the ORM: frozen too
        importlib.import_module(module)
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def serve(config: ConfigOption = None) -> None:
    """Run the node: the HTTP API and its outbox/inbox workers, until stopped (Ctrl-C, SIGTERM)."""
    import uvicorn

    from node.api import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runtime = _runtime(config)
    settings = runtime.settings
    err.print(f"[bold]{settings.role}[/] node {settings.node_id} on http://{settings.host}:{settings.port}")
    # which backends, said at start: a setting lost on the way (an unquoted & in a sourced file) shows here
    err.print(
        f"database {_without_password(settings.database)}; objects {_without_password(settings.objects_url)}",
        highlight=False,
        markup=False,
    )
    app = create_app(runtime)
    _settle_garbage_collector()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            # a request still running after this is cancelled (an inbox long-poll ends sooner: see below)
            timeout_graceful_shutdown=2,
        )
    )
    # Open inbox long-polls end (empty) once a stop is asked, instead of being cancelled mid-wait.
    app.state.stopping = lambda: server.should_exit
    try:
        server.run()
    finally:
        runtime.close()


def send(
    spec: Annotated[Path, typer.Argument(help="The message description (YAML spec; see docs/examples/).")],
    config: ConfigOption = None,
    idempotency_key: Annotated[
        str | None, typer.Option("--key", help="Your reference: sending twice with it sends once.")
    ] = None,
    no_seal: Annotated[bool, typer.Option("--no-seal", help="Do not add the organisation's seal to PDFs.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Build, seal, sign and queue a document for the axis."""
    from node._private.spec import SpecError, load_spec
    from node.sending import send_document

    try:
        message = load_spec(spec)
    except SpecError as e:
        raise _fail(str(e)) from None
    if message.kind != "document":
        raise _fail(f"{spec} describes a status; use `lienthong answer` or `lienthong recall`")
    runtime = _runtime(config)
    try:
        result = send_document(runtime, message, client_key=idempotency_key, seal_pdfs=not no_seal)
    except NodeError as e:
        raise _fail(str(e)) from None
    except SigningError as e:  # the seal's key, its passphrase, a PDF that cannot be sealed, the TSA
        raise _fail(f"cannot seal and sign {spec}: {e}") from None
    finally:
        runtime.close()
    if as_json:
        sys.stdout.write(json.dumps(result.__dict__, ensure_ascii=False) + "\n")
        return
    verb = "was already queued" if result.duplicate else "is queued"
    out.print(f"Document {result.document_id} {verb} for {', '.join(result.recipients)}")
    out.print(f"message id {result.message_id}")


def status(
    document_id: Annotated[str, typer.Argument(help="The DocumentId.")],
    config: ConfigOption = None,
    sender: SenderOption = None,
    as_json: JsonOption = False,
) -> None:
    """The status history of a document, per organisation (lịch sử trạng thái), and how its sending went.

    Exit 1 when this node has no such document, when no copy of it could be delivered to the axis, or when the
    axis said a copy will not reach a recipient that has not answered (refused by its node, expired, not
    forwarded).
    """
    from node.api import sent_copies, status_history

    runtime = _runtime(config)
    try:
        history = status_history(runtime, document_id, sender)
        sent = sent_copies(runtime, document_id, sender)
        known = bool(history or sent) or _received(runtime, document_id)
    finally:
        runtime.close()
    # the clerk must learn that the axis refused it (or it never left): the recipients will never answer. A
    # document counts as undelivered when no copy of it got through (a later resend may have); a status sent
    # about it, when that status did not (each status is its own word, no resend replaces it)
    documents = [copy for copy in sent if copy.get("kind", "document") == "document"]
    undelivered = (bool(documents) and all(copy["state"] == "dead" for copy in documents)) or any(
        copy["state"] == "dead" for copy in sent if copy.get("kind") == "status"
    )
    # or it was delivered to the axis, and the axis said later that it will not reach some recipient
    lost = any(copy.get("failed") for copy in sent)
    if as_json:
        payload = {"document_id": document_id, "history": history, "sent": sent}
        sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
    elif not known:
        raise _fail(
            f"this node has neither sent nor received a document {document_id}; check the DocumentId "
            "(`lienthong inbox` lists what arrived)"
        )
    else:
        for copy in sent:
            out.print(_sending_line(copy))
            for failed in copy.get("failed") or ():
                out.print(
                    Text.assemble(
                        ("NOT DELIVERED: ", "bold red"),
                        f"message {str(copy['message_id'])[:16]} {inert(failed['text'])}. "
                        f"{failed['recipient']} will not answer it; check the address, or send it again.",
                    )
                )
        if not history:
            out.print(f"No status is known for {document_id} yet.")
        else:
            senders = sorted({item["document_sender"] for item in history})
            table = Table(title=f"Statuses of {document_id}", title_justify="left")
            table.add_column("when (ICT)", no_wrap=True)
            if len(senders) > 1:  # two senders used this DocumentId: say whose document each status is about
                table.add_column("document of", no_wrap=True)
            table.add_column("organisation", no_wrap=True)
            table.add_column("status")
            table.add_column("description")
            for item in history:
                whose = [Text(inert(item["document_sender"]))] if len(senders) > 1 else []
                table.add_row(  # the description is the answering organisation's text: inert, not markup
                    _local_time(item["stated_at"]),
                    *whose,
                    Text(inert(item["reporter"])),
                    status_label(item["code"]),
                    Text(inert(item["description"])),
                )
            out.print(table)
            if len(senders) > 1:
                out.print(f"Two or more senders used this DocumentId; --sender {senders[0]} shows one of them.")
    if not known or undelivered or lost:
        raise typer.Exit(1)


def _received(runtime, document_id: str) -> bool:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from storage.exchange import EnvelopeRow

    with runtime.session() as s:
        return (
            s.scalars(select(EnvelopeRow.id).where(EnvelopeRow.document_id == document_id).limit(1)).first() is not None
        )


def _sending_line(copy: dict[str, Any]) -> Text:
    message = f"message {str(copy['message_id'])[:16]}"
    if copy["state"] == "done":
        return Text(f"Sent: {message} was delivered to {copy['to']} at {_local_time(copy['delivered_at'])}.")
    if copy["state"] == "dead":
        return Text.assemble(
            ("NOT DELIVERED: ", "bold red"),
            f"{message} was refused or could not be delivered (to {copy['to']}, {copy['attempts']} attempt(s)): "
            f"{copy['last_error']}. Nothing reached the recipients; correct the document and send it again.",
        )
    if not copy["attempts"]:
        return Text(
            f"Waiting: {message} is queued for {copy['to']} since {_local_time(copy['queued_at'])}; "
            "the running node sends it (is `lienthong serve` running for this node?)."
        )
    return Text(
        f"Retrying: {message} is not yet delivered to {copy['to']} after {copy['attempts']} attempt(s); "
        f"last error: {copy['last_error']}"
    )


def _local_time(moment: datetime | str) -> str:
    """Vietnam time to the second, short enough for a table column: 2026-11-16 09:30:00."""
    from schemas import VIETNAM_TIME

    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(VIETNAM_TIME).strftime("%Y-%m-%d %H:%M:%S")


def status_label(code: str) -> str:
    from schemas import StatusCode

    labels = {
        1: "01 đã đến (arrived)",
        2: "02 từ chối (refused)",
        3: "03 đã tiếp nhận (registered)",
        4: "04 phân công (assigned)",
        5: "05 đang xử lý (in progress)",
        6: "06 hoàn thành (done)",
        13: "13 lấy lại (recall asked)",
        15: "15 đồng ý lấy lại/cập nhật (agreed)",
        16: "16 từ chối lấy lại/cập nhật (refused)",
    }
    try:
        return labels[StatusCode(int(code))]
    except (ValueError, KeyError):
        return code


def answer(
    document_id: Annotated[str, typer.Argument(help="The DocumentId of a received document.")],
    code: Annotated[int, typer.Argument(help="03 registered, 04 assigned, 05 in progress, 06 done, 15/16.")],
    organisation: Annotated[str, typer.Option("--as", help="The receiving organisation answering.")],
    config: ConfigOption = None,
    description: Annotated[
        str, typer.Option("--description", "-d", help="What the sender reads, e.g. 'Đã vào sổ'.")
    ] = "",
    staff: Annotated[str, typer.Option("--staff", help="Who handles it (StaffInfo), e.g. for 04 assigned.")] = "",
    sender: SenderOption = None,
) -> None:
    """Send a signed status about a received document back to its sender."""
    _send_status(
        config, document_id, code, organisation, description, staff, allowed={3, 4, 5, 6, 15, 16}, sender=sender
    )


def recall(
    document_id: Annotated[str, typer.Argument(help="The DocumentId of a document this node sent.")],
    organisation: Annotated[str, typer.Option("--as", help="The sending organisation.")],
    config: ConfigOption = None,
    description: Annotated[str, typer.Option("--description", "-d", help="Why.")] = "",
) -> None:
    """Ask the recipients to give a sent document back (status 13); they answer 15 or 16."""
    _send_status(config, document_id, 13, organisation, description, "", allowed={13})


def _send_status(
    config: Path | None,
    document_id: str,
    code: int,
    organisation: str,
    description: str,
    staff: str,
    allowed: set[int],
    sender: str | None = None,
) -> None:
    from node.sending import send_status
    from schemas import StaffInfo, StatusCode

    if code not in allowed:
        why = " (01 and 02 are sent by the node itself when a document arrives)" if code in (1, 2) else ""
        raise _fail(
            f"status {code:02d} cannot be sent here{why}; allowed: {', '.join(f'{c:02d}' for c in sorted(allowed))}"
        )
    runtime = _runtime(config)
    try:
        result = send_status(
            runtime,
            document_id=document_id,
            reporter=organisation,
            code=StatusCode(code),
            description=description,
            staff=StaffInfo(staff=staff),
            document_sender=sender,
        )
    except AmbiguousDocumentError as e:
        raise _fail(f"{e} with --sender") from None
    except NodeError as e:
        raise _fail(str(e)) from None
    except SigningError as e:  # the seal's key or its passphrase, the TSA
        raise _fail(f"cannot sign the status: {e}") from None
    finally:
        runtime.close()
    out.print(f"Status {status_label(f'{code:02d}')} queued for {', '.join(result.recipients)}")


def inbox(
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    as_json: JsonOption = False,
) -> None:
    """Documents and statuses this node received, newest first, with their verification outcome."""
    from sqlalchemy import select

    from node.api import envelope_json
    from storage.exchange import EnvelopeRow

    runtime = _runtime(config)
    try:
        with runtime.session() as s:
            rows = [
                envelope_json(r)
                for r in s.scalars(
                    select(EnvelopeRow)
                    .where(EnvelopeRow.direction == "in")
                    .order_by(EnvelopeRow.id.desc())
                    .limit(limit)
                )
            ]
    finally:
        runtime.close()
    if as_json:
        sys.stdout.write(json.dumps({"items": rows}, ensure_ascii=False) + "\n")
        return
    # one block per item, not a table: a table cuts the DocumentId short in a narrow terminal, and the clerk
    # copies it whole to answer; what the sender wrote (subject, ids) is shown inert, never as markup
    out.print(Text("Received, newest first (times ICT):" if rows else "Nothing received yet.", style="bold"))
    for r in rows:
        verdict = _VERIFIED.get(r["verified"] or "", ("not verified", "yellow"))
        what = inert(r["subject"]) if r["kind"] == "document" else f"status {status_label(r['status_code'] or '')}"
        out.print(
            Text.assemble(
                _local_time(r["created_at"]),
                f"  {r['kind']} from {inert(r['sender'])} for {inert(r['recipient'] or '')}  ",
                verdict,
            )
        )
        out.print(Text(f"  {inert(r['document_id'])}"))
        out.print(Text(f"  {what}"))


_VERIFIED = {
    "TOTAL_PASSED": ("✔ TOTAL_PASSED", "green"),
    "TOTAL_FAILED": ("✘ TOTAL_FAILED", "bold red"),
    "INDETERMINATE": ("? INDETERMINATE", "yellow"),
}


token_app = typer.Typer(help="API tokens (roles: clerk, archivist, auditor, admin).", no_args_is_help=True)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="Who or what the token is for.")],
    role: Annotated[str, typer.Option("--role", help="clerk, archivist, auditor or admin.")] = "clerk",
    config: ConfigOption = None,
) -> None:
    """Make a token; it is printed once and only its hash is kept."""
    from node.tokens import Role, create_token

    try:
        chosen = Role(role)
    except ValueError:
        raise _fail(f"role {role!r} is not one of {', '.join(r.value for r in Role)}") from None
    runtime = _runtime(config)
    try:
        sys.stdout.write(create_token(runtime, name, chosen) + "\n")
    except NodeError as e:
        raise _fail(str(e)) from None
    finally:
        runtime.close()


@token_app.command("list")
def token_list(config: ConfigOption = None) -> None:
    """The tokens of this node: name, role, and whether revoked (the tokens themselves are not kept)."""
    from node.tokens import list_tokens

    runtime = _runtime(config)
    try:
        for name, role, revoked in list_tokens(runtime):
            suffix = "  (revoked)" if revoked else ""
            out.print(f"{name}  {role}{suffix}")
    finally:
        runtime.close()


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(help="The token's name, as given to `token create`.")],
    config: ConfigOption = None,
) -> None:
    """Revoke a token: requests carrying it are refused from now on."""
    from node.tokens import revoke_token

    runtime = _runtime(config)
    try:
        revoke_token(runtime, name)
    except NodeError as e:
        raise _fail(str(e)) from None
    finally:
        runtime.close()
    out.print(f"token {name} revoked")


def init(
    directory: Annotated[Path, typer.Argument(help="Where to write node.yaml, the node key and the data.")] = Path("."),
    role: Annotated[str, typer.Option(help="agency or axis.")] = "agency",
    node_id: Annotated[str, typer.Option("--node-id", help="This node's id, e.g. so-tai-chinh-nghe-an.")] = "",
    organ: Annotated[
        list[str] | None,
        typer.Option("--organ", help="An organisation this agency node serves, as CODE=NAME. Repeat for more."),
    ] = None,
    axis_url: Annotated[str, typer.Option("--axis-url", help="The upstream axis.")] = "http://127.0.0.1:8400",
    axis_id: Annotated[str, typer.Option("--axis-id", help="The upstream axis's node id.")] = "truc",
    axis_key: Annotated[
        str, typer.Option("--axis-key", help="The upstream axis's Ed25519 public key (base64 or PEM path).")
    ] = "",
    trace_organ_id: Annotated[
        str, typer.Option("--trace-organ-id", help="axis: the code written in TraceHeader.")
    ] = "",
    port: Annotated[int, typer.Option(help="The port to listen on.")] = 8400,
    pki_url: Annotated[
        str, typer.Option("--pki-url", help="Where `lienthong pki serve` will answer.")
    ] = "http://127.0.0.1:8777",
    pki_dir: Annotated[
        Path | None,
        typer.Option("--pki", help="A development PKI to use (made here if missing; default DIRECTORY/pki)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing node.yaml.")] = False,
) -> None:
    """Write a node's config, its Ed25519 node key and (agency) a development PKI for its organisations."""
    import yaml

    from node.network import write_node_key
    from signing.devpki import create_dev_pki, parse_organ
    from signing.errors import DevPkiError

    if role not in ("agency", "axis"):
        raise _fail("--role must be agency or axis")
    if not node_id:
        raise _fail("give --node-id (lowercase letters, digits, '.', '_' or '-')")
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "node.yaml"
    if config_path.exists() and not force:
        raise _fail(f"{config_path} exists; use --force to replace it")
    config: dict[str, object] = {
        "role": role,
        "node_id": node_id,
        "port": port,
        "data_dir": "var",
        "node_key": "node-key.pem",
    }
    pki_path = (pki_dir or directory / "pki").resolve()
    if role == "axis":
        if not trace_organ_id:
            raise _fail("an axis needs --trace-organ-id (the organisation code it writes into TraceHeader)")
        config |= {"trace_organ_id": trace_organ_id, "nodes": []}
        if (pki_path / "pki.json").is_file():
            from signing.devpki import DevPki

            pki = DevPki.load(pki_path)
            config["trust"] = {"roots": [str(pki.root.path)], "intermediates": [str(pki.issuing_ca.path)]}
    else:
        organs = organ or []
        if not organs:
            raise _fail("an agency node needs at least one --organ CODE=NAME")
        if not axis_key:
            raise _fail("give --axis-key: the axis's public key (it prints it at `lienthong init --role axis`)")
        try:
            pairs = [parse_organ(o) for o in organs]
            if (pki_path / "pki.json").is_file():
                from signing.devpki import DevPki

                pki = DevPki.load(pki_path)
                missing = [code for code, _ in pairs if code not in {o.code for o in pki.organs}]
                if missing:
                    raise DevPkiError(f"the PKI in {pki_path} has no certificates for {', '.join(missing)}")
            else:
                pki = create_dev_pki(pki_path, pairs, base_url=pki_url)
        except DevPkiError as e:
            raise _fail(str(e)) from None
        config |= {
            "organisations": [
                {
                    "code": code,
                    "name": name,
                    "seal": {
                        "kind": "pkcs12",
                        "key": str(pki.organ(code).organisation.p12_path),
                        "passphrase_file": str(pki.passphrase_path),
                    },
                }
                for code, name in pairs
            ],
            "upstream": {"url": axis_url, "node_id": axis_id, "public_key": axis_key},
            "trust": {"roots": [str(pki.root.path)], "intermediates": [str(pki.issuing_ca.path)]},
            "timestamp_url": pki.urls.tsa,
        }
    key_path = directory / "node-key.pem"
    if key_path.exists():  # the node's identity is kept: its peers know this key
        from adapters.httpsig import NodeKey

        public = NodeKey.load(key_path, node_id).public_key_b64
    else:
        public = write_node_key(key_path)
    (directory / "public-key.txt").write_text(public + "\n", encoding="ascii")
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    out.print(f"wrote {config_path} and {key_path}")
    out.print(f"node public key (register it at the axis; also in public-key.txt): [bold]{public}[/]")
    if role == "agency":
        out.print(f"development PKI (NOT FOR PRODUCTION) in {pki_path}; serve it with `lienthong pki serve {pki_path}`")
    out.print(f"run it: lienthong serve --config {config_path}")


def register(
    node_id: Annotated[str, typer.Argument(help="The node id to register with this axis.")],
    public_key: Annotated[str, typer.Option("--public-key", help="Its Ed25519 public key (base64).")],
    organ: Annotated[list[str], typer.Option("--organ", help="A code it speaks for (CODE, or CODE/* for a subtree).")],
    config: ConfigOption = None,
    url: Annotated[str | None, typer.Option(help="Where the axis may push to it.")] = None,
) -> None:
    """Register an agency node (or a child axis) in this axis's config; restart the axis to apply."""
    import os

    import yaml

    from node.config import RegisteredNode, load_settings

    path = config or (Path(os.environ["LIENTHONG_CONFIG"]) if "LIENTHONG_CONFIG" in os.environ else None)
    if path is None:
        raise _fail("give --config (the axis's node.yaml)")
    settings = load_settings(path)
    if settings.role != "axis":
        raise _fail(f"{path} is the config of an {settings.role} node; only an axis has a registry")
    try:
        entry = RegisteredNode(id=node_id, public_key=public_key, organisations=tuple(organ), url=url)
    except ValueError as e:
        raise _fail(str(e)) from None
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    nodes = [n for n in data.get("nodes") or [] if n.get("id") != node_id]
    nodes.append(entry.model_dump(exclude_none=True, mode="json"))
    data["nodes"] = nodes
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    load_settings(path)  # the file stays valid
    out.print(f"registered {node_id} for {', '.join(organ)} in {path}; restart the axis to apply")


db_app = typer.Typer(help="The node's database schema (Alembic migrations).", no_args_is_help=True)


def _engine(config: Path | None):  # type: ignore[no-untyped-def]
    from storage.db import make_engine

    settings = _settings(config)
    try:
        return make_engine(settings.database)
    except NodeError as e:
        raise _fail(str(e)) from None


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Bring the database to the schema of this version (also done at every start)."""
    from storage.db import DatabaseConfigError
    from storage.migrate import upgrade

    engine = _engine(config)
    try:
        out.print(f"database at revision {upgrade(engine)}")
    except DatabaseConfigError as e:
        raise _fail(f"database: {e}") from None
    finally:
        engine.dispose()


@db_app.command("current")
def db_current(config: ConfigOption = None) -> None:
    """The database's revision, the newest this program knows, and whether the schema matches."""
    from storage.db import DatabaseConfigError
    from storage.migrate import current, head, schema_differences

    engine = _engine(config)
    try:
        now, newest = current(engine), head()
        differences = schema_differences(engine) if now is not None else []
    except DatabaseConfigError as e:
        raise _fail(f"database: {e}") from None
    finally:
        engine.dispose()
    out.print(f"database revision: {now or 'none (run lienthong db upgrade)'}; this program: {newest}")
    if differences:
        out.print(f"[red]the schema differs from the models in {len(differences)} place(s)[/]")
        raise typer.Exit(1)
    if now != newest:
        raise typer.Exit(1)
