// Vendor libraries (NVML, ROCm SMI, XRT) are loaded with dlopen at run time and never linked,
// so bitfusion builds and runs where they are absent.
#pragma once

#include <string>
#include <vector>

#include "bitfusion/status.h"

namespace bitfusion {

/// A shared library opened for the rest of the process's life. Handles are never closed:
/// vendor libraries start threads and register exit handlers that crash once unloaded.
class DynamicLibrary {
 public:
  /// Opens the first of `names` (sonames searched the usual way, or paths) that loads.
  /// Unavailable, naming each candidate and dlerror's reason, when none does.
  static Result<DynamicLibrary> Open(const std::vector<std::string>& names);

  /// The symbol `name` as a function pointer of type F; NotFound when the library lacks it
  /// (an older release).
  template <class F>
  Result<F*> Function(const char* name) const {
    void* symbol = Lookup(name);
    if (symbol == nullptr) {
      return NotFoundError(name_ + " has no symbol " + name +
                           "; the library is older than "
                           "bitfusion expects");
    }
    return reinterpret_cast<F*>(symbol);
  }

  /// The symbol, or nullptr: for entry points that only newer releases have.
  template <class F>
  F* OptionalFunction(const char* name) const {
    return reinterpret_cast<F*>(Lookup(name));
  }

  const std::string& name() const { return name_; }

 private:
  DynamicLibrary(void* handle, std::string name) : handle_(handle), name_(std::move(name)) {}
  void* Lookup(const char* name) const;

  void* handle_ = nullptr;
  std::string name_;
};

}  // namespace bitfusion
