// What docker:// decides about a request before the engine sees it: whether an image
// reference and a ContainerSpec are valid (everything a person can get wrong is refused, naming
// the field, before anything is sent), and how they are written in the engine's API. Pure
// functions, apart from the host checks that ValidateSpec makes for a local engine.
#pragma once

#include <boost/json.hpp>

#include <string>
#include <utility>

#include "bitfusion/container_runner.h"

namespace bitfusion::internal {

/// InvalidArgument unless `image` is "[registry[:port]/]name[:tag][@sha256:digest]" (lower-case
/// name) or an image id.
Status ValidateImageRef(const std::string& image);

/// "registry:5000/a/b:tag" -> {"registry:5000/a/b", "tag"}; "a@sha256:…" -> {"a", "sha256:…"};
/// no tag -> "latest".
std::pair<std::string, std::string> SplitRef(const std::string& ref);

/// Every field of `spec`: InvalidArgument (or NotFound for a missing host path) naming the
/// field and what to write instead. `local_engine`: the engine runs on this host, so bind
/// sources and device nodes are looked for here. `api_minor`: the engine's minor API version
/// (CDI names need 1.44), or -1 when not yet known (CDI names are then not judged by version).
Status ValidateSpec(const ContainerSpec& spec, bool local_engine, int api_minor);

/// The body of POST /containers/create for a valid `spec`, with `labels` (the spec's and the
/// runner's own) and HostConfig.Init = `init`.
boost::json::object CreateBody(const ContainerSpec& spec, const Labels& labels, bool init);

/// The `filters` query value that selects objects carrying all `labels` (an empty value matches
/// the key alone), percent-encoded.
std::string LabelFilter(const Labels& labels);

}  // namespace bitfusion::internal
