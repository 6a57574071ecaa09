//===- Module.h - Loading a compiled module --------------------*- C++ -*-===//
#ifndef MOE_TOOLS_MOE_RUN_MODULE_H
#define MOE_TOOLS_MOE_RUN_MODULE_H

#include <csignal>
#include <cstdint>
#include <string>

namespace moerun {

using EntryFn = void (*)(void **, int64_t);

/// A module compiled by moe-compile, loaded: its entry point and its
/// description's text.
struct Module {
  void *handle = nullptr;
  EntryFn entry = nullptr;
  std::string descriptionText;
};

/// Loads `path` or exits with a one-line error saying why it is not a
/// MoE-MLIR module.
Module loadModule(const std::string &path);

/// A crash inside the module prints a one-line message before dying:
/// `inModule` is set while the module runs, `iterationForCrash` names the
/// iteration.
void installCrashHandlers();
extern volatile sig_atomic_t inModule;
extern volatile sig_atomic_t iterationForCrash;

} // namespace moerun

#endif // MOE_TOOLS_MOE_RUN_MODULE_H
