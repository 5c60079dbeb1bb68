"""fieldlearn: aggregate computing and aggregate learning on a vectorised field-calculus runtime."""
from .calculus import (
    AlignmentError,
    Field,
    FieldError,
    Inbox,
    NbrField,
    Network,
    ParameterError,
    Program,
    RoundVM,
    Trace,
    aggregate,
    align,
    branch,
    clock,
    constant,
    distances,
    evolving,
    exchange,
    local,
    maximum,
    mid,
    minimum,
    mux,
    nbr,
    nbr_ids,
    nbr_sense,
    program,
    rep,
    resource,
    run,
    sense,
    share,
    uid,
)

__version__ = "0.1.0"

__all__ = [
    "AlignmentError", "Field", "FieldError", "Inbox", "NbrField", "Network", "ParameterError", "Program", "RoundVM", "Trace", "aggregate", "align",
    "branch", "clock", "constant", "distances", "evolving", "exchange", "local", "maximum", "mid", "minimum", "mux", "nbr", "nbr_ids", "nbr_sense",
    "program", "rep", "resource", "run", "sense", "share", "uid",
]
