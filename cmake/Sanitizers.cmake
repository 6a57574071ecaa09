# Sanitizer and fuzzer builds (docs/fuzzing.md).
#
#   MOE_ENABLE_SANITIZERS=ON  every target of this project (compiler libraries,
#                             runtime, tools, tests) is built with AddressSanitizer
#                             and UndefinedBehaviorSanitizer (and libstdc++'s
#                             assertions).
#   MOE_ENABLE_FUZZERS=ON     the same, plus libFuzzer coverage instrumentation,
#                             and the libFuzzer target moe-opt-fuzzer
#                             (tools/moe-opt-fuzzer). Needs clang.
#
# Only this project's code is instrumented: MLIR and LLVM come prebuilt
# (libMLIR.so, linked as MLIR_LINK_MLIR_DYLIB says), and ASan works with
# uninstrumented shared libraries. Included from the root CMakeLists.txt before
# any target, so the flags below apply to every target defined after it (the
# options are directory-scoped: nothing outside this project sees them).
#
# A typical configuration (what .ci/run and scripts/fuzz.sh use):
#   cmake -S . -B build-asan -G Ninja -DCMAKE_C_COMPILER=clang-22 \
#     -DCMAKE_CXX_COMPILER=clang++-22 -DMOE_ENABLE_SANITIZERS=ON \
#     -DMOE_ENABLE_FUZZERS=ON

option(MOE_ENABLE_SANITIZERS
  "Build every target with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)
option(MOE_ENABLE_FUZZERS
  "Build the libFuzzer target moe-opt-fuzzer (clang only; implies the sanitizers)" OFF)

if(NOT MOE_ENABLE_SANITIZERS AND NOT MOE_ENABLE_FUZZERS)
  return()
endif()

if(MOE_ENABLE_FUZZERS AND NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR
    "MOE_ENABLE_FUZZERS=ON needs clang (libFuzzer is part of clang), but the C++ "
    "compiler is ${CMAKE_CXX_COMPILER_ID} (${CMAKE_CXX_COMPILER}). Install it with "
    "'scripts/install-deps.sh --with-clang' and configure a fresh build directory with "
    "-DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22.")
endif()
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang|GNU")
  message(FATAL_ERROR
    "MOE_ENABLE_SANITIZERS=ON needs clang or GCC, not ${CMAKE_CXX_COMPILER_ID}.")
endif()
if(MOE_ENABLE_FUZZERS AND NOT MOE_ENABLE_COMPILER)
  message(FATAL_ERROR "MOE_ENABLE_FUZZERS=ON needs MOE_ENABLE_COMPILER=ON")
endif()
if(MOE_ENABLE_CUDA)
  message(FATAL_ERROR "MOE_ENABLE_SANITIZERS/MOE_ENABLE_FUZZERS do not support MOE_ENABLE_CUDA=ON")
endif()

# -fno-sanitize-recover: the first undefined behaviour aborts the process, so
# a test or a fuzzer run fails on it instead of printing and going on.
set(MOE_SANITIZER_FLAGS
  -fsanitize=address,undefined
  -fno-sanitize-recover=undefined
  -fno-omit-frame-pointer
  )
# Line tables: symbolized stacks at little cost.
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  list(APPEND MOE_SANITIZER_FLAGS -gline-tables-only)
else()
  list(APPEND MOE_SANITIZER_FLAGS -g1)
endif()
if(MOE_ENABLE_FUZZERS)
  # Coverage feedback (edges, comparisons) for libFuzzer, in every library the
  # fuzzer links; only moe-opt-fuzzer links libFuzzer itself.
  list(APPEND MOE_SANITIZER_FLAGS -fsanitize=fuzzer-no-link)
endif()
# NDEBUG stays as the build type sets it: it is part of LLVM's ABI (e.g.
# llvm::Statistic's layout), and Debian's LLVM/MLIR are built with it, so
# LLVM's assertions cannot be turned on in our code alone. libstdc++'s
# assertions (bounds of std::vector, std::string, ...) change no layout and
# are on. -O1 keeps the instrumented build fast to compile and run.
add_compile_options(
  "$<$<COMPILE_LANGUAGE:C,CXX>:${MOE_SANITIZER_FLAGS}>"
  "$<$<COMPILE_LANGUAGE:CXX>:-D_GLIBCXX_ASSERTIONS>"
  "$<$<COMPILE_LANGUAGE:C,CXX>:-O1>"
  )
add_link_options(-fsanitize=address,undefined)

message(STATUS "MoE-MLIR: sanitizers on (${MOE_SANITIZER_FLAGS})")
