// softlayer://DATACENTER — SoftLayer / IBM Cloud classic infrastructure through its REST API
// (https://api.softlayer.com/rest/v3.1/{Service}[/{id}]/{method}.json, HTTP basic auth with the
// API username and API key) on the project's libcurl client; answers parsed with Boost.JSON.
// SoftLayer_Virtual_Guest::createObject with a flavour (supplementalCreateObjectOptions
// .flavorKeyName), setTags, getObject with an object mask, deleteObject;
// SoftLayer_Account::getVirtualGuests with an objectFilter on the tags and resultLimit paging;
// getCreateObjectOptions for the catalogue (GPUs from the flavour's guest_pcie_device prices,
// the hourly fee from totalMinimumHourlyFee).
//
// Tags: SoftLayer tags are plain strings, so each ownership label is one tag "key:value" (the
// key up to the first ':'); keys are [A-Za-z0-9_.-]+, values [A-Za-z0-9 _.:-]*. SoftLayer takes
// tags only after the guest exists (setTags straight after createObject, as softlayer-python
// does); until then the guest is known by its host name, "bf-" plus a random token.
// Idempotent create: every guest gets a host name of its own; a create whose answer was lost
// (no answer, or an answer without SoftLayer's error JSON) is looked up by that host name before
// it is sent again, so a retry never makes a second guest.
// Throttling (SoftLayer_Exception_WebService_RateLimitExceeded) and capacity errors are retried
// with jittered backoff; authentication and request errors fail at once with SoftLayer's code.
// Destroy: deleteObject cancels at once and the guest disappears, so ObjectNotFound for a guest
// this provisioner destroyed is success; for any other id it is NotFound.
//
// Bare metal: the catalogue also holds SoftLayer_Hardware's fixed configuration presets
// (getCreateObjectOptions; GPUs from the preset's description, the hourly fee from
// totalMinimumHourlyFee); a type that is a preset is ordered with SoftLayer_Hardware::
// createObject (fixedConfigurationPreset), which answers no id yet, so a bare-metal machine's
// id is its globalIdentifier (a UUID; guests have numeric ids). Ready: provisionDate set and no
// activeTransaction. Destroy cancels the server's billing item at once
// (SoftLayer_Billing_Item::cancelItem, as softlayer-python does); the server stays listed,
// without a billing item ("shutting-down"), until the data center reclaims it.
//
// The tag window: tags attach only after createObject returns, so a process killed in between
// leaves a machine without tags. Its host name ("bf-…") in this provisioner's domain still
// says bitfusion made it: List() shows such machines with the creator label and an expiry 15
// minutes after their createDate, so Reap ends them once no live creator can still tag them.
#pragma once

#include <boost/json/object.hpp>
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

namespace bitfusion {

struct SoftLayerProvisionerOptions {
  /// Datacenter (softlayer://dal13); required.
  std::string datacenter;
  /// ?endpoint=URL (…/rest/v3.1); empty = SL_ENDPOINT_URL, ~/.softlayer's endpoint_url, else
  /// https://api.softlayer.com/rest/v3.1.
  std::string endpoint;
  /// ?type=: the flavour when a request names neither a type nor requirements.
  std::string default_type = "B1_2X4X100";
  /// ?os=: operatingSystemReferenceCode when a request names no image.
  std::string os_code = "UBUNTU_LATEST";
  std::string domain = "bitfusion.invalid";  ///< ?domain=: the guests' DNS domain
  bool hourly = true;                        ///< ?hourly=false: monthly billing
  bool private_only = false;      ///< ?private=true: no public interface (SSH to the backend IP)
  std::string ssh_user = "root";  ///< ?ssh_user=
  /// ?wait_ssh=false: WaitReady does not wait for port 22 to answer with an SSH banner.
  bool wait_ssh = true;
  std::chrono::nanoseconds poll{std::chrono::seconds(5)};  ///< ?poll=: getObject period
  int max_attempts = 6;  ///< ?attempts=: tries per API call for throttling and capacity errors
  std::chrono::milliseconds initial_backoff{500};  ///< ?backoff=: first retry's bound

  /// softlayer://dal13?endpoint=http://127.0.0.1:8080/rest/v3.1&type=B1_1X2X25&poll=50ms
  static Result<SoftLayerProvisionerOptions> FromUri(const Uri& uri);
};

/// Credentials: SL_USERNAME / SOFTLAYER_USERNAME and SL_API_KEY / SOFTLAYER_API_KEY, else
/// ~/.softlayer, section [softlayer], keys username and api_key (the SoftLayer CLI's names).
/// The key is handed only to the HTTP client as basic auth; it is in no message.
/// Concurrency: every method may be called from several threads at once.
class SoftLayerProvisioner final : public Provisioner {
 public:
  static Result<std::shared_ptr<SoftLayerProvisioner>> Make(
      const SoftLayerProvisionerOptions& options);

  Result<std::vector<MachineInfo>> Create(const MachineRequest& request) override;
  /// Ready: provisionDate set, no activeTransaction, powerState RUNNING (guests), and with
  /// wait_ssh, port 22 answering.
  Result<MachineInfo> WaitReady(const std::string& id, Deadline deadline) override;
  /// Guests and bare-metal servers tagged "bitfusion.creator:bitfusion", and those of this
  /// domain named "bf-…" that never got their tags (see the tag window above).
  Result<std::vector<MachineInfo>> List() override;
  Status Destroy(const std::vector<std::string>& ids) override;
  /// setTags without the creator-process tags.
  Status Keep(const std::vector<std::string>& ids) override;
  Result<std::vector<MachineType>> Types() override;

 private:
  /// Virtual guests (SoftLayer_Virtual_Guest, numeric ids) or bare-metal servers
  /// (SoftLayer_Hardware, globalIdentifier ids).
  enum class Kind { kGuest, kHardware };

  explicit SoftLayerProvisioner(const SoftLayerProvisionerOptions& options) : options_(options) {}
  Status Init();
  std::string Where() const { return "softlayer://" + options_.datacenter; }
  /// One page-by-page listing of `kind` (SoftLayer_Account::getVirtualGuests / getHardware).
  Result<std::vector<MachineInfo>> Objects(Kind kind, const std::string& filter, Deadline deadline);
  /// The machine with this id (its kind told by the id's form).
  Result<MachineInfo> Object(const std::string& id, Deadline deadline);
  MachineInfo FromJson(Kind kind, const boost::json::object& object);
  /// createObject for one machine, retried without duplicates; its id.
  Result<std::string> CreateOne(Kind kind, const std::string& template_json,
                                const std::string& hostname);
  Status SetTags(Kind kind, const std::string& id, const Labels& tags);
  Status DestroyHardware(const std::string& id);

  const SoftLayerProvisionerOptions options_;
  std::unique_ptr<net::HttpClient> http_;
  std::string endpoint_;

  std::mutex mu_;
  std::optional<std::vector<MachineType>> catalogue_;
  std::set<std::string> datacenters_;
  std::set<std::string> presets_;                   // the catalogue's bare-metal types
  std::map<std::string, std::int64_t> created_ns_;  // guests this object made
  std::map<std::string, std::int64_t> running_ns_;  // first seen running
  std::set<std::string> destroyed_;                 // machines this object cancelled
};

}  // namespace bitfusion
