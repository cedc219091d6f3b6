"""Every NATS subject and stream name of the fleet is built and parsed here.

Services never write subject literals. Symbols map reversibly to one subject
token (``BTC/USDT`` <-> ``BTC-USDT``); a symbol that could not survive the trip
(dots, wildcards, spaces, lower case, a dash of its own) is refused with
:class:`SubjectError` rather than silently mangled.

A namespace (``DECILE_NATS__NAMESPACE``) prefixes every subject and stream, so
two fleets, or two tests, share one server without seeing each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Anchored with \Z, not $: "$" also matches before a trailing newline, and a
# newline in a subject would end the NATS protocol line.
SYMBOL_PATTERN = r"[A-Z0-9][A-Z0-9_]{0,31}(?:/[A-Z0-9][A-Z0-9_]{0,31})?"  # unanchored
SYMBOL_RE = re.compile(rf"^{SYMBOL_PATTERN}\Z")
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
TF_RE = re.compile(r"^[1-9][0-9]*[mhdw]\Z")

# stream name -> subject family it captures (DESIGN.md, "Streams")
STREAMS: dict[str, str] = {
    "MD": "md",
    "FEAT": "feat",
    "SIG": "ml",
    "RISK": "risk",
    "EXEC": "exec",
    "MODEL": "model",
    "DLQ": "dlq",
}

# family -> the kinds its builders produce (``family.kind.key``); dlq is ``dlq.<service>``
KINDS: dict[str, frozenset[str]] = {
    "md": frozenset({"bars", "quarantine"}),
    "feat": frozenset({"batch"}),
    "ml": frozenset({"candidate", "confirmed", "vetoed", "cycle"}),
    "risk": frozenset({"approved", "rejected", "kill"}),
    "exec": frozenset({"order", "fill", "closed"}),
    "model": frozenset({"activated", "rejected", "retrain"}),
}


class SubjectError(ValueError):
    """A value that cannot be (or was not) a subject of ours."""


def symbol_token(symbol: str) -> str:
    """``BTC/USDT`` -> ``BTC-USDT``; refuses symbols that cannot round-trip."""
    if not isinstance(symbol, str) or not SYMBOL_RE.match(symbol):
        raise SubjectError(
            f"symbol {symbol!r} cannot be a subject token: use upper-case letters, digits, "
            "'_' and at most one '/' (e.g. 'BTC/USDT')"
        )
    return symbol.replace("/", "-")


def token_symbol(token: str) -> str:
    """``BTC-USDT`` -> ``BTC/USDT``; the inverse of :func:`symbol_token`."""
    symbol = token.replace("-", "/")
    if "/" in token or token.count("-") > 1 or not SYMBOL_RE.match(symbol):
        raise SubjectError(f"subject token {token!r} is not a symbol token")
    return symbol


def _token(kind: str, value: str) -> str:
    if not TOKEN_RE.match(value):
        raise SubjectError(f"{kind} {value!r} cannot be a subject token ([A-Za-z0-9_-], 1-64)")
    return value


def _tf(tf: str) -> str:
    if not TF_RE.match(tf):
        raise SubjectError(f"timeframe {tf!r} is not like 5m, 1h, 4h, 1d")
    return tf


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed subject: ``family.kind.key`` (namespace removed)."""

    family: str
    kind: str
    key: str

    @property
    def symbol(self) -> str:
        return token_symbol(self.key)


@dataclass(frozen=True, slots=True)
class Subjects:
    """Subject and stream names for one namespace ("" in production)."""

    namespace: str = ""

    def _s(self, *tokens: str) -> str:
        return ".".join((self.namespace, *tokens) if self.namespace else tokens)

    # market data
    def md_bars(self, tf: str) -> str:
        return self._s("md", "bars", _tf(tf))

    def md_quarantine(self, reason: str) -> str:
        return self._s("md", "quarantine", _token("reason", reason))

    # features
    def feat_batch(self, tf: str) -> str:
        return self._s("feat", "batch", _tf(tf))

    # signals
    def ml_candidate(self, symbol: str) -> str:
        return self._s("ml", "candidate", symbol_token(symbol))

    def ml_confirmed(self, symbol: str) -> str:
        return self._s("ml", "confirmed", symbol_token(symbol))

    def ml_vetoed(self, symbol: str) -> str:
        return self._s("ml", "vetoed", symbol_token(symbol))

    def ml_cycle(self, tf: str) -> str:
        return self._s("ml", "cycle", _tf(tf))

    # risk
    def risk_approved(self, symbol: str) -> str:
        return self._s("risk", "approved", symbol_token(symbol))

    def risk_rejected(self, symbol: str) -> str:
        return self._s("risk", "rejected", symbol_token(symbol))

    def risk_kill(self, scope: str) -> str:
        return self._s("risk", "kill", _token("scope", scope))

    # execution
    def exec_order(self, symbol: str) -> str:
        return self._s("exec", "order", symbol_token(symbol))

    def exec_fill(self, symbol: str) -> str:
        return self._s("exec", "fill", symbol_token(symbol))

    def exec_closed(self, symbol: str) -> str:
        return self._s("exec", "closed", symbol_token(symbol))

    # models
    def model_activated(self, family: str) -> str:
        return self._s("model", "activated", _token("family", family))

    def model_rejected(self, family: str) -> str:
        return self._s("model", "rejected", _token("family", family))

    def model_retrain(self, family: str) -> str:
        return self._s("model", "retrain", _token("family", family))

    # dead letters
    def dlq(self, service: str) -> str:
        return self._s("dlq", _token("service", service))

    # wildcards for subscribers
    def all(self, family: str, kind: str | None = None) -> str:
        """``md.>``, ``md.bars.>``, ``ml.candidate.>``..."""
        return self._s(family, kind, ">") if kind else self._s(family, ">")

    # streams
    def stream(self, name: str) -> str:
        if name not in STREAMS:
            raise SubjectError(f"unknown stream {name!r}; known: {', '.join(STREAMS)}")
        return f"{self.namespace}_{name}" if self.namespace else name

    def stream_subjects(self, name: str) -> list[str]:
        self.stream(name)
        return [self.all(STREAMS[name])]

    def parse(self, subject: str) -> Parsed:
        """Split a concrete subject into family, kind and key; refuses foreign ones.

        Wildcards, unknown families or kinds and extra tokens are all foreign.
        """
        tokens = subject.split(".")
        if self.namespace:
            if not tokens or tokens[0] != self.namespace:
                raise SubjectError(f"subject {subject!r} is outside namespace {self.namespace!r}")
            tokens = tokens[1:]
        if len(tokens) == 2 and tokens[0] == "dlq" and TOKEN_RE.match(tokens[1]):
            return Parsed("dlq", "dlq", tokens[1])
        if (
            len(tokens) == 3
            and tokens[1] in KINDS.get(tokens[0], ())
            and TOKEN_RE.match(tokens[2])
        ):
            return Parsed(*tokens)
        raise SubjectError(f"subject {subject!r} is not a Decile subject")
