"""``python -m bench screenshot``: the hello page as headless Chromium draws it.

The book shows its server working with one picture, Figure 21-1: a browser
showing "Hello!" and "Hi from Rust". This command makes ours, so the README's
picture comes from the code and not from a hand: it starts the threaded
edition on a free port (as the benchmark does: the port read from its
``Listening`` line, the server stopped by PID on any exit), points headless
Chromium at ``/`` with ``--screenshot``, checks that a PNG came back, and
writes it (``docs/hello.png`` unless ``--output`` says otherwise).

Chromium is Debian's ``chromium`` package (or ``--chromium PATH``). It runs
with a fresh profile in a temporary directory, talks only to 127.0.0.1 and
is given the flags that a root account and a machine without a display need.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn, TextIO

from bench import servers
from bench.model import THREADED

PROG = "python -m bench screenshot"
DEFAULT_OUTPUT = Path("docs/hello.png")
DEFAULT_SIZE = (640, 240)
MIN_SIDE, MAX_SIDE = 64, 4096
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_TIMEOUT = 60.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

CHROMIUM_FLAGS = (
    "--headless",
    # Root has no user namespaces for Chromium's sandbox; a container has no GPU.
    "--no-sandbox",
    "--disable-gpu",
    # Nothing but the page under test on the network, and no first-run UI.
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
)
"""What headless Chromium needs here; the browser tests start it with these too."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2."""


class ScreenshotError(RuntimeError):
    """Chromium did not produce a picture; the message says why in one line."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised the way Ctrl-C is so that the same clean-up runs."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and still exit status 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _size(text: str) -> tuple[int, int]:
    """``WIDTH,HEIGHT`` (or ``WIDTHxHEIGHT``) in CSS pixels."""
    width, sep, height = text.replace("x", ",").partition(",")
    try:
        size = (int(width), int(height))
    except ValueError:
        size = (0, 0)
    if not sep or not all(MIN_SIDE <= side <= MAX_SIDE for side in size):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not WIDTH,HEIGHT with each side from {MIN_SIDE} to {MAX_SIDE}"
        )
    return size


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description=(
            "Start the threaded edition on a free port, take a screenshot of its "
            "hello page with headless Chromium, write it as a PNG, stop the server."
        ),
    )
    add = parser.add_argument
    add(
        "--output",
        "-o",
        type=Path,
        default=DEFAULT_OUTPUT,
        metavar="FILE",
        help=f"where to write the PNG (default: {DEFAULT_OUTPUT})",
    )
    add(
        "--window-size",
        type=_size,
        default=DEFAULT_SIZE,
        metavar="W,H",
        help="the browser window, and so the picture, in pixels "
        f"(default: {DEFAULT_SIZE[0]},{DEFAULT_SIZE[1]})",
    )
    add(
        "--chromium",
        metavar="PATH",
        help=f"the browser to run (default: the first of {', '.join(CHROMIUM_NAMES)} "
        "on PATH)",
    )
    return parser


def find_chromium(explicit: str | None = None) -> str:
    """The browser's path: ``explicit`` if given, else the first one on PATH."""
    for name in (explicit,) if explicit else CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    if explicit:
        raise UsageError(f"--chromium {explicit!r} is not an executable")
    raise ScreenshotError(
        f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)}; "
        "on Debian: apt-get install chromium)"
    )


def chromium_command(
    chromium: str, url: str, output: Path, size: tuple[int, int], profile: Path
) -> list[str]:
    """The command line that makes Chromium write ``url`` as a PNG to ``output``."""
    width, height = size
    return [
        chromium,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--window-size={width},{height}",
        f"--screenshot={output}",
        url,
    ]


def _last_line(text: str) -> str:
    """The last line worth showing of Chromium's stderr (not its D-Bus noise)."""
    lines = [line for line in text.splitlines() if line.strip() and "dbus" not in line]
    return lines[-1].strip() if lines else "(no output)"


def take_screenshot(
    url: str, size: tuple[int, int], chromium: str, timeout: float = CHROMIUM_TIMEOUT
) -> bytes:
    """Run headless Chromium on ``url``; the PNG it wrote."""
    with tempfile.TemporaryDirectory(
        prefix="hello-screenshot-", ignore_cleanup_errors=True
    ) as scratch:
        picture = Path(scratch) / "page.png"
        command = chromium_command(chromium, url, picture, size, Path(scratch) / "p")
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        try:
            _, errors = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ScreenshotError(f"Chromium took more than {timeout:g} s") from None
        finally:
            if process.poll() is None:  # timed out or interrupted: end it by PID
                process.kill()
                process.wait()
        if process.returncode != 0:
            raise ScreenshotError(
                f"Chromium exited with status {process.returncode}: "
                f"{_last_line(errors)}"
            )
        data = picture.read_bytes() if picture.is_file() else b""
    if not data.startswith(PNG_SIGNATURE):
        raise ScreenshotError(f"Chromium wrote no PNG: {_last_line(errors)}")
    return data


@contextlib.contextmanager
def _interrupt_on_sigterm() -> Iterator[None]:
    """SIGTERM runs the same clean-up as Ctrl-C: the server is stopped either way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(output: Path, size: tuple[int, int], chromium: str) -> int:
    """Serve the page, photograph it, write the file; the picture's size in bytes."""
    settings = servers.ServerSettings(sleep_seconds=5.0, workers=4)
    with servers.launched([THREADED], settings) as running:
        endpoint = running[THREADED].endpoint
        assert endpoint is not None  # launched() yields only servers that listen
        data = take_screenshot(f"{endpoint.url}/", size, chromium)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, output)
    return len(data)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Make the screenshot; 0 when written, 1 when it failed, 2 on bad input."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
        output: Path = args.output
        if output.is_dir():
            raise UsageError(f"--output {str(output)!r} is a directory")
        chromium = find_chromium(args.chromium)
        with _interrupt_on_sigterm():
            written = run(output, args.window_size, chromium)
    except UsageError as error:
        err.write(f"{PROG}: error: {error} (see --help)\n")
        return EXIT_USAGE
    except (ScreenshotError, servers.ServerError, OSError) as error:
        err.write(f"{PROG}: failed: {error}\n")
        return EXIT_FAILED
    except KeyboardInterrupt as interrupt:
        err.write(f"{PROG}: interrupted; the server it started is stopped\n")
        signum = signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT
        return 128 + signum
    width, height = args.window_size
    out.write(f"wrote {output} ({width}x{height}, {written} bytes)\n")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
