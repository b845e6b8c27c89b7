"""Progress on stderr, so that stdout carries only the table.

A line per phase always; on a terminal, also a status line rewritten in
place while requests are in flight (a pipe or a log file would fill up with
those, so they are left out there).
"""

from __future__ import annotations

from typing import TextIO


class Progress:
    """Writes ``bench: ...`` lines to one stream; owns no global state."""

    def __init__(self, stream: TextIO, *, quiet: bool = False) -> None:
        self._stream = stream
        self._quiet = quiet
        self._live = not quiet and stream.isatty()
        self._status_shown = False

    def silence(self) -> None:
        """--quiet: from now on, say nothing."""
        self._clear_status()
        self._quiet = True
        self._live = False

    def phase(self, message: str) -> None:
        """A line that stays: a server started, a run begun or finished."""
        if self._quiet:
            return
        self._clear_status()
        self._stream.write(f"bench: {message}\n")
        self._stream.flush()

    def status(self, message: str) -> None:
        """A line that the next one replaces (terminals only)."""
        if not self._live:
            return
        self._stream.write(f"\r\x1b[2Kbench: {message}")
        self._stream.flush()
        self._status_shown = True

    def done(self) -> None:
        """Remove any status line before the program prints its results."""
        self._clear_status()

    def _clear_status(self) -> None:
        if self._status_shown:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
            self._status_shown = False
