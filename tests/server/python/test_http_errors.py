"""Malformed and refused requests over raw HTTP: every answer is OpenAI's error JSON with the
right status, and the server stays healthy afterwards."""

import json
import threading
import time

import pytest

from conftest import error_of, numbers_in

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


def chat_body(server, **fields):
    body = {"model": server.model, "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 2}
    body.update(fields)
    return body


def completion_body(server, **fields):
    body = {"model": server.model, "prompt": "hi", "max_tokens": 2}
    body.update(fields)
    return body


def expect_error(server, path, body, status, headers=None):
    got, _, raw = server.request("POST", path, body, headers)
    assert got == status, raw[:500]
    error = error_of(json.loads(raw))
    return error


def test_invalid_json(server):
    for raw in ('{"model": ', "not json", "[1, 2", '{"model": "m",}', ""):
        error = expect_error(server, CHAT, raw.encode(), 400)
        assert error["type"] == "invalid_request_error" or error["code"] in (400, "400")


def test_body_not_an_object(server):
    expect_error(server, CHAT, b"[]", 400)
    expect_error(server, COMPLETIONS, b'"prompt"', 400)


def test_invalid_utf8(server):
    raw = b'{"model": "' + server.model.encode() + \
        b'", "prompt": "abc\xff\xfe def", "max_tokens": 2}'
    expect_error(server, COMPLETIONS, raw, 400)
    raw = b'{"model": "' + server.model.encode() + \
        b'", "messages": [{"role": "user", "content": "\xc3\x28"}], "max_tokens": 2}'
    expect_error(server, CHAT, raw, 400)


@pytest.mark.parametrize("field,value", [
    ("max_tokens", "ten"), ("max_tokens", 2.5), ("max_tokens", -1), ("temperature", "hot"),
    ("temperature", -0.5), ("top_p", 1.5), ("n", "2"), ("n", 0), ("stream", "yes"),
    ("stop", 5), ("stop", [1, 2]), ("seed", "x"), ("logprobs", "yes"), ("messages", "hi"),
    ("messages", [{"role": "wizard", "content": "hi"}]), ("messages", []),
    ("messages", [{"role": "user", "content": 5}]), ("model", 3), ("logit_bias", [1]),
    ("presence_penalty", "a"), ("stream_options", "usage"), ("top_k", "all"),
])
def test_wrong_types_and_values_chat(server, field, value):
    error = expect_error(server, CHAT, chat_body(server, **{field: value}), 400)
    assert error["message"]


@pytest.mark.parametrize("field,value", [
    ("prompt", 5), ("prompt", [1, "a"]), ("prompt", {"text": "x"}), ("max_tokens", []),
    ("logprobs", -1), ("temperature", [1]),
])
def test_wrong_types_completions(server, field, value):
    expect_error(server, COMPLETIONS, completion_body(server, **{field: value}), 400)


def test_n_bounds(server):
    expect_error(server, CHAT, chat_body(server, n=17), 400)
    status, body = server.post_json(CHAT, chat_body(server, n=16, max_tokens=1))
    assert status == 200, body
    assert len(body["choices"]) == 16


def test_top_logprobs_bounds(server):
    error = expect_error(server, CHAT, chat_body(server, logprobs=True, top_logprobs=21), 400)
    assert "20" in error["message"] or "top_logprobs" in error["message"]
    expect_error(server, COMPLETIONS, completion_body(server, logprobs=21), 400)


def test_stop_string_count(server):
    stops = [f"stop{i}" for i in range(17)]
    expect_error(server, CHAT, chat_body(server, stop=stops), 400)
    status, body = server.post_json(CHAT, chat_body(server, stop=stops[:16]))
    assert status == 200, body


def test_logit_bias_keys(server, vocab_size):
    for bias in ({"abc": 1}, {str(vocab_size): 1}, {"-1": 1}, {"10": "x"}):
        expect_error(server, CHAT, chat_body(server, logit_bias=bias), 400)
    status, body = server.post_json(CHAT, chat_body(server, logit_bias={str(vocab_size - 1): 5}))
    assert status == 200, body


def test_prompt_token_ids_in_vocabulary(server, vocab_size):
    expect_error(server, COMPLETIONS, completion_body(server, prompt=[1, vocab_size]), 400)
    expect_error(server, COMPLETIONS, completion_body(server, prompt=[-1]), 400)
    expect_error(server, COMPLETIONS, completion_body(server, prompt=[]), 400)


def test_context_length_message_says_both_numbers(server, context_length):
    prompt = list(range(1000, 1100))
    max_tokens = context_length - 50
    error = expect_error(server, COMPLETIONS,
                         completion_body(server, prompt=prompt, max_tokens=max_tokens), 400)
    numbers = numbers_in(error["message"])
    assert str(context_length) in numbers, error["message"]
    assert str(max_tokens) in numbers or str(len(prompt) + max_tokens) in numbers, \
        error["message"]
    # The chat route says it too.
    error = expect_error(server, CHAT, chat_body(server, max_tokens=context_length), 400)
    assert str(context_length) in numbers_in(error["message"]), error["message"]


def test_unknown_path_and_model(server):
    status, _, raw = server.request("GET", "/v1/nothing-here")
    assert status == 404
    error_of(json.loads(raw))
    status, _, raw = server.request("POST", "/v2/chat/completions", chat_body(server))
    assert status == 404
    error = expect_error(server, CHAT, chat_body(server, model="no-such-model"), 404)
    assert "no-such-model" in error["message"]
    expect_error(server, COMPLETIONS, completion_body(server, model="no-such-model"), 404)


def test_wrong_method(server):
    status, _, raw = server.request("GET", CHAT)
    assert status in (404, 405)
    error_of(json.loads(raw))


def test_still_healthy_after_errors(server):
    assert server.request("GET", "/health")[0] == 200
    status, body = server.post_json(CHAT, chat_body(server))
    assert status == 200, body


def test_api_key(start_server):
    s = start_server("--api-key", "sekret", grpc=False)
    good = {"Authorization": "Bearer sekret"}
    assert s.request("GET", "/health")[0] == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "sekret"}):
        status, _, raw = s.request("POST", CHAT, chat_body(s), headers)
        assert status == 401, raw
        error_of(json.loads(raw))
        assert s.request("GET", "/v1/models", headers=headers)[0] == 401
    status, _, raw = s.request("POST", CHAT, chat_body(s), good)
    assert status == 200, raw
    assert s.request("GET", "/v1/models", headers=good)[0] == 200


def test_request_too_large(start_server):
    s = start_server("--max-request-bytes", "4096", grpc=False)
    big = chat_body(s, messages=[{"role": "user", "content": "x" * 8000}])
    status, _, raw = s.request("POST", CHAT, big)
    assert status == 413, raw
    error_of(json.loads(raw))
    # Announced size alone is enough to refuse, before the body arrives.
    conn = s.connection(timeout=10)
    conn.putrequest("POST", CHAT)
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(1 << 30))
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413
    conn.close()
    small = chat_body(s)
    assert s.request("POST", CHAT, small)[0] == 200


def test_queue_limit(start_server):
    s = start_server("--max-queued-requests", "2", "--max-num-seqs", "1", grpc=False)
    statuses, lock = [], threading.Lock()
    long_body = completion_body(s, prompt="x", max_tokens=200, ignore_eos=True)

    def send():
        status, _, raw = s.request("POST", COMPLETIONS, long_body, timeout=300)
        if status != 200:
            error_of(json.loads(raw))
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=send) for _ in range(12)]
    for t in threads:
        t.start()
        time.sleep(0.01)  # a burst: the engine counts queued requests as they are submitted
    for t in threads:
        t.join(300)
    assert len(statuses) == 12, statuses
    assert statuses.count(200) >= 1
    refused = [x for x in statuses if x != 200]
    assert refused, f"no request refused: {statuses}"
    assert set(refused) <= {429, 503}, statuses
    metrics = s.metrics()
    assert metrics.get('latentserve:requests_rejected_total{status_class="4xx"}', 0) + \
        metrics.get('latentserve:requests_rejected_total{status_class="5xx"}', 0) >= len(refused)
