// slurmrestd's answers as slurm:// reads them (net/slurm_rest.h): the version list of GET
// /openapi/v3 (PickSlurmApiVersion), the "errors" array (ParseSlurmErrors, and through
// SlurmRest::Error the message made of it for a status the first byte picks), and GET /jobs,
// GET /job/{id} and POST /job/submit answers: each job (SlurmJobsOf, its state and the labels
// in its comment) and the submitted job's id; GET /nodes and /partitions answers (SlurmNodesOf
// with each node's GRES, SlurmPartitionsOf), which slurm:// as a provisioner reads.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "net/slurm_rest.h"

namespace json = boost::json;
using namespace bitfusion;

namespace {

// A client that is never called: Error() only formats slurmrestd's answer. Over TCP (host set)
// so that the JWT hint and the dropped-token branch are reachable too.
internal::SlurmRest& Rest(bool tcp) {
  static auto make = [](bool over_tcp) {
    SlurmRunnerOptions o;
    o.socket_path = "/nonexistent/slurmrestd.sock";
    if (over_tcp) {
      o.socket_path.clear();
      o.host = "127.0.0.1";
      o.port = 9;
      o.user = "fuzz";
    }
    auto r = internal::SlurmRest::Make(o);
    if (!r.ok()) std::abort();
    return *r;
  };
  static const auto local = make(false), tcp_rest = make(true);
  return tcp ? *tcp_rest : *local;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  volatile std::size_t sink = 0;
  auto version = internal::PickSlurmApiVersion(body, internal::SlurmApiVersionsSpoken(), "fuzz");
  sink = sink + (version.ok() ? version->size() : version.error().message().size());
  for (const auto& e : internal::ParseSlurmErrors(body)) sink = sink + e.error.size();
  static const int kStatuses[] = {400, 401, 404, 500};
  net::HttpResponse r;
  r.status = kStatuses[data[0] % 4];
  r.body = body;
  sink = sink + Rest((data[0] & 4) != 0).Error(r, "GET /jobs").message().size();
  boost::system::error_code ec;
  const json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return 0;
  sink = sink + static_cast<std::size_t>(internal::SlurmJsonInt(v.as_object(), "job_id") & 1);
  for (const auto& job : internal::SlurmJobsOf(v.as_object())) {
    sink = sink + job.name.size() + internal::SlurmJobTerminal(job.state) +
           internal::SlurmCommentLabels(job.comment).size() +
           static_cast<std::size_t>((job.start_ns ^ job.end_ns ^ job.submit_ns) & 1);
  }
  for (const auto& node : internal::SlurmNodesOf(v.as_object())) {
    sink = sink + node.name.size() + static_cast<std::size_t>(node.gpus) +
           internal::SlurmNodeUsable(node) + static_cast<std::size_t>(node.cpus & 1);
  }
  for (const auto& p : internal::SlurmPartitionsOf(v.as_object())) sink = sink + p.is_default;
  return 0;
}
