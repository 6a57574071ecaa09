//===- ModelConfig.h - What an MoE layer of a model looks like --*- C++ -*-===//
//
// The description of a model's MoE layer that moe-gen and
// moe::buildMoELayer (moe/Builder/MoELayerBuilder.h) work from: sizes,
// routing (scoring, groups, correction bias, renormalisation, scale) and the
// element type, before tensor parallelism splits the intermediate sizes.
//
// A ModelConfig comes from a built-in preset (getPresetConfig), from the text
// of a Hugging Face config.json (parseModelConfig) or from a file
// (readModelConfigFile), or is filled in by hand. validate() rejects, with
// one message naming the offending field or option, everything moe.topk's
// and the other ops' verifiers would reject.
//
// This header needs LLVM Support only.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_BUILDER_MODELCONFIG_H
#define MOE_BUILDER_MODELCONFIG_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>

#include "moe-runtime/OpContract.h"

namespace mlir {
namespace moe {

/// The element type of activations and weights: the op contract's (one
/// dtype enum for the project), one of its float types.
using DType = moert::contract::DType;

/// "bf16", "f16" or "f32": the MLIR spelling.
llvm::StringRef stringifyDType(DType type);
/// The inverse of stringifyDType, for float types only.
std::optional<DType> parseDType(llvm::StringRef name);

/// How router logits become expert scores (moe.topk's `scoring`).
enum class Scoring { Softmax, Sigmoid };

/// Sizes (and token counts) are capped at INT32_MAX, far above any real model,
/// so that the products formed from them (n_shared * moe_intermediate, 2 * I)
/// cannot overflow and every shape stays a sane int64 for MLIR.
constexpr int64_t kMaxModelSize = (int64_t(1) << 31) - 1;

/// Everything needed to know about one MoE layer of a model, before tensor
/// parallelism splits the intermediate sizes.
struct ModelConfig {
  /// How error messages name the model: "preset 'deepseek-v3'", "'path'".
  std::string source = "model";
  /// A human-readable name ("DeepSeek-V3", "path/config.json (model_type
  /// qwen3_moe)").
  std::string displayName;
  /// The default function name is made from this (defaultFunctionName).
  std::string functionStem = "model";
  /// Which defaults filled in missing fields: "preset" for a preset, else
  /// the family of config.json's model_type ("DeepSeek-V3", "Qwen-MoE",
  /// "generic").
  std::string defaults = "preset";
  /// config.json's model_type; empty for a preset.
  std::string modelType;

  int64_t hiddenSize = 0;
  /// One routed expert's intermediate size (moe_intermediate_size).
  int64_t intermediateSize = 0;
  /// The number of routed experts.
  int64_t numExperts = 0;
  /// Experts per token (num_experts_per_tok).
  int64_t topK = 0;
  int64_t nGroup = 1;
  int64_t topkGroup = 1;
  /// The shared MLP's intermediate size: the number of shared experts times
  /// intermediateSize, or Qwen2-MoE's shared_expert_intermediate_size. 0: no
  /// shared experts.
  int64_t sharedIntermediateSize = 0;
  Scoring scoring = Scoring::Softmax;
  /// DeepSeek-V3's e_score_correction_bias (topk_method "noaux_tc").
  bool correctionBias = false;
  /// norm_topk_prob: the selected weights are divided by their sum.
  bool renormalize = false;
  /// Fused into moe.topk (an f32 there).
  double routedScalingFactor = 1.0;
  DType dtype = DType::BF16;
  /// The routed and shared experts' weights are f8E4M3FN with one fp32 scale
  /// per 128 x 128 block (config.json's quantization_config: quant_method
  /// fp8, fmt e4m3, weight_block_size [128, 128], activation_scheme dynamic),
  /// the activations bf16.
  bool fp8Experts = false;

  /// The config fields messages name for the number of experts and the
  /// shared size (a config may say num_experts, or
  /// shared_expert_intermediate_size).
  std::string numExpertsField = "n_routed_experts";
  std::string sharedSizeField = "n_shared_experts";

  bool hasSharedExperts() const { return sharedIntermediateSize > 0; }
};

/// How one function of MoE layers is laid out.
/// The IR's form: moe ops on memrefs with explicit allocations (the output
/// an argument), or on tensors in destination-passing style (the function
/// returns the output).
enum class Form { Buffer, Tensor };

struct LayerOptions {
  /// Tokens per batch; nullopt: dynamic (memref<?x...>).
  std::optional<int64_t> tokens;
  /// Tensor-parallel degree: the routed and shared intermediate sizes are
  /// divided by it (one rank's shard), and each layer's output is summed
  /// over the ranks (moe.all_reduce, group_size = tp) unless `shardOnly`.
  int64_t tp = 1;
  /// One rank's shard without the collectives: what one device computes of
  /// a tensor-parallel layer, runnable alone (single-device studies).
  bool shardOnly = false;
  /// MoE layers chained in the function, each layer's output the next one's
  /// input.
  int64_t layers = 1;
  /// The in-place routed kernel: moe.routed_experts writes its result into
  /// its hidden input.
  bool routedInplace = false;
  /// Overrides the model's element type.
  std::optional<DType> dtype;
  /// Overrides the model's expert weight format (moe-gen's --dtype fp8:
  /// true with a bf16 dtype; any other --dtype: false).
  std::optional<bool> fp8Experts;
  /// The function's name; empty: defaultFunctionName(model).
  std::string functionName;
  Form form = Form::Buffer;
};

/// At most this many chained layers (a model has a few hundred).
constexpr int64_t kMaxLayers = 10000;

/// The presets: the published config.json of each model ("deepseek-v3",
/// "kimi-k2", "qwen3-235b-a22b"), all bf16.
llvm::ArrayRef<llvm::StringRef> getPresetNames();
std::optional<ModelConfig> getPresetConfig(llvm::StringRef name);

/// Reads a Hugging Face config.json. Missing fields default by model_type
/// (docs/moe-gen.md). Errors are one line, "<source>: <problem>", naming the
/// field; `source` is how they name the text, and becomes the config's
/// `source`. The config's displayName and functionStem come from model_type.
llvm::Expected<ModelConfig>
parseModelConfig(llvm::StringRef jsonText,
                 llvm::StringRef source = "'config.json'");

/// Reads the config.json at `path`, or in the folder `path`. The display name
/// is the path, the function stem the file's name (for a file called
/// config.json its folder's name, as in DeepSeek-V3/config.json).
llvm::Expected<ModelConfig> readModelConfigFile(llvm::StringRef path);

/// Whether `name` is an MLIR bare identifier: [A-Za-z_][A-Za-z0-9_$.]*.
bool isBareIdentifier(llvm::StringRef name);

/// The function name made from the model's functionStem: lower case, runs of
/// other characters as one '_', "_moe" appended ("DeepSeek-V3" ->
/// "deepseek_v3_moe").
std::string defaultFunctionName(const ModelConfig &model);

/// The function name `options` asks for, or the model's default.
std::string getFunctionName(const ModelConfig &model,
                            const LayerOptions &options);

/// Checks that the layers `options` describes for `model` would verify:
/// sizes in range, the routing moe.topk accepts, intermediate sizes
/// divisible by the TP degree, a bare-identifier function name. The message
/// names the model's source and the field, e.g. "preset 'deepseek-v3':
/// moe_intermediate_size = 2048 is not divisible by --tp 3".
llvm::Error validate(const ModelConfig &model, const LayerOptions &options);

} // namespace moe
} // namespace mlir

#endif // MOE_BUILDER_MODELCONFIG_H
