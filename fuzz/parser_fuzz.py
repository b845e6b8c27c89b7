"""Long fuzzing run of the sans-I/O core: the parser and HttpConnection.

Not part of the test suite (``tests/test_fuzz.py`` and
``tests/test_properties.py`` run bounded versions in CI)::

    python fuzz/parser_fuzz.py --runs 100000             # atheris if installed
    python fuzz/parser_fuzz.py --runs 100000 --engine hypothesis

Each input is decoded into a choice of limits (the small ones that make every
bound reachable, or the defaults), whether the client closes at the end,
where the bytes are split into reads, and the payload itself. For each input:

- only :class:`~common.errors.ProtocolError` may escape the parser, and only
  with a status the core is meant to send;
- the outcome (the requests, then the error status or none) is the same
  whether the payload arrives whole or split;
- once drained without error, the parser holds no more than one request
  head's worth of bytes (a client cannot make it buffer without bound);
- :class:`~common.connection.HttpConnection` never raises, renders only
  well-framed responses, sends the same bytes whatever the split (but for
  ``Expect: 100-continue``, where whether the body has arrived yet decides
  keep-alive, by design), and hands out nothing once closed.

With atheris (coverage-guided libFuzzer, ``pip install atheris``) the
engine starts from a seed corpus of the conformance cases and a dictionary
of the grammar's tokens; any extra arguments go to libFuzzer (``-jobs``,
``-max_total_time``, a corpus directory...). Without it, hypothesis
generates the same kind of input. A failure prints the input and exits
non-zero; success prints how many inputs ran.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

try:
    import atheris  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - depends on the machine
    atheris = None

# Instrument only for atheris (the flag is looked at before argparse runs).
_HYPOTHESIS = "--engine=hypothesis" in sys.argv or any(
    a == "--engine" and b == "hypothesis" for a, b in itertools.pairwise(sys.argv)
)
if atheris is not None and not _HYPOTHESIS:
    # Coverage feedback from the core's own code; the rest runs uninstrumented.
    with atheris.instrument_imports(include=["common"]):
        from common.connection import HttpConnection
        from common.errors import ProtocolError
        from common.limits import Limits
        from common.parser import RequestParser
        from common.response import Responder
        from common.routes import Pages, Router
else:
    from common.connection import HttpConnection
    from common.errors import ProtocolError
    from common.limits import Limits
    from common.parser import RequestParser
    from common.response import Responder
    from common.routes import Pages, Router

SMALL = Limits(
    max_request_line=64,
    max_header_bytes=160,
    max_header_count=6,
    max_body_bytes=48,
    max_chunk_line=16,
)
DEFAULT = Limits()
ROUTER = Router(Pages.load(), sleep_seconds=5.0)
RESPONDER = Responder(clock=lambda: 784111777.0)
ERROR_STATUSES = frozenset({400, 413, 414, 431, 501, 505})
TOKENS = [
    b"GET",
    b"HEAD",
    b"POST",
    b"OPTIONS",
    b"CONNECT",
    b"/",
    b"/sleep",
    b"*",
    b"http://h/",
    b"h:80",
    b"?",
    b"%2",
    b" HTTP/1.1",
    b" HTTP/1.0",
    b"HTTP/2.0",
    b"\r\n",
    b"\r\n\r\n",
    b"\n\n",
    b"Host:",
    b"Host: x",
    b"Connection:",
    b"close",
    b"keep-alive",
    b"Content-Length:",
    b"Transfer-Encoding:",
    b"chunked",
    b"gzip",
    b"Expect: 100-continue",
    b"0\r\n\r\n",
    b";ext=1",
    b"ffffffffffffffff",
]


class Finding(AssertionError):
    """An input that breaks one of the properties."""


# -- decoding an input --------------------------------------------------------


def decode(data: bytes) -> tuple[Limits, bool, list[int], bytes]:
    """``(limits, eof, cut points, payload)`` from one fuzzer input.

    Byte 0: bit 0 picks the limits, bit 1 the EOF, bits 2-4 the number of
    cuts; then one byte per cut (a gap between cut points, so large payloads
    can still be cut near their end); the rest is the payload.
    """
    if not data:
        return SMALL, False, [], b""
    flags = data[0]
    limits = DEFAULT if flags & 1 else SMALL
    eof = bool(flags & 2)
    count = (flags >> 2) & 7
    gaps = data[1 : 1 + count]
    payload = data[1 + count :]
    cuts: list[int] = []
    position = 0
    for gap in gaps:
        position += gap + 1
        cuts.append(position)
    return limits, eof, cuts, payload


def split(payload: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(payload), *(min(cut, len(payload)) for cut in cuts)})
    return [payload[a:b] for a, b in itertools.pairwise(points)]


# -- the properties -------------------------------------------------------------


Outcome = tuple[tuple[object, ...], int | None]


def parse(limits: Limits, pieces: list[bytes], eof: bool) -> Outcome:
    parser = RequestParser(limits)
    requests: list[object] = []
    try:
        for piece in pieces:
            parser.feed(piece)
            while (request := parser.next_request()) is not None:
                requests.append(request)
            check_buffer(parser, limits, len(piece))
        if eof:
            parser.feed_eof()
            while (request := parser.next_request()) is not None:
                requests.append(request)
    except ProtocolError as error:
        status = int(error.status)
        if status not in ERROR_STATUSES:
            raise Finding(f"unexpected error status {status}: {error!r}") from error
        if parser.next_request() is not None:
            raise Finding("a failed parser handed out a request") from error
        return tuple(requests), status
    return tuple(requests), None


def check_buffer(parser: RequestParser, limits: Limits, piece: int) -> None:
    """Drained without error: at most one head (plus the terminator) is held."""
    held = len(parser._buffer)
    bound = limits.max_request_line + limits.max_header_bytes + 8
    if held > bound:
        raise Finding(f"parser holds {held} bytes after draining (bound {bound})")


def converse(limits: Limits, pieces: list[bytes], eof: bool) -> tuple[bytes, bool]:
    """Everything HttpConnection answers to ``pieces``, and whether it closed."""
    conn = HttpConnection(ROUTER, limits)
    sent: list[bytes] = []
    for piece in [*pieces, *([b""] if eof else [])]:
        conn.receive(piece)
        while (exchange := conn.next_exchange()) is not None:
            data = exchange.render(RESPONDER)
            check_framing(data, head=exchange.head)
            sent.append(data)
            if not exchange.keep_alive and not conn.closed:
                raise Finding("a closing exchange left the connection open")
    if conn.closed:
        conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        if conn.next_exchange() is not None:
            raise Finding("a closed connection handed out an exchange")
    return b"".join(sent), conn.closed


def check_framing(raw: bytes, *, head: bool) -> None:
    head_bytes, separator, body = raw.partition(b"\r\n\r\n")
    if not raw.startswith(b"HTTP/1.1 ") or not separator:
        raise Finding(f"malformed response head: {raw[:80]!r}")
    lengths = [
        int(line.split(b":", 1)[1])
        for line in head_bytes.split(b"\r\n")[1:]
        if line.lower().startswith(b"content-length:")
    ]
    if len(lengths) != 1 or len(body) != (0 if head else lengths[0]):
        raise Finding(f"badly framed response: {raw[:200]!r}")


def check(data: bytes) -> None:
    """Every property, for one input; raises on a finding."""
    limits, eof, cuts, payload = decode(data)
    pieces = split(payload, cuts)
    whole = parse(limits, [payload] if payload else [], eof)
    if parse(limits, pieces, eof) != whole:
        raise Finding("the parser's outcome depends on how the bytes were split")
    split_answer = converse(limits, pieces, eof)
    whole_answer = converse(limits, [payload], eof)
    # Expect: 100-continue is the one intended exception: a body already
    # here is read and the connection kept; one not yet here may be held
    # back by the client, so the server must close (RFC 9110 §10.1.1).
    if split_answer != whole_answer and b"100-continue" not in payload.lower():
        raise Finding("the responses depend on how the bytes were split")


# -- the engines ----------------------------------------------------------------


def seeds() -> list[bytes]:
    """Starting inputs: the conformance cases, whole and cut, both limits."""
    from cases import CASES  # type: ignore[import-not-found]  # noqa: PLC0415

    found = []
    for case in CASES:
        found.append(b"\x01" + case.data)  # default limits, one piece
        found.append(b"\x0e\x05\x09\x20" + case.data)  # small, EOF, three cuts
    return found


def run_atheris(runs: int, extra: list[str]) -> int:
    assert atheris is not None
    work = Path(tempfile.mkdtemp(prefix="parser-fuzz-"))
    corpus = work / "corpus"
    corpus.mkdir()
    for number, seed in enumerate(seeds()):
        (corpus / f"seed-{number:03d}").write_bytes(seed)
    dictionary = work / "http.dict"
    dictionary.write_text(
        "".join('"' + "".join(f"\\x{b:02x}" for b in token) + '"\n' for token in TOKENS)
    )
    argv = [
        sys.argv[0],
        f"-runs={runs}",
        "-max_len=4096",
        f"-dict={dictionary}",
        f"-artifact_prefix={work}/",
        *extra,
        str(corpus),
    ]
    print(f"atheris: {runs} runs; corpus and any crash in {work}", flush=True)
    atheris.Setup(argv, check)
    atheris.Fuzz()  # libFuzzer prints "Done N runs" and exits the process
    return 0


def run_hypothesis(runs: int, seed: int) -> int:
    from hypothesis import HealthCheck, given, settings  # noqa: PLC0415
    from hypothesis import seed as hypothesis_seed  # noqa: PLC0415
    from hypothesis import strategies as st  # noqa: PLC0415

    token = st.sampled_from(TOKENS)
    payload = st.one_of(
        st.binary(max_size=400),
        st.lists(st.one_of(token, st.binary(max_size=8)), max_size=60).map(b"".join),
        st.sampled_from(seeds()).flatmap(
            lambda s: st.tuples(st.integers(0, len(s)), st.binary(max_size=6)).map(
                lambda cut: s[: cut[0]] + cut[1] + s[cut[0] :]
            )
        ),
    )
    # A header of flags and cut gaps (see decode), then the payload.
    inputs = st.tuples(st.binary(min_size=1, max_size=8), payload).map(
        lambda parts: parts[0] + parts[1]
    )
    count = 0

    @hypothesis_seed(seed)
    @settings(
        max_examples=runs,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=inputs)
    def fuzz(data: bytes) -> None:
        nonlocal count
        count += 1
        check(data)

    started = time.monotonic()
    fuzz()
    elapsed = time.monotonic() - started
    print(f"hypothesis: {count} inputs in {elapsed:.0f} s, no finding")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="inputs to try")
    parser.add_argument(
        "--engine",
        choices=["auto", "atheris", "hypothesis"],
        default="auto",
        help="auto: atheris when it imports, else hypothesis",
    )
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed")
    args, extra = parser.parse_known_args(argv)
    if args.engine == "atheris" or (args.engine == "auto" and atheris is not None):
        if atheris is None:
            parser.error("atheris is not installed (pip install atheris)")
        return run_atheris(args.runs, extra)
    if extra:
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    return run_hypothesis(args.runs, args.seed)


if __name__ == "__main__":
    sys.exit(main())
