// aws://REGION — EC2 through its Query API (version 2016-11-15) on the project's libcurl client,
// signed with SigV4 (net/sigv4.h); answers parsed with Boost.PropertyTree. RunInstances tags
// every instance at launch with the ownership tags (ownership.h) and carries a ClientToken, so
// a retried create never makes two sets of machines; DescribeInstances (filters, NextToken),
// TerminateInstances, DescribeInstanceTypes (GPUs, FPGAs, inference accelerators, Neuron) and
// DescribeImages (the default image) do the rest. Throttling and capacity errors are retried
// with the HTTP client's jittered backoff; authorization and parameter errors fail at once with
// EC2's code.
#pragma once

#include <boost/property_tree/ptree_fwd.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "bitfusion/provisioner.h"
#include "bitfusion/uri.h"
#include "net/http_client.h"
#include "net/sigv4.h"
#include "provisioners/aws_config_internal.h"

namespace bitfusion {

struct Ec2ProvisionerOptions {
  /// Region (aws://REGION); empty = AWS_REGION, AWS_DEFAULT_REGION, the profile's region.
  std::string region;
  /// ?endpoint=URL; empty = AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL, the profile's, else AWS.
  std::string endpoint;
  /// ?profile=NAME; empty = AWS_PROFILE, AWS_DEFAULT_PROFILE, "default".
  std::string profile;
  /// ?image=ami-…: the image when a request names none; empty = the newest Amazon Linux 2023
  /// for the type's architecture (DescribeImages).
  std::string image;
  /// ?type=: the type when a request names neither a type nor requirements.
  std::string default_type = "m5.large";
  std::string subnet_id;                        ///< ?subnet=subnet-…
  std::vector<std::string> security_group_ids;  ///< ?security_group=sg-1,sg-2
  std::string key_name;                         ///< ?key_name=: when a request names none
  std::string user_data;                        ///< ?user_data_file=PATH: its contents
  std::string ssh_user = "ec2-user";            ///< ?ssh_user=
  /// ?wait_ssh=false: WaitReady does not wait for port 22 to answer (emulators, private
  /// subnets without a route from here).
  bool wait_ssh = true;
  std::chrono::nanoseconds poll{std::chrono::seconds(2)};  ///< ?poll=: DescribeInstances period
  int max_attempts = 6;  ///< ?attempts=: tries per API call for throttling and capacity errors
  std::chrono::milliseconds initial_backoff{200};  ///< ?backoff=: first retry's bound

  /// aws://us-east-1?endpoint=http://127.0.0.1:5000&profile=p&image=ami-1&wait_ssh=false
  static Result<Ec2ProvisionerOptions> FromUri(const Uri& uri);
};

/// Concurrency: every method may be called from several threads at once.
class Ec2Provisioner final : public Provisioner {
 public:
  static Result<std::shared_ptr<Ec2Provisioner>> Make(const Ec2ProvisionerOptions& options);

  Result<std::vector<MachineInfo>> Create(const MachineRequest& request) override;
  Result<MachineInfo> WaitReady(const std::string& id, Deadline deadline) override;
  /// Instances with bitfusion's creator tag, in every state.
  Result<std::vector<MachineInfo>> List() override;
  Status Destroy(const std::vector<std::string>& ids) override;
  /// DeleteTags of the creator-process tags.
  Status Keep(const std::vector<std::string>& ids) override;
  Result<std::vector<MachineType>> Types() override;

  /// One EC2 Query API call: `params` after Action and Version, signed, retried as the options
  /// say. The answer's XML root element, or an error naming EC2's code and what to do.
  using Params = std::vector<std::pair<std::string, std::string>>;
  using Xml = boost::property_tree::ptree;
  Result<std::shared_ptr<Xml>> Call(const std::string& action, const Params& params,
                                    Deadline deadline, int* attempts = nullptr);

 private:
  explicit Ec2Provisioner(const Ec2ProvisionerOptions& options) : options_(options) {}
  Status Init();
  Result<net::AwsCredentials> Credentials();
  Result<MachineType> TypeInfo(const std::string& type);
  Result<std::string> DefaultImage(const std::string& architecture);
  Result<std::vector<MachineInfo>> Describe(Params params, Deadline deadline);
  /// Ends the instances tagged with `token` except `keep`.
  Status TerminateByToken(const std::string& token, const std::set<std::string>& keep = {});
  std::string Where() const;

  const Ec2ProvisionerOptions options_;
  internal::AwsSettings settings_;
  std::unique_ptr<net::HttpClient> http_;
  std::string host_header_;

  std::mutex mu_;
  std::optional<net::AwsCredentials> credentials_;
  std::optional<std::vector<MachineType>> catalogue_;
  std::map<std::string, MachineType> type_info_;
  std::map<std::string, std::string> default_images_;  // architecture -> AMI
  std::map<std::string, std::int64_t> created_ns_;     // instances this object made
  std::map<std::string, std::int64_t> running_ns_;     // first seen running
};

}  // namespace bitfusion
