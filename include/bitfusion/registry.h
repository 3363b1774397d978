// Backends are chosen by URI scheme. Each backend registers its schemes with one line at the end
// of its source file; host applications may register their own backends the same way.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/export.h"
#include "bitfusion/sample.h"
#include "bitfusion/status.h"
#include "bitfusion/uri.h"

namespace bitfusion {

class Provisioner;
class ContainerRunner;
class DeviceAllocator;
class MetricSource;
class ResultSink;

struct Event;

/// What a backend is made for beyond its URI, in the spirit of Arrow's IOContext: where the
/// events it publishes go (device leases, sinks degrading), the run it works for (recorded as
/// the holder of what it takes), labels it adds. Every field may be left empty; a backend uses
/// what applies to it and ignores the rest.
struct BackendContext {
  std::function<void(const Event&)> on_event;
  std::string run_id;
  Labels labels;
};

/// Scheme -> factory for one interface. Thread-safe.
template <class Interface>
class Registry {
 public:
  using Factory =
      std::function<Result<std::shared_ptr<Interface>>(const Uri&, const BackendContext&)>;
  /// A factory that needs no context.
  using UriFactory = std::function<Result<std::shared_ptr<Interface>>(const Uri&)>;
  /// Reads a URI's options the way the factory would, without making anything.
  using Checker = std::function<Status(const Uri&, const BackendContext&)>;

  /// The process-wide registry for Interface (defined in the library for the five interfaces).
  static Registry& Instance();

  /// Adds a scheme; returns true so it can initialise a static. A scheme registered twice keeps
  /// the first factory and logs a warning.
  bool Add(std::string scheme, Factory factory, Checker check = nullptr);
  bool Add(std::string scheme, UriFactory factory);

  /// Builds a backend. An unknown scheme is InvalidArgument listing the known ones.
  Result<std::shared_ptr<Interface>> Make(const Uri& uri, const BackendContext& context = {}) const;
  /// Parses `uri` first; a malformed URI is InvalidArgument.
  Result<std::shared_ptr<Interface>> Make(std::string_view uri,
                                          const BackendContext& context = {}) const;

  /// Whether Make would accept `uri`'s scheme and options, without making the backend (which
  /// may connect, start or take something): what a plan checks before anything runs. An
  /// unknown scheme is InvalidArgument as in Make; a backend registered without a checker is
  /// only checked for its scheme.
  Status Check(const Uri& uri, const BackendContext& context = {}) const;

  /// Registered schemes, sorted.
  std::vector<std::string> Schemes() const;

 private:
  struct Entry {
    Factory make;
    Checker check;
  };
  Result<Entry> Find(const Uri& uri) const;

  mutable std::mutex mu_;
  std::map<std::string, Entry, std::less<>> factories_;
};

// Exported like BITFUSION_EXPORT, in the GNU spelling: clang takes no C++11 attribute in an
// explicit instantiation ("an attribute list cannot appear here"); GCC takes both.
extern template class __attribute__((visibility("default"))) Registry<Provisioner>;
extern template class __attribute__((visibility("default"))) Registry<ContainerRunner>;
extern template class __attribute__((visibility("default"))) Registry<DeviceAllocator>;
extern template class __attribute__((visibility("default"))) Registry<MetricSource>;
extern template class __attribute__((visibility("default"))) Registry<ResultSink>;

namespace internal {
/// `Options::FromUri(uri, context)`, or `Options::FromUri(uri)` for backends that need no
/// context.
template <class Options>
auto OptionsFromUri(const Uri& uri, const BackendContext& context) {
  if constexpr (requires { Options::FromUri(uri, context); }) {
    return Options::FromUri(uri, context);
  } else {
    return Options::FromUri(uri);
  }
}

/// A registry checker: the options read, nothing made.
template <class Options>
Status CheckFromUri(const Uri& uri, const BackendContext& context) {
  return OptionsFromUri<Options>(uri, context).status();
}

/// Adapts OptionsFromUri + `Backend::Make(options)` into a registry factory.
template <class Interface, class Options, class Backend>
Result<std::shared_ptr<Interface>> MakeFromUri(const Uri& uri, const BackendContext& context) {
  auto options = OptionsFromUri<Options>(uri, context);
  if (!options) return options.error();
  auto backend = Backend::Make(*options);
  if (!backend) return backend.error();
  return std::shared_ptr<Interface>(std::move(*backend));
}
}  // namespace internal

}  // namespace bitfusion

/// BITFUSION_REGISTER(ResultSink, "jsonl", JsonlSinkOptions, JsonlSink);
#define BITFUSION_REGISTER(Interface, scheme, Options, Backend)                                  \
  [[maybe_unused]] static const bool BITFUSION_CONCAT(bitfusion_registered_, __LINE__) =         \
      ::bitfusion::Registry<::bitfusion::Interface>::Instance().Add(                             \
          scheme, &::bitfusion::internal::MakeFromUri<::bitfusion::Interface, Options, Backend>, \
          &::bitfusion::internal::CheckFromUri<Options>)
