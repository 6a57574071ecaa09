//===- Module.cpp - Loading a compiled module -----------------------------===//
#include "Module.h"
#include "Options.h"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

namespace moerun {

//===----------------------------------------------------------------------===//
// The module
//===----------------------------------------------------------------------===//

Module loadModule(const std::string &path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    fatal("cannot open module '%s': %s", path.c_str(), std::strerror(errno));
  if (S_ISDIR(st.st_mode))
    fatal("cannot load module '%s': it is a directory", path.c_str());
  // A bare name would make dlopen search the library path: load the file.
  std::string file = path.find('/') == std::string::npos ? "./" + path : path;
  Module m;
  dlerror();
  m.handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!m.handle) {
    const char *why = dlerror();
    fatal("cannot load module '%s': %s", path.c_str(),
          why ? why : "unknown dlopen error");
  }
  void *description = dlsym(m.handle, "moe_module_description");
  void *entry = dlsym(m.handle, "moe_entry");
  if (!description || !entry)
    fatal("'%s' is not a MoE-MLIR module: it does not export %s (compile "
          "the layer with moe-compile)",
          path.c_str(),
          !description && !entry ? "moe_module_description and moe_entry"
          : !description         ? "moe_module_description"
                                 : "moe_entry");
  m.entry = reinterpret_cast<EntryFn>(entry);
  // Bound the string by the symbol's size when the ELF symbol table knows
  // it, so a description without its NUL cannot run off the end.
  size_t limit = SIZE_MAX;
  Dl_info info;
  ElfW(Sym) *symbol = nullptr;
  if (dladdr1(description, &info, reinterpret_cast<void **>(&symbol),
              RTLD_DL_SYMENT) &&
      symbol && symbol->st_size > 0)
    limit = symbol->st_size;
  const char *text = static_cast<const char *>(description);
  size_t length = limit == SIZE_MAX ? std::strlen(text) : strnlen(text, limit);
  if (length == limit)
    fatal("'%s': moe_module_description is not NUL-terminated within its "
          "%zu bytes",
          path.c_str(), limit);
  m.descriptionText.assign(text, length);
  return m;
}

//===----------------------------------------------------------------------===//
// Crash reporting around moe_entry
//===----------------------------------------------------------------------===//

volatile sig_atomic_t inModule = 0;
volatile sig_atomic_t iterationForCrash = 0;

static void crashHandler(int sig) {
  if (inModule) {
    const char *name = sig == SIGSEGV  ? "SIGSEGV"
                       : sig == SIGBUS ? "SIGBUS"
                       : sig == SIGFPE ? "SIGFPE"
                       : sig == SIGILL ? "SIGILL"
                                       : "a signal";
    char buf[200];
    int n = std::snprintf(buf, sizeof buf,
                          "moe-run: error: the module crashed with %s inside "
                          "moe_entry (iteration %d)\n",
                          name, int(iterationForCrash));
    if (n > 0)
      (void)!write(2, buf, size_t(std::min(n, int(sizeof buf) - 1)));
  }
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void installCrashHandlers() {
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL})
    std::signal(sig, crashHandler);
}

} // namespace moerun
