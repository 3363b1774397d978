#include "experiment/image_distribution.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>

#include "bitfusion/log.h"

namespace bitfusion::internal {
namespace {

// A registry that wants credentials says "unauthorized" or "authentication required" (Docker
// Distribution, Docker Hub, Harbor); the engine passes that on. Say where ours come from.
Status WithCredentialHint(Status s, const RegistryAuth& auth) {
  if (s.ok()) return s;
  const std::string& m = s.message();
  if (m.find("unauthorized") == std::string::npos &&
      m.find("authentication required") == std::string::npos &&
      m.find("no basic auth credentials") == std::string::npos) {
    return s;
  }
  return Status(s.code(), m + (auth.username.empty()
                                   ? "; the registry wants credentials: set "
                                     "BITFUSION_REGISTRY_USERNAME and BITFUSION_REGISTRY_PASSWORD"
                                   : "; the registry refused user " + auth.username +
                                         ": check BITFUSION_REGISTRY_USERNAME and "
                                         "BITFUSION_REGISTRY_PASSWORD"));
}

// What is held between the two engines while an archive streams: enough to keep both
// transfers busy, small next to any image.
constexpr std::size_t kPipeBytes = std::size_t{4} << 20;

std::string Megabytes(std::int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return text;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A line every `interval` while an image moves (an archive streams, a registry push or pull
// goes on): how much has moved, of about how much, and how fast.
class TransferProgress {
 public:
  TransferProgress(std::string what, std::string verb, std::int64_t expected,
                   std::chrono::nanoseconds interval)
      : what_(std::move(what)), verb_(std::move(verb)), expected_(expected), interval_(interval) {}

  // `expected`, when > 0, replaces the size given at the start (a registry's layer sizes are
  // known only as the engine names them).
  void Update(std::int64_t bytes, std::int64_t expected = 0) {
    if (expected > 0) expected_ = expected;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < interval_) return;
    last_ = now;
    const double seconds = std::max(1e-3, SecondsSince(start_));
    char rate[32];
    std::snprintf(rate, sizeof rate, "%.1f MB/s", static_cast<double>(bytes) / 1e6 / seconds);
    std::string of;
    if (expected_ > 0) {
      of = " of about " + Megabytes(expected_) + " (" +
           std::to_string(std::min<std::int64_t>(99, bytes * 100 / expected_)) + "%)";
    }
    LogAt(LogLevel::kInfo, what_, ": ", Megabytes(bytes), of, " ", verb_, ", ", rate);
  }

  // For a registry push or pull.
  ImageProgressCallback Callback() {
    return [this](const ImageTransferProgress& p) { Update(p.done_bytes, p.total_bytes); };
  }

 private:
  const std::string what_;
  const std::string verb_;
  std::int64_t expected_;
  const std::chrono::nanoseconds interval_;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_ = start_;
};

// This host's engine's archive of `image`, loaded into `remote` as it is made; the bytes sent.
Result<std::int64_t> StreamImage(ContainerRunner& local, ContainerRunner& remote,
                                 const std::string& image, Deadline deadline,
                                 TransferProgress& progress) {
  ArchivePipe pipe(kPipeBytes);
  Status saved;
  std::thread saver([&] {
    saved = local.SaveImage(
        image, [&](std::string_view bytes) { return pipe.Write(bytes); }, deadline);
    pipe.Close(saved);
  });
  auto loaded = remote.LoadImage(
      [&](char* buffer, std::size_t max) {
        auto n = pipe.Read(buffer, max);
        progress.Update(pipe.bytes_read());
        return n;
      },
      deadline);
  pipe.Abort();  // what the load did not take is not wanted any more
  saver.join();
  // A save that failed on its own is the cause; one the failed load stopped (Cancelled) is not.
  if (!saved.ok() && saved.code() != StatusCode::kCancelled) {
    return saved.WithContext("saving it from this host's engine");
  }
  if (!loaded) return loaded.error().WithContext("loading it into the machine's engine");
  if (!saved.ok()) return saved;
  return pipe.bytes_read();
}

// The registry's pushes, each image once however many machines need it.
class Pushes {
 public:
  Pushes(ContainerRunner& local, const ImageDistributionOptions& options)
      : local_(local), options_(options) {}

  // `image` pushed as `target` (done by the first caller; later ones get its outcome).
  Status Push(const std::string& image, const std::string& target) {
    std::lock_guard lock(mu_);
    if (auto done = pushed_.find(target); done != pushed_.end()) return done->second;
    Status s = local_.TagImage(image, target);
    if (s.ok()) {
      TransferProgress progress("image " + image + " to registry as " + target, "pushed", 0,
                                options_.progress_interval);
      s = WithCredentialHint(local_.PushImage(target, options_.auth,
                                              DeadlineAfter(options_.timeout), progress.Callback()),
                             options_.auth);
    }
    if (s.ok()) LogAt(LogLevel::kInfo, "image ", image, " pushed to ", target);
    pushed_.emplace(target, s);
    return s;
  }

 private:
  ContainerRunner& local_;
  const ImageDistributionOptions& options_;
  std::mutex mu_;
  std::map<std::string, Status> pushed_;
};

// One image onto one machine.
Result<ImageDelivery> Deliver(ContainerRunner& local, const ImageTarget& target,
                              const std::string& image, const ImageInfo& here,
                              const ImageDistributionOptions& options, Pushes& pushes) {
  ContainerRunner& remote = *target.runner;
  const auto start = std::chrono::steady_clock::now();
  ImageDelivery d;
  d.machine = target.machine;
  d.image = image;
  d.id = here.id;
  // The engine already has that id (under this name or another): nothing is sent.
  if (auto there = remote.InspectImage(here.id); there.ok()) {
    auto named = remote.InspectImage(image);
    if (!named.ok() || named->id != here.id) {
      BITFUSION_RETURN_IF_ERROR(remote.TagImage(here.id, image));
    }
    d.method = "present";
    d.seconds = SecondsSince(start);
    LogAt(LogLevel::kInfo, "image ", image, " already present on ", target.machine);
    return d;
  } else if (there.error().code() != StatusCode::kNotFound) {
    return there.error();
  }
  if (!options.registry.empty()) {
    BITFUSION_ASSIGN_OR_RETURN(const std::string via, RegistryReference(options.registry, image));
    LogAt(LogLevel::kInfo, "image ", image, " (", Megabytes(here.size_bytes), ") goes to ",
          target.machine, " through registry ", options.registry);
    BITFUSION_RETURN_IF_ERROR(pushes.Push(image, via));
    TransferProgress progress("image " + via + " to " + target.machine, "pulled", 0,
                              options.progress_interval);
    BITFUSION_RETURN_IF_ERROR(WithCredentialHint(
        remote.PullImage(via, options.auth, DeadlineAfter(options.timeout), progress.Callback())
            .status(),
        options.auth));
    BITFUSION_RETURN_IF_ERROR(remote.TagImage(via, image));
    d.method = "registry";
    d.bytes = here.size_bytes;
  } else {
    LogAt(LogLevel::kInfo, "image ", image, " (", Megabytes(here.size_bytes), ") goes to ",
          target.machine, " over SSH");
    TransferProgress progress("image " + image + " to " + target.machine, "sent", here.size_bytes,
                              options.progress_interval);
    BITFUSION_ASSIGN_OR_RETURN(
        d.bytes, StreamImage(local, remote, image, DeadlineAfter(options.timeout), progress));
    d.method = "stream";
  }
  BITFUSION_ASSIGN_OR_RETURN(const ImageInfo there, remote.InspectImage(image));
  if (there.id != here.id) {
    return FailedPreconditionError(
        "after sending it, the machine's engine has id " + there.id +
        " for it and this host's has " + here.id +
        (d.method == "registry" ? "; did something else push to " + options.registry + "?" : ""));
  }
  d.seconds = SecondsSince(start);
  LogAt(LogLevel::kInfo, "image ", image, " sent to ", target.machine, " via ",
        d.method == "registry" ? "registry " + options.registry : std::string("SSH stream"), " (",
        Megabytes(d.bytes), " in ", static_cast<int>(d.seconds * 10) / 10.0, " s)");
  return d;
}

}  // namespace

RegistryAuth RegistryAuthFromEnvironment(const std::string& registry) {
  RegistryAuth auth;
  const char* user = std::getenv("BITFUSION_REGISTRY_USERNAME");
  const char* password = std::getenv("BITFUSION_REGISTRY_PASSWORD");
  if (user != nullptr && *user != '\0') {
    auth.server = registry;
    auth.username = user;
    auth.password = password != nullptr ? password : "";
  }
  return auth;
}

Result<std::string> RegistryReference(const std::string& registry, const std::string& image) {
  if (image.find('@') != std::string::npos) {
    return InvalidArgumentError("image " + image +
                                " is pinned by digest; a registry push needs a tag (name it "
                                "NAME:TAG, or drop \"registry\" to stream it over SSH)");
  }
  std::string path = image;
  // The first component names a registry when it has a dot or a port, or is localhost.
  if (const auto slash = path.find('/'); slash != std::string::npos) {
    const std::string first = path.substr(0, slash);
    if (first.find_first_of(".:") != std::string::npos || first == "localhost") {
      path = path.substr(slash + 1);
    }
  }
  return registry + "/" + path;
}

Result<std::vector<ImageDelivery>> DistributeImages(ContainerRunner& local,
                                                    const std::vector<ImageTarget>& targets,
                                                    const ImageDistributionOptions& options) {
  // Every image must be on this host's engine: it is the source either way.
  std::map<std::string, ImageInfo> here;
  for (const auto& t : targets) {
    for (const auto& image : t.images) {
      if (here.count(image)) continue;
      auto info = local.InspectImage(image);
      if (!info) {
        return info.error().WithContext("image " + image + " for machine " + t.machine +
                                        " must be on this host's engine to be sent there");
      }
      here[image] = *info;
    }
  }
  Pushes pushes(local, options);
  std::vector<std::vector<ImageDelivery>> delivered(targets.size());
  std::vector<Status> failed(targets.size());
  std::vector<std::thread> workers;
  for (std::size_t k = 0; k < targets.size(); ++k) {
    workers.emplace_back([&, k] {
      for (const auto& image : targets[k].images) {
        auto d = Deliver(local, targets[k], image, here.at(image), options, pushes);
        if (!d) {
          failed[k] =
              d.error().WithContext("sending image " + image + " to machine " + targets[k].machine);
          return;
        }
        delivered[k].push_back(std::move(*d));
      }
    });
  }
  for (auto& w : workers) w.join();
  std::vector<ImageDelivery> out;
  for (std::size_t k = 0; k < targets.size(); ++k) {
    if (!failed[k].ok()) return failed[k];
    out.insert(out.end(), delivered[k].begin(), delivered[k].end());
  }
  return out;
}

bool ArchivePipe::Write(std::string_view bytes) {
  std::unique_lock lock(mu_);
  // One piece larger than the whole buffer still goes through, alone.
  cv_.wait(lock,
           [&] { return aborted_ || buffered_ == 0 || buffered_ + bytes.size() <= capacity_; });
  if (aborted_) return false;
  chunks_.emplace_back(bytes);
  buffered_ += bytes.size();
  cv_.notify_all();
  return true;
}

void ArchivePipe::Close(const Status& status) {
  std::lock_guard lock(mu_);
  closed_ = true;
  close_status_ = status;
  cv_.notify_all();
}

Result<std::size_t> ArchivePipe::Read(char* buffer, std::size_t max) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return buffered_ > 0 || closed_; });
  if (buffered_ == 0) {
    if (!close_status_.ok()) return close_status_;
    return std::size_t{0};
  }
  std::size_t copied = 0;
  while (copied < max && !chunks_.empty()) {
    const std::string& front = chunks_.front();
    const std::size_t take = std::min(max - copied, front.size() - offset_);
    std::memcpy(buffer + copied, front.data() + offset_, take);
    copied += take;
    offset_ += take;
    if (offset_ == front.size()) {
      chunks_.pop_front();
      offset_ = 0;
    }
  }
  buffered_ -= copied;
  read_ += static_cast<std::int64_t>(copied);
  cv_.notify_all();
  return copied;
}

void ArchivePipe::Abort() {
  std::lock_guard lock(mu_);
  aborted_ = true;
  cv_.notify_all();
}

std::int64_t ArchivePipe::bytes_read() const {
  std::lock_guard lock(mu_);
  return read_;
}

}  // namespace bitfusion::internal
