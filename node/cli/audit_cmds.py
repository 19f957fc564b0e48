"""``lienthong audit …``: the node's audit trail for auditors (verify offline, events, checkpoints, proofs)."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from node.cli.node_cmds import ConfigOption, JsonOption, _fail, _runtime, err, out

app = typer.Typer(
    help="The audit log: verify it offline, read events, publish checkpoints, prove entries.", no_args_is_help=True
)


@app.command()
def verify(
    config: ConfigOption = None,
    log_key: Annotated[
        str | None,
        typer.Option(
            "--log-key",
            help="The log's verifier key as published (name+keyid+base64). Without it, the key is taken from the "
            "node's own key file, which whoever could rewrite the log could replace too.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Re-derive the whole log from storage, check every checkpoint and every archived object it names.

    Exit 0 when everything is intact, 1 when something was changed, deleted, inserted or reordered (the
    first bad entry is named), 2 when the key given cannot be used.
    """
    from node.audit import verify_node
    from storage.errors import CheckpointError

    runtime = _runtime(config)
    try:
        result = verify_node(runtime, log_key)
    except CheckpointError as e:
        raise _fail(f"--log-key: {e}", 2) from None
    finally:
        runtime.close()
    if as_json:
        sys.stdout.write(json.dumps(result.__dict__ | {"ok": result.ok}) + "\n")
    elif result.ok:
        out.print(
            f"[green]✔ intact[/]: {result.size:,} entries re-derived, {result.checkpoints} checkpoints checked, "
            f"{result.objects:,} archived objects re-hashed"
        )
    else:
        if result.first_bad_index is not None:
            first = f"first bad entry {result.first_bad_index}"
        elif result.first_bad_checkpoint is not None:
            first = f"first bad checkpoint #{result.first_bad_checkpoint}"
        else:
            first = "see below"
        out.print(f"[red]✘ TAMPERED[/]: {first}")
        for problem in result.problems[:20]:
            out.print(f"  - {problem}", highlight=False)
        if len(result.problems) > 20:
            out.print(f"  … and {len(result.problems) - 20} more (--json lists them all)")
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def events(
    config: ConfigOption = None,
    event_type: Annotated[list[str] | None, typer.Option("--type", help="Only these types (repeat).")] = None,
    agency: Annotated[str | None, typer.Option(help="Only events naming this organisation or node.")] = None,
    since: Annotated[datetime | None, typer.Option(help="ISO 8601 time.")] = None,
    until: Annotated[datetime | None, typer.Option(help="ISO 8601 time.")] = None,
    notable: Annotated[bool, typer.Option("--notable", help="Only what an auditor should look at.")] = False,
    outcome: Annotated[
        str | None, typer.Option(help="Only this outcome: an indication (TOTAL_FAILED…) or a refusal reason.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Events, newest first: failed checks, refusals, failed authentication and unusual reads stand out."""
    from node.audit import query_events

    runtime = _runtime(config)
    try:
        found = query_events(
            runtime,
            types=set(event_type or []) or None,
            agency=agency,
            since=_aware(since),
            until=_aware(until),
            notable_only=notable,
            outcome=outcome,
            limit=limit,
        )
    finally:
        runtime.close()
    if as_json:
        sys.stdout.write(json.dumps({"events": found}, ensure_ascii=False) + "\n")
        return
    table = Table(title="Audit events (newest first)", title_justify="left")
    for column in ("#", "time", "type", "details"):
        table.add_column(column)
    for item in found:
        event = dict(item["event"])
        details = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("type", "time", "node"))
        style = "bold red" if item["notable"] else None
        table.add_row(
            str(item["index"]), str(event.get("time", ""))[:19], str(event.get("type")), details[:160], style=style
        )
    out.print(table)


@app.command()
def checkpoint(
    config: ConfigOption = None,
    cosigned: Annotated[
        bool,
        typer.Option(
            "--cosigned", help="Print the latest checkpoint the axis cosigned, with its cosignature, instead."
        ),
    ] = False,
) -> None:
    """Sign and publish a checkpoint of the log now; print it (C2SP signed note).

    The keys to check it with are printed on stderr: the log's, and with --cosigned the axis's witness key.
    """
    from node.audit import cosigned_checkpoint, publish_checkpoint, witness_verifier_key

    runtime = _runtime(config)
    try:
        if cosigned:
            note = cosigned_checkpoint(runtime)
            if note is None and runtime.upstream is None:
                raise _fail("this node has no upstream axis to cosign its log")
            if note is None:
                raise _fail(
                    "no checkpoint of this log has been cosigned yet (the axis cosigns every checkpoint_interval)"
                )
            sys.stdout.write(note)
        else:
            sys.stdout.write(publish_checkpoint(runtime).note)
        err.print(f"log verifier key: {runtime.log_signer.verifier.vkey()}", highlight=False)
        if cosigned and runtime.upstream is not None:
            witness = witness_verifier_key(runtime, runtime.upstream.node_id)
            err.print(f"witness verifier key of {runtime.upstream.node_id}: {witness}", highlight=False)
    finally:
        runtime.close()


@app.command()
def prove(
    index: Annotated[int, typer.Argument(help="The entry index.")],
    config: ConfigOption = None,
    size: Annotated[int | None, typer.Option(help="The tree size to prove against (default: now).")] = None,
) -> None:
    """An inclusion proof for one entry (JSON), verified before it is printed."""
    from node.audit import inclusion

    runtime = _runtime(config)
    try:
        proof = inclusion(runtime, index, size)
    except Exception as e:
        raise _fail(str(e)) from None
    finally:
        runtime.close()
    sys.stdout.write(json.dumps(proof, ensure_ascii=False) + "\n")


def _aware(value: datetime | None) -> datetime | None:
    from datetime import UTC

    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
