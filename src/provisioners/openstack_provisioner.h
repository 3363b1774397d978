// openstack://KEYSTONE and rackspace://REGION — OpenStack compute (Nova) behind Keystone v3
// (password or application credential), and Rackspace Cloud Servers behind Rackspace identity
// v2.0 (API key), on the project's libcurl client; answers parsed with Boost.JSON.
//
// Identity (openstack_identity_internal.h) gives a token and the compute endpoint picked from
// the service catalogue by region and interface; the token is renewed five minutes before it
// expires and once more when Nova answers 401. Nova: POST /servers with the ownership labels
// as server metadata (so a machine is tagged from the moment it exists), GET /servers/{id}
// polled BUILD -> ACTIVE (ERROR surfaces the server's fault), GET /servers/detail paged with
// limit and marker, DELETE /servers/{id}, PUT /servers/{id}/metadata, GET /flavors/detail with
// the extra specs (accelerators from pci_passthrough:alias, resources:VGPU and
// accel:device_profile), GET /images/detail for an image named rather than given by UUID.
//
// Idempotent create: Nova has no client token, so every server gets a name of its own ("bf-"
// plus a token and its index); a create whose answer was lost (no answer, or a 5xx) is looked
// up by that exact name before it is sent again, so a retry never makes a second server.
// Throttling (413/429 overLimit with Retry-After) and 503 are retried with jittered backoff;
// a quota error (403 "Quota exceeded") and "No valid host" are ResourceExhausted, so a Pool
// fails over; other 4xx fail at once with Nova's message.
// Destroy: DELETE answers 204 and the server shows task_state "deleting", then 404; a 404 for
// a server this provisioner deleted is success, for any other id NotFound.
//
// References: docs.openstack.org/api-ref/compute (servers, metadata, flavors, images,
// microversions, faults, paginated collections); Keystone v3 authenticate-v3; Rackspace Cloud
// Servers v2 and Cloud Identity v2.0 (docs.rackspace.com); tests/fakes/openstack_fake.py.
#pragma once

#include <boost/json/value.hpp>
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
#include "provisioners/openstack_identity_internal.h"

namespace bitfusion {

struct OpenStackProvisionerOptions {
  enum class Identity { kKeystoneV3, kRackspaceV2 };
  Identity identity = Identity::kKeystoneV3;
  /// The identity service: openstack://HOST[:PORT][/PATH] is https://HOST[:PORT]/PATH (path
  /// default /v3; ?tls=false for plain http), openstack:// alone is OS_AUTH_URL;
  /// rackspace://REGION uses ?identity=URL, else https://identity.api.rackspacecloud.com/v2.0.
  std::string identity_url;
  /// ?region= (openstack; else OS_REGION_NAME, else RegionOne) or rackspace://REGION.
  std::string region;
  /// ?interface=public|internal|admin (else OS_INTERFACE, else public); Keystone only.
  std::string interface;
  /// ?project=, ?user_domain=, ?project_domain=: Keystone password scope (else OS_PROJECT_NAME,
  /// OS_USER_DOMAIN_NAME, OS_PROJECT_DOMAIN_NAME; domains default to "Default").
  std::string project, user_domain, project_domain;
  /// ?type=: the flavour (name or id) when a request names neither a type nor requirements.
  std::string default_type;
  /// ?image=: the image (name or UUID) when a request names none.
  std::string image;
  std::string network;            ///< ?network=UUID: the network to attach; empty = Nova's
  std::string ssh_user = "root";  ///< ?ssh_user=
  bool wait_ssh = true;           ///< ?wait_ssh=false: ACTIVE is ready (no port 22 check)
  std::chrono::nanoseconds poll{std::chrono::seconds(3)};  ///< ?poll=: GET /servers/{id} period
  int max_attempts = 6;  ///< ?attempts=: tries per API call for throttling and 503
  std::chrono::milliseconds initial_backoff{500};  ///< ?backoff=: first retry's bound

  /// openstack://keystone.example:5000/v3?region=RegionOne&image=ubuntu-22.04&type=m1.large
  /// rackspace://DFW?image=<uuid>&type=general1-4
  static Result<OpenStackProvisionerOptions> FromUri(const Uri& uri);
};

/// Credentials, from the environment as the OpenStack and Rackspace CLIs read them:
///   openstack: OS_USERNAME + OS_PASSWORD (+ project and domains), or
///              OS_APPLICATION_CREDENTIAL_ID + OS_APPLICATION_CREDENTIAL_SECRET;
///   rackspace: RACKSPACE_USERNAME + RACKSPACE_API_KEY (or RS_USERNAME + RS_API_KEY).
/// Secrets go into the identity request body only; tokens into the X-Auth-Token header only.
/// Concurrency: every method may be called from several threads at once.
class OpenStackProvisioner final : public Provisioner {
 public:
  static Result<std::shared_ptr<OpenStackProvisioner>> Make(
      const OpenStackProvisionerOptions& options);

  Result<std::vector<MachineInfo>> Create(const MachineRequest& request) override;
  /// Ready: ACTIVE (and, with wait_ssh, port 22 answering with an SSH banner). ERROR fails with
  /// the server's fault.
  Result<MachineInfo> WaitReady(const std::string& id, Deadline deadline) override;
  /// Servers whose metadata says bitfusion.creator = bitfusion.
  Result<std::vector<MachineInfo>> List() override;
  Status Destroy(const std::vector<std::string>& ids) override;
  /// PUT /servers/{id}/metadata without the creator-process labels.
  Status Keep(const std::vector<std::string>& ids) override;
  Result<std::vector<MachineType>> Types() override;

 private:
  struct Flavor {
    std::string id;
    MachineType type;
  };

  explicit OpenStackProvisioner(const OpenStackProvisionerOptions& options) : options_(options) {}
  Status Init();
  std::string Where() const;
  /// A token for the compute endpoint, renewed when near expiry (or always, with `renew`).
  Status Authenticate(bool renew);
  /// One Nova call with the token (and `headers`); renews the token once on a 401.
  Result<net::HttpResponse> Send(const std::string& method, const std::string& target,
                                 const std::string& body, Deadline deadline,
                                 std::optional<bool> idempotent = std::nullopt,
                                 const net::Headers& headers = {});
  /// Send, with answers other than 2xx turned into errors naming Nova's message; the answer's
  /// JSON (null for an empty body).
  Result<boost::json::value> Compute(const std::string& method, const std::string& target,
                                     const std::string& body, Deadline deadline,
                                     std::optional<bool> idempotent = std::nullopt,
                                     const net::Headers& headers = {});
  Result<std::vector<Flavor>> Flavors();
  Result<std::string> ResolveImage(const std::string& image);
  Result<std::vector<MachineInfo>> Servers(const std::string& query, Deadline deadline);
  MachineInfo FromJson(const boost::json::object& server);
  /// POST /servers for one server, retried without duplicates; its id.
  Result<std::string> CreateOne(const std::string& body, const std::string& name);

  const OpenStackProvisionerOptions options_;
  internal::KeystonePassword password_;
  internal::KeystoneApplicationCredential app_credential_;
  internal::RackspaceApiKey api_key_;
  std::unique_ptr<net::HttpClient> identity_;

  std::mutex auth_mu_;  // held while a token is fetched, so threads share one renewal
  std::mutex mu_;
  std::optional<internal::ComputeAccess> access_;
  std::shared_ptr<net::HttpClient> compute_;
  std::optional<std::vector<Flavor>> flavors_;
  std::map<std::string, std::int64_t> created_ns_;  // servers this object made
  std::map<std::string, std::int64_t> running_ns_;  // first seen ACTIVE
  std::set<std::string> destroyed_;                 // servers this object deleted
};

}  // namespace bitfusion
