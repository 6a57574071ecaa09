//===- moe-gen.cpp - Write the MLIR of MoE layers -------------------------===//
//
// moe-gen turns a model description (a built-in preset or a Hugging Face
// config.json) into a `func.func` of `moe.*` ops on memrefs, one MoE layer
// after another, with every intermediate buffer allocated just before its
// first writer and freed just after its last reader.
//
// The order inside a layer is sglang's before the seed's change (shared
// experts first, then gate, top-k, routed experts, add), so the output is the
// input the scheduling passes of moe-opt are meant to improve.
//
// This tool only writes text: it links LLVM Support (cl, json, raw_ostream,
// formatv) and nothing from MLIR, so it builds in seconds. moe-opt is what
// verifies its output; everything the verifiers would reject is rejected here
// first, with one `moe-gen: error: ...` line that names the offending option,
// file or field.
//
//===----------------------------------------------------------------------===//

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>

using namespace llvm;

//===----------------------------------------------------------------------===//
// Diagnostics
//===----------------------------------------------------------------------===//

/// Makes a message safe to print on one line (and inside an MLIR comment):
/// control characters, newlines included, become '?'.
static std::string oneLine(StringRef text) {
  std::string result;
  result.reserve(text.size());
  for (char c : text)
    result.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? '?'
                                                                       : c);
  return result;
}

/// Reports a user error as one line and exits. moe-gen validates everything
/// before it opens the output, so there is nothing to clean up.
[[noreturn]] static void fatal(const Twine &message) {
  errs() << "moe-gen: error: " << oneLine(message.str()) << "\n";
  errs().flush();
  std::exit(1);
}

//===----------------------------------------------------------------------===//
// Model description
//===----------------------------------------------------------------------===//

namespace {

enum class ElementType { BF16, F16, F32 };

StringRef mlirName(ElementType type) {
  switch (type) {
  case ElementType::BF16:
    return "bf16";
  case ElementType::F16:
    return "f16";
  case ElementType::F32:
    return "f32";
  }
  llvm_unreachable("unknown element type");
}

/// Everything moe-gen needs to know about one MoE layer of a model, before
/// tensor parallelism splits the intermediate sizes.
struct ModelConfig {
  /// How errors name the model: "preset 'deepseek-v3'" or "'path'".
  std::string source;
  /// The --model argument as given, for the header comment.
  std::string modelArgument;
  /// A human-readable name for the header ("DeepSeek-V3", "qwen3_moe", ...).
  std::string displayName;
  /// The function is named after this (sanitised, with "_moe" appended).
  std::string functionStem;
  /// Which defaults filled in missing fields of a config.json.
  std::string defaults;

  int64_t hiddenSize = 0;
  int64_t intermediateSize = 0; // one routed expert's, before TP
  int64_t numExperts = 0;
  int64_t topK = 0;
  int64_t nGroup = 1;
  int64_t topkGroup = 1;
  /// The shared MLP's intermediate size before TP (0: no shared experts).
  int64_t sharedIntermediateSize = 0;
  /// The config field the shared size comes from, for error messages.
  std::string sharedSizeField = "n_shared_experts";
  /// Names of the fields errors refer to (a config may say num_experts).
  std::string numExpertsField = "n_routed_experts";
  bool sigmoid = false;
  bool correctionBias = false;
  bool renormalize = false;
  double routedScalingFactor = 1.0;
  ElementType dtype = ElementType::BF16;
};

/// The built-in presets: the published config.json of each model.
struct Preset {
  StringRef name;
  StringRef displayName;
  int64_t hiddenSize, intermediateSize, numExperts, topK, numShared;
  int64_t nGroup, topkGroup;
  bool sigmoid, correctionBias, renormalize;
  double routedScalingFactor;
};

const Preset kPresets[] = {
    {"deepseek-v3", "DeepSeek-V3", 7168, 2048, 256, 8, 1, 8, 4,
     /*sigmoid=*/true, /*correctionBias=*/true, /*renormalize=*/true, 2.5},
    {"kimi-k2", "Kimi-K2", 7168, 2048, 384, 8, 1, 1, 1,
     /*sigmoid=*/true, /*correctionBias=*/true, /*renormalize=*/true, 2.827},
    {"qwen3-235b-a22b", "Qwen3-235B-A22B", 4096, 1536, 128, 8, 0, 1, 1,
     /*sigmoid=*/false, /*correctionBias=*/false, /*renormalize=*/true, 1.0},
};

/// Sizes (and token counts) are capped at INT32_MAX, far above any real model,
/// so that the products moe-gen forms (n_shared * moe_intermediate, 2 * I)
/// cannot overflow and every shape stays a sane int64 for MLIR.
constexpr int64_t kMaxSize = (int64_t(1) << 31) - 1;

} // namespace

static ModelConfig fromPreset(const Preset &preset) {
  ModelConfig config;
  config.source = ("preset '" + preset.name + "'").str();
  config.modelArgument = preset.name.str();
  config.displayName = preset.displayName.str();
  config.functionStem = preset.name.str();
  config.defaults = "preset";
  config.hiddenSize = preset.hiddenSize;
  config.intermediateSize = preset.intermediateSize;
  config.numExperts = preset.numExperts;
  config.topK = preset.topK;
  config.nGroup = preset.nGroup;
  config.topkGroup = preset.topkGroup;
  config.sharedIntermediateSize = preset.numShared * preset.intermediateSize;
  config.sigmoid = preset.sigmoid;
  config.correctionBias = preset.correctionBias;
  config.renormalize = preset.renormalize;
  config.routedScalingFactor = preset.routedScalingFactor;
  config.dtype = ElementType::BF16;
  return config;
}

//===----------------------------------------------------------------------===//
// config.json
//===----------------------------------------------------------------------===//

namespace {

/// Defaults for the fields a config.json may leave out, by model family.
struct FamilyDefaults {
  StringRef name;
  bool sigmoid;
  /// Missing topk_method with sigmoid scoring means "noaux_tc".
  bool noauxTcWithSigmoid;
  int64_t numShared;
  bool renormalize;
};

const FamilyDefaults kDeepSeekV3Family = {"DeepSeek-V3", /*sigmoid=*/true,
                                          /*noauxTcWithSigmoid=*/true,
                                          /*numShared=*/1,
                                          /*renormalize=*/true};
const FamilyDefaults kQwenMoEFamily = {"Qwen-MoE", /*sigmoid=*/false,
                                       /*noauxTcWithSigmoid=*/false,
                                       /*numShared=*/0,
                                       /*renormalize=*/false};
const FamilyDefaults kGenericFamily = {"generic", /*sigmoid=*/false,
                                       /*noauxTcWithSigmoid=*/false,
                                       /*numShared=*/0,
                                       /*renormalize=*/false};

const FamilyDefaults &familyOf(StringRef modelType) {
  if (modelType == "deepseek_v3" || modelType == "kimi_k2")
    return kDeepSeekV3Family;
  if (modelType == "qwen3_moe" || modelType == "qwen2_moe")
    return kQwenMoEFamily;
  return kGenericFamily;
}

/// Reads typed fields of a config.json object. Absent and `null` fields are
/// "missing"; a present field of the wrong type is an error naming the field.
class ConfigReader {
public:
  ConfigReader(std::string source, const json::Object &object)
      : source(std::move(source)), object(object) {}

  bool has(StringRef key) const {
    const json::Value *value = object.get(key);
    return value && value->kind() != json::Value::Null;
  }

  [[noreturn]] void fail(const Twine &message) const {
    fatal(source + ": " + message);
  }

  /// A value printed for an error message, shortened if it is long.
  static std::string show(const json::Value &value) {
    std::string text = formatv("{0}", value).str();
    if (text.size() > 40)
      text = text.substr(0, 37) + "...";
    return text;
  }

  std::optional<int64_t> getInteger(StringRef key) const {
    if (!has(key))
      return std::nullopt;
    const json::Value &value = *object.get(key);
    if (std::optional<int64_t> integer = value.getAsInteger())
      return integer;
    // A whole number beyond int64 (or one the parser made infinite).
    std::optional<double> number = value.getAsNumber();
    if (value.getAsUINT64() ||
        (number && (!std::isfinite(*number) || std::floor(*number) == *number)))
      fail("field '" + key + "' = " + show(value) + " is too large (at most " +
           Twine(kMaxSize) + ")");
    fail("field '" + key + "' must be an integer, got " + show(value));
  }

  /// An integer in [minimum, kMaxSize].
  std::optional<int64_t> getSize(StringRef key, int64_t minimum) const {
    std::optional<int64_t> value = getInteger(key);
    if (!value)
      return std::nullopt;
    if (*value < minimum)
      fail("field '" + key + "' must be " +
           (minimum > 0 ? "a positive integer" : "a non-negative integer") +
           ", got " + Twine(*value));
    if (*value > kMaxSize)
      fail("field '" + key + "' = " + Twine(*value) +
           " is too large (at most " + Twine(kMaxSize) + ")");
    return value;
  }

  int64_t getRequiredSize(StringRef key) const {
    std::optional<int64_t> value = getSize(key, /*minimum=*/1);
    if (!value)
      fail("missing required field '" + key + "'");
    return *value;
  }

  std::optional<double> getNumber(StringRef key) const {
    if (!has(key))
      return std::nullopt;
    const json::Value &value = *object.get(key);
    std::optional<double> number = value.getAsNumber();
    if (!number)
      fail("field '" + key + "' must be a number, got " + show(value));
    return number;
  }

  std::optional<bool> getBoolean(StringRef key) const {
    if (!has(key))
      return std::nullopt;
    const json::Value &value = *object.get(key);
    std::optional<bool> boolean = value.getAsBoolean();
    if (!boolean)
      fail("field '" + key + "' must be true or false, got " + show(value));
    return boolean;
  }

  std::optional<std::string> getString(StringRef key) const {
    if (!has(key))
      return std::nullopt;
    const json::Value &value = *object.get(key);
    std::optional<StringRef> string = value.getAsString();
    if (!string)
      fail("field '" + key + "' must be a string, got " + show(value));
    return string->str();
  }

private:
  std::string source;
  const json::Object &object;
};

} // namespace

/// The name a config file's function gets: the file's stem unless it is the
/// uninformative "config", then the folder that holds it (the checkpoint's
/// name, as in DeepSeek-V3/config.json), then the model_type.
static std::string functionStemForFile(StringRef path, StringRef modelType) {
  StringRef stem = sys::path::stem(path);
  if (!stem.empty() && !stem.equals_insensitive("config"))
    return stem.str();
  StringRef parent = sys::path::filename(sys::path::parent_path(path));
  if (!parent.empty() && parent != "." && parent != ".." && parent != "/")
    return parent.str();
  if (!modelType.empty())
    return modelType.str();
  return "model";
}

constexpr unsigned kMaxJsonDepth = 256;

/// Whether the arrays and objects of `text` nest deeper than `limit`, looking
/// past the brackets inside strings. Malformed text is left to the parser.
static bool exceedsNestingDepth(StringRef text, unsigned limit) {
  unsigned depth = 0;
  bool inString = false, escaped = false;
  for (char c : text) {
    if (inString) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        inString = false;
    } else if (c == '"') {
      inString = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit)
        return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

static ModelConfig fromConfigFile(StringRef argument) {
  SmallString<256> path(argument);
  // A checkpoint folder stands for its config.json.
  if (sys::fs::is_directory(path))
    sys::path::append(path, "config.json");

  ModelConfig config;
  config.source = ("'" + path + "'").str();
  config.modelArgument = argument.str();
  config.displayName = path.str().str();

  ErrorOr<std::unique_ptr<MemoryBuffer>> buffer =
      MemoryBuffer::getFile(path, /*IsText=*/true);
  if (std::error_code error = buffer.getError())
    fatal("cannot read " + config.source + ": " + error.message());

  // llvm::json::parse recurses once per nesting level: refuse absurd nesting
  // (a config.json is a few levels deep) instead of overflowing the stack.
  if (exceedsNestingDepth((*buffer)->getBuffer(), kMaxJsonDepth))
    fatal(config.source + ": invalid JSON: nested deeper than " +
          Twine(kMaxJsonDepth) + " levels");
  Expected<json::Value> parsed = json::parse((*buffer)->getBuffer());
  if (!parsed)
    fatal(config.source + ": invalid JSON: " + toString(parsed.takeError()));
  const json::Object *object = parsed->getAsObject();
  if (!object)
    fatal(config.source + ": invalid config: the top level must be a JSON "
                          "object");
  ConfigReader reader(config.source, *object);

  std::string modelType = reader.getString("model_type").value_or("");
  const FamilyDefaults &family = familyOf(modelType);
  config.defaults = family.name.str();
  config.functionStem = functionStemForFile(path, modelType);
  if (!modelType.empty())
    config.displayName += " (model_type " + modelType + ")";

  // Required fields, in the order a reader of the config would look for them.
  config.hiddenSize = reader.getRequiredSize("hidden_size");
  config.intermediateSize = reader.getRequiredSize("moe_intermediate_size");
  if (reader.has("n_routed_experts")) {
    config.numExpertsField = "n_routed_experts";
    config.numExperts = reader.getRequiredSize("n_routed_experts");
  } else if (reader.has("num_experts")) {
    config.numExpertsField = "num_experts";
    config.numExperts = reader.getRequiredSize("num_experts");
  } else {
    reader.fail("missing required field 'n_routed_experts' (or "
                "'num_experts')");
  }
  config.topK = reader.getRequiredSize("num_experts_per_tok");

  // Scoring and selection.
  config.sigmoid = family.sigmoid;
  if (std::optional<std::string> scoring = reader.getString("scoring_func")) {
    if (*scoring == "sigmoid")
      config.sigmoid = true;
    else if (*scoring == "softmax")
      config.sigmoid = false;
    else
      reader.fail("field 'scoring_func' = \"" + *scoring +
                  "\" is not supported (expected \"softmax\" or \"sigmoid\")");
  }

  std::optional<int64_t> nGroup = reader.getSize("n_group", /*minimum=*/1);
  std::optional<int64_t> topkGroup =
      reader.getSize("topk_group", /*minimum=*/1);
  config.nGroup = nGroup.value_or(1);
  // Without topk_group every group may be chosen, i.e. no restriction.
  config.topkGroup = topkGroup.value_or(config.nGroup);

  std::optional<std::string> topkMethod = reader.getString("topk_method");
  if (!topkMethod && family.noauxTcWithSigmoid && config.sigmoid)
    topkMethod = "noaux_tc";
  if (topkMethod) {
    if (*topkMethod == "noaux_tc") {
      if (!config.sigmoid)
        reader.fail("field 'topk_method' = \"noaux_tc\" (a sigmoid correction "
                    "bias) needs 'scoring_func' = \"sigmoid\"");
      config.correctionBias = true;
    } else if (*topkMethod == "greedy") {
      // Plain top-k over all experts: the group fields do not apply.
      config.nGroup = config.topkGroup = 1;
    } else if (*topkMethod != "group_limited_greedy") {
      reader.fail("field 'topk_method' = \"" + *topkMethod +
                  "\" is not supported (expected \"noaux_tc\", \"greedy\" or "
                  "\"group_limited_greedy\")");
    }
  }

  config.renormalize =
      reader.getBoolean("norm_topk_prob").value_or(family.renormalize);

  if (std::optional<double> scale = reader.getNumber("routed_scaling_factor")) {
    // moe.topk stores it as f32: it must stay positive and finite there.
    float asF32 = static_cast<float>(*scale);
    if (!(asF32 > 0.0f) || std::isinf(asF32))
      reader.fail("field 'routed_scaling_factor' must be a positive finite "
                  "f32 number, got " +
                  formatv("{0}", format("%g", *scale)));
    config.routedScalingFactor = *scale;
  }

  // Shared experts: Qwen2-MoE states the shared MLP's size, DeepSeek counts
  // shared experts of the routed experts' size.
  if (std::optional<int64_t> size =
          reader.getSize("shared_expert_intermediate_size", /*minimum=*/0)) {
    config.sharedIntermediateSize = *size;
    config.sharedSizeField = "shared_expert_intermediate_size";
  } else {
    int64_t numShared = reader.getSize("n_shared_experts", /*minimum=*/0)
                            .value_or(family.numShared);
    config.sharedIntermediateSize = numShared * config.intermediateSize;
    config.sharedSizeField = "n_shared_experts";
    if (config.sharedIntermediateSize > kMaxSize)
      reader.fail("field 'n_shared_experts' = " + Twine(numShared) +
                  " makes the shared intermediate size too large");
  }

  // Newer transformers write "dtype" where older ones wrote "torch_dtype".
  StringRef dtypeField = reader.has("torch_dtype") ? "torch_dtype" : "dtype";
  std::string dtype = reader.getString(dtypeField).value_or("bfloat16");
  if (dtype == "bfloat16")
    config.dtype = ElementType::BF16;
  else if (dtype == "float16")
    config.dtype = ElementType::F16;
  else if (dtype == "float32")
    config.dtype = ElementType::F32;
  else
    reader.fail("field '" + dtypeField + "' = \"" + dtype +
                "\" is not supported (expected \"bfloat16\", \"float16\" or "
                "\"float32\")");
  return config;
}

/// Rejects what moe.topk's verifier would reject, naming the config fields.
static void validateRouting(const ModelConfig &config) {
  auto fail = [&](const Twine &message) {
    fatal(config.source + ": " + message);
  };
  const std::string &experts = config.numExpertsField;
  if (config.topK > config.numExperts)
    fail("num_experts_per_tok = " + Twine(config.topK) +
         " exceeds the number of experts ('" + experts +
         "' = " + Twine(config.numExperts) + ")");
  if (config.numExperts % config.nGroup != 0)
    fail("n_group = " + Twine(config.nGroup) +
         " does not divide the number of experts ('" + experts +
         "' = " + Twine(config.numExperts) + ")");
  if (config.topkGroup > config.nGroup)
    fail("topk_group = " + Twine(config.topkGroup) +
         " exceeds n_group = " + Twine(config.nGroup));
  int64_t selectable = config.topkGroup * (config.numExperts / config.nGroup);
  if (config.topK > selectable)
    fail("num_experts_per_tok = " + Twine(config.topK) + " exceeds the " +
         Twine(selectable) + " experts of the best topk_group = " +
         Twine(config.topkGroup) + " groups");
  if (config.sigmoid && config.nGroup > 1 &&
      config.numExperts / config.nGroup < 2)
    fail("n_group = " + Twine(config.nGroup) +
         ": sigmoid group scores sum the two best experts of a group, so "
         "every group needs at least 2 experts");
}

//===----------------------------------------------------------------------===//
// Options
//===----------------------------------------------------------------------===//

static cl::OptionCategory moeGenCategory("moe-gen options");

static cl::opt<std::string>
    modelOption("model",
                cl::desc("A preset (deepseek-v3, kimi-k2, qwen3-235b-a22b), "
                         "a Hugging Face config.json, or a checkpoint folder "
                         "holding one (required)"),
                cl::value_desc("preset|path"), cl::cat(moeGenCategory));

static cl::opt<std::string> tokensOption(
    "tokens",
    cl::desc("Tokens per batch: a number (0 is an empty batch) or 'dynamic' "
             "for memref<?x...> (default: dynamic)"),
    cl::value_desc("N|dynamic"), cl::init("dynamic"), cl::cat(moeGenCategory));

static cl::opt<std::string>
    tpOption("tp",
             cl::desc("Tensor-parallel degree: the routed and shared "
                      "intermediate sizes are divided by N, one rank's shard "
                      "(default: 1)"),
             cl::value_desc("N"), cl::init("1"), cl::cat(moeGenCategory));

static cl::opt<std::string>
    layersOption("layers",
                 cl::desc("Number of MoE layers chained in the function, each "
                          "layer's output the next one's input (default: 1)"),
                 cl::value_desc("N"), cl::init("1"), cl::cat(moeGenCategory));

static cl::opt<bool> routedInplaceOption(
    "routed-inplace",
    cl::desc("Use the in-place routed kernel: it writes its result into its "
             "hidden input, so the shared experts must run before it"),
    cl::cat(moeGenCategory));

static cl::opt<std::string>
    dtypeOption("dtype",
                cl::desc("Element type of activations and weights, overriding "
                         "the model's torch_dtype (presets: bf16)"),
                cl::value_desc("bf16|f16|f32"), cl::cat(moeGenCategory));

static cl::opt<std::string> functionNameOption(
    "function-name",
    cl::desc("Name of the generated function (default: the model's name, "
             "sanitised, with '_moe' appended, e.g. deepseek_v3_moe)"),
    cl::value_desc("name"), cl::cat(moeGenCategory));

static cl::opt<std::string> outputOption(
    "o", cl::desc("Write the output to this file (default: stdout)"),
    cl::value_desc("file"), cl::init("-"), cl::cat(moeGenCategory));

static const char *const kOverview = R"(moe-gen: write the MLIR of MoE layers

Writes one func.func of moe.* ops on memrefs (moe.shared_experts, moe.gate,
moe.topk, moe.routed_experts, moe.add, with memref.alloc/dealloc around every
intermediate) for a preset model or a Hugging Face config.json, in sglang's
order: shared experts, gate, top-k, routed experts, add. The output is text
for moe-opt; see docs/moe-gen.md.
)";

static const char *const kExtraHelp = R"(
Presets (bf16; shared experts use the routed experts' intermediate size):
  name              hidden  moe_inter  experts  top-k  shared  groups  scale  scoring
  deepseek-v3       7168    2048       256      8      1       8/4     2.5    sigmoid + bias, renormalize
  kimi-k2           7168    2048       384      8      1       1/1     2.827  sigmoid + bias, renormalize
  qwen3-235b-a22b   4096    1536       128      8      0       -       1.0    softmax, renormalize

config.json: hidden_size, moe_intermediate_size, n_routed_experts (or
num_experts) and num_experts_per_tok are required; the other fields default
by model_type (deepseek_v3/kimi_k2: sigmoid + noaux_tc, 1 shared expert,
renormalize; qwen2_moe/qwen3_moe and others: softmax, no shared experts).

Examples:
  moe-gen --model deepseek-v3 --tokens 16384 --tp 4
  moe-gen --model kimi-k2 --layers 61 --routed-inplace -o kimi.mlir
  moe-gen --model path/to/Qwen3-30B-A3B/config.json | moe-opt
)";
static cl::extrahelp extraHelp(kExtraHelp);

//===----------------------------------------------------------------------===//
// Option parsing
//===----------------------------------------------------------------------===//

namespace {
struct Options {
  std::optional<int64_t> tokens; // nullopt: dynamic
  int64_t tp = 1;
  int64_t layers = 1;
  bool routedInplace = false;
  std::optional<ElementType> dtype;
  std::string functionName;
};
} // namespace

/// A model has at most a few hundred layers; the cap keeps a typo from
/// asking for gigabytes of text.
constexpr int64_t kMaxLayers = 10000;

static int64_t parseCount(StringRef option, StringRef text, int64_t minimum,
                          int64_t maximum, StringRef expected) {
  uint64_t value;
  if (text.getAsInteger(10, value) || value > uint64_t(maximum) ||
      int64_t(value) < minimum)
    fatal("invalid --" + option + " '" + text + "': expected " + expected);
  return int64_t(value);
}

/// MLIR bare identifiers: [A-Za-z_][A-Za-z0-9_$.]*.
static bool isBareIdentifier(StringRef name) {
  if (name.empty() || !(isAlpha(name.front()) || name.front() == '_'))
    return false;
  return all_of(name, [](char c) {
    return isAlnum(c) || c == '_' || c == '$' || c == '.';
  });
}

/// "DeepSeek-V3" -> "deepseek_v3_moe": lower case, runs of other characters
/// become one '_', and "_moe" is appended unless the name already ends so.
static std::string sanitiseFunctionName(StringRef stem) {
  std::string name;
  for (char c : stem) {
    if (isAlnum(c))
      name.push_back(toLower(c));
    else if (!name.empty() && name.back() != '_')
      name.push_back('_');
  }
  while (!name.empty() && name.back() == '_')
    name.pop_back();
  if (name.empty())
    name = "model";
  if (isDigit(name.front()))
    name = "model_" + name;
  if (!StringRef(name).ends_with("moe"))
    name += "_moe";
  return name;
}

static Options parseOptions() {
  Options options;
  StringRef tokens = tokensOption;
  if (tokens != "dynamic" && tokens != "?")
    options.tokens = parseCount("tokens", tokens, /*minimum=*/0, kMaxSize,
                                "a non-negative integer or 'dynamic'");
  options.tp =
      parseCount("tp", tpOption, /*minimum=*/1, kMaxSize, "a positive integer");
  options.layers =
      parseCount("layers", layersOption, /*minimum=*/1, kMaxLayers,
                 "a positive integer up to " + std::to_string(kMaxLayers));
  options.routedInplace = routedInplaceOption;
  if (dtypeOption.getNumOccurrences()) {
    StringRef dtype = dtypeOption;
    if (dtype == "bf16")
      options.dtype = ElementType::BF16;
    else if (dtype == "f16")
      options.dtype = ElementType::F16;
    else if (dtype == "f32")
      options.dtype = ElementType::F32;
    else
      fatal("unknown --dtype '" + dtype + "' (expected bf16, f16 or f32)");
  }
  if (functionNameOption.getNumOccurrences()) {
    if (!isBareIdentifier(functionNameOption))
      fatal("invalid --function-name '" + functionNameOption +
            "': expected [A-Za-z_][A-Za-z0-9_$.]*");
    options.functionName = functionNameOption;
  }
  return options;
}

static ModelConfig loadModel(StringRef argument) {
  if (argument.empty())
    fatal("--model is required: a preset (deepseek-v3, kimi-k2, "
          "qwen3-235b-a22b) or a path to a config.json; see moe-gen --help");
  for (const Preset &preset : kPresets)
    if (argument == preset.name)
      return fromPreset(preset);
  // Anything that looks like a path (or names an existing file) is one.
  bool looksLikePath = argument.contains('/') || argument.contains('\\') ||
                       argument.ends_with_insensitive(".json") ||
                       sys::fs::exists(argument);
  if (!looksLikePath)
    fatal("unknown preset '" + argument +
          "' (expected deepseek-v3, kimi-k2, qwen3-235b-a22b, or a path to a "
          "config.json)");
  return fromConfigFile(argument);
}

//===----------------------------------------------------------------------===//
// IR writer
//===----------------------------------------------------------------------===//

namespace {

/// A float literal MLIR's parser accepts as f32 (it needs a '.').
std::string floatLiteral(double value) {
  std::string text = formatv("{0}", format("%.9g", value)).str();
  size_t exponent = text.find_first_of("eE");
  if (text.find('.') == std::string::npos)
    text.insert(exponent == std::string::npos ? text.size() : exponent, ".0");
  return text;
}

/// Writes the function. Every value it names is created once, so the text
/// is valid SSA by construction; the shapes come from one place (the types
/// computed in the constructor).
class FunctionWriter {
public:
  FunctionWriter(raw_ostream &os, const ModelConfig &model,
                 const Options &options)
      : os(os), model(model), options(options) {
    StringRef elt = mlirName(options.dtype.value_or(model.dtype));
    std::string tokens =
        options.tokens ? std::to_string(*options.tokens) : std::string("?");
    intermediate = model.intermediateSize / options.tp;
    sharedIntermediate = model.sharedIntermediateSize / options.tp;
    auto memref = [](std::initializer_list<std::string> dims, StringRef elt) {
      std::string type = "memref<";
      for (const std::string &dim : dims)
        type += dim + "x";
      return type + elt.str() + ">";
    };
    auto str = [](int64_t v) { return std::to_string(v); };
    hiddenType = memref({tokens, str(model.hiddenSize)}, elt);
    gateWeightType =
        memref({str(model.numExperts), str(model.hiddenSize)}, elt);
    biasType = memref({str(model.numExperts)}, "f32");
    logitsType = memref({tokens, str(model.numExperts)}, "f32");
    idsType = memref({tokens, str(model.topK)}, "i32");
    weightsType = memref({tokens, str(model.topK)}, "f32");
    w13Type = memref(
        {str(model.numExperts), str(2 * intermediate), str(model.hiddenSize)},
        elt);
    w2Type = memref(
        {str(model.numExperts), str(model.hiddenSize), str(intermediate)}, elt);
    sharedW13Type =
        memref({str(2 * sharedIntermediate), str(model.hiddenSize)}, elt);
    sharedW2Type =
        memref({str(model.hiddenSize), str(sharedIntermediate)}, elt);
    allocOperands = options.tokens ? "()" : "(%T)";
  }

  void write(StringRef functionName) {
    writeHeader(functionName);
    writeSignature(functionName);
    if (!options.tokens) {
      os << "  %c0 = arith.constant 0 : index\n";
      os << "  %T = memref.dim %x, %c0 : " << hiddenType << "\n";
    }
    std::string input = "x";
    for (int64_t layer = 0; layer < options.layers; ++layer) {
      bool last = layer + 1 == options.layers;
      std::string output = last ? "out" : "hidden" + std::to_string(layer);
      writeLayer(layer, input, /*inputIsAlloc=*/layer > 0, output,
                 /*outputIsAlloc=*/!last);
      input = output;
    }
    os << "  return\n}\n";
  }

private:
  bool hasShared() const { return sharedIntermediate > 0; }

  void writeHeader(StringRef functionName) {
    os << "// moe-gen --model " << oneLine(model.modelArgument) << " --tokens "
       << (options.tokens ? std::to_string(*options.tokens) : "dynamic")
       << " --tp " << options.tp << " --layers " << options.layers;
    if (options.routedInplace)
      os << " --routed-inplace";
    if (options.dtype)
      os << " --dtype " << mlirName(*options.dtype);
    os << " : " << options.layers
       << (options.layers == 1 ? " layer" : " layers") << ", @" << functionName
       << "\n";
    os << "// " << oneLine(model.displayName) << ": hidden " << model.hiddenSize
       << ", " << model.numExperts << " experts, top-" << model.topK << " ("
       << (model.sigmoid ? "sigmoid" : "softmax");
    if (model.correctionBias)
      os << " + correction bias";
    if (model.nGroup > 1)
      os << ", n_group " << model.nGroup << ", topk_group " << model.topkGroup;
    if (model.renormalize)
      os << ", renormalize";
    os << ", routed_scaling_factor " << floatLiteral(model.routedScalingFactor)
       << "), moe_intermediate " << model.intermediateSize;
    if (options.tp > 1)
      os << " / tp " << options.tp << " = " << intermediate;
    os << ", shared intermediate " << model.sharedIntermediateSize;
    if (options.tp > 1 && hasShared())
      os << " / tp " << options.tp << " = " << sharedIntermediate;
    os << ", " << mlirName(options.dtype.value_or(model.dtype));
    if (model.defaults != "preset")
      os << ", defaults: " << model.defaults;
    os << "\n";
  }

  void writeArgument(StringRef name, StringRef type, StringRef role,
                     const Twine &argName, bool last = false) {
    os << "    %" << name << ": " << type << " {moe.role = \"" << role
       << "\", moe.name = \"" << argName << "\"}" << (last ? ") {" : ",")
       << "\n";
  }

  void writeSignature(StringRef functionName) {
    os << "func.func @" << functionName << "(\n";
    writeArgument("x", hiddenType, "input", "hidden_states");
    for (int64_t layer = 0; layer < options.layers; ++layer) {
      std::string l = std::to_string(layer);
      std::string prefix = "layers." + l + ".";
      writeArgument("gate" + l, gateWeightType, "weight",
                    prefix + "gate.weight");
      if (model.correctionBias)
        writeArgument("bias" + l, biasType, "weight",
                      prefix + "gate.e_score_correction_bias");
      writeArgument("w13_" + l, w13Type, "weight", prefix + "experts.w13");
      writeArgument("w2_" + l, w2Type, "weight", prefix + "experts.w2");
      if (hasShared()) {
        writeArgument("shared_w13_" + l, sharedW13Type, "weight",
                      prefix + "shared_experts.w13");
        writeArgument("shared_w2_" + l, sharedW2Type, "weight",
                      prefix + "shared_experts.w2");
      }
    }
    writeArgument("out", hiddenType, "output", "output", /*last=*/true);
  }

  void alloc(StringRef name, StringRef type) {
    os << "  %" << name << " = memref.alloc" << allocOperands << " : " << type
       << "\n";
  }
  void dealloc(StringRef name, StringRef type) {
    os << "  memref.dealloc %" << name << " : " << type << "\n";
  }

  /// One layer: reads %input, writes %output. An input that is an alloc (the
  /// previous layer's output) is freed right after its last reader here; an
  /// output that is an alloc is allocated right before its first writer.
  void writeLayer(int64_t layer, StringRef input, bool inputIsAlloc,
                  StringRef output, bool outputIsAlloc) {
    std::string l = std::to_string(layer);
    std::string shared = "shared" + l, logits = "logits" + l, ids = "ids" + l,
                weights = "weights" + l, routed = "routed" + l;
    auto allocOutput = [&] {
      if (outputIsAlloc)
        alloc(output, hiddenType);
    };
    auto freeInput = [&] {
      if (inputIsAlloc)
        dealloc(input, hiddenType);
    };

    os << "  // layer " << layer << "\n";
    if (hasShared()) {
      alloc(shared, hiddenType);
      os << "  moe.shared_experts ins(%" << input << ", %shared_w13_" << l
         << ", %shared_w2_" << l << " : " << hiddenType << ", " << sharedW13Type
         << ", " << sharedW2Type << ") outs(%" << shared << " : " << hiddenType
         << ")\n";
    }

    alloc(logits, logitsType);
    os << "  moe.gate ins(%" << input << ", %gate" << l << " : " << hiddenType
       << ", " << gateWeightType << ") outs(%" << logits << " : " << logitsType
       << ")\n";

    alloc(ids, idsType);
    alloc(weights, weightsType);
    os << "  moe.topk " << (model.sigmoid ? "sigmoid" : "softmax") << " ins(%"
       << logits << " : " << logitsType << ")";
    if (model.correctionBias)
      os << " bias(%bias" << l << " : " << biasType << ")";
    os << " outs(%" << ids << ", %" << weights << " : " << idsType << ", "
       << weightsType << ") {k = " << model.topK << " : i64";
    if (model.nGroup > 1)
      os << ", n_group = " << model.nGroup
         << " : i64, topk_group = " << model.topkGroup << " : i64";
    if (model.renormalize)
      os << ", renormalize";
    if (model.routedScalingFactor != 1.0)
      os << ", routed_scaling_factor = "
         << floatLiteral(model.routedScalingFactor) << " : f32";
    os << "}\n";
    dealloc(logits, logitsType);

    auto routedOp = [&](StringRef result) {
      os << "  moe.routed_experts " << (options.routedInplace ? "inplace " : "")
         << "ins(%" << input << ", %" << ids << ", %" << weights << ", %w13_"
         << l << ", %w2_" << l << " : " << hiddenType << ", " << idsType << ", "
         << weightsType << ", " << w13Type << ", " << w2Type << ") outs(%"
         << result << " : " << hiddenType << ")\n";
    };
    auto addOp = [&](StringRef lhs) {
      os << "  moe.add ins(%" << lhs << ", %" << shared << " : " << hiddenType
         << ", " << hiddenType << ") outs(%" << output << " : " << hiddenType
         << ")\n";
    };

    if (options.routedInplace) {
      // The routed result replaces the layer's input.
      routedOp(input);
      dealloc(ids, idsType);
      dealloc(weights, weightsType);
      allocOutput();
      if (hasShared()) {
        addOp(input);
        freeInput();
        dealloc(shared, hiddenType);
      } else {
        os << "  memref.copy %" << input << ", %" << output << " : "
           << hiddenType << " to " << hiddenType << "\n";
        freeInput();
      }
      return;
    }

    if (hasShared()) {
      alloc(routed, hiddenType);
      routedOp(routed);
      dealloc(ids, idsType);
      dealloc(weights, weightsType);
      freeInput();
      allocOutput();
      addOp(routed);
      dealloc(routed, hiddenType);
      dealloc(shared, hiddenType);
    } else {
      allocOutput();
      routedOp(output);
      dealloc(ids, idsType);
      dealloc(weights, weightsType);
      freeInput();
    }
  }

  raw_ostream &os;
  const ModelConfig &model;
  const Options &options;
  int64_t intermediate, sharedIntermediate;
  std::string allocOperands;
  std::string hiddenType, gateWeightType, biasType, logitsType, idsType,
      weightsType, w13Type, w2Type, sharedW13Type, sharedW2Type;
};

} // namespace

/// Rewrites what llvm::cl reported into one `moe-gen: error:` line and exits.
/// Option-value errors ("requires a value!") llvm::cl prints to stderr itself,
/// already as one line; then `captured` is empty and nothing is added.
[[noreturn]] static void reportCommandLineErrors(StringRef captured) {
  SmallVector<StringRef> lines;
  captured.split(lines, '\n', /*MaxSplit=*/-1, /*KeepEmpty=*/false);
  std::string message;
  for (StringRef line : lines) {
    // Drop the "<argv[0]>: " prefix and the "Try: '<argv[0]> --help'" hint.
    size_t colon = line.find(": ");
    if (colon != StringRef::npos && line.take_front(colon).ends_with("moe-gen"))
      line = line.drop_front(colon + 2);
    line = line.take_front(line.find("  Try:")).trim().rtrim('.');
    if (line.empty())
      continue;
    std::string text = line.str();
    text[0] = toLower(text[0]);
    if (StringRef(text).starts_with("did you mean"))
      message += " (" + text + ")";
    else
      message += (message.empty() ? "" : "; ") + text;
  }
  if (message.empty()) {
    errs().flush();
    std::exit(1);
  }
  fatal(message + "; see moe-gen --help");
}

//===----------------------------------------------------------------------===//
// main
//===----------------------------------------------------------------------===//

int main(int argc, char **argv) {
  InitLLVM initLLVM(argc, argv);
  cl::HideUnrelatedOptions(moeGenCategory);

  // llvm::cl's own messages ("Unknown command line argument ...", several
  // lines) become one `moe-gen: error:` line like every other error.
  std::string parseErrors;
  raw_string_ostream parseErrorStream(parseErrors);
  if (!cl::ParseCommandLineOptions(argc, argv, kOverview, &parseErrorStream))
    reportCommandLineErrors(parseErrors);

  Options options = parseOptions();
  ModelConfig model = loadModel(modelOption);
  validateRouting(model);
  if (model.intermediateSize % options.tp != 0)
    fatal(model.source +
          ": moe_intermediate_size = " + Twine(model.intermediateSize) +
          " is not divisible by --tp " + Twine(options.tp));
  if (model.sharedIntermediateSize % options.tp != 0)
    fatal(model.source + ": the shared intermediate size (" +
          model.sharedSizeField + ") " + Twine(model.sharedIntermediateSize) +
          " is not divisible by --tp " + Twine(options.tp));

  std::string functionName = options.functionName.empty()
                                 ? sanitiseFunctionName(model.functionStem)
                                 : options.functionName;

  // Generate into memory, then write once: the output is small (a 61-layer
  // model is ~100 KB) and a failed open leaves no partial file behind.
  std::string text;
  raw_string_ostream textStream(text);
  FunctionWriter(textStream, model, options).write(functionName);
  textStream.flush();

  std::error_code error;
  ToolOutputFile output(outputOption, error, sys::fs::OF_Text);
  if (error)
    fatal("cannot open '" + outputOption + "' for writing: " + error.message());
  output.os() << text;
  output.os().flush();
  if (output.os().has_error())
    fatal("cannot write '" + outputOption +
          "': " + output.os().error().message());
  output.keep();
  return 0;
}
