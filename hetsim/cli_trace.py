"""The old home of ``hetsim trace``, kept so ``from hetsim.cli_trace import trace_app`` works;
the command lives in :mod:`hetsim.cli.trace`."""

from hetsim.cli.trace import trace_app

__all__ = ["trace_app"]
