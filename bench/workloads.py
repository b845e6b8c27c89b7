"""What the throughput bench sends: three kinds of request heads.

A figure measured with one byte-identical request measures caches (both
editions answer a head they have seen with a dict look-up), so every
throughput figure names its workload:

* ``same``: one identical request, wrk's default — the cache-friendly best case;
* ``varied``: every request its own target and ``X-Request-Id``, so no cache
  can answer it — what the README leads with;
* ``browser``: the head Chromium sends for a navigation (~600 bytes),
  identical on a connection, differing between connections by a cookie
  (between wrk's threads, for wrk: its scripts cannot tell connections apart).

wrk gets a Lua script for ``varied`` and ``browser`` (:func:`wrk_script`);
the built-in client sends the same heads (:func:`request_head`).
"""

from __future__ import annotations

import enum


class Workload(enum.Enum):
    SAME = "same"
    VARIED = "varied"
    BROWSER = "browser"


WORKLOADS = tuple(Workload)

# Chromium 156's navigation to a typed URL, as its network log shows it (the
# Host and Connection lines are the client's own).
BROWSER_FIELDS = (
    ("sec-ch-ua", '"Chromium";v="156", "Not)A;Brand";v="24"'),
    ("sec-ch-ua-mobile", "?0"),
    ("sec-ch-ua-platform", '"Linux"'),
    ("Upgrade-Insecure-Requests", "1"),
    (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/156.0.0.0 Safari/537.36",
    ),
    (
        "Accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
        "image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
    ),
    ("Sec-Fetch-Site", "none"),
    ("Sec-Fetch-Mode", "navigate"),
    ("Sec-Fetch-User", "?1"),
    ("Sec-Fetch-Dest", "document"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ("Accept-Language", "en-US,en;q=0.9"),
)


def cookie(connection: int) -> str:
    """The session cookie of one connection (or wrk thread)."""
    return f"session={connection + 1:016x}"  # as the wrk script's, per thread


def request_head(
    workload: Workload, host: str, *, number: int, connection: int, close: bool
) -> bytes:
    """Request ``number`` on ``connection``: one GET, in one piece."""
    lines = [f"Host: {host}"]
    if workload is Workload.SAME:
        target = "/"
        lines.append("User-Agent: hello-bench")
    elif workload is Workload.VARIED:
        target = f"/?n={number}"
        lines += ["User-Agent: hello-bench", f"X-Request-Id: {number}"]
    else:
        target = "/"
        lines += [f"{name}: {value}" for name, value in BROWSER_FIELDS]
        lines.append(f"Cookie: {cookie(connection)}")
    if close:
        lines.append("Connection: close")
    return (f"GET {target} HTTP/1.1\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode()


_LUA_MERGE = """
local function merged(extra)
  -- wrk.format uses only the table it is given: keep --header's lines too
  local fields = {}
  for name, value in pairs(wrk.headers) do fields[name] = value end
  for name, value in pairs(extra) do fields[name] = value end
  return fields
end
"""

_LUA_THREADS = """
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
"""


def run_base(now_ns: int) -> int:
    """Where a run's request numbers start: a microsecond clock times 10^5,
    so runs a second apart are 10^11 apart (64 threads' billions fit in
    between) and every number stays exact in a Lua double (< 2^53)."""
    return (now_ns // 1000) % 10**9 * 10**5


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk_script(workload: Workload) -> str | None:
    """The Lua script that makes wrk send ``workload``; None for ``same``."""
    if workload is Workload.SAME:
        return None
    if workload is Workload.VARIED:
        # Each thread counts from its own billion above the run's base (see
        # run_base): no two requests alike, in this run or the ones before.
        return (
            _LUA_MERGE
            + _LUA_THREADS
            + """
function init(args)
  -- args[1]: the run's own base, so that no two runs send the same target
  n = (tonumber(args[1]) or 0) + id * 1000000000
end
function request()
  n = n + 1
  local number = string.format("%.0f", n)
  local fields = merged({["User-Agent"] = "hello-bench", ["X-Request-Id"] = number})
  return wrk.format("GET", "/?n=" .. number, fields)
end
"""
        )
    fields = ",\n    ".join(
        f"[{_lua_string(name)}] = {_lua_string(value)}"
        for name, value in BROWSER_FIELDS
    )
    return (
        _LUA_MERGE
        + _LUA_THREADS
        + f"""
local browser = {{
    {fields}
}}
function init(args)
  local extra = {{}}
  for name, value in pairs(browser) do extra[name] = value end
  extra["Cookie"] = string.format("session=%016x", id + 1)
  head = wrk.format("GET", "/", merged(extra))
end
function request()
  return head
end
"""
    )
