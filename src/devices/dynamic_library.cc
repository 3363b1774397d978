#include "devices/dynamic_library.h"

#include <dlfcn.h>

namespace bitfusion {

Result<DynamicLibrary> DynamicLibrary::Open(const std::vector<std::string>& names) {
  std::string reasons;
  for (const auto& name : names) {
    // RTLD_LOCAL keeps the vendor's symbols out of the global namespace, so two libraries
    // bundling the same helper code cannot clash.
    void* handle = ::dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) return DynamicLibrary(handle, name);
    const char* error = ::dlerror();
    reasons += (reasons.empty() ? "" : "; ") + std::string(error ? error : name + ": unknown");
  }
  return UnavailableError("cannot load " + (names.empty() ? std::string("a library") : names[0]) +
                          " (" + reasons + ")");
}

void* DynamicLibrary::Lookup(const char* name) const {
  return handle_ == nullptr ? nullptr : ::dlsym(handle_, name);
}

}  // namespace bitfusion
