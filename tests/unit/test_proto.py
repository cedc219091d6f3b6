"""proto/ is the checked-in contract: it must match the code it is generated from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from decile import proto
from decile.events import ALL_EVENTS, ColumnarEvent

PROTO = Path(__file__).resolve().parents[2] / "proto"


@pytest.fixture(scope="module")
def rendered() -> dict[str, bytes]:
    return proto.render()


def test_proto_dir_is_current(rendered: dict[str, bytes]) -> None:
    problems = proto.check(PROTO, rendered)
    assert not problems, "proto/ is out of date, run `make proto`:\n" + "\n".join(problems)


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda c: c.type_name)
def test_every_event_type_has_a_schema_file(cls: type) -> None:
    path = PROTO / proto.schema_path(cls)
    assert path.is_file(), f"no schema file {path}"
    schema = json.loads(path.read_text())
    assert schema["properties"]["type"]["const"] == cls.type_name


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda c: c.type_name)
def test_validation_and_serialization_schemas_agree(cls: type) -> None:
    """One file describes both directions only while pydantic's two modes agree."""
    assert cls.model_json_schema(mode="validation") == cls.model_json_schema(
        mode="serialization"
    )


def test_columnar_schemas_say_the_matrix_travels_as_arrow() -> None:
    for cls in ALL_EVENTS:
        description = proto.event_schema(cls)["description"]
        assert ("Arrow IPC" in description) == issubclass(cls, ColumnarEvent), cls.type_name


def test_rendering_twice_gives_identical_bytes(rendered: dict[str, bytes]) -> None:
    assert proto.render() == rendered


def test_the_environment_does_not_leak_into_the_documents(
    rendered: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DECILE_NATS__URL", "nats://elsewhere.example:4999")
    monkeypatch.setenv("DECILE_NATS__NAMESPACE", "ci")
    assert proto.render() == rendered


def test_check_names_stale_missing_and_extra_files(
    rendered: dict[str, bytes], tmp_path: Path
) -> None:
    proto.write(tmp_path, rendered)
    assert proto.check(tmp_path, rendered) == []
    stale, missing = sorted(rendered)[:2]
    (tmp_path / stale).write_bytes(b"{}\n")
    (tmp_path / missing).unlink()
    (tmp_path / "schemas" / "Gone.v1.json").write_text("{}\n")
    assert proto.check(tmp_path, rendered) == [
        f"stale: {stale}", f"missing: {missing}", "extra: schemas/Gone.v1.json"
    ]
    proto.write(tmp_path, rendered)
    assert proto.check(tmp_path, rendered) == []
