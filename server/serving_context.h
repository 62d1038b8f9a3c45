// ServingContext: what every front end (HTTP/OpenAI, gRPC, the offline batch) shares while
// serving one model — the engine, the text processor, the served name and the server's limits.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "engine/engine.h"
#include "engine/sampling_params.h"
#include "engine/text/text_processor.h"

namespace latentserve::server {

class Metrics;

// Where a chat completion's reasoning (`<think>...</think>`) is looked for.
enum class ReasoningMode {
  kOff,   // never: the whole output is content
  kAuto,  // a `<think>` at the start of the output, or a prompt that ends inside `<think>`
};

struct ServingContext {
  engine::Engine* engine = nullptr;
  std::shared_ptr<const engine::text::TextProcessor> text;  // null: token ids only
  std::string model_name;             // requests must name exactly this model
  Metrics* metrics = nullptr;         // null: nothing recorded
  engine::SamplingLimits limits;      // must equal the engine's EngineConfig::limits
  int64_t max_queued_requests = 1024; // waiting requests past this get 429
  int64_t max_model_len = 0;          // the model's context length (max_position_embeddings)
  int64_t vocab_size = 0;             // the model's vocabulary (embedding rows)
  ReasoningMode reasoning = ReasoningMode::kAuto;
  int64_t created = 0;                // unix seconds the model was loaded (GET /v1/models)
};

// The name a model is served under when none is given: the --model folder as written, or
// "latentserve-tiny" for the built-in default model.
inline std::string default_served_model_name(const std::optional<std::string>& model_option) {
  return model_option ? *model_option : std::string("latentserve-tiny");
}

}  // namespace latentserve::server
