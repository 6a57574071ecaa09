//===- ModelConfig.cpp - Presets, config.json, validation -----------------===//
//
// The presets, the reader of Hugging Face config.json files and the checks
// that keep a ModelConfig within what the moe ops' verifiers accept. Every
// error is one llvm::StringError whose message names the model's source and
// the field.
//
//===----------------------------------------------------------------------===//

#include "moe/Builder/ModelConfig.h"
#include "moe-runtime/OpContract.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <cmath>

using namespace llvm;

namespace mlir {
namespace moe {

StringRef stringifyDType(DType type) {
  return moert::contract::dtypeName(type);
}

std::optional<DType> parseDType(StringRef name) {
  std::optional<DType> type = moert::contract::parseDType(name);
  if (!type || !moert::contract::isFloat(*type))
    return std::nullopt;
  return type;
}

static Error makeError(const Twine &message) {
  return createStringError(inconvertibleErrorCode(), message);
}

//===----------------------------------------------------------------------===//
// Presets
//===----------------------------------------------------------------------===//

namespace {

/// A preset: the published config.json of a model.
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

const StringRef kPresetNames[] = {"deepseek-v3", "kimi-k2", "qwen3-235b-a22b"};

} // namespace

ArrayRef<StringRef> getPresetNames() { return kPresetNames; }

std::optional<ModelConfig> getPresetConfig(StringRef name) {
  const Preset *preset = find_if(kPresets, [&](const Preset &candidate) {
    return candidate.name == name;
  });
  if (preset == std::end(kPresets))
    return std::nullopt;
  ModelConfig config;
  config.source = ("preset '" + preset->name + "'").str();
  config.displayName = preset->displayName.str();
  config.functionStem = preset->name.str();
  config.defaults = "preset";
  config.hiddenSize = preset->hiddenSize;
  config.intermediateSize = preset->intermediateSize;
  config.numExperts = preset->numExperts;
  config.topK = preset->topK;
  config.nGroup = preset->nGroup;
  config.topkGroup = preset->topkGroup;
  config.sharedIntermediateSize = preset->numShared * preset->intermediateSize;
  config.scoring = preset->sigmoid ? Scoring::Sigmoid : Scoring::Softmax;
  config.correctionBias = preset->correctionBias;
  config.renormalize = preset->renormalize;
  config.routedScalingFactor = preset->routedScalingFactor;
  config.dtype = DType::BF16;
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
/// The reader keeps the first error; once there is one, every getter returns
/// nothing, and readFields stops.
class ConfigReader {
public:
  ConfigReader(StringRef source, const json::Object &object)
      : source(source), object(object) {}

  bool has(StringRef key) const {
    const json::Value *value = object.get(key);
    return value && value->kind() != json::Value::Null;
  }

  /// Records the first error; later ones are dropped.
  void fail(const Twine &message) {
    if (!error)
      error = (source + ": " + message).str();
  }
  bool failed() const { return error.has_value(); }
  Error takeError() {
    if (!error)
      return Error::success();
    return makeError(*error);
  }

  /// A value printed for an error message, shortened if it is long.
  static std::string show(const json::Value &value) {
    std::string text = formatv("{0}", value).str();
    if (text.size() > 40)
      text = text.substr(0, 37) + "...";
    return text;
  }

  std::optional<int64_t> getInteger(StringRef key) {
    if (failed() || !has(key))
      return std::nullopt;
    const json::Value &value = *object.get(key);
    if (std::optional<int64_t> integer = value.getAsInteger())
      return integer;
    // A whole number beyond int64 (or one the parser made infinite).
    std::optional<double> number = value.getAsNumber();
    if (value.getAsUINT64() ||
        (number && (!std::isfinite(*number) || std::floor(*number) == *number)))
      fail("field '" + key + "' = " + show(value) + " is too large (at most " +
           Twine(kMaxModelSize) + ")");
    else
      fail("field '" + key + "' must be an integer, got " + show(value));
    return std::nullopt;
  }

  /// An integer in [minimum, kMaxModelSize].
  std::optional<int64_t> getSize(StringRef key, int64_t minimum) {
    std::optional<int64_t> value = getInteger(key);
    if (!value)
      return std::nullopt;
    if (*value < minimum) {
      fail("field '" + key + "' must be " +
           (minimum > 0 ? "a positive integer" : "a non-negative integer") +
           ", got " + Twine(*value));
      return std::nullopt;
    }
    if (*value > kMaxModelSize) {
      fail("field '" + key + "' = " + Twine(*value) +
           " is too large (at most " + Twine(kMaxModelSize) + ")");
      return std::nullopt;
    }
    return value;
  }

  int64_t getRequiredSize(StringRef key) {
    std::optional<int64_t> value = getSize(key, /*minimum=*/1);
    if (!value) {
      fail("missing required field '" + key + "'");
      return 0;
    }
    return *value;
  }

  std::optional<double> getNumber(StringRef key) {
    if (failed() || !has(key))
      return std::nullopt;
    const json::Value &value = *object.get(key);
    std::optional<double> number = value.getAsNumber();
    if (!number)
      fail("field '" + key + "' must be a number, got " + show(value));
    return number;
  }

  std::optional<bool> getBoolean(StringRef key) {
    if (failed() || !has(key))
      return std::nullopt;
    const json::Value &value = *object.get(key);
    std::optional<bool> boolean = value.getAsBoolean();
    if (!boolean)
      fail("field '" + key + "' must be true or false, got " + show(value));
    return boolean;
  }

  /// A field that is an object (nested fields), or null: missing or an
  /// error.
  const json::Object *getObject(StringRef key) {
    if (failed() || !has(key))
      return nullptr;
    const json::Object *nested = object.get(key)->getAsObject();
    if (!nested)
      fail("field '" + key + "' must be an object, got " +
           show(*object.get(key)));
    return nested;
  }

  std::optional<std::string> getString(StringRef key) {
    if (failed() || !has(key))
      return std::nullopt;
    const json::Value &value = *object.get(key);
    std::optional<StringRef> string = value.getAsString();
    if (!string) {
      fail("field '" + key + "' must be a string, got " + show(value));
      return std::nullopt;
    }
    return string->str();
  }

private:
  StringRef source;
  const json::Object &object;
  std::optional<std::string> error;
};

constexpr unsigned kMaxJsonDepth = 256;

/// Whether the arrays and objects of `text` nest deeper than `limit`, looking
/// past the brackets inside strings. Malformed text is left to the parser.
bool exceedsNestingDepth(StringRef text, unsigned limit) {
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

/// Fills `config` from the fields of a config.json object; stops at the first
/// error, which `reader` keeps.
/// quantization_config: DeepSeek-V3's fp8 format (quant_method "fp8", fmt
/// "e4m3", weight_block_size [128, 128], activation_scheme "dynamic") makes
/// the experts fp8; anything else is an error naming the field, never a
/// silent bf16 layer.
void readQuantization(ConfigReader &reader, ModelConfig &config) {
  const json::Object *q = reader.getObject("quantization_config");
  if (!q)
    return;
  ConfigReader fields("quantization_config", *q);
  auto expect = [&](StringRef key, StringRef want, bool required) {
    std::optional<std::string> value = fields.getString(key);
    if (fields.failed())
      return;
    if (!value && required)
      fields.fail("missing required field '" + key + "' (only \"" + want +
                  "\" is supported)");
    else if (value && *value != want)
      fields.fail("field '" + key + "' = \"" + *value +
                  "\" is not supported (expected \"" + want + "\")");
  };
  expect("quant_method", "fp8", /*required=*/true);
  expect("fmt", "e4m3", /*required=*/false);
  expect("activation_scheme", "dynamic", /*required=*/false);
  const int64_t block = moert::contract::kFp8Block;
  if (!fields.failed()) {
    const json::Value *size = q->get("weight_block_size");
    const json::Array *dims = size ? size->getAsArray() : nullptr;
    bool ok = dims && dims->size() == 2;
    for (size_t i = 0; ok && i < 2; ++i)
      ok = (*dims)[i].getAsInteger() == std::optional<int64_t>(block);
    if (!ok)
      fields.fail(Twine("field 'weight_block_size' must be [") +
                  Twine(block) + ", " + Twine(block) + "]" +
                  (size ? ", got " + ConfigReader::show(*size)
                        : Twine(" (per-tensor fp8 is not supported)")));
  }
  if (fields.failed()) {
    Error error = fields.takeError();
    reader.fail(toString(std::move(error)));
    return;
  }
  config.fp8Experts = true;
}

void readFields(ConfigReader &reader, ModelConfig &config,
                const FamilyDefaults &family) {
  // Required fields, in the order a reader of the config would look for them.
  config.hiddenSize = reader.getRequiredSize("hidden_size");
  if (reader.failed())
    return;
  config.intermediateSize = reader.getRequiredSize("moe_intermediate_size");
  if (reader.failed())
    return;
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
  if (reader.failed())
    return;
  config.topK = reader.getRequiredSize("num_experts_per_tok");
  if (reader.failed())
    return;

  // Scoring and selection.
  bool sigmoid = family.sigmoid;
  if (std::optional<std::string> scoring = reader.getString("scoring_func")) {
    if (*scoring == "sigmoid")
      sigmoid = true;
    else if (*scoring == "softmax")
      sigmoid = false;
    else
      reader.fail("field 'scoring_func' = \"" + *scoring +
                  "\" is not supported (expected \"softmax\" or \"sigmoid\")");
  }
  if (reader.failed())
    return;
  config.scoring = sigmoid ? Scoring::Sigmoid : Scoring::Softmax;

  std::optional<int64_t> nGroup = reader.getSize("n_group", /*minimum=*/1);
  std::optional<int64_t> topkGroup =
      reader.getSize("topk_group", /*minimum=*/1);
  if (reader.failed())
    return;
  config.nGroup = nGroup.value_or(1);
  // Without topk_group every group may be chosen, i.e. no restriction.
  config.topkGroup = topkGroup.value_or(config.nGroup);

  std::optional<std::string> topkMethod = reader.getString("topk_method");
  if (reader.failed())
    return;
  if (!topkMethod && family.noauxTcWithSigmoid && sigmoid)
    topkMethod = "noaux_tc";
  if (topkMethod) {
    if (*topkMethod == "noaux_tc") {
      if (!sigmoid)
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
  if (reader.failed())
    return;

  config.renormalize =
      reader.getBoolean("norm_topk_prob").value_or(family.renormalize);
  if (reader.failed())
    return;

  if (std::optional<double> scale = reader.getNumber("routed_scaling_factor")) {
    // moe.topk stores it as f32: it must stay positive and finite there.
    float asF32 = static_cast<float>(*scale);
    if (!(asF32 > 0.0f) || std::isinf(asF32))
      reader.fail("field 'routed_scaling_factor' must be a positive finite "
                  "f32 number, got " +
                  formatv("{0}", format("%g", *scale)));
    config.routedScalingFactor = *scale;
  }
  if (reader.failed())
    return;

  // Shared experts: Qwen2-MoE states the shared MLP's size, DeepSeek counts
  // shared experts of the routed experts' size.
  if (std::optional<int64_t> size =
          reader.getSize("shared_expert_intermediate_size", /*minimum=*/0)) {
    config.sharedIntermediateSize = *size;
    config.sharedSizeField = "shared_expert_intermediate_size";
  } else {
    if (reader.failed())
      return;
    int64_t numShared = reader.getSize("n_shared_experts", /*minimum=*/0)
                            .value_or(family.numShared);
    if (reader.failed())
      return;
    config.sharedIntermediateSize = numShared * config.intermediateSize;
    config.sharedSizeField = "n_shared_experts";
    if (config.sharedIntermediateSize > kMaxModelSize)
      reader.fail("field 'n_shared_experts' = " + Twine(numShared) +
                  " makes the shared intermediate size too large");
  }
  if (reader.failed())
    return;

  // Newer transformers write "dtype" where older ones wrote "torch_dtype".
  StringRef dtypeField = reader.has("torch_dtype") ? "torch_dtype" : "dtype";
  std::optional<std::string> dtype = reader.getString(dtypeField);
  if (reader.failed())
    return;
  StringRef name = dtype ? StringRef(*dtype) : StringRef("bfloat16");
  if (name == "bfloat16")
    config.dtype = DType::BF16;
  else if (name == "float16")
    config.dtype = DType::F16;
  else if (name == "float32")
    config.dtype = DType::F32;
  else
    reader.fail("field '" + dtypeField + "' = \"" + name +
                "\" is not supported (expected \"bfloat16\", \"float16\" or "
                "\"float32\")");
  if (reader.failed())
    return;
  readQuantization(reader, config);
}

} // namespace

Expected<ModelConfig> parseModelConfig(StringRef jsonText, StringRef source) {
  ModelConfig config;
  config.source = source.str();

  // llvm::json::parse recurses once per nesting level: refuse absurd nesting
  // (a config.json is a few levels deep) instead of overflowing the stack.
  if (exceedsNestingDepth(jsonText, kMaxJsonDepth))
    return makeError(source + ": invalid JSON: nested deeper than " +
                     Twine(kMaxJsonDepth) + " levels");
  Expected<json::Value> parsed = json::parse(jsonText);
  if (!parsed)
    return makeError(source +
                     ": invalid JSON: " + toString(parsed.takeError()));
  const json::Object *object = parsed->getAsObject();
  if (!object)
    return makeError(source + ": invalid config: the top level must be a JSON "
                              "object");
  ConfigReader reader(source, *object);

  std::string modelType = reader.getString("model_type").value_or("");
  if (Error error = reader.takeError())
    return std::move(error);
  const FamilyDefaults &family = familyOf(modelType);
  config.modelType = modelType;
  config.defaults = family.name.str();
  config.displayName = modelType.empty() ? "config.json" : modelType;
  config.functionStem = modelType.empty() ? "model" : modelType;
  readFields(reader, config, family);
  if (Error error = reader.takeError())
    return std::move(error);
  return config;
}

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

Expected<ModelConfig> readModelConfigFile(StringRef argument) {
  SmallString<256> path(argument);
  // A checkpoint folder stands for its config.json.
  if (sys::fs::is_directory(path))
    sys::path::append(path, "config.json");
  std::string source = ("'" + path + "'").str();

  ErrorOr<std::unique_ptr<MemoryBuffer>> buffer =
      MemoryBuffer::getFile(path, /*IsText=*/true);
  if (std::error_code error = buffer.getError())
    return makeError("cannot read " + source + ": " + error.message());

  Expected<ModelConfig> config =
      parseModelConfig((*buffer)->getBuffer(), source);
  if (!config)
    return config.takeError();
  config->displayName = path.str().str();
  if (!config->modelType.empty())
    config->displayName += " (model_type " + config->modelType + ")";
  config->functionStem = functionStemForFile(path, config->modelType);
  return config;
}

//===----------------------------------------------------------------------===//
// Names
//===----------------------------------------------------------------------===//

bool isBareIdentifier(StringRef name) {
  if (name.empty() || !(isAlpha(name.front()) || name.front() == '_'))
    return false;
  return all_of(name, [](char c) {
    return isAlnum(c) || c == '_' || c == '$' || c == '.';
  });
}

std::string defaultFunctionName(const ModelConfig &model) {
  std::string name;
  for (char c : model.functionStem) {
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

std::string getFunctionName(const ModelConfig &model,
                            const LayerOptions &options) {
  return options.functionName.empty() ? defaultFunctionName(model)
                                      : options.functionName;
}

//===----------------------------------------------------------------------===//
// Validation
//===----------------------------------------------------------------------===//

Error validate(const ModelConfig &config, const LayerOptions &options) {
  auto fail = [&](const Twine &message) {
    return makeError(config.source + ": " + message);
  };

  // What a config.json reader or a preset guarantees; a config filled in by
  // hand may break it.
  auto checkSize = [&](StringRef field, int64_t value,
                       int64_t minimum) -> Error {
    if (value < minimum)
      return fail(
          field + " must be " +
          (minimum > 0 ? "a positive integer" : "a non-negative integer") +
          ", got " + Twine(value));
    if (value > kMaxModelSize)
      return fail(field + " = " + Twine(value) + " is too large (at most " +
                  Twine(kMaxModelSize) + ")");
    return Error::success();
  };
  if (Error error = checkSize("hidden_size", config.hiddenSize, 1))
    return error;
  if (Error error =
          checkSize("moe_intermediate_size", config.intermediateSize, 1))
    return error;
  if (Error error = checkSize(config.numExpertsField, config.numExperts, 1))
    return error;
  if (Error error = checkSize("num_experts_per_tok", config.topK, 1))
    return error;
  if (Error error = checkSize("n_group", config.nGroup, 1))
    return error;
  if (Error error = checkSize("topk_group", config.topkGroup, 1))
    return error;
  if (Error error = checkSize("the shared intermediate size (" +
                                  config.sharedSizeField + ")",
                              config.sharedIntermediateSize, 0))
    return error;
  const std::string &experts = config.numExpertsField;
  float scale = static_cast<float>(config.routedScalingFactor);
  if (!(scale > 0.0f) || std::isinf(scale))
    return fail("routed_scaling_factor must be a positive finite f32 number, "
                "got " +
                formatv("{0}", format("%g", config.routedScalingFactor)));

  // What moe.topk's contract rejects (the verifier's rules), with the config
  // fields they come from.
  {
    namespace contract = moert::contract;
    const contract::OpSpec &topk = *contract::findOp("moe.topk");
    contract::Sizes sizes = contract::unknownSizes();
    sizes[size_t(contract::Sym::E)] = config.numExperts;
    sizes[size_t(contract::Sym::K)] = config.topK;
    std::vector<contract::AttrValue> attrs(topk.attrs.size());
    auto set = [&](const char *name, int64_t i, double f = 0) {
      contract::AttrValue &value = attrs[size_t(topk.attrIndex(name))];
      value.present = true;
      value.i = i;
      value.f = f;
    };
    set("scoring", config.scoring == Scoring::Sigmoid ? 1 : 0);
    set("k", config.topK);
    set("n_group", config.nGroup);
    set("topk_group", config.topkGroup);
    set("routed_scaling_factor", 0, config.routedScalingFactor);
    contract::OperandTypes types = {
        contract::DType::F32,
        config.correctionBias ? std::optional(contract::DType::F32)
                              : std::nullopt,
        contract::DType::I32, contract::DType::F32};
    std::string rule = topk.rules(sizes, attrs, types);
    if (!rule.empty())
      return fail("moe.topk: " + rule + " (k is num_experts_per_tok, the " +
                  "number of experts '" + experts + "')");
  }

  DType dtype = options.dtype.value_or(config.dtype);
  if (!moert::contract::isFloat(dtype))
    return fail("the element type must be bf16, f16 or f32");

  // The layout.
  if (options.tp < 1 || options.tp > kMaxModelSize)
    return fail("--tp " + Twine(options.tp) + " is not a positive integer");
  if (options.layers < 1 || options.layers > kMaxLayers)
    return fail("--layers " + Twine(options.layers) +
                " is not a positive integer up to " + Twine(kMaxLayers));
  if (options.tokens &&
      (*options.tokens < 0 || *options.tokens > kMaxModelSize))
    return fail("--tokens " + Twine(*options.tokens) +
                " is not a non-negative integer up to " + Twine(kMaxModelSize));
  if (!options.functionName.empty() && !isBareIdentifier(options.functionName))
    return fail("invalid function name '" + options.functionName +
                "': expected [A-Za-z_][A-Za-z0-9_$.]*");

  if (config.intermediateSize % options.tp != 0)
    return fail("moe_intermediate_size = " + Twine(config.intermediateSize) +
                " is not divisible by --tp " + Twine(options.tp));
  if (config.sharedIntermediateSize % options.tp != 0)
    return fail("the shared intermediate size (" + config.sharedSizeField +
                ") " + Twine(config.sharedIntermediateSize) +
                " is not divisible by --tp " + Twine(options.tp));

  // fp8 experts: what the expert ops' contract asks of their operands.
  if (options.fp8Experts.value_or(config.fp8Experts)) {
    const int64_t block = moert::contract::kFp8Block;
    if (dtype != DType::BF16)
      return fail("fp8 experts need bf16 activations, not " +
                  stringifyDType(dtype));
    auto blocked = [&](const Twine &what, int64_t size) -> Error {
      if (size % block == 0)
        return Error::success();
      return fail("fp8 experts need " + what + " = " + Twine(size) +
                  " to be a multiple of the " + Twine(block) +
                  "-wide weight block");
    };
    if (Error e = blocked("hidden_size", config.hiddenSize))
      return e;
    if (Error e = blocked("moe_intermediate_size / --tp",
                          config.intermediateSize / options.tp))
      return e;
    if (Error e = blocked("the shared intermediate size (" +
                              config.sharedSizeField + ") / --tp",
                          config.sharedIntermediateSize / options.tp))
      return e;
  }
  return Error::success();
}

} // namespace moe
} // namespace mlir
