"""Peer for the historian benchmark: a private InfluxDB 1.x (Debian's ``influxdb`` package).

`InfluxPeer` starts ``influxd`` on loopback ports with its data under a private directory, writes
points over the HTTP line protocol and runs InfluxQL queries. It stops only the process it
started (by its PID). Nothing here touches an InfluxDB started by someone else unless you pass
``url=`` (then start/stop do nothing and you own that server's state).

Run alone for a smoke test::

    .venv/bin/python bench/peer_influx.py --tags 100 --seconds 600
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["InfluxPeer", "build_lines", "influx_version"]

DEFAULT_HTTP_PORT = 18186
DEFAULT_RPC_PORT = 18188

_CONFIG = """\
# indunet bench: private InfluxDB 1.x, loopback only. Defaults otherwise (inmem index,
# WAL fsync on every write), like the MING peer baseline's config.
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root}/meta"

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false

[logging]
  level = "warn"
"""


def influx_version(binary: str = "/usr/bin/influxd") -> str:
    """Return ``influxd version`` output, or ``"missing"``."""
    if not Path(binary).exists():
        return "missing"
    out = subprocess.run([binary, "version"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or out.stderr.strip()


def _escape_tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ").replace("=", "\\=")


def build_lines(
    measurement: str,
    tag_names: Sequence[str],
    tag_idx: np.ndarray,
    ts_ms: np.ndarray,
    values: np.ndarray,
    lines_per_post: int,
) -> list[bytes]:
    """Format points as line protocol (ms precision) in bodies of ``lines_per_post`` lines."""
    prefix = [f"{measurement},tag={_escape_tag(t)} value=" for t in tag_names]
    bodies: list[bytes] = []
    idx = tag_idx.tolist()
    ts = ts_ms.tolist()
    vals = values.tolist()
    for lo in range(0, len(idx), lines_per_post):
        hi = min(lo + lines_per_post, len(idx))
        body = "\n".join([f"{prefix[idx[i]]}{vals[i]!r} {ts[i]}" for i in range(lo, hi)])
        bodies.append(body.encode())
    return bodies


class InfluxPeer:
    """A private influxd process (or an existing server at ``url``) and an HTTP client for it."""

    def __init__(
        self,
        root: Path,
        *,
        http_port: int = DEFAULT_HTTP_PORT,
        rpc_port: int = DEFAULT_RPC_PORT,
        binary: str = "/usr/bin/influxd",
        url: str | None = None,
    ) -> None:
        self.root = Path(root)
        self.binary = binary
        self.rpc_port = rpc_port
        self.external = url is not None
        parsed = urllib.parse.urlparse(url or f"http://127.0.0.1:{http_port}")
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or http_port
        self.proc: subprocess.Popen[bytes] | None = None
        self._conn: http.client.HTTPConnection | None = None
        self.retries = 0

    # ---------------------------------------------------------------- process
    def start(self, *, fresh: bool = True, timeout_s: float = 60.0) -> None:
        """Start influxd (a fresh data dir unless ``fresh=False``) and wait until it answers."""
        if self.external:
            self.wait_ready(timeout_s)
            return
        if not Path(self.binary).exists():
            raise RuntimeError(
                f"{self.binary} not found; install Debian's package: apt-get install -y influxdb"
            )
        if fresh and self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        conf = self.root / "influxdb.conf"
        conf.write_text(_CONFIG.format(root=self.root, http_port=self.port, rpc_port=self.rpc_port))
        log = (self.root / "influxd.log").open("wb")
        self.proc = subprocess.Popen(
            [self.binary, "-config", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        (self.root / "influxd.pid").write_text(str(self.proc.pid))
        self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float) -> None:
        """Poll /ping until it answers 204."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                tail = (self.root / "influxd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"influxd exited with {self.proc.returncode}:\n{tail}")
            try:
                status, _ = self._request("GET", "/ping")
                if status == 204:
                    return
            except OSError:
                self._conn = None
            if time.monotonic() > deadline:
                raise RuntimeError(f"influxd did not answer on {self.host}:{self.port}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the influxd this object started (TERM, then KILL after 15 s)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
        self.proc = None

    def disk_bytes(self) -> int:
        """Return the size of the data and WAL directories."""
        total = 0
        for sub in ("data", "wal"):
            for dirpath, _, files in os.walk(self.root / sub):
                total += sum((Path(dirpath) / f).stat().st_size for f in files)
        return total

    def rss_bytes(self) -> int | None:
        """Return influxd's resident memory (VmHWM, the peak), when we started it."""
        if self.proc is None:
            return None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    # ---------------------------------------------------------------- HTTP
    def _request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
        try:
            self._conn.request(method, path, body=body)
            resp = self._conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException):
            self._conn.close()
            self._conn = None
            raise

    def server_version(self) -> str:
        """Return the X-Influxdb-Version header of /ping."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request("GET", "/ping")
            resp = conn.getresponse()
            resp.read()
            return resp.getheader("X-Influxdb-Version", "unknown")
        finally:
            conn.close()

    def query(self, q: str, db: str | None = None) -> dict[str, Any]:
        """Run one InfluxQL statement (POST /query, epoch=ms) and return the parsed JSON."""
        params = {"q": q, "epoch": "ms"}
        if db:
            params["db"] = db
        status, body = self._request("POST", "/query?" + urllib.parse.urlencode(params))
        data = json.loads(body)
        if status != 200 or "error" in data or any("error" in r for r in data.get("results", [])):
            raise RuntimeError(f"influx query failed ({status}): {body[:300]!r}")
        return data

    def write(self, db: str, body: bytes, *, max_retries: int = 5) -> None:
        """POST one line-protocol body (precision ms); retry a 5xx a few times, counting it."""
        path = "/write?" + urllib.parse.urlencode({"db": db, "precision": "ms"})
        for attempt in range(max_retries + 1):
            status, text = self._request("POST", path, body)
            if status == 204:
                return
            if status >= 500 and attempt < max_retries:
                self.retries += 1
                time.sleep(0.1 * (attempt + 1))
                continue
            raise RuntimeError(f"influx write failed ({status}): {text[:300]!r}")

    def reset_db(self, db: str) -> None:
        """Drop and create database ``db``."""
        self.query(f'DROP DATABASE "{db}"')
        self.query(f'CREATE DATABASE "{db}"')

    def load(self, db: str, bodies: Iterable[list[bytes]]) -> dict[str, float]:
        """Write each group of bodies in order; only the HTTP writes are timed."""
        seconds = 0.0
        posts = 0
        for group in bodies:
            t = time.perf_counter()
            for body in group:
                self.write(db, body)
            seconds += time.perf_counter() - t
            posts += len(group)
        return {"write_s": seconds, "posts": posts, "retries": self.retries}

    def count(self, db: str, measurement: str) -> int:
        """Return ``count(value)`` over the whole measurement."""
        data = self.query(f'SELECT count(value) FROM "{measurement}"', db)
        series = data["results"][0].get("series")
        return int(series[0]["values"][0][1]) if series else 0


def _smoke() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--root", type=Path, default=Path("/tmp/indunet-bench/influx-smoke"))
    args = parser.parse_args()
    peer = InfluxPeer(args.root)
    peer.start()
    try:
        print("influxd", peer.server_version())
        peer.reset_db("bench")
        names = [f"site/area/line/m{i // 10:03d}/t{i % 10}" for i in range(args.tags)]
        n = args.tags * args.seconds
        tag_idx = np.tile(np.arange(args.tags, dtype=np.int32), args.seconds)
        ts = (
            np.repeat(np.arange(args.seconds, dtype=np.int64) * 1000, args.tags) + 1_767_225_600_000
        )
        values = np.round(np.random.default_rng(1).normal(50, 5, n), 3)
        bodies = build_lines("m", names, tag_idx, ts, values, 10_000)
        stats = peer.load("bench", [bodies])
        print(
            f"wrote {n} points in {stats['write_s']:.3f} s = {n / stats['write_s']:,.0f} points/s"
        )
        print("count", peer.count("bench", "m"))
        t = time.perf_counter()
        res = peer.query('SELECT last(value) FROM "m" GROUP BY "tag"', "bench")
        dt = time.perf_counter() - t
        print(f"latest: {len(res['results'][0]['series'])} series in {dt * 1000:.1f} ms")
    finally:
        peer.stop()


if __name__ == "__main__":
    _smoke()
