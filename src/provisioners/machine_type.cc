// Resolving hardware requirements to the cheapest machine type that satisfies them.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

#include "bitfusion/machine.h"
#include "core/ascii.h"

namespace bitfusion {
namespace {

bool Contains(std::string_view haystack, std::string_view needle) {
  return internal::AsciiLower(haystack).find(internal::AsciiLower(needle)) != std::string::npos;
}

std::string CanonicalArch(std::string_view arch) {
  const std::string a = internal::AsciiLower(arch);
  if (a == "aarch64") return "arm64";
  if (a == "amd64" || a == "x64") return "x86_64";
  return a;
}

std::string Gib(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g GiB", static_cast<double>(bytes) / (1ULL << 30));
  return buf;
}

std::string Price(double usd) {
  if (usd < 0) return "price unknown";
  char buf[32];
  std::snprintf(buf, sizeof buf, "$%.4g/h", usd);
  return buf;
}

int WantedAccelerators(const MachineRequirements& r) {
  if (r.accelerator_count > 0) return r.accelerator_count;
  return r.accelerator_kind.empty() && r.accelerator_vendor.empty() && r.accelerator_model.empty()
             ? 0
             : 1;
}

int AcceleratorCount(const MachineType& t) {
  int n = 0;
  for (const auto& a : t.accelerators) n += a.count;
  return n;
}

}  // namespace

bool MachineRequirements::empty() const {
  return cpu_architecture.empty() && cpu_vendor.empty() && min_vcpus <= 0 &&
         min_memory_bytes == 0 && WantedAccelerators(*this) == 0;
}

std::string MachineRequirements::ToString() const {
  std::vector<std::string> parts;
  if (const int n = WantedAccelerators(*this); n > 0) {
    std::string a = accelerator_kind.empty() ? "accelerator" : accelerator_kind;
    if (!accelerator_vendor.empty()) a += " " + accelerator_vendor;
    if (!accelerator_model.empty()) a += " " + accelerator_model;
    parts.push_back(a + " x" + std::to_string(n));
  }
  if (min_vcpus > 0) parts.push_back(">= " + std::to_string(min_vcpus) + " vCPUs");
  if (min_memory_bytes > 0) parts.push_back(">= " + Gib(min_memory_bytes));
  if (!cpu_architecture.empty()) parts.push_back(cpu_architecture);
  if (!cpu_vendor.empty()) parts.push_back("CPU by " + cpu_vendor);
  if (parts.empty()) return "anything";
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

std::string UnmetRequirement(const MachineType& t, const MachineRequirements& r) {
  if (!r.cpu_architecture.empty() &&
      CanonicalArch(t.cpu_architecture) != CanonicalArch(r.cpu_architecture)) {
    return "architecture " + (t.cpu_architecture.empty() ? "unknown" : t.cpu_architecture) +
           ", not " + r.cpu_architecture;
  }
  if (!r.cpu_vendor.empty() && !Contains(t.cpu_vendor, r.cpu_vendor)) {
    return "CPU by " + (t.cpu_vendor.empty() ? "an unknown vendor" : t.cpu_vendor) + ", not " +
           r.cpu_vendor;
  }
  if (t.vcpus < r.min_vcpus) {
    return std::to_string(t.vcpus) + " vCPUs < " + std::to_string(r.min_vcpus);
  }
  if (t.memory_bytes < r.min_memory_bytes) {
    return Gib(t.memory_bytes) + " memory < " + Gib(r.min_memory_bytes);
  }
  const int wanted = WantedAccelerators(r);
  if (wanted == 0) return "";
  int have = 0;
  for (const auto& a : t.accelerators) {
    if (!r.accelerator_kind.empty() &&
        internal::AsciiLower(a.kind) != internal::AsciiLower(r.accelerator_kind))
      continue;
    if (!r.accelerator_vendor.empty() && !Contains(a.vendor, r.accelerator_vendor)) continue;
    if (!r.accelerator_model.empty() && !Contains(a.model, r.accelerator_model)) continue;
    have += a.count;
  }
  if (have >= wanted) return "";
  std::string what = r.accelerator_kind.empty() ? "accelerator" : r.accelerator_kind;
  if (!r.accelerator_vendor.empty()) what += " " + r.accelerator_vendor;
  if (!r.accelerator_model.empty()) what += " " + r.accelerator_model;
  if (have == 0) {
    std::string has;
    // Accelerators of the kind asked for whose vendor the provider does not say (a Slurm GRES
    // names a type, "gpu:tesla:2", and no vendor): a vendor never matches them.
    bool vendor_unknown = false;
    for (const auto& a : t.accelerators) {
      std::string one = std::to_string(a.count) + "x " + a.kind;
      if (!a.vendor.empty()) one += " " + a.vendor;
      if (!a.model.empty()) one += " " + a.model;
      has += (has.empty() ? "" : ", ") + one;
      const bool kind = r.accelerator_kind.empty() ||
                        internal::AsciiLower(a.kind) == internal::AsciiLower(r.accelerator_kind);
      if (kind && a.vendor.empty()) vendor_unknown = true;
    }
    std::string out = "no " + what + (has.empty() ? "" : " (has " + has + ")");
    if (vendor_unknown && !r.accelerator_vendor.empty()) {
      const std::string kind = r.accelerator_kind.empty() ? "gpu" : r.accelerator_kind;
      out += "; this provider does not name the vendor of its " + kind +
             "s, so ask by model or type (\"" + kind + "\": \"MODEL:N\") or for any (\"" + kind +
             "\": \"any:" + std::to_string(wanted) + "\")";
    }
    return out;
  }
  return std::to_string(have) + " " + what + " < " + std::to_string(wanted);
}

Result<TypeResolution> ResolveMachineType(const std::vector<MachineType>& catalogue,
                                          const MachineRequirements& requirements) {
  if (catalogue.empty()) return NotFoundError("the provider's type catalogue is empty");
  // Priced types first, by price; then the smallest, so an unpriced catalogue still picks the
  // least machine that does the job.
  auto rank = [](const MachineType& t) {
    return std::make_tuple(t.hourly_price_usd < 0,
                           t.hourly_price_usd < 0 ? 0.0 : t.hourly_price_usd, t.vcpus,
                           t.memory_bytes, AcceleratorCount(t), t.name);
  };
  std::vector<const MachineType*> sorted;
  for (const auto& t : catalogue) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [&](const MachineType* a, const MachineType* b) { return rank(*a) < rank(*b); });

  TypeResolution out;
  const MachineType* best = nullptr;
  std::size_t satisfying = 0;
  for (const MachineType* t : sorted) {
    const std::string why = UnmetRequirement(*t, requirements);
    if (why.empty()) {
      ++satisfying;
      if (best == nullptr) best = t;
      out.explanation.push_back(t->name + ": satisfies, " + Price(t->hourly_price_usd) + ", " +
                                std::to_string(t->vcpus) + " vCPUs, " + Gib(t->memory_bytes));
    } else {
      out.explanation.push_back(t->name + ": " + why);
    }
  }
  if (best == nullptr) {
    // The misses that came closest: the biggest types (last in rank order) show what is needed.
    std::string closest;
    for (auto it = sorted.rbegin(); it != sorted.rend() && it - sorted.rbegin() < 3; ++it) {
      closest +=
          (closest.empty() ? "" : "; ") + (*it)->name + ": " + UnmetRequirement(**it, requirements);
    }
    return NotFoundError("no machine type among " + std::to_string(catalogue.size()) +
                         " satisfies " + requirements.ToString() + " (e.g. " + closest +
                         "); relax the requirements or name a type with --type");
  }
  out.type = *best;
  out.summary =
      best->name + " (" + Price(best->hourly_price_usd) + ", " + std::to_string(best->vcpus) +
      " vCPUs, " + Gib(best->memory_bytes) + "): the cheapest of " + std::to_string(satisfying) +
      " of " + std::to_string(catalogue.size()) + " types that satisfy " + requirements.ToString() +
      (best->hourly_price_usd < 0 ? " (no prices known: the smallest)" : "");
  return out;
}

Status ParseAcceleratorRequirement(const std::string& kind, const std::string& spec,
                                   const std::string& what, MachineRequirements& out) {
  std::string name = spec;
  out.accelerator_kind = kind;
  out.accelerator_count = 1;
  if (const auto colon = name.find(':'); colon != std::string::npos) {
    const std::string count = name.substr(colon + 1);
    char* end = nullptr;
    const long n = std::strtol(count.c_str(), &end, 10);
    if (count.empty() || *end != '\0' || n < 1 || n > 64) {
      return InvalidArgumentError(what + " " + spec + ": COUNT must be a whole number 1..64");
    }
    out.accelerator_count = static_cast<int>(n);
    name = name.substr(0, colon);
  }
  const std::string lower = internal::AsciiLower(name);
  static const char* kVendors[] = {"nvidia", "amd", "xilinx", "intel", "habana", "qualcomm", "aws"};
  if (lower.empty() || lower == "any") return Status::OK();
  if (std::find(std::begin(kVendors), std::end(kVendors), lower) != std::end(kVendors)) {
    out.accelerator_vendor = name;
  } else {
    out.accelerator_model = name;
  }
  return Status::OK();
}

}  // namespace bitfusion
