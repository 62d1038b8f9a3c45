"""Fixtures for driving a running `latentserve serve` with real clients.

The binary comes from LATENTSERVE_BINARY (CTest sets it); the model is the tiny preset, made
once per test session by `latentserve make-model --preset tiny`. Every server listens on free
loopback ports and is stopped (and its log shown on failure) when its test scope ends.
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
# Small, fixed cache so that several servers can run side by side on a small machine.
DEFAULT_ENGINE_ARGS = ["--num-kv-blocks", "512", "--block-size", "16"]


def binary_path():
    path = os.environ.get("LATENTSERVE_BINARY")
    if path:
        return Path(path)
    for candidate in ("build/server/latentserve", "build-main/server/latentserve"):
        if (REPO_ROOT / candidate).exists():
            return REPO_ROOT / candidate
    pytest.skip("LATENTSERVE_BINARY is not set and no built latentserve was found")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `latentserve serve` process on loopback ports, with helpers for raw HTTP."""

    def __init__(self, model_dir, log_path, extra_args=(), grpc=True):
        self.host = "127.0.0.1"
        self.port = free_port()
        self.grpc_port = free_port() if grpc else None
        self.log_path = Path(log_path)
        self.args = [str(binary_path()), "serve", "--model", str(model_dir), "--host", self.host,
                     "--port", str(self.port)]
        if grpc:
            self.args += ["--grpc-port", str(self.grpc_port)]
        self.args += DEFAULT_ENGINE_ARGS + list(extra_args)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.model = None

    @property
    def base_url(self):
        return f"http://{self.host}:{self.port}"

    def log(self):
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-8000:]

    def wait_healthy(self, timeout=120.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"latentserve exited with {self.proc.returncode} before it was "
                                   f"healthy: {' '.join(self.args)}\n{self.log()}")
            try:
                status, _, _ = self.request("GET", "/health", timeout=2.0)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"latentserve was not healthy within {timeout} s\n{self.log()}")

    def connection(self, timeout=60.0):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=60.0):
        """Raw HTTP: returns (status, headers, body bytes). `body` may be bytes, str or JSON."""
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        conn = self.connection(timeout)
        try:
            hdrs = {"Content-Type": "application/json"} if body is not None else {}
            hdrs.update(headers or {})
            conn.request(method, path, body=body, headers=hdrs)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def post_json(self, path, payload, headers=None, timeout=60.0):
        status, _, body = self.request("POST", path, payload, headers, timeout)
        return status, json.loads(body) if body else None

    def metrics(self):
        """The /metrics page as {sample name with labels: value}."""
        status, _, body = self.request("GET", "/metrics")
        assert status == 200, body
        return parse_prometheus(body.decode())

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def parse_prometheus(text):
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    return samples


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-model")
    result = subprocess.run([str(binary_path()), "make-model", "--preset", "tiny", "--out",
                             str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def _fetch_model_name(server, extra_args):
    headers = {}
    if "--api-key" in extra_args:
        headers["Authorization"] = "Bearer " + extra_args[list(extra_args).index("--api-key") + 1]
    status, _, body = server.request("GET", "/v1/models", headers=headers)
    assert status == 200, body
    return json.loads(body)["data"][0]["id"]


@pytest.fixture(scope="session")
def start_server(model_dir, tmp_path_factory):
    """Factory: start_server(*extra_args) -> a healthy Server, stopped at the session's end."""
    started = []

    def start(*extra_args, grpc=True):
        log = tmp_path_factory.mktemp("server-log") / "serve.log"
        server = Server(model_dir, log, extra_args, grpc=grpc)
        started.append(server)
        server.wait_healthy()
        server.model = _fetch_model_name(server, extra_args)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def server(start_server):
    """The shared server with default options (gRPC on server.grpc_port)."""
    return start_server()


@pytest.fixture(scope="session")
def client(server):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0,
                         timeout=120)


@pytest.fixture(scope="session")
def context_length(model_dir):
    return json.loads((Path(model_dir) / "config.json").read_text())["max_position_embeddings"]


@pytest.fixture(scope="session")
def vocab_size(model_dir):
    return json.loads((Path(model_dir) / "config.json").read_text())["vocab_size"]


def read_sse(response):
    """Yields the payloads of `data: ...` events from an http.client response, '[DONE]' included."""
    buffer = b""
    while True:
        chunk = response.read1(65536) if hasattr(response, "read1") else response.read(1)
        if not chunk:
            break
        buffer += chunk
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            for line in event.split(b"\n"):
                if line.startswith(b"data: "):
                    yield line[len(b"data: "):].decode()
    assert buffer.strip() == b"", f"stream ended inside an event: {buffer[:200]!r}"


def error_of(status_body):
    """Checks OpenAI's error shape and returns the error object."""
    body = status_body
    assert isinstance(body, dict) and "error" in body, body
    error = body["error"]
    for key in ("message", "type", "param", "code"):
        assert key in error, f"error JSON lacks {key}: {body}"
    assert isinstance(error["message"], str) and error["message"], body
    return error


def numbers_in(text):
    return set(re.findall(r"\d+", text))
