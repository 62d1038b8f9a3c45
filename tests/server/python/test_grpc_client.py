"""The gRPC API of a running `latentserve serve --grpc-port`, through a grpcio client generated
from proto/ at test time (grpc_tools.protoc into a temporary folder)."""

import importlib
import sys
import time
from pathlib import Path

import pytest

grpc = pytest.importorskip("grpc")
protoc = pytest.importorskip("grpc_tools.protoc")

PROTO_DIR = Path(__file__).resolve().parents[3] / "proto"
FREE = "latentserve:kv_cache_free_blocks"
RUNNING = "latentserve:num_requests_running"
WAITING = "latentserve:num_requests_waiting"


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """The generated modules: pb.api (latentserve_pb2), pb.rpc (its stubs), pb.health(_rpc)."""
    out = tmp_path_factory.mktemp("grpc-generated")
    include = str(Path(protoc.__file__).parent / "_proto")  # google/protobuf/*.proto
    for proto_root, proto in ((PROTO_DIR, "latentserve.proto"),
                              (PROTO_DIR / "grpc/health/v1", "health.proto")):
        code = protoc.main(["grpc_tools.protoc", f"-I{proto_root}", f"-I{include}",
                            f"--python_out={out}", f"--grpc_python_out={out}", proto])
        assert code == 0, f"protoc failed on {proto}"
    sys.path.insert(0, str(out))

    class Modules:
        api = importlib.import_module("latentserve_pb2")
        rpc = importlib.import_module("latentserve_pb2_grpc")
        health = importlib.import_module("health_pb2")
        health_rpc = importlib.import_module("health_pb2_grpc")
    return Modules


@pytest.fixture(scope="session")
def channel(server):
    with grpc.insecure_channel(f"{server.host}:{server.grpc_port}") as ch:
        grpc.channel_ready_future(ch).result(timeout=30)
        yield ch


@pytest.fixture(scope="session")
def stub(pb, channel):
    return pb.rpc.LatentserveStub(channel)


def sampling(pb, **fields):
    return pb.api.SamplingParameters(temperature=0.0, ignore_eos=True, **fields)


def collect(responses):
    """Adds a stream up: ({index: (token_ids, text)}, finish reasons, usage of the last)."""
    completions, finish, usage = {}, {}, None
    for r in responses:
        ids, text = completions.get(r.index, ([], ""))
        completions[r.index] = (ids + list(r.token_ids), text + r.text)
        if r.finish_reason:
            finish[r.index] = r.finish_reason
        if r.HasField("usage"):
            usage = r.usage
    return completions, finish, usage


def test_generate_streams_token_ids_prompt(pb, stub):
    request = pb.api.GenerateRequest(token_ids=pb.api.TokenIds(ids=[0, 19923, 29616, 774]),
                                     sampling=sampling(pb, max_tokens=12, logprobs=2),
                                     request_id="py-1")
    responses = list(stub.Generate(request, timeout=60))
    assert len(responses) > 1, "expected a stream, got one message"
    assert all(r.request_id == "py-1" for r in responses)
    completions, finish, usage = collect(responses)
    ids, text = completions[0]
    assert len(ids) == 12
    assert finish == {0: pb.api.FINISH_REASON_LENGTH}
    assert (usage.prompt_tokens, usage.completion_tokens) == (4, 12)
    logprobs = [lp for r in responses for lp in r.logprobs]
    assert [lp.token for lp in logprobs] == ids
    assert all(len(lp.top) == 2 and lp.top[0].token == lp.token for lp in logprobs)
    # Greedy is deterministic: the same request streams the same tokens and text again.
    assert collect(stub.Generate(request, timeout=60))[0][0] == (ids, text)


def test_text_and_chat_prompts_match_tokenize(pb, stub):
    chat = pb.api.ChatPrompt(messages=[pb.api.ChatMessage(role="user", content="Hello there")])
    for prompt in ({"text": "Once upon a time"}, {"chat": chat}):
        tokenized = stub.Tokenize(pb.api.TokenizeRequest(**prompt), timeout=30)
        assert len(tokenized.token_ids) > 2
        responses = stub.Generate(pb.api.GenerateRequest(sampling=sampling(pb, max_tokens=4),
                                                         **prompt), timeout=60)
        completions, finish, usage = collect(responses)
        assert usage.prompt_tokens == len(tokenized.token_ids)
        assert len(completions[0][0]) == 4
    assert "Hello there" in stub.Tokenize(pb.api.TokenizeRequest(chat=chat), timeout=30).text


def test_n_completions_each_finish(pb, stub):
    request = pb.api.GenerateRequest(
        token_ids=pb.api.TokenIds(ids=[0, 5, 6, 7]),
        sampling=pb.api.SamplingParameters(n=3, max_tokens=5, temperature=1.0, seed=9,
                                           ignore_eos=True))
    completions, finish, usage = collect(stub.Generate(request, timeout=60))
    assert sorted(completions) == [0, 1, 2]
    assert all(len(ids) == 5 for ids, _ in completions.values())
    assert finish == {i: pb.api.FINISH_REASON_LENGTH for i in range(3)}
    assert usage.completion_tokens == 15


@pytest.mark.parametrize("params, says", [
    ({"temperature": -1.0}, "temperature"),
    ({"n": 99}, "n must be"),
    ({"max_tokens": 10**6}, "context length"),
])
def test_bad_parameters_are_invalid_argument(pb, stub, params, says):
    request = pb.api.GenerateRequest(token_ids=pb.api.TokenIds(ids=[0, 1, 2]),
                                     sampling=pb.api.SamplingParameters(**params))
    with pytest.raises(grpc.RpcError) as error:
        list(stub.Generate(request, timeout=30))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert says in error.value.details()


def test_unknown_model_is_not_found(pb, stub):
    request = pb.api.GenerateRequest(text="hi", model="no-such-model")
    with pytest.raises(grpc.RpcError) as error:
        list(stub.Generate(request, timeout=30))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_list_models_and_health(pb, stub, channel, server, context_length):
    models = stub.ListModels(pb.api.ListModelsRequest(), timeout=30).models
    assert [m.id for m in models] == [server.model]
    assert models[0].max_model_len == context_length
    health = pb.health_rpc.HealthStub(channel)
    for service in ("", "latentserve.v1.Latentserve"):
        answer = health.Check(pb.health.HealthCheckRequest(service=service), timeout=30)
        assert answer.status == pb.health.HealthCheckResponse.SERVING


def test_cancel_mid_stream_aborts_and_frees_cache(pb, stub, server):
    total_blocks = server.metrics()[FREE]
    call = stub.Generate(pb.api.GenerateRequest(token_ids=pb.api.TokenIds(ids=[0, 70, 71, 72]),
                                                sampling=sampling(pb, max_tokens=3000)),
                         timeout=120)
    for _ in range(3):
        next(call)
    call.cancel()
    with pytest.raises(grpc.RpcError) as error:
        list(call)
    assert error.value.code() == grpc.StatusCode.CANCELLED
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        m = server.metrics()
        if m[RUNNING] == 0 and m[WAITING] == 0 and m[FREE] == total_blocks:
            break
        time.sleep(0.05)
    m = server.metrics()
    assert (m[RUNNING], m[WAITING], m[FREE]) == (0, 0, total_blocks)
