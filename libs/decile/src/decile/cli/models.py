"""``decile models list|show|promote|rollback|history|failures``: the model registry by hand.

A version is named by its id or ``family@version`` (``entry@1.2.0``).
Promotion follows staging -> shadow -> production and passes the gate (an
absolute floor per family, then a paired evaluation against production on the
same held-out rows); a refusal names the metric and exits 1.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from decile.cli.registry_access import Opened, actor, console, headline, opened, out, settings
from decile.registry import GateConfig, ModelVersion, RegistryError

app = typer.Typer(
    name="models",
    help="List, inspect, promote and roll back model versions in the registry.",
    no_args_is_help=True,
)
T = TypeVar("T")
Family = Annotated[str | None, typer.Option("--family", "-f", help="Only this family.")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Ref = Annotated[str, typer.Argument(help="id or family@version (or family@production).")]
Reason = Annotated[str, typer.Option(help="Why, for the audit trail.")]


def _run(work: Callable[[Opened], Awaitable[T]], gate: GateConfig | None = None) -> T:
    """Run ``work`` against the registry; known refusals become one red line and exit 1."""

    async def main() -> T:
        async with opened(settings(), gate) as o:
            return await work(o)

    try:
        return asyncio.run(main())
    except RegistryError as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(1) from None


def _row(v: ModelVersion) -> dict[str, Any]:
    return {
        "id": str(v.id),
        "family": v.family,
        "version": v.version,
        "status": v.status,
        "schema": v.schema_version,
        "created": v.created_at.isoformat(timespec="seconds"),
        "parent": str(v.parent_id) if v.parent_id else None,
        "test": headline(v.metrics),
        "sha256": v.sha256,
        "artifact": v.artifact_uri,
    }


@app.command("list")
def list_(family: Family = None, status: str | None = None, as_json: AsJson = False) -> None:
    """Every version, newest first."""
    versions = _run(lambda o: o.registry.list(family, status))
    rows = [_row(v) for v in versions]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table()
    for col in ("family", "version", "status", "created", "test", "id"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["family"], r["version"], r["status"], r["created"], r["test"], r["id"])
    out.print(table if rows else "no model versions yet: run `decile train`")


@app.command()
def show(ref: Ref, as_json: AsJson = False) -> None:
    """One version: metrics, lineage, artifacts and its promotion history."""

    async def work(o: Opened) -> tuple[ModelVersion, list[Any]]:
        v = await o.registry.get(ref)
        return v, [p for p in await o.registry.history(v.family) if p.model_id == v.id]

    v, history = _run(work)
    doc = {
        **_row(v),
        "artifacts": {k: a.uri for k, a in v.artifacts.items()},
        "metrics": v.metrics.get("metrics"),
        "paired": v.metrics.get("paired"),
        "split": v.metrics.get("split"),
        "history": [
            {"at": p.created_at.isoformat(timespec="seconds"), "from": p.from_status,
             "to": p.to_status, "action": p.action, "actor": p.actor, "reason": p.reason}
            for p in history
        ],
    }
    if as_json:
        typer.echo(json.dumps(doc, default=str))
        return
    out.print(f"[bold]{v.label}[/bold]  {v.status}  {v.id}")
    out.print(f"  test: {doc['test']}")
    out.print(f"  schema {v.schema_version}, data {v.data_fingerprint[:12]}")
    out.print(f"  parent {doc['parent']}")
    for name, uri in doc["artifacts"].items():
        out.print(f"  {name}: {uri}")
    for h in doc["history"]:
        who = f"{h['action']} by {h['actor']}"
        out.print(f"  {h['at']} {h['from']} -> {h['to']} ({who}) {h['reason']}")


@app.command()
def promote(
    ref: Ref,
    to: Annotated[
        str | None,
        typer.Option("--to", help="shadow or production (default: the next status)."),
    ] = None,
    reason: Reason = "",
    allow_schema_change: Annotated[
        bool,
        typer.Option(
            "--allow-schema-change",
            help="Accept a version whose features differ from production's, so no paired "
            "evaluation on the same rows was possible (needs --reason).",
        ),
    ] = False,
) -> None:
    """Move a version one step (staging -> shadow -> production) through the gate."""
    if to not in (None, "shadow", "production"):
        raise typer.BadParameter("shadow or production", param_hint="--to")
    if allow_schema_change and not reason:
        raise typer.BadParameter("say why with --reason", param_hint="--allow-schema-change")
    gate = GateConfig(allow_incomparable=allow_schema_change)
    v = _run(
        lambda o: o.registry.promote(ref, to, actor=actor(), reason=reason),  # type: ignore[arg-type]
        gate,
    )
    out.print(f"{v.label} is now {v.status}")


@app.command()
def archive(ref: Ref, reason: Reason = "") -> None:
    """Retire a staging or shadow version (frees the family's shadow slot)."""
    v = _run(lambda o: o.registry.archive(ref, actor=actor(), reason=reason))
    out.print(f"{v.label} is now {v.status}")


@app.command()
def rollback(
    family: Annotated[str, typer.Argument(help="entry, risk, rr or offset")],
    reason: Reason = "",
) -> None:
    """Put the previous production version of FAMILY back into production."""
    v = _run(lambda o: o.registry.rollback(family, actor=actor(), reason=reason))
    out.print(f"{v.label} is production again")


@app.command()
def history(family: Family = None, as_json: AsJson = False) -> None:
    """Every status change (promotions, archives, rollbacks), oldest first."""
    rows = _run(lambda o: o.registry.history(family))
    table = Table()
    for col in ("at", "family", "model", "from", "to", "action", "actor", "reason"):
        table.add_column(col)
    docs = []
    for p in rows:
        docs.append({"at": p.created_at.isoformat(timespec="seconds"), "family": p.family,
                     "model": str(p.model_id), "from": p.from_status, "to": p.to_status,
                     "action": p.action, "actor": p.actor, "reason": p.reason})
        table.add_row(*(str(x or "") for x in docs[-1].values()))
    if as_json:
        typer.echo(json.dumps(docs))
    else:
        out.print(table)


@app.command()
def failures(family: Family = None, as_json: AsJson = False) -> None:
    """Failed training attempts with their stage, code and message."""
    rows = _run(lambda o: o.registry.failures(family))
    docs = [{"at": f.created_at.isoformat(timespec="seconds"), "family": f.family,
             "stage": f.stage, "code": f.code, "message": f.message} for f in rows]
    if as_json:
        typer.echo(json.dumps(docs))
        return
    table = Table()
    for col in ("at", "family", "stage", "code", "message"):
        table.add_column(col)
    for d in docs:
        table.add_row(d["at"], d["family"], d["stage"], d["code"], d["message"][:120])
    out.print(table)


def register(root: typer.Typer) -> None:
    root.add_typer(app, rich_help_panel="Models")
