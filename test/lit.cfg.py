# -*- Python -*-
import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "MOE"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test", ".json"]
config.excludes = ["CMakeLists.txt", "README.md", "lit.cfg.py", "lit.site.cfg.py",
                   "Inputs", "lib"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.moe_obj_root, "test")

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%shlibext", config.llvm_shlib_ext))
config.substitutions.append(("%moe_src_root", config.moe_src_root))
config.substitutions.append(("%moe_obj_root", config.moe_obj_root))
config.substitutions.append(("%moe_lib_dir", config.moe_lib_dir))
config.substitutions.append(("%mlir_lib_dir", config.mlir_lib_dir))
config.substitutions.append(("%llvm_tools_dir", config.llvm_tools_dir))
# Longer names first: lit substitutes in order.
config.substitutions.append(("%cmake_generator", config.cmake_generator))
config.substitutions.append(("%cmake", config.cmake_command))
config.substitutions.append(("%cxx", config.cxx_compiler))

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()

# Our tools first, then LLVM's (FileCheck, not, count, mlir-opt).
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.moe_tools_dir, append_path=True)

tools = ["moe-opt", "moe-gen", "moe-compile", "moe-run", "moe-scheduler-tests",
         "moe-builder-tests",
         "moe_run_tests",
         "moe_runtime_tests"]
llvm_config.add_tool_substitutions(
    [ToolSubst(t, unresolved="ignore") for t in tools], [config.moe_tools_dir])
# The stock upstream driver, for plugin tests.
config.substitutions.append(
    ("%stock_mlir_opt", os.path.join(config.llvm_tools_dir, "mlir-opt")))

if config.moe_enable_cuda:
    config.available_features.add("cuda")
# Instrumented builds run 10-50x slower: the heaviest end-to-end runs
# (full-width model layers) say `UNSUPPORTED: sanitizers`.
if config.moe_enable_sanitizers:
    config.available_features.add("sanitizers")
for t in tools:
    if os.path.exists(os.path.join(config.moe_tools_dir, t)):
        config.available_features.add(t)

# moe-run's stand-in for a compiled module (unittests/MoeRun/TestModule.cpp):
# it interprets the description named by $MOE_RUN_TEST_DESCRIPTION.
config.substitutions.append(
    ("%moe_run_test_module",
     os.path.join(config.moe_lib_dir, "moe-run-test-module.so")))
if os.path.exists(os.path.join(config.moe_lib_dir, "moe-run-test-module.so")):
    config.available_features.add("moe-run-test-module")
