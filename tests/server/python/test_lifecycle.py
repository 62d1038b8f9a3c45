"""What happens around requests: /health and /metrics, a client that drops mid-stream (its
request is aborted and its cache blocks freed), and SIGTERM while streams are in flight."""

import http.client
import json
import signal
import socket
import subprocess
import time

import pytest

from conftest import read_sse

RUNNING = "latentserve:num_requests_running"
WAITING = "latentserve:num_requests_waiting"
USAGE = "latentserve:kv_cache_usage_perc"
GENERATED = "latentserve:engine_generated_tokens_total"


class Stream:
    """A streaming request over http.client, opened once its first event has arrived."""

    def __init__(self, server, path, body):
        self.conn = server.connection(timeout=60)
        self.conn.request("POST", path, body=json.dumps(body),
                          headers={"Content-Type": "application/json"})
        self.response = self.conn.getresponse()
        assert self.response.status == 200, self.response.read()[:500]
        assert self.response.getheader("Content-Type", "").startswith("text/event-stream")
        self.events = read_sse(self.response)
        self.first = next(self.events)

    def rest(self):
        """The remaining events, read to the stream's end."""
        return [self.first] + list(self.events)

    def close(self):
        self.response.close()
        self.conn.close()


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def idle_and_empty(server):
    m = server.metrics()
    return m[RUNNING] == 0 and m[WAITING] == 0 and m[USAGE] == 0 and m


def long_completion(server, **fields):
    body = {"model": server.model, "prompt": "Tell me everything.", "max_tokens": 3500,
            "ignore_eos": True, "stream": True}
    body.update(fields)
    return body


def test_health_and_metrics_page(server):
    status, _, body = server.request("GET", "/health")
    assert status == 200
    status, headers, body = server.request("GET", "/metrics")
    assert status == 200
    assert headers.get("Content-Type", "").startswith("text/plain")
    text = body.decode()
    for name in ("num_requests_running", "num_requests_waiting", "prompt_tokens_total",
                 "generation_tokens_total", "time_to_first_token_seconds",
                 "inter_token_latency_seconds", "e2e_request_latency_seconds",
                 "kv_cache_usage_perc", "prefix_cache_hit_rate"):
        assert f"# TYPE latentserve:{name} " in text, name


def test_metrics_count_a_request(server):
    before = server.metrics()
    status, body = server.post_json("/v1/completions", {
        "model": server.model, "prompt": "Count me", "max_tokens": 7, "ignore_eos": True})
    assert status == 200, body
    after = wait_for(lambda: (lambda m: m["latentserve:requests_finished_total"] >
                              before["latentserve:requests_finished_total"] and m)(
                                  server.metrics()), 2.0)
    assert after, "the finished request was not counted"
    assert after["latentserve:generation_tokens_total"] - \
        before["latentserve:generation_tokens_total"] == 7
    assert after["latentserve:prompt_tokens_total"] - before["latentserve:prompt_tokens_total"] \
        == body["usage"]["prompt_tokens"]
    ttft = "latentserve:time_to_first_token_seconds_count"
    itl = "latentserve:inter_token_latency_seconds_count"
    assert after[ttft] - before[ttft] == 1
    assert after[itl] - before[itl] == 6


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
def test_disconnect_aborts_and_frees_cache(server, path):
    streams = []
    for _ in range(6):
        request = long_completion(server)
        if path == "/v1/chat/completions":
            del request["prompt"]
            request["messages"] = [{"role": "user", "content": "Go on and on."}]
        streams.append(Stream(server, path, request))
    m = server.metrics()
    assert m[RUNNING] + m[WAITING] >= 1
    assert m[USAGE] > 0
    for stream in streams:
        stream.close()
    m = wait_for(lambda: idle_and_empty(server), 2.0)
    assert m, f"after the clients left: {server.metrics()}"
    generated = m[GENERATED]
    time.sleep(0.3)
    assert server.metrics()[GENERATED] == generated, "still generating for a gone client"


def test_disconnect_without_streaming_aborts(server):
    payload = json.dumps(long_completion(server, stream=False)).encode()
    sock = socket.create_connection((server.host, server.port), timeout=30)
    sock.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
    assert wait_for(lambda: server.metrics()[RUNNING] == 1, 5.0)
    sock.close()
    assert wait_for(lambda: idle_and_empty(server), 2.0), server.metrics()


def test_sigterm_lets_running_streams_finish(start_server):
    s = start_server("--shutdown-timeout", "60", grpc=False)
    streams = [Stream(s, "/v1/completions", long_completion(s, max_tokens=150))
               for _ in range(3)]
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    # No new work is accepted once shutdown began.
    try:
        status, _, _ = s.request("POST", "/v1/completions", {
            "model": s.model, "prompt": "late", "max_tokens": 2}, timeout=5)
        assert status == 503
    except (ConnectionError, OSError):
        pass
    for stream in streams:
        events = stream.rest()
        stream.close()
        assert events[-1] == "[DONE]", events[-3:]
        final = json.loads(events[-2])
        assert final["choices"][0]["finish_reason"] == "length"
        text_events = [json.loads(e) for e in events[:-1]]
        assert sum(len(e["choices"]) for e in text_events) >= 1
    assert s.proc.wait(30) == 0, s.log()


def test_sigterm_aborts_streams_past_the_timeout(start_server):
    s = start_server("--shutdown-timeout", "1", grpc=False)
    stream = Stream(s, "/v1/completions", long_completion(s))
    started = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    try:
        events = stream.rest()
    except (ConnectionError, http.client.IncompleteRead) as e:
        pytest.fail(f"the stream was cut mid-response: {e!r}")
    stream.close()
    # The stream ends cleanly: whole events only, and if it was finished properly, [DONE] last.
    assert events
    for e in events[:-1]:
        json.loads(e)
    assert events[-1] == "[DONE]" or json.loads(events[-1])
    try:
        code = s.proc.wait(15)
    except subprocess.TimeoutExpired:
        pytest.fail("the server did not exit after its shutdown timeout\n" + s.log())
    assert code == 0, s.log()
    assert time.monotonic() - started < 10


def test_sigint_exits_zero_when_idle(start_server):
    s = start_server(grpc=False)
    s.proc.send_signal(signal.SIGINT)
    assert s.proc.wait(15) == 0, s.log()
