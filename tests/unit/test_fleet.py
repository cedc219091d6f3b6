"""The fleet registry: order, naming, ports, installed detection."""

from __future__ import annotations

import pytest

from decile.fleet import FLEET, ServiceSpec, by_name, installed, module_for, needs_of


def test_lists_every_service_in_start_order() -> None:
    assert [s.name for s in FLEET] == [
        "ingest", "feature", "inference", "confirm", "risk", "execution", "model-watcher",
        "recorder",
    ]  # fmt: skip
    assert [s.http_port for s in FLEET] == list(range(9101, 9109))


def test_module_names_follow_the_service_name() -> None:
    assert by_name("model-watcher").module == "decile_model_watcher"
    assert all(s.module == module_for(s.name) for s in FLEET)
    assert all(s.module == "decile_" + s.name.replace("-", "_") for s in FLEET)


def test_names_and_ports_are_unique() -> None:
    assert len({s.name for s in FLEET}) == len(FLEET)
    assert len({s.http_port for s in FLEET}) == len(FLEET)


def test_every_service_needs_nats_and_only_known_servers() -> None:
    assert all("nats" in s.needs for s in FLEET)
    assert needs_of(FLEET) <= {"nats", "postgres", "redis"}


def test_a_module_that_is_not_installed_is_reported_as_not_installed() -> None:
    assert not installed(ServiceSpec("ghost", "decile_ghost_service_that_does_not_exist", 9199))
    assert not installed(ServiceSpec("dotted", "no_such_pkg.sub", 9198))


def test_an_importable_module_is_reported_installed() -> None:
    assert installed(ServiceSpec("lib", "decile", 9197))


def test_rejects_an_unknown_server_need() -> None:
    with pytest.raises(ValueError, match="unknown needs"):
        ServiceSpec("bad", "decile_bad", 9196, frozenset({"kafka"}))


def test_unknown_service_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="ingest"):
        by_name("nope")
