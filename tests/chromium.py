"""A minimal headless-Chromium driver over the DevTools protocol, for the browser tests.

Chromium is started with a fresh profile and ``--remote-debugging-port=0``; the page's websocket is driven
with tornado's websocket client (tornado comes with the dev extra's dask[distributed]). The driver opens a
file, collects console errors and uncaught exceptions, evaluates JavaScript and takes screenshots.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from tornado.websocket import websocket_connect

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--remote-debugging-port=0",
         "--window-size=1280,900", "--hide-scrollbars"]


class Browser:
    """``with Browser() as b: b.open(path); b.js("...")``; ``b.errors`` lists console errors and exceptions."""

    def __init__(self, width: int = 1280, height: int = 900):
        self.size = (width, height)
        self.errors: list[str] = []
        self._id = 0

    def __enter__(self):
        self._profile = tempfile.TemporaryDirectory(prefix="nodebench-chromium-")
        self._proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        port = None
        while port is None and time.monotonic() < deadline:
            line = self._proc.stderr.readline()
            match = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            port = match and int(match.group(1))
            if not line and self._proc.poll() is not None:
                raise RuntimeError("chromium exited before its DevTools endpoint was up")
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30))
        url = next(p["webSocketDebuggerUrl"] for p in pages if p["type"] == "page")
        self._loop = asyncio.new_event_loop()
        self._ws = self._run(lambda: websocket_connect(url, max_message_size=256 * 2**20))
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=self.size[0], height=self.size[1],
                  deviceScaleFactor=1, mobile=False)
        return self

    def __exit__(self, *exc):
        self._ws.close()
        self._loop.close()
        self._proc.terminate()
        self._proc.wait(timeout=30)
        for _ in range(50):  # chromium's helper processes may still write into the profile for a moment
            try:
                self._profile.cleanup()
                return
            except OSError:
                time.sleep(0.1)
        shutil.rmtree(self._profile.name, ignore_errors=True)

    def _run(self, make, timeout: float = 60):
        """Run ``make()`` (a coroutine or future, created inside the driver's loop) to completion."""
        async def wrapped():
            return await asyncio.wait_for(make(), timeout)
        return self._loop.run_until_complete(wrapped())

    def _read_until(self, done) -> dict:
        while True:
            message = json.loads(self._run(self._ws.read_message))
            self._note(message)
            if done(message):
                return message

    def _note(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            self.errors.append(params["exceptionDetails"].get("exception", {}).get("description", "exception"))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(params["entry"]["text"])

    def send(self, method: str, **params) -> dict:
        self._id += 1
        ident = self._id
        self._ws.write_message(json.dumps({"id": ident, "method": method, "params": params}))
        reply = self._read_until(lambda m: m.get("id") == ident)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def open(self, path: Path) -> None:
        """Load ``path`` and wait for its load event."""
        self.send("Page.navigate", url=Path(path).resolve().as_uri())
        self._read_until(lambda m: m.get("method") == "Page.loadEventFired")

    def js(self, expression: str):
        """The value of ``expression`` in the page (JSON-serialisable)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        """A PNG of the viewport (the page's first screen)."""
        data = self.send("Page.captureScreenshot", format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)


# JavaScript helpers the tests share: is an element on the first screen, visible, and not hidden
VISIBLE = """(el => {{ if (!el) return false; const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
  return r.width > 0 && r.height > 0 && s.display !== 'none' && s.visibility !== 'hidden'
         && r.top < {height}; }})"""
