"""POST /v1/completions through the official `openai` client, plus /tokenize and /detokenize:
text and token-id prompts, streaming, n, logprobs, stop strings, seeds, usage and cached tokens."""

import random


def test_non_streaming_shape(client, server):
    r = client.completions.create(model=server.model, prompt="The capital of France is",
                                  max_tokens=7, temperature=0)
    assert r.object == "text_completion"
    assert r.id and r.created > 0 and r.model == server.model
    assert len(r.choices) == 1
    assert r.choices[0].index == 0
    assert isinstance(r.choices[0].text, str)
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 7
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_token_id_prompt(client, server, vocab_size):
    rng = random.Random()
    ids = [rng.randrange(100, vocab_size) for _ in range(37)]
    r = client.completions.create(model=server.model, prompt=ids, max_tokens=3, temperature=0,
                                  extra_body={"ignore_eos": True})
    assert r.usage.prompt_tokens == 37
    assert r.usage.completion_tokens == 3


def test_streaming_equals_non_streaming(client, server):
    kwargs = dict(model=server.model, prompt="Once upon a time", max_tokens=20, temperature=0)
    whole = client.completions.create(**kwargs)
    chunks = list(client.completions.create(stream=True, **kwargs))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole.choices[0].text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert all(c.object == "text_completion" for c in chunks)


def test_stream_usage_chunk(client, server):
    chunks = list(client.completions.create(
        model=server.model, prompt="Count:", max_tokens=6, stream=True,
        stream_options={"include_usage": True}, extra_body={"ignore_eos": True}))
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 6
    assert all(c.usage is None for c in chunks[:-1])


def test_n_choices(client, server):
    r = client.completions.create(model=server.model, prompt="Hello", max_tokens=5, n=2,
                                  temperature=1.0, extra_body={"ignore_eos": True})
    assert sorted(c.index for c in r.choices) == [0, 1]
    assert r.usage.completion_tokens == 10
    chunks = list(client.completions.create(model=server.model, prompt="Hello", max_tokens=5,
                                            n=3, temperature=1.0, stream=True))
    assert {c.choices[0].index for c in chunks if c.choices} == {0, 1, 2}


def test_logprobs(client, server):
    r = client.completions.create(model=server.model, prompt="One two three", max_tokens=4,
                                  temperature=0, logprobs=3, extra_body={"ignore_eos": True})
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 4
    assert all(v <= 0 for v in lp.token_logprobs)
    for chosen, tops in zip(lp.token_logprobs, lp.top_logprobs):
        assert 1 <= len(tops) <= 4  # the chosen token may add itself to the three best
        assert max(tops.values()) >= chosen - 1e-4
    assert lp.text_offset == sorted(lp.text_offset)


def test_stop_string(client, server):
    kwargs = dict(model=server.model, prompt="Write something:", max_tokens=40, temperature=0,
                  extra_body={"ignore_eos": True})
    full = client.completions.create(**kwargs).choices[0].text
    assert len(full) >= 6
    stop = full[len(full) // 2: len(full) // 2 + 2]
    r = client.completions.create(stop=stop, **kwargs)
    assert r.choices[0].text == full[:full.index(stop)]
    assert r.choices[0].finish_reason == "stop"


def test_seed_reproducibility(client, server):
    kwargs = dict(model=server.model, prompt="Random:", max_tokens=12, temperature=1.0,
                  extra_body={"ignore_eos": True})
    a = client.completions.create(seed=99, **kwargs).choices[0].text
    b = client.completions.create(seed=99, **kwargs).choices[0].text
    assert a == b


def test_cached_tokens_after_repeated_prompt(client, server, vocab_size):
    rng = random.Random()
    ids = [rng.randrange(100, vocab_size) for _ in range(200)]
    client.completions.create(model=server.model, prompt=ids, max_tokens=1)
    r = client.completions.create(model=server.model, prompt=ids, max_tokens=1)
    assert r.usage.prompt_tokens == 200
    assert 0 < r.usage.prompt_tokens_details.cached_tokens < 200


def test_tokenize_detokenize_round_trip(server):
    text = "Hello, world! 你好"
    status, tokenized = server.post_json("/tokenize", {"model": server.model, "prompt": text})
    assert status == 200, tokenized
    tokens = tokenized["tokens"]
    assert tokens and all(isinstance(t, int) for t in tokens)
    status, detok = server.post_json("/detokenize", {"model": server.model, "tokens": tokens})
    assert status == 200, detok
    assert detok["prompt"].endswith(text)  # a BOS token may lead
