"""Settings: nested DECILE_ variables, frozen, checked at start, secrets redacted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from decile.config import NatsSettings, ServiceSettings, env_name, load_settings, redacted

LOAD = "from decile.config import ServiceSettings, load_settings; load_settings(ServiceSettings)"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No DECILE_ variable from the shell or a server fixture leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("DECILE_"):
            monkeypatch.delenv(name)


def _clean_environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DECILE_")}
    return env | extra


def _run_load(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LOAD],
        env=_clean_environ(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_defaults_point_at_local_servers() -> None:
    s = load_settings(ServiceSettings)
    assert s.nats.url == "nats://127.0.0.1:4222"
    assert s.nats.namespace == ""
    assert s.obs.http_port == 9100
    assert s.postgres.dsn.get_secret_value().startswith("postgresql://")


def test_nested_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECILE_NATS__URL", "nats://nats.internal:4222,nats://nats-2:4222")
    monkeypatch.setenv("DECILE_NATS__NAMESPACE", "t1234abcd")
    monkeypatch.setenv("DECILE_POSTGRES__DSN", "postgresql://decile:s3cret@db:5432/decile")
    monkeypatch.setenv("DECILE_OBS__HTTP_PORT", "9105")
    monkeypatch.setenv("DECILE_OBS__LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("DECILE_SERVICE", "risk")
    s = load_settings(ServiceSettings)
    assert s.nats.url == "nats://nats.internal:4222,nats://nats-2:4222"
    assert s.nats.namespace == "t1234abcd"
    assert s.postgres.dsn.get_secret_value() == "postgresql://decile:s3cret@db:5432/decile"
    assert s.obs.http_port == 9105
    assert s.obs.log_level == "DEBUG"
    assert s.service == "risk"
    # untouched sections keep their defaults
    assert s.redis.url.get_secret_value() == "redis://127.0.0.1:6379/0"


def test_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECILE_SERVICE", "risk")
    assert load_settings(ServiceSettings, service="confirm").service == "confirm"


def test_settings_and_their_sections_are_frozen() -> None:
    s = load_settings(ServiceSettings)
    with pytest.raises(ValidationError, match="frozen"):
        s.service = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        s.nats.url = "nats://elsewhere:4222"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        s.obs.http_port = 1  # type: ignore[misc]


def test_a_misspelt_key_in_a_section_is_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        NatsSettings(ulr="nats://x:4222")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "url", ["nats://a:4222", "tls://a:4222", "ws://a:80", "wss://a:443", "nats://a:1,nats://b:2"]
)
def test_nats_url_schemes_that_are_accepted(url: str) -> None:
    assert NatsSettings(url=url).url == url


def test_a_bad_value_in_process_raises_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DECILE_OBS__HTTP_PORT", "70000")
    with pytest.raises(SystemExit) as info:
        load_settings(ServiceSettings)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "DECILE_OBS__HTTP_PORT" in err


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DECILE_OBS__HTTP_PORT", "notaport"),
        ("DECILE_OBS__HTTP_PORT", "-1"),
        ("DECILE_NATS__URL", "http://x"),
        ("DECILE_NATS__NAMESPACE", "has.dot"),
        ("DECILE_OBS__LOG_LEVEL", "LOUD"),
        ("DECILE_NATS__CONNECT_TIMEOUT_S", "0"),
        ("DECILE_SERVICE", "Risk Service"),
    ],
)
def test_a_bad_value_exits_2_with_one_line_naming_the_variable(variable: str, value: str) -> None:
    proc = _run_load(**{variable: value})
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("invalid settings: ")
    assert variable in lines[0]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_a_section_that_is_not_json_exits_2_with_one_line_naming_the_variable() -> None:
    proc = _run_load(DECILE_NATS="{not json")
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "DECILE_NATS" in lines[0]


def test_a_good_environment_loads_in_a_fresh_process() -> None:
    proc = _run_load(DECILE_NATS__URL="nats://x:4222", DECILE_OBS__HTTP_PORT="0")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_env_name_spells_the_variable_of_a_nested_field() -> None:
    assert env_name(("nats", "url")) == "DECILE_NATS__URL"
    assert env_name(("obs", "http_port")) == "DECILE_OBS__HTTP_PORT"
    assert env_name(("service",)) == "DECILE_SERVICE"


def test_redacted_masks_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECILE_POSTGRES__DSN", "postgresql://decile:pg-pass@db/decile")
    monkeypatch.setenv("DECILE_REDIS__URL", "redis://:redis-pass@cache:6379/0")
    monkeypatch.setenv("DECILE_NATS__PASSWORD", "nats-pass")
    monkeypatch.setenv("DECILE_NATS__USER", "decile")
    shown = redacted(load_settings(ServiceSettings))
    text = repr(shown)
    for secret in ("pg-pass", "redis-pass", "nats-pass"):
        assert secret not in text
    assert shown["postgres"] == {"dsn": "**********", "pool_min": 1, "pool_max": 4}
    nats = shown["nats"]
    assert isinstance(nats, dict)
    assert nats["password"] == "**********"
    assert nats["user"] == "decile"  # not a secret: shown as is
    assert nats["url"] == "nats://127.0.0.1:4222"
    redis = shown["redis"]
    assert isinstance(redis, dict)
    assert redis["url"] == "**********"


def test_redacted_settings_are_plain_json_values() -> None:
    shown = redacted(load_settings(ServiceSettings))
    assert json.loads(json.dumps(shown)) == shown
