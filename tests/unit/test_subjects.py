"""Subject and stream names: builders, symbol tokens, namespaces, parsing."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest

from decile.subjects import (
    STREAMS,
    Parsed,
    SubjectError,
    Subjects,
    symbol_token,
    token_symbol,
)

SUBJECTS = Subjects()
NS = Subjects("t1a2b3c4")

# builder name -> (argument, subject without namespace)
BUILDERS: dict[str, tuple[str, str]] = {
    "md_bars": ("5m", "md.bars.5m"),
    "md_quarantine": ("HIGH_LOW_INCONSISTENT", "md.quarantine.HIGH_LOW_INCONSISTENT"),
    "feat_batch": ("1h", "feat.batch.1h"),
    "ml_candidate": ("BTC/USDT", "ml.candidate.BTC-USDT"),
    "ml_confirmed": ("ETH/USDT", "ml.confirmed.ETH-USDT"),
    "ml_vetoed": ("SOL/USDT", "ml.vetoed.SOL-USDT"),
    "ml_cycle": ("5m", "ml.cycle.5m"),
    "risk_approved": ("BTC/USDT", "risk.approved.BTC-USDT"),
    "risk_rejected": ("1000PEPE/USDT", "risk.rejected.1000PEPE-USDT"),
    "risk_kill": ("master", "risk.kill.master"),
    "exec_order": ("BTC/USDT", "exec.order.BTC-USDT"),
    "exec_fill": ("BTC/USDT", "exec.fill.BTC-USDT"),
    "exec_closed": ("BTC/USDT", "exec.closed.BTC-USDT"),
    "model_activated": ("entry", "model.activated.entry"),
    "model_rejected": ("confirm", "model.rejected.confirm"),
    "model_retrain": ("risk", "model.retrain.risk"),
    "dlq": ("model-watcher", "dlq.model-watcher"),
}
SYMBOL_BUILDERS = [name for name, (arg, _) in BUILDERS.items() if "/" in arg]
NOT_BUILDERS = {"all", "stream", "stream_subjects", "parse"}

GOOD_SYMBOLS = [
    "BTC/USDT",
    "ETH/BTC",
    "1000PEPE/USDT",
    "1INCH/USDT",
    "BTC/USDT_PERP",
    "USDC_E/USDT",
    "A/B",
    "X",
    "BTCUSDT",
    "ES_2024Z",
    "A" * 32 + "/" + "B" * 32,
]
BAD_SYMBOLS = [
    "BTC.USDT",
    "btc/usdt",
    "Btc/USDT",
    "BTC USDT",
    "BTC-USDT",
    "A/B/C",
    "*",
    ">",
    "BTC/*",
    "BTC/>",
    "",
    "/USDT",
    "BTC/",
    "_BTC/USDT",
    "BTC/USDT\n",
    "\nBTC/USDT",
    "BTC/USDT ",
    "A" * 33 + "/USDT",
]


def _public_methods(cls: type) -> set[str]:
    return {n for n, m in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}


def _builder(subjects: Subjects, name: str) -> Callable[[str], str]:
    method: Callable[[str], str] = getattr(subjects, name)
    return method


def test_every_builder_is_covered_by_these_tests() -> None:
    assert _public_methods(Subjects) - NOT_BUILDERS == set(BUILDERS)


@pytest.mark.parametrize(("name", "arg", "expected"), [(n, a, s) for n, (a, s) in BUILDERS.items()])
def test_builder_gives_the_documented_subject(name: str, arg: str, expected: str) -> None:
    assert _builder(SUBJECTS, name)(arg) == expected


@pytest.mark.parametrize(("name", "arg", "expected"), [(n, a, s) for n, (a, s) in BUILDERS.items()])
def test_namespace_prefixes_every_subject(name: str, arg: str, expected: str) -> None:
    assert _builder(NS, name)(arg) == f"t1a2b3c4.{expected}"


@pytest.mark.parametrize(("name", "arg", "expected"), [(n, a, s) for n, (a, s) in BUILDERS.items()])
def test_parse_inverts_every_builder(name: str, arg: str, expected: str) -> None:
    for subjects in (SUBJECTS, NS):
        parsed = subjects.parse(_builder(subjects, name)(arg))
        tokens = expected.split(".")
        if tokens[0] == "dlq":
            assert parsed == Parsed("dlq", "dlq", arg)
        else:
            assert parsed == Parsed(tokens[0], tokens[1], tokens[2])
        if "/" in arg:
            assert parsed.symbol == arg


@pytest.mark.parametrize("name", SYMBOL_BUILDERS)
@pytest.mark.parametrize("symbol", BAD_SYMBOLS)
def test_symbol_builders_refuse_symbols_that_cannot_be_tokens(name: str, symbol: str) -> None:
    with pytest.raises(SubjectError, match="cannot be a subject token"):
        _builder(SUBJECTS, name)(symbol)


@pytest.mark.parametrize("symbol", GOOD_SYMBOLS)
def test_symbol_and_token_round_trip(symbol: str) -> None:
    token = symbol_token(symbol)
    assert "/" not in token
    assert "." not in token
    assert token_symbol(token) == symbol
    assert symbol_token(token_symbol(token)) == token


def test_symbol_token_replaces_the_slash_with_a_dash() -> None:
    assert symbol_token("BTC/USDT") == "BTC-USDT"
    assert token_symbol("BTC-USDT") == "BTC/USDT"


@pytest.mark.parametrize("symbol", BAD_SYMBOLS)
def test_symbol_token_refuses_with_a_clear_error(symbol: str) -> None:
    with pytest.raises(SubjectError) as info:
        symbol_token(symbol)
    message = str(info.value)
    assert repr(symbol) in message
    assert "cannot be a subject token" in message
    assert "BTC/USDT" in message  # says what a good one looks like


def test_symbol_token_refuses_a_non_string() -> None:
    with pytest.raises(SubjectError):
        symbol_token(42)  # type: ignore[arg-type]


def test_symbol_error_is_a_value_error() -> None:
    assert issubclass(SubjectError, ValueError)


@pytest.mark.parametrize(
    "token", ["BTC/USDT", "BTC-USDT-PERP", "btc-usdt", "BTC.USDT", "-USDT", "BTC-", "", "*", ">"]
)
def test_token_symbol_refuses_tokens_that_are_not_symbol_tokens(token: str) -> None:
    with pytest.raises(SubjectError, match="is not a symbol token"):
        token_symbol(token)


@pytest.mark.parametrize("tf", ["5m", "15m", "1h", "4h", "1d", "1w"])
def test_timeframes_are_accepted(tf: str) -> None:
    assert SUBJECTS.md_bars(tf) == f"md.bars.{tf}"
    assert SUBJECTS.feat_batch(tf) == f"feat.batch.{tf}"


@pytest.mark.parametrize("tf", ["", "5", "m5", "0m", "05m", "5M", "5s", "5m.x", "*", ">", "5m\n"])
def test_bad_timeframes_are_refused(tf: str) -> None:
    with pytest.raises(SubjectError, match="timeframe"):
        SUBJECTS.md_bars(tf)
    with pytest.raises(SubjectError, match="timeframe"):
        SUBJECTS.feat_batch(tf)


@pytest.mark.parametrize(
    "name",
    ["md_quarantine", "risk_kill", "model_activated", "model_rejected", "model_retrain", "dlq"],
)
@pytest.mark.parametrize("value", ["", "a.b", "*", ">", "a b", "x" * 65, "risk\n"])
def test_token_builders_refuse_values_that_are_not_one_token(name: str, value: str) -> None:
    with pytest.raises(SubjectError, match="cannot be a subject token"):
        _builder(SUBJECTS, name)(value)


def test_all_builds_family_and_kind_wildcards() -> None:
    assert SUBJECTS.all("md") == "md.>"
    assert SUBJECTS.all("md", "bars") == "md.bars.>"
    assert SUBJECTS.all("ml", "candidate") == "ml.candidate.>"
    assert NS.all("md") == "t1a2b3c4.md.>"
    assert NS.all("risk", "approved") == "t1a2b3c4.risk.approved.>"


@pytest.mark.parametrize("name", list(STREAMS))
def test_streams_are_named_and_capture_their_family(name: str) -> None:
    family = STREAMS[name]
    assert SUBJECTS.stream(name) == name
    assert SUBJECTS.stream_subjects(name) == [f"{family}.>"]


@pytest.mark.parametrize("name", list(STREAMS))
def test_namespace_prefixes_stream_names_and_their_subjects(name: str) -> None:
    assert NS.stream(name) == f"t1a2b3c4_{name}"
    assert NS.stream_subjects(name) == [f"t1a2b3c4.{STREAMS[name]}.>"]


def test_every_builder_subject_is_captured_by_exactly_one_stream() -> None:
    for name, (arg, _) in BUILDERS.items():
        family = _builder(SUBJECTS, name)(arg).split(".")[0]
        assert list(STREAMS.values()).count(family) == 1, name


def test_an_unknown_stream_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(SubjectError, match=r"unknown stream 'BARS'; known: MD, "):
        SUBJECTS.stream("BARS")
    with pytest.raises(SubjectError, match="unknown stream"):
        NS.stream_subjects("md")


@pytest.mark.parametrize(
    "subject",
    [
        "",
        "md",
        "md.bars",
        "md.bars.5m.extra",
        "orders.new.BTC-USDT",
        "foo.bar.baz",
        "md.foo.5m",  # a known family with a kind no builder makes
        "feat.bars.5m",
        "dlq",
        "dlq.risk.extra",
        "t1a2b3c4.md.bars.5m",  # someone else's namespace
        "_INBOX.abc.def",
        "$JS.API.STREAM",
    ],
)
def test_parse_refuses_foreign_subjects(subject: str) -> None:
    with pytest.raises(SubjectError):
        SUBJECTS.parse(subject)


@pytest.mark.parametrize(
    "subject",
    ["md.bars.5m", "other.md.bars.5m", "t1a2b3c4x.md.bars.5m", "t1a2b3c4", "dlq.risk"],
)
def test_parse_refuses_subjects_outside_its_namespace(subject: str) -> None:
    with pytest.raises(SubjectError):
        NS.parse(subject)


@pytest.mark.parametrize(
    "subject", ["md.bars.>", "md.bars.*", "md.*.5m", "ml.candidate.>", "dlq.>", "md.>.x"]
)
def test_parse_refuses_wildcards_because_it_reads_concrete_subjects(subject: str) -> None:
    with pytest.raises(SubjectError):
        SUBJECTS.parse(subject)


def test_parsed_symbol_refuses_a_key_that_is_not_a_symbol_token() -> None:
    parsed = SUBJECTS.parse("md.bars.5m")
    assert parsed.key == "5m"
    with pytest.raises(SubjectError):
        _ = Parsed("ml", "candidate", "btc-usdt").symbol
