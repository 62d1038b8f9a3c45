"""POST /v1/chat/completions through the official `openai` client: shapes, streaming, n, logprobs,
tools, stop strings, seeds and usage. The tiny model's weights are random, so its text is
gibberish; the tests compare the server with itself (stream against whole, seed against seed)."""

import math
import uuid

import pytest

MESSAGES = [{"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Name three prime numbers."}]


def unique_messages():
    return [{"role": "user", "content": f"Tell me about {uuid.uuid4().hex}."}]


def test_non_streaming_shape(client, server):
    r = client.chat.completions.create(model=server.model, messages=MESSAGES, max_tokens=8,
                                       temperature=0)
    assert r.object == "chat.completion"
    assert r.id and isinstance(r.created, int) and r.created > 0
    assert r.model == server.model
    assert len(r.choices) == 1
    choice = r.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0
    assert 0 < r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_ignore_eos_generates_exactly_max_tokens(client, server):
    r = client.chat.completions.create(model=server.model, messages=MESSAGES, max_tokens=13,
                                       temperature=0, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 13
    assert r.choices[0].finish_reason == "length"


def test_max_completion_tokens(client, server):
    r = client.chat.completions.create(model=server.model, messages=MESSAGES,
                                       max_completion_tokens=5, temperature=0,
                                       extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 5


def test_one_text_part_equals_plain_string(client, server):
    plain = client.chat.completions.create(
        model=server.model, max_tokens=6, temperature=0,
        messages=[{"role": "user", "content": "hello there"}])
    parts = client.chat.completions.create(
        model=server.model, max_tokens=6, temperature=0,
        messages=[{"role": "user", "content": [{"type": "text", "text": "hello there"}]}])
    assert parts.usage.prompt_tokens == plain.usage.prompt_tokens
    assert parts.choices[0].message.content == plain.choices[0].message.content


def collect_stream(stream):
    """Joins a chat stream per choice; returns (texts, finish_reasons, roles, chunks)."""
    texts, finish, roles, chunks = {}, {}, {}, []
    for chunk in stream:
        chunks.append(chunk)
        assert chunk.object == "chat.completion.chunk"
        for c in chunk.choices:
            if c.delta.role:
                assert c.index not in roles, "role sent twice"
                roles[c.index] = c.delta.role
            if c.delta.content:
                assert c.index in roles, "content before the role"
                texts[c.index] = texts.get(c.index, "") + c.delta.content
            if c.finish_reason:
                assert c.index not in finish, "two finish reasons"
                finish[c.index] = c.finish_reason
    return texts, finish, roles, chunks


def test_streaming_equals_non_streaming(client, server):
    kwargs = dict(model=server.model, messages=MESSAGES, max_tokens=24, temperature=0)
    whole = client.chat.completions.create(**kwargs)
    texts, finish, roles, chunks = collect_stream(
        client.chat.completions.create(stream=True, **kwargs))
    assert roles == {0: "assistant"}
    assert texts.get(0, "") == (whole.choices[0].message.content or "")
    assert finish == {0: whole.choices[0].finish_reason}
    assert len({c.id for c in chunks}) == 1
    assert all(c.model == server.model for c in chunks)


def test_stream_usage_chunk(client, server):
    stream = client.chat.completions.create(
        model=server.model, messages=MESSAGES, max_tokens=9, temperature=0, stream=True,
        stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == 9
    assert last.usage.prompt_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + 9
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_without_usage_has_none(client, server):
    chunks = list(client.chat.completions.create(model=server.model, messages=MESSAGES,
                                                 max_tokens=4, stream=True))
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices and chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_n_choices(client, server):
    r = client.chat.completions.create(model=server.model, messages=MESSAGES, max_tokens=10, n=3,
                                       temperature=1.0, seed=7, extra_body={"ignore_eos": True})
    assert sorted(c.index for c in r.choices) == [0, 1, 2]
    assert r.usage.completion_tokens == 30
    texts = [c.message.content for c in r.choices]
    assert len(set(texts)) > 1, f"three samples at temperature 1 all equal: {texts}"


def test_n_choices_streaming(client, server):
    texts, finish, roles, _ = collect_stream(client.chat.completions.create(
        model=server.model, messages=MESSAGES, max_tokens=8, n=4, temperature=1.0, seed=3,
        stream=True, extra_body={"ignore_eos": True}))
    assert sorted(roles) == [0, 1, 2, 3]
    assert finish == {i: "length" for i in range(4)}


def test_logprobs(client, server):
    r = client.chat.completions.create(model=server.model, messages=MESSAGES, max_tokens=6,
                                       temperature=0, logprobs=True, top_logprobs=5,
                                       extra_body={"ignore_eos": True})
    content = r.choices[0].logprobs.content
    assert len(content) == 6
    for entry in content:
        assert entry.logprob <= 0
        assert len(entry.top_logprobs) == 5
        tops = [t.logprob for t in entry.top_logprobs]
        assert tops == sorted(tops, reverse=True)
        # Greedy: the chosen token is the most likely one.
        assert math.isclose(entry.logprob, tops[0], abs_tol=1e-4)
        assert entry.token == entry.top_logprobs[0].token
        assert entry.bytes is None or all(0 <= b < 256 for b in entry.bytes)


def test_logprobs_streaming(client, server):
    stream = client.chat.completions.create(model=server.model, messages=MESSAGES, max_tokens=5,
                                            temperature=0, logprobs=True, top_logprobs=2,
                                            stream=True, extra_body={"ignore_eos": True})
    entries = []
    for chunk in stream:
        for c in chunk.choices:
            if c.logprobs and c.logprobs.content:
                entries += c.logprobs.content
    assert len(entries) == 5
    assert all(len(e.top_logprobs) == 2 for e in entries)


def test_top_logprobs_limit_is_allowed(client, server):
    r = client.chat.completions.create(model=server.model, messages=MESSAGES, max_tokens=1,
                                       logprobs=True, top_logprobs=20)
    assert len(r.choices[0].logprobs.content[0].top_logprobs) == 20


TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object",
                       "properties": {"city": {"type": "string"}},
                       "required": ["city"]},
    },
}]


@pytest.mark.parametrize("tool_choice", ["auto", "none", None])
def test_tools_pass_through_the_template(client, server, tool_choice):
    kwargs = dict(model=server.model, max_tokens=12, temperature=0, tools=TOOLS,
                  messages=[{"role": "user", "content": "Weather in Paris?"}])
    if tool_choice:
        kwargs["tool_choice"] = tool_choice
    r = client.chat.completions.create(**kwargs)
    # (DeepSeek-V3's own template renders tool calls and results, not the tool list itself.)
    choice = r.choices[0]
    assert choice.finish_reason in ("stop", "length", "tool_calls")
    assert choice.message.role == "assistant"
    if choice.finish_reason == "tool_calls":
        assert choice.message.tool_calls
    for call in choice.message.tool_calls or []:
        assert call.type == "function" and call.id and call.function.name


def test_tool_conversation_round_trip(client, server):
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"celsius\": 21}"},
    ]
    r = client.chat.completions.create(model=server.model, messages=messages, tools=TOOLS,
                                       max_tokens=8, temperature=0)
    assert r.choices[0].message.role == "assistant"
    stream = client.chat.completions.create(model=server.model, messages=messages, tools=TOOLS,
                                            max_tokens=8, temperature=0, stream=True)
    _, finish, roles, _ = collect_stream(stream)
    assert roles == {0: "assistant"} and 0 in finish


def test_stop_string_cuts_the_output(client, server):
    kwargs = dict(model=server.model, messages=MESSAGES, max_tokens=40, temperature=0,
                  extra_body={"ignore_eos": True})
    full = client.chat.completions.create(**kwargs).choices[0].message.content
    assert len(full) >= 6, full
    stop = full[len(full) // 2: len(full) // 2 + 2]
    expected = full[:full.index(stop)]
    r = client.chat.completions.create(stop=[stop, "\x00never"], **kwargs)
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == expected
    texts, finish, _, _ = collect_stream(client.chat.completions.create(stop=stop, stream=True,
                                                                        **kwargs))
    assert texts.get(0, "") == expected
    assert finish == {0: "stop"}


def test_seed_reproducibility(client, server):
    kwargs = dict(model=server.model, messages=MESSAGES, max_tokens=16, temperature=1.0,
                  extra_body={"ignore_eos": True})
    a = client.chat.completions.create(seed=1234, **kwargs).choices[0].message.content
    b = client.chat.completions.create(seed=1234, **kwargs).choices[0].message.content
    assert a == b
    others = {client.chat.completions.create(seed=s, **kwargs).choices[0].message.content
              for s in (1, 2, 3)}
    assert len(others | {a}) > 1


def test_sampling_extensions_accepted(client, server):
    r = client.chat.completions.create(
        model=server.model, messages=MESSAGES, max_tokens=6, temperature=0.8, top_p=0.9,
        presence_penalty=0.5, frequency_penalty=0.5, logit_bias={"100": -100}, user="tester",
        extra_body={"top_k": 20, "min_p": 0.01, "repetition_penalty": 1.1, "min_tokens": 6,
                    "unknown_field_is_ignored": 1})
    assert r.usage.completion_tokens == 6


def test_cached_tokens_after_repeated_prompt(client, server):
    messages = [{"role": "user", "content": " ".join(uuid.uuid4().hex for _ in range(40))}]
    first = client.chat.completions.create(model=server.model, messages=messages, max_tokens=2)
    second = client.chat.completions.create(model=server.model, messages=messages, max_tokens=2)
    assert first.usage.prompt_tokens == second.usage.prompt_tokens > 64
    details = second.usage.prompt_tokens_details
    assert details is not None
    assert 0 < details.cached_tokens < second.usage.prompt_tokens
    assert first.usage.prompt_tokens_details is None or \
        first.usage.prompt_tokens_details.cached_tokens < details.cached_tokens


def test_models_endpoint(client, server):
    models = client.models.list()
    ids = [m.id for m in models.data]
    assert ids[0] == server.model
    assert models.data[0].object == "model"
