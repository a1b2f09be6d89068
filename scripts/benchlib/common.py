"""What every part of the benchmark's orchestrator shares: its error, its progress lines, its forks."""

from __future__ import annotations

import multiprocessing as mp
import sys

FORK = mp.get_context("fork")
"""Workers are forked: they inherit the measured functions without pickling them."""


class BenchError(RuntimeError):
    """A measurement could not be made (the message says which and why)."""


def progress(text: str) -> None:
    """One line on stderr about where the run is."""
    sys.stderr.write(f"bench: {text}\n")
    sys.stderr.flush()
