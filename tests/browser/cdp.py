"""A tiny Chrome DevTools Protocol driver for Debian's headless Chromium (tests only).

``Browser`` starts Chromium with a fresh profile and no background networking, connects to its one
page over a websocket (the ``websocket-client`` package) and offers what the site tests need: load a
file:// URL and collect console errors, uncaught exceptions and JavaScript dialogs; evaluate an
expression; click an element with real mouse events; take a PNG screenshot.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",
)


def find_chromium() -> str | None:
    """The path of Debian's ``chromium`` (or a ``chromium-browser``), or None when not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class CdpError(RuntimeError):
    """Chromium did not start, or answered a command with an error."""


@dataclass
class PageReport:
    """What happened while one page loaded: console errors, exceptions and dialogs."""

    url: str
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


class Browser:
    """One headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, executable: str, width: int = 1280, height: int = 900, timeout: float = 30.0):
        self.timeout = timeout
        self.profile = Path(tempfile.mkdtemp(prefix="tokbench-chromium-"))
        self.log = (self.profile / "chromium.log").open("wb")
        command = [
            executable,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={self.profile / 'profile'}",
            "--remote-debugging-port=0",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        self._next_id = 0
        self.events: list[dict] = []
        try:
            port = self._wait_for_port()
            self.socket = websocket.create_connection(
                self._page_websocket_url(port), timeout=timeout, suppress_origin=True
            )
            for domain in ("Page", "Runtime", "Log"):
                self.send(f"{domain}.enable")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop Chromium (only the process this object started) and delete its profile."""
        socket = getattr(self, "socket", None)
        if socket is not None:
            socket.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- protocol ----------------------------------------------------------------------------------

    def send(self, method: str, params: dict | None = None) -> dict:
        """Send one command and return its result; events that arrive meanwhile are kept in order."""
        self._next_id += 1
        message_id = self._next_id
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            message = self._receive(deadline)
            if message is None:
                continue
            if message.get("id") == message_id:
                if "error" in message:
                    raise CdpError(f"{method} failed: {message['error']}")
                return message.get("result", {})
        raise CdpError(f"no answer to {method} within {self.timeout} s")

    def wait_for_event(self, method: str, timeout: float | None = None) -> dict:
        """The first not yet consumed event called ``method`` (waiting for it if needed)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for index, event in enumerate(self.events):
                if event["method"] == method:
                    return self.events.pop(index)
            if time.monotonic() >= deadline:
                raise CdpError(f"no {method} event within {timeout or self.timeout} s")
            self._receive(deadline)

    def _receive(self, deadline: float) -> dict | None:
        self.socket.settimeout(max(0.05, min(1.0, deadline - time.monotonic())))
        try:
            message = json.loads(self.socket.recv())
        except websocket.WebSocketTimeoutException:
            return None
        if "method" in message:
            self.events.append(message)
            if message["method"] == "Page.javascriptDialogOpening":  # unblock the page at once
                self.socket.send(
                    json.dumps(
                        {
                            "id": 0,
                            "method": "Page.handleJavaScriptDialog",
                            "params": {"accept": False},
                        }
                    )
                )
        return message

    # --- what the tests use ------------------------------------------------------------------------

    def load(self, url: str, settle_seconds: float = 0.3) -> PageReport:
        """Navigate to ``url``, wait for its load event and a short settle time, report what went wrong."""
        self.events.clear()
        result = self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            return PageReport(url, errors=[f"navigation failed: {result['errorText']}"])
        self.wait_for_event("Page.loadEventFired")
        self.evaluate(f"new Promise(resolve => setTimeout(resolve, {int(settle_seconds * 1000)}))")
        return self.report(url)

    def report(self, url: str) -> PageReport:
        """Console errors, uncaught exceptions and dialogs among the events received so far."""
        self.evaluate("0")  # flush events that are already on their way
        report = PageReport(url)
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                text = details.get("exception", {}).get("description") or details.get("text", "")
                report.errors.append(f"uncaught exception: {text}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                values = [str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", [])]
                report.errors.append(f"console.{params['type']}: {' '.join(values)}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                report.errors.append(f"log {entry.get('source')}: {entry.get('text')} {entry.get('url', '')}")
            elif method == "Page.javascriptDialogOpening":
                report.dialogs.append(f"{params.get('type')}: {params.get('message')}")
        return report

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited); raise CdpError if it throws."""
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r} threw: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def click(self, selector: str) -> None:
        """Scroll the first element matching ``selector`` into view and click its centre with the mouse."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()"
        )
        if box is None:
            raise CdpError(f"no element matches {selector!r}")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box["x"], "y": box["y"], "button": "left", "clickCount": 1},
            )

    def type_text(self, selector: str, text: str) -> None:
        """Focus the element matching ``selector`` and type ``text`` into it."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", {"text": text})

    def screenshot(self, path: Path, max_height: int = 4000) -> Path:
        """Save a PNG of the page (full width, up to ``max_height`` CSS pixels tall) to ``path``."""
        size = self.evaluate(
            "({w: document.documentElement.scrollWidth, h: document.documentElement.scrollHeight})"
        )
        clip = {"x": 0, "y": 0, "width": size["w"], "height": min(size["h"], max_height), "scale": 1}
        result = self.send(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(result["data"]))
        return path

    # --- start-up ----------------------------------------------------------------------------------

    def _wait_for_port(self) -> int:
        port_file = self.profile / "profile" / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CdpError(f"chromium exited with status {self.process.returncode}; {self._log_tail()}")
            if port_file.is_file():
                lines = port_file.read_text().split()
                if lines and lines[0].isdigit():
                    return int(lines[0])
            time.sleep(0.05)
        raise CdpError(f"chromium did not open its DevTools port within {self.timeout} s; {self._log_tail()}")

    def _page_websocket_url(self, port: int) -> str:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=self.timeout) as answer:
                targets = json.load(answer)
            pages = [t for t in targets if t.get("type") == "page" and "webSocketDebuggerUrl" in t]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.1)
        raise CdpError(f"chromium on port {port} has no page target")

    def _log_tail(self) -> str:
        self.log.flush()
        text = (self.profile / "chromium.log").read_text(errors="replace")
        return "its output ends: " + text[-800:] if text else "it printed nothing"
