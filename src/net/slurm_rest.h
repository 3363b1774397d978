// The client side of slurmrestd (Slurm's REST API) and the readers of its answers: the API
// version negotiation (GET /openapi/v3), the "errors" array in both shapes slurmrestd writes,
// and the job entries of GET /jobs and GET /job/{id} (v0.0.38's fields). slurm:// uses it; the
// readers are pure functions so that they can be tested and fuzzed without a server.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/status.h"
#include "net/http_client.h"
#include "runners/slurm_runner.h"

namespace bitfusion::internal {

/// The API versions this code speaks, newest first.
const std::vector<std::string>& SlurmApiVersionsSpoken();

/// The newest "/slurm/vX.Y.Z/" version in an OpenAPI document (GET /openapi/v3) that is also
/// in `spoken`; FailedPrecondition naming both sides' versions when there is none.
Result<std::string> PickSlurmApiVersion(std::string_view openapi_json,
                                        const std::vector<std::string>& spoken,
                                        std::string_view where);

/// One entry of slurmrestd's "errors" array, in either shape it writes
/// ({error, error_number, description} or {error, error_code}).
struct SlurmError {
  int code = 0;
  std::string error;
  std::string description;
  std::string source;  ///< the Slurm call that failed, when given
};
/// The entries of a response body's "errors"; empty when it has none or is not JSON.
std::vector<SlurmError> ParseSlurmErrors(std::string_view body);

/// A string member of `o`; empty when missing or not a string.
std::string SlurmJsonString(const boost::json::object& o, const char* key);
/// An integer member of `o`; 0 when missing, not a number, or out of int64's range (a cast of
/// such a double would be undefined).
std::int64_t SlurmJsonInt(const boost::json::object& o, const char* key);

/// Whether a job in this state has ended.
bool SlurmJobTerminal(const std::string& state);

/// Where bitfusion's labels are kept in a job's comment: "bitfusion:" + a JSON object.
inline constexpr const char* kSlurmCommentPrefix = "bitfusion:";
/// The labels in a job's comment; empty when it is not one of bitfusion's.
Labels SlurmCommentLabels(const std::string& comment);

/// One job as slurmrestd reports it.
struct SlurmJobView {
  std::int64_t job_id = 0;
  std::string name, state, reason, comment;
  std::int64_t exit_code = 0;  ///< a wait status
  /// Unix time in ns; 0 when unknown, before 1970, or past 2262 (which int64 ns cannot hold).
  std::int64_t start_ns = 0, end_ns = 0, submit_ns = 0;
};
SlurmJobView ParseSlurmJob(const boost::json::object& j);
/// The entries of an answer's "jobs" array (GET /jobs, GET /job/{id}); entries that are not
/// objects are left out.
std::vector<SlurmJobView> SlurmJobsOf(const boost::json::object& answer);

/// One node as slurmrestd reports it (GET /nodes, GET /node/{name}; v0.0.38's fields).
struct SlurmNodeView {
  std::string name, hostname, address, architecture, operating_system;
  std::string state;  ///< the base state as written ("idle", "mixed", "down" ...)
  std::vector<std::string> state_flags;  ///< "DRAIN", "NOT_RESPONDING" ...
  std::string reason;                    ///< why an administrator took it out, if given
  std::vector<std::string> partitions;
  std::int64_t cpus = 0;
  std::int64_t real_memory_mb = 0;
  std::string gres;       ///< "gpu:a100:4(S:0-1),mps:100" as configured
  int gpus = 0;           ///< the GPUs in `gres`, all types together
  std::string gpu_model;  ///< the type of its first GPU entry ("a100"); empty when untyped
};
SlurmNodeView ParseSlurmNode(const boost::json::object& j);
/// The entries of an answer's "nodes" array; entries that are not objects are left out.
std::vector<SlurmNodeView> SlurmNodesOf(const boost::json::object& answer);
/// Whether Slurm places jobs on a node in this state: idle, mixed, allocated or completing,
/// and none of the flags that keep jobs off it (drain, fail, not responding, maintenance,
/// powered down, reboot). Case is ignored.
bool SlurmNodeUsable(const SlurmNodeView& node);
/// The GPUs in a GRES string ("gpu:2", "gpu:a100:4(S:0-1),mps:100") and the first GPU type.
int SlurmGresGpus(std::string_view gres, std::string* model = nullptr);

/// One partition of GET /partitions.
struct SlurmPartitionView {
  std::string name, state;  ///< state "UP", "DOWN", "DRAIN", "INACTIVE"
  bool is_default = false;  ///< "default" among its flags
};
std::vector<SlurmPartitionView> SlurmPartitionsOf(const boost::json::object& answer);

/// One HTTP client to slurmrestd, the negotiated version, errors read from both shapes
/// slurmrestd writes.
class SlurmRest {
 public:
  static Result<std::shared_ptr<SlurmRest>> Make(const SlurmRunnerOptions& o);

  const std::string& where() const { return where_; }

  /// "/slurm/v0.0.38", negotiated on first use (retried on the next call after a failure).
  Result<std::string> Prefix();

  /// A call under the negotiated prefix.
  Result<net::HttpResponse> Call(const std::string& method, const std::string& path,
                                 const std::string& body = "");

  /// The parsed body of a 200 answer; else an error naming the call and slurmrestd's errors.
  Result<boost::json::object> Json(const net::HttpResponse& r, const std::string& what);

  /// The error for a failed call `what` that got answer `r`.
  Status Error(const net::HttpResponse& r, const std::string& what) const;

 private:
  explicit SlurmRest(const SlurmRunnerOptions& o);

  Result<net::HttpResponse> Raw(const std::string& method, const std::string& target,
                                const std::string& body);

  SlurmRunnerOptions options_;
  std::string where_;
  std::unique_ptr<net::HttpClient> http_;
  std::mutex mu_;
  std::string version_;
};

}  // namespace bitfusion::internal
