"""Event contracts as files: JSON Schemas and AsyncAPI documents under ``proto/``.

``python -m decile.proto`` regenerates ``proto/`` from the code; ``--check``
regenerates in memory and exits 1 when the checked-in files differ, so a
contract cannot change without the diff showing up in review (and in CI).

Output is deterministic: JSON with sorted keys, settings built from defaults
only (the environment never leaks in, so no host or namespace of this machine
ends up in a file), no timestamps. Two runs give identical bytes.

Schemas are pydantic's *validation* mode: that is the contract ``codec.decode``
enforces on every message, what a producer in any language must send to be
accepted, and what FastStream itself puts in the AsyncAPI documents, so both
artifacts agree. (Serialization mode gives the same schemas today; a unit test
keeps it that way.)

The AsyncAPI documents are FastStream's, corrected where FastStream cannot
know our wire rules (:func:`_fix_asyncapi`).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import importlib.metadata
import inspect
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from faststream.specification import AsyncAPI
from pydantic.json_schema import models_json_schema

from decile import __version__, codec
from decile.config import ServiceSettings
from decile.events import ALL_EVENTS, OHLCV, BarBatch, ColumnarEvent, Event, FeatureBatch
from decile.fleet import FLEET, ServiceSpec, installed

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_VERSION = "3.0.0"
SCHEMA_MODE: Final = "validation"
_REF = "#/components/schemas/"
_ANY_EVENT = "AnyEvent"
_ANY_COLUMNAR = "AnyColumnarEvent"

_COLUMNS = {
    BarBatch: ", ".join(OHLCV),
    FeatureBatch: "the names in `feature_names` (float32), then those in `context_names` "
    "(the bar's `close`, float64), in that order",
}


# ---- output helpers -------------------------------------------------------------


def dumps(doc: Any) -> bytes:
    """Canonical JSON: sorted keys, 2-space indent, UTF-8, one trailing newline."""
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def schema_version(cls: type[Event]) -> int:
    field = cls.model_fields.get("schema_version")
    return int(field.default) if field is not None else 1


def schema_path(cls: type[Event]) -> str:
    return f"schemas/{cls.type_name}.v{schema_version(cls)}.json"


# ---- JSON Schemas ---------------------------------------------------------------


def wire_note(cls: type[Event]) -> str:
    """How ``codec`` puts this event on the wire (the schema describes the decoded event)."""
    if issubclass(cls, ColumnarEvent):
        columns = _COLUMNS.get(cls, "the names in the event's `columns`")
        return (
            f"Wire format: one Arrow IPC stream (Content-Type `{codec.ARROW_CT}`), not JSON. "
            f"The envelope (every field but `symbols` and `values`) is JSON in the Arrow "
            f"schema metadata key `{codec.META_KEY.decode()}`; the columns are `symbol` "
            f"(string, one row per symbol) then one float64 column per value name (float32 "
            f"for a FeatureBatch's features) "
            f"({columns}). This schema describes the decoded event, with `values` as a "
            f"row-major matrix."
        )
    return (
        f"Wire format: the JSON object below (Content-Type `{codec.JSON_CT}`), "
        f"`type` = `{cls.type_name}`."
    )


def event_schema(cls: type[Event]) -> dict[str, Any]:
    """One event's JSON Schema, with the wire format in its top-level description."""
    schema = cls.model_json_schema(mode=SCHEMA_MODE)
    doc = (schema.get("description") or "").strip()
    schema["description"] = f"{doc}\n\n{wire_note(cls)}" if doc else wire_note(cls)
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


# ---- AsyncAPI -------------------------------------------------------------------


def settings_class(module: Any) -> type[ServiceSettings]:
    """The one :class:`ServiceSettings` subclass a service's settings module defines."""
    found = [
        obj for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, ServiceSettings) and obj is not ServiceSettings
        and obj.__module__ == module.__name__
    ]
    if len(found) != 1:
        names = ", ".join(c.__name__ for c in found) or "none"
        raise LookupError(
            f"{module.__name__} must define exactly one ServiceSettings subclass (found {names})"
        )
    return found[0]


def default_settings(cls: type[ServiceSettings]) -> ServiceSettings:
    """``cls`` from its defaults alone: no environment, no dotenv, no secrets dir."""

    class Defaults(cls):  # type: ignore[valid-type,misc]
        @classmethod
        def settings_customise_sources(cls, settings_cls: Any, init_settings: Any,
                                       *sources: Any, **named: Any) -> tuple[Any, ...]:
            return (init_settings,)

    return Defaults(nats={"namespace": ""})


def _service_version(spec: ServiceSpec) -> str:
    try:
        return importlib.metadata.version(f"decile-{spec.name}")
    except importlib.metadata.PackageNotFoundError:
        return __version__


def service_asyncapi(spec: ServiceSpec) -> dict[str, Any]:
    """The AsyncAPI document of one service, built from its ``create_app`` (nothing connects)."""
    app_mod = importlib.import_module(f"{spec.module}.app")
    settings_mod = importlib.import_module(f"{spec.module}.settings")
    pkg = importlib.import_module(spec.module)
    rt = app_mod.create_app(default_settings(settings_class(settings_mod)))
    rt.document()
    doc = (pkg.__doc__ or f"Decile {spec.name} service.").strip()
    generated = AsyncAPI(
        rt.broker,
        title=spec.name,
        version=_service_version(spec),
        description=f"{doc}\n\nGenerated by `python -m decile.proto` from "
        f"`{spec.module}.app.create_app`; do not edit.",
        schema_version=ASYNCAPI_VERSION,
    ).to_specification().to_jsonable()
    batched = {
        sub.specification.config.title_
        for sub in rt.broker.subscribers
        if getattr(getattr(sub, "pull_sub", None), "batch", False)
    }
    return _fix_asyncapi(generated, batched)


def _event_components() -> dict[str, Any]:
    """Every event (and its nested parts) as components, plus the any-event unions."""
    _, top = models_json_schema(
        [(cls, SCHEMA_MODE) for cls in ALL_EVENTS], ref_template=_REF + "{model}"
    )
    schemas: dict[str, Any] = top["$defs"]
    for cls in ALL_EVENTS:
        schemas[cls.__name__]["description"] = event_schema(cls)["description"]

    def union(classes: list[type[Event]], what: str) -> dict[str, Any]:
        return {
            "title": what,
            "description": f"{what}; `type` names the class and the decoder accepts any of "
            f"them. Columnar ones travel as Arrow IPC (Content-Type `{codec.ARROW_CT}`).",
            "oneOf": [{"$ref": _REF + c.__name__} for c in classes],
            "discriminator": "type",
        }

    schemas[_ANY_EVENT] = union(list(ALL_EVENTS), "Any Decile event")
    schemas[_ANY_COLUMNAR] = union(
        [c for c in ALL_EVENTS if issubclass(c, ColumnarEvent)], "Any columnar event"
    )
    return schemas


def _headers_schema() -> dict[str, Any]:
    """The headers ``decile.bus.Bus`` sets on every publish (see ``codec.headers_for``)."""
    return {
        "type": "object",
        "description": "Set by decile.bus.Bus on every publish. The body alone is enough "
        "to decode; deduplication (server window and consumer) relies on Nats-Msg-Id.",
        "properties": {
            codec.H_MSG_ID: {"type": "string", "description": "the event id (UUIDv7)"},
            codec.H_TYPE: {"type": "string", "description": "the event's `type`"},
            codec.H_SCHEMA: {"type": "string", "description": "the event's `schema_version`"},
            codec.H_TRACE: {"type": "string", "description": "the event's `trace_id`"},
            codec.H_CONTENT: {"type": "string", "enum": [codec.JSON_CT, codec.ARROW_CT]},
        },
    }


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _fix_asyncapi(doc: dict[str, Any], batched: set[str]) -> dict[str, Any]:
    """Make FastStream's document say what actually travels.

    - A batch pull handler takes ``list[X]`` but each message is one ``X``: unwrap.
    - A handler typed with the base ``Event`` (or ``ColumnarEvent``) accepts any
      registered event (the codec decodes by ``type``): a discriminated union.
    - Columnar payloads are Arrow IPC, not the default JSON.
    - The correlation id is our ``Decile-Trace`` header; FastStream's own
      ``correlation_id`` header is never sent (Bus publishes through nats-py).
    """
    doc = copy.deepcopy(doc)
    components = doc.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    events = _event_components()
    for name, schema in events.items():
        schemas[name] = schema  # same pydantic source; ours also carries the wire note
    for base, union in ((Event, _ANY_EVENT), (ColumnarEvent, _ANY_COLUMNAR)):
        for node in _walk(doc):
            if node.get("$ref") == _REF + base.__name__:
                node["$ref"] = _REF + union
        if base.__name__ not in events:
            schemas.pop(base.__name__, None)

    columnar = {_REF + c.__name__ for c in ALL_EVENTS if issubclass(c, ColumnarEvent)}
    columnar.add(_REF + _ANY_COLUMNAR)
    for key, message in components.get("messages", {}).items():
        payload = message.get("payload", {})
        ref = payload.get("$ref", "")
        payload_name = _unescape(ref.removeprefix(_REF)) if ref.startswith(_REF) else None
        channel = key.rsplit(":", 1)[0]
        if channel in batched and payload_name in schemas:
            body = schemas[payload_name]
            if body.get("type") == "array" and "items" in body:
                message["payload"] = body["items"]
                del schemas[payload_name]
                message["description"] = (
                    "One event per message; the handler pulls them in batches."
                )
        if message.get("payload", {}).get("$ref") in columnar:
            message["contentType"] = codec.ARROW_CT
        message["headers"] = _headers_schema()
        message["correlationId"] = {
            "location": f"$message.header#/{codec.H_TRACE}",
            "description": "trace id shared by every event caused by the same input",
        }
    _drop_unused(schemas, doc)
    return doc


def _unescape(ref: str) -> str:
    return ref.replace("%3E", ">").replace("%2A", "*")


def _drop_unused(schemas: dict[str, Any], doc: dict[str, Any]) -> None:
    """Keep only components reachable from the document outside ``components.schemas``."""
    rest = {k: v for k, v in doc.items() if k != "components"}
    rest["_messages"] = doc.get("components", {}).get("messages", {})
    todo = [n["$ref"] for n in _walk(rest) if isinstance(n.get("$ref"), str)]
    keep: set[str] = set()
    while todo:
        ref = todo.pop()
        if not ref.startswith(_REF):
            continue
        name = _unescape(ref.removeprefix(_REF))
        if name in keep or name not in schemas:
            continue
        keep.add(name)
        todo.extend(n["$ref"] for n in _walk(schemas[name]) if isinstance(n.get("$ref"), str))
    for name in [n for n in schemas if n not in keep]:
        del schemas[name]


# ---- the whole directory ----------------------------------------------------------


def readme(services: list[str]) -> str:
    events = "\n".join(f"- `{schema_path(c)}`" for c in ALL_EVENTS)
    docs = "\n".join(f"- `asyncapi/{s}.json`" for s in services) or "- (no service installed)"
    return f"""# proto/: Decile's event contracts

Generated from the code by `python -m decile.proto` (`make proto`); do not edit
by hand. CI and `tests/unit/test_proto.py` run `python -m decile.proto --check`,
which fails when these files are stale, missing or extra.

## schemas/

One JSON Schema (draft 2020-12) per event in `decile.events.ALL_EVENTS`, named
`<type>.v<schema_version>.json`. A breaking change is a new `schema_version`
(a new file), never an edit. The schemas are pydantic's validation mode: what
the decoder accepts. Ordinary events travel as that JSON object; columnar
events (`BarBatch`, `FeatureBatch`) travel as one Arrow IPC stream, described
in the schema's top-level `description`.

{events}

## asyncapi/

One AsyncAPI {ASYNCAPI_VERSION} document per installed service, generated by FastStream
from the service's `create_app` with default settings (namespace ""), then
corrected to the wire: batch consumers receive one event per message,
consumers typed with the base `Event` accept any event (a union on `type`),
columnar payloads are `{codec.ARROW_CT}`, and the headers and
correlation id are Decile's (`{codec.H_MSG_ID}`, `{codec.H_TYPE}`, `{codec.H_SCHEMA}`,
`{codec.H_TRACE}`, `{codec.H_CONTENT}`). They list what a service consumes;
what it publishes goes through `decile.bus.Bus` (nats-py, not a FastStream
publisher) and is not in them yet.

{docs}

View one with `npx @asyncapi/cli start studio asyncapi/<service>.json`.
"""


def render() -> dict[str, bytes]:
    """Every file under ``proto/`` by relative path, in memory."""
    files = {schema_path(cls): dumps(event_schema(cls)) for cls in ALL_EVENTS}
    services = [spec for spec in FLEET if installed(spec)]
    for spec in services:
        files[f"asyncapi/{spec.name}.json"] = dumps(service_asyncapi(spec))
    files["README.md"] = readme([s.name for s in services]).encode()
    return files


def _on_disk(root: Path) -> set[str]:
    found = {p.relative_to(root).as_posix() for d in ("schemas", "asyncapi")
             for p in (root / d).glob("*.json")}
    if (root / "README.md").exists():
        found.add("README.md")
    return found


def check(root: Path, files: dict[str, bytes] | None = None) -> list[str]:
    """Differences between ``root`` and a fresh render: one line per file, empty if current."""
    files = render() if files is None else files
    problems = []
    for rel in sorted(files):
        path = root / rel
        if not path.exists():
            problems.append(f"missing: {rel}")
        elif path.read_bytes() != files[rel]:
            problems.append(f"stale: {rel}")
    problems += [f"extra: {rel}" for rel in sorted(_on_disk(root) - set(files))]
    return problems


def write(root: Path, files: dict[str, bytes] | None = None) -> list[str]:
    """Bring ``root`` up to date; returns what changed. Extra generated files are removed."""
    files = render() if files is None else files
    changed = check(root, files)
    for rel, body in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_bytes() != body:
            path.write_bytes(body)
    for rel in sorted(_on_disk(root) - set(files)):
        (root / rel).unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m decile.proto", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if proto/ differs from the code; write nothing")
    parser.add_argument("--dir", type=Path, default=Path("proto"), help="default: ./proto")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.dir)
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print(f"{args.dir} is out of date: run `make proto`", file=sys.stderr)
            return 1
        print(f"{args.dir} is current")
        return 0
    changed = write(args.dir)
    for line in changed:
        print(line.replace("missing", "created").replace("stale", "updated")
              .replace("extra", "removed"))
    print(f"{args.dir}: {len(changed)} file(s) changed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
