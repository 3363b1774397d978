// Container Device Interface spec files (cncf-tags/container-device-interface SPEC.md): which
// fully qualified device names ("nvidia.com/gpu=0") exist on a host and which device nodes
// each one brings, so a lease can be passed in by CDI name when the engine accepts CDI.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "bitfusion/status.h"

namespace bitfusion {

struct CdiDevice {
  std::string kind;  ///< "nvidia.com/gpu"
  std::string name;  ///< "0", "GPU-<uuid>", "all"
  /// Host paths of the device's nodes (hostPath, or path when hostPath is absent).
  std::vector<std::string> device_nodes;
  std::string spec_file;

  std::string QualifiedName() const { return kind + "=" + name; }
};

/// The devices of every spec in `dirs` (*.json, *.yaml, *.yml; a later directory's spec for the
/// same kind and name wins, as the spec's priority order says for /var/run/cdi over /etc/cdi).
/// A malformed or unreadable spec is skipped with a warning. YAML is read in the block style
/// that nvidia-ctk and other generators write (mappings, sequences, plain and quoted scalars);
/// anchors and flow collections are not understood and leave that value out.
std::vector<CdiDevice> ReadCdiSpecs(const std::vector<std::filesystem::path>& dirs);

/// One spec's devices from its text; InvalidArgument saying what is wrong.
Result<std::vector<CdiDevice>> ParseCdiSpec(const std::string& text, bool yaml,
                                            const std::string& file_name);

}  // namespace bitfusion
