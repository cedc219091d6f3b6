"""Reason codes: the stable vocabulary of every refusal in the fleet.

A quarantine, veto, risk rejection, model rejection or dead letter carries
``gate`` (the check's name), ``code`` (a member below) and ``values`` (what was
observed and the limit). Codes are part of the event contract: add members,
never rename or remove one.
"""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    # market data quality (md.quarantine.<code>)
    NON_FINITE = "NON_FINITE"
    NON_POSITIVE_PRICE = "NON_POSITIVE_PRICE"
    NEGATIVE_VOLUME = "NEGATIVE_VOLUME"
    HIGH_LOW_INCONSISTENT = "HIGH_LOW_INCONSISTENT"
    MISALIGNED = "MISALIGNED"
    DUPLICATE = "DUPLICATE"
    OUT_OF_ORDER = "OUT_OF_ORDER"
    UNFINISHED = "UNFINISHED"
    LATE = "LATE"  # arrived after its cycle was published (listed there as missing)
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    INVALID_SYMBOL = "INVALID_SYMBOL"  # cannot be a subject token (e.g. 'BRK.B')
    # bus and contracts (dlq.<service>)
    DECODE_ERROR = "DECODE_ERROR"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    UNKNOWN_EVENT_TYPE = "UNKNOWN_EVENT_TYPE"
    UNKNOWN_SCHEMA_VERSION = "UNKNOWN_SCHEMA_VERSION"
    HANDLER_ERROR = "HANDLER_ERROR"
    # features and models
    FEATURE_SCHEMA_MISMATCH = "FEATURE_SCHEMA_MISMATCH"
    FEATURE_CONSTANT = "FEATURE_CONSTANT"
    FEATURE_ALL_NULL = "FEATURE_ALL_NULL"
    FEATURE_NULL_RATE = "FEATURE_NULL_RATE"
    TOO_MANY_MISSING_SYMBOLS = "TOO_MANY_MISSING_SYMBOLS"
    MODEL_STALE = "MODEL_STALE"
    NO_MODEL = "NO_MODEL"  # no production entry model loaded yet
    MODEL_SHA_MISMATCH = "MODEL_SHA_MISMATCH"
    MODEL_UNLOADABLE = "MODEL_UNLOADABLE"
    MODEL_INPUT_MISMATCH = "MODEL_INPUT_MISMATCH"
    MODEL_GOLDEN_MISMATCH = "MODEL_GOLDEN_MISMATCH"
    MODEL_NON_FINITE_OUTPUT = "MODEL_NON_FINITE_OUTPUT"
    FEATURE_DRIFT = "FEATURE_DRIFT"
    WIN_RATE_DEVIATION = "WIN_RATE_DEVIATION"
    # confirm
    CONFIRM_STALE_WINDOW = "CONFIRM_STALE_WINDOW"
    CONFIRM_LOW_PROBABILITY = "CONFIRM_LOW_PROBABILITY"
    CONFIRM_NO_MODEL = "CONFIRM_NO_MODEL"  # no usable confirm model and without_model=veto
    # risk gates
    MASTER_KILL = "MASTER_KILL"
    STALE_DATA = "STALE_DATA"
    SYMBOL_KILL = "SYMBOL_KILL"
    STRATEGY_KILL = "STRATEGY_KILL"
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    DRAWDOWN_LIMIT = "DRAWDOWN_LIMIT"
    MAX_OPEN_POSITIONS = "MAX_OPEN_POSITIONS"
    SYMBOL_EXPOSURE = "SYMBOL_EXPOSURE"
    CLUSTER_EXPOSURE = "CLUSTER_EXPOSURE"
    BOOK_CORRELATION = "BOOK_CORRELATION"
    CVAR_BUDGET = "CVAR_BUDGET"
    NEGATIVE_NET_EV = "NEGATIVE_NET_EV"
    COSTS_EXCEED_EDGE = "COSTS_EXCEED_EDGE"
    WIN_PROBABILITY_FLOOR = "WIN_PROBABILITY_FLOOR"
