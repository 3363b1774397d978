#include "bitfusion/registry.h"

#include "bitfusion/container_runner.h"
#include "bitfusion/device_allocator.h"
#include "bitfusion/log.h"
#include "bitfusion/metric_stream.h"
#include "bitfusion/provisioner.h"
#include "bitfusion/result_sink.h"

namespace bitfusion {

template <class Interface>
Registry<Interface>& Registry<Interface>::Instance() {
  static Registry registry;
  return registry;
}

template <class Interface>
bool Registry<Interface>::Add(std::string scheme, Factory factory, Checker check) {
  std::lock_guard lock(mu_);
  if (factories_.count(scheme) != 0) {
    LogAt(LogLevel::kWarning, "backend scheme \"", scheme,
          "\" registered twice; keeping the first registration");
    return true;
  }
  factories_.emplace(std::move(scheme), Entry{std::move(factory), std::move(check)});
  return true;
}

template <class Interface>
bool Registry<Interface>::Add(std::string scheme, UriFactory factory) {
  return Add(std::move(scheme),
             Factory([factory = std::move(factory)](const Uri& uri, const BackendContext&) {
               return factory(uri);
             }));
}

template <class Interface>
Result<typename Registry<Interface>::Entry> Registry<Interface>::Find(const Uri& uri) const {
  {
    std::lock_guard lock(mu_);
    auto it = factories_.find(uri.scheme);
    if (it != factories_.end()) return it->second;
  }
  std::string known;
  for (const auto& s : Schemes()) known += (known.empty() ? "" : ", ") + s;
  return InvalidArgumentError("unknown scheme \"" + uri.scheme + "\" in \"" + uri.ToString() +
                              "\"; known schemes: " + known);
}

template <class Interface>
Result<std::shared_ptr<Interface>> Registry<Interface>::Make(const Uri& uri,
                                                             const BackendContext& context) const {
  BITFUSION_ASSIGN_OR_RETURN(const Entry entry, Find(uri));
  return entry.make(uri, context);
}

template <class Interface>
Status Registry<Interface>::Check(const Uri& uri, const BackendContext& context) const {
  BITFUSION_ASSIGN_OR_RETURN(const Entry entry, Find(uri));
  return entry.check ? entry.check(uri, context) : Status::OK();
}

template <class Interface>
Result<std::shared_ptr<Interface>> Registry<Interface>::Make(std::string_view text,
                                                             const BackendContext& context) const {
  auto uri = Uri::Parse(text);
  if (!uri) return uri.error();
  return Make(*uri, context);
}

template <class Interface>
std::vector<std::string> Registry<Interface>::Schemes() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& entry : factories_) out.push_back(entry.first);
  return out;
}

template class Registry<Provisioner>;
template class Registry<ContainerRunner>;
template class Registry<DeviceAllocator>;
template class Registry<MetricSource>;
template class Registry<ResultSink>;

}  // namespace bitfusion
