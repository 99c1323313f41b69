"""Management API interop plumbing: sipedge with its API on a loopback port, an HTTP helper,
``sipedge ctl`` as a subprocess and the dashboard driven in headless Chromium.

The dashboard runs through ``node js/dashboard.mjs`` (playwright-core from js/node_modules
with Debian's Chromium); its screenshots go to tests/artifacts/mgmt/ (git-ignored).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from interop_net import HOST
from interop_proxy import ProxyProcess, Topology, sipedge_toml
from interop_ws import JS_DIR, chromium_path

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "mgmt"


class MgmtProxy(ProxyProcess):
    """sipedge from :func:`sipedge_toml` plus ``[api]`` on ``api_port`` (with ``token``)."""

    def __init__(self, topo: Topology, workdir: Path, api_port: int, token: str = "") -> None:
        self.api_port = api_port
        self.token = token
        super().__init__("sipedge", topo, workdir)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    def _prepare(self) -> list[str]:
        command = super()._prepare()
        api = f"\n[api]\nport = {self.api_port}\n"
        if self.token:
            api += f'token = "{self.token}"\n'
        (self.workdir / "sipedge.toml").write_text(sipedge_toml(self.topo) + api)
        return command

    def start(self, ready_timeout: float = 8.0) -> None:
        """Start and wait for both SIP (OPTIONS) and the API (health)."""
        super().start(ready_timeout)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            try:
                if self.api("GET", "/api/v1/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"API not ready on {self.url}\n{self.describe()}")

    def api(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        """(status, decoded body) of one request; ``token`` None = the configured one."""
        req = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json"} if body is not None else {},
        )
        tok = self.token if token is None else token
        if tok:
            req.add_header("Authorization", f"Bearer {tok}")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, _decode(resp.read(), resp.headers.get("Content-Type", ""))
        except urllib.error.HTTPError as exc:
            return exc.code, _decode(exc.read(), exc.headers.get("Content-Type", ""))

    def get(self, path: str) -> Any:
        """The body of a GET that must succeed."""
        status, body = self.api("GET", path)
        assert status == 200, (path, status, body, self.describe())
        return body

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``sipedge ctl --url ... ARGS`` as a subprocess."""
        cmd = [sys.executable, "-m", "sipedge", "ctl", "--url", self.url]
        if self.token:
            cmd += ["--token", self.token]
        return subprocess.run(
            [*cmd, *args], capture_output=True, text=True, timeout=20, check=False
        )


def _decode(raw: bytes, content_type: str) -> Any:
    text = raw.decode("utf-8", "replace")
    return json.loads(text) if "json" in content_type else text


def wait_for(what: str, check: Any, timeout: float = 5.0) -> Any:
    """Poll ``check()`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def dashboard_problem() -> str | None:
    """Why the dashboard cannot be driven here, or None."""
    if chromium_path() is None:
        return "Chromium not installed (Debian package chromium)"
    if shutil.which("node") is None:
        return "Node.js not installed"
    if not (JS_DIR / "node_modules" / "playwright-core").is_dir():
        return "playwright-core not installed in tests/interop/js (npm ci)"
    return None


def run_dashboard(url: str, call_id: str, outdir: Path, workdir: Path) -> dict[str, Any]:
    """Drive every dashboard page in Chromium; the JSON report of js/dashboard.mjs."""
    outdir.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    env = {"SIPEDGE_CHROMIUM": chromium_path() or "", "SIPEDGE_TMP": str(workdir)}
    env.update({k: v for k, v in os.environ.items() if k in ("PATH", "HOME")})
    done = subprocess.run(
        [shutil.which("node") or "node", str(JS_DIR / "dashboard.mjs"), url, call_id, str(outdir)],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        output = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        raise AssertionError(f"dashboard.mjs failed (rc {done.returncode})\n{output}")
    report: dict[str, Any] = json.loads(lines[-1])
    return report
