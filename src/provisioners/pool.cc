// Pool: leases, targets, idle teardown and failover over provisioners.
#include "bitfusion/pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>

namespace bitfusion {

std::string PoolAttempt::ToString() const {
  std::string s = candidate;
  if (!zone.empty()) s += " zone " + zone;
  s += ", " + std::to_string(count) + (count == 1 ? " machine: " : " machines: ");
  s += status.ToString();
  return s;
}

namespace {

// Machines of one batch waited for at once, at most this many at a time.
constexpr std::size_t kMaxWaiters = 32;

struct Entry {
  MachineInfo info;
  std::string key;  // what Acquire matches: the type, or "requirements: ..." when resolved
  std::shared_ptr<Provisioner> owner;  // null = not the pool's to destroy
  bool leased = false;
  std::chrono::steady_clock::time_point idle_since;
};

std::string KeyOf(const MachineRequest& request) {
  return request.type.empty() ? "requirements: " + request.requirements.ToString() : request.type;
}

}  // namespace

class PoolState {
 public:
  explicit PoolState(PoolOptions options) : options_(std::move(options)) {
    for (std::size_t i = 0; i < options_.candidates.size(); ++i) {
      if (options_.candidates[i].name.empty()) {
        options_.candidates[i].name = "candidate " + std::to_string(i + 1);
      }
    }
    reaper_ = std::thread([this] { ReapLoop(); });
  }

  Result<std::vector<PoolMachine>> Acquire(const std::shared_ptr<PoolState>& self,
                                           const MachineRequest& request, Deadline deadline,
                                           std::vector<PoolAttempt>* attempts);
  Status Fill(const std::string& type, Deadline deadline, std::vector<PoolAttempt>* attempts);
  void Release(const std::string& id) noexcept;
  Status Close() noexcept;

  // Makes `count` machines through the candidates; they are in entries_ (leased) on success.
  Result<std::vector<MachineInfo>> Make(const MachineRequest& request, int count, Deadline deadline,
                                        std::vector<PoolAttempt>* log);
  void ReapLoop();
  // Destroys ids through owner; returns the error naming them and the command that ends them.
  Status DestroyAll(
      std::map<Provisioner*, std::pair<std::shared_ptr<Provisioner>, std::vector<std::string>>>
          groups) const noexcept;

  PoolOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Entry> entries_;
  std::map<std::string, int> targets_;
  bool closed_ = false;
  std::thread reaper_;
};

Status PoolState::DestroyAll(
    std::map<Provisioner*, std::pair<std::shared_ptr<Provisioner>, std::vector<std::string>>>
        groups) const noexcept {
  std::string errors;
  for (auto& [raw, group] : groups) {
    Status s;
    try {
      s = group.first->Destroy(group.second);
    } catch (const std::exception& e) {
      s = InternalError(e.what());
    }
    if (!s.ok()) {
      std::string ids;
      for (const auto& id : group.second) ids += (ids.empty() ? "" : ", ") + id;
      errors += (errors.empty() ? "" : "; ") + ("could not destroy " + ids + ": " + s.ToString());
    }
  }
  if (errors.empty()) return Status::OK();
  const std::string run_id = options_.run_id.empty() ? "" : " --run-id " + options_.run_id;
  return UnavailableError(errors +
                          "; destroy them by hand or with `bitfusion reap --provisioner URI" +
                          run_id + "` (they carry the pool's run id and expiry tags)");
}

Result<std::vector<MachineInfo>> PoolState::Make(const MachineRequest& request, int count,
                                                 Deadline deadline, std::vector<PoolAttempt>* log) {
  const std::string key = KeyOf(request);
  for (const auto& candidate : options_.candidates) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return DeadlineExceededError("the deadline passed before a create through " + candidate.name +
                                   "; allow more time");
    }
    MachineRequest r = request;
    r.count = count;
    if (!candidate.zone.empty()) r.zone = candidate.zone;
    if (r.run_id.empty()) r.run_id = options_.run_id;
    r.ttl_s = options_.ttl_s;
    PoolAttempt attempt{candidate.name, r.zone, count, Status::OK()};
    Result<std::vector<MachineInfo>> made = candidate.provisioner->Create(r);
    if (made.ok()) {
      // Record them at once: from here on Close destroys them whatever happens.
      std::map<Provisioner*, std::pair<std::shared_ptr<Provisioner>, std::vector<std::string>>>
          orphans;
      {
        std::lock_guard lock(mu_);
        for (const auto& m : *made) {
          if (closed_) {
            orphans[candidate.provisioner.get()].first = candidate.provisioner;
            orphans[candidate.provisioner.get()].second.push_back(m.id);
          } else {
            entries_[m.id] = Entry{m, key, candidate.provisioner, true, {}};
          }
        }
      }
      if (!orphans.empty()) {
        (void)DestroyAll(std::move(orphans));
        return FailedPreconditionError("the pool was closed while machines were being made");
      }
      Status failed;
      if (static_cast<int>(made->size()) != count) {
        failed = InternalError(candidate.name + " made " + std::to_string(made->size()) +
                               " machines for a request of " + std::to_string(count));
      }
      std::vector<MachineInfo> ready;
      if (failed.ok()) {
        // All of them at once: a batch is ready when its slowest machine is, not after the sum
        // of their waits (each a login and a fingerprint on static://, ~1 s).
        std::vector<Result<MachineInfo>> waited(made->size(), InternalError("not waited for"));
        std::atomic<std::size_t> next{0};
        auto wait_some = [&] {
          for (std::size_t i = next++; i < made->size(); i = next++) {
            waited[i] = candidate.provisioner->WaitReady((*made)[i].id, deadline);
          }
        };
        std::vector<std::thread> waiters;
        for (std::size_t k = 1; k < std::min<std::size_t>(made->size(), kMaxWaiters); ++k) {
          waiters.emplace_back(wait_some);
        }
        wait_some();
        for (auto& w : waiters) w.join();
        for (std::size_t i = 0; i < made->size(); ++i) {
          const MachineInfo& m = (*made)[i];
          if (!waited[i].ok()) {
            failed = waited[i].status().WithContext("machine " + m.id + " did not become ready");
            break;
          }
          MachineInfo r2 = *waited[i];
          if (r2.type.empty()) r2.type = m.type;
          if (r2.zone.empty()) r2.zone = m.zone;
          ready.push_back(std::move(r2));
        }
      }
      if (failed.ok()) {
        std::lock_guard lock(mu_);
        for (const auto& m : ready) {
          auto it = entries_.find(m.id);
          if (it != entries_.end()) it->second.info = m;
        }
        attempt.status = Status::OK();
        log->push_back(attempt);
        return ready;
      }
      // All or nothing: destroy the batch.
      std::map<Provisioner*, std::pair<std::shared_ptr<Provisioner>, std::vector<std::string>>>
          batch;
      {
        std::lock_guard lock(mu_);
        for (const auto& m : *made) {
          if (entries_.erase(m.id) > 0) {
            batch[candidate.provisioner.get()].first = candidate.provisioner;
            batch[candidate.provisioner.get()].second.push_back(m.id);
          }
        }
      }
      Status destroyed = DestroyAll(std::move(batch));
      attempt.status = destroyed.ok() ? failed : failed.WithContext(destroyed.message());
      log->push_back(attempt);
      return attempt.status;
    }
    attempt.status = made.status();
    log->push_back(attempt);
    if (made.status().code() != StatusCode::kResourceExhausted) return made.status();
  }
  return ResourceExhaustedError("no candidate had capacity or quota");
}

namespace {

Status Explain(const Status& last, const MachineRequest& request, int count,
               const std::vector<PoolAttempt>& log) {
  std::string msg = "could not acquire " + std::to_string(count) + " x " + KeyOf(request);
  if (!log.empty()) {
    msg += "; tried:";
    for (const auto& a : log) msg += " [" + a.ToString() + "]";
  }
  msg += "; " + last.message();
  if (last.code() == StatusCode::kResourceExhausted) {
    msg +=
        "; add candidates (other zones, regions or provisioners), ask for fewer machines or "
        "another type, or raise the quota";
  }
  return Status(last.code(), msg);
}

}  // namespace

Result<std::vector<PoolMachine>> PoolState::Acquire(const std::shared_ptr<PoolState>& self,
                                                    const MachineRequest& request,
                                                    Deadline deadline,
                                                    std::vector<PoolAttempt>* attempts) {
  if (request.count < 1) {
    return InvalidArgumentError("Pool::Acquire: count is " + std::to_string(request.count) +
                                "; ask for at least 1 machine");
  }
  const std::string key = KeyOf(request);
  std::vector<std::string> taken;
  {
    std::lock_guard lock(mu_);
    if (closed_) return FailedPreconditionError("Pool::Acquire: the pool is closed");
    for (auto& [id, e] : entries_) {
      if (static_cast<int>(taken.size()) == request.count) break;
      if (!e.leased && (e.key == key || e.info.type == key)) {
        e.leased = true;
        taken.push_back(id);
      }
    }
  }
  std::vector<PoolAttempt> local;
  std::vector<PoolAttempt>* log = attempts != nullptr ? attempts : &local;
  const int missing = request.count - static_cast<int>(taken.size());
  std::vector<MachineInfo> made;
  if (missing > 0) {
    Result<std::vector<MachineInfo>> r = Make(request, missing, deadline, log);
    if (!r.ok()) {
      for (const auto& id : taken) Release(id);
      return Explain(r.status(), request, request.count, *log);
    }
    made = std::move(*r);
  }
  std::vector<MachineInfo> all;  // reused ones first
  {
    std::lock_guard lock(mu_);
    if (closed_) {
      return FailedPreconditionError(
          "Pool::Acquire: the pool was closed while acquiring; its machines are destroyed");
    }
    for (const auto& id : taken) {
      auto it = entries_.find(id);
      if (it != entries_.end()) all.push_back(it->second.info);
    }
  }
  for (auto& m : made) all.push_back(std::move(m));
  std::vector<PoolMachine> out;
  out.reserve(all.size());
  for (auto& m : all) out.emplace_back(self, std::move(m));
  if (static_cast<int>(out.size()) != request.count) {
    return FailedPreconditionError("Pool::Acquire: the pool was closed while acquiring");
  }
  return out;
}

Status PoolState::Fill(const std::string& type, Deadline deadline,
                       std::vector<PoolAttempt>* attempts) {
  int missing = 0;
  {
    std::lock_guard lock(mu_);
    if (closed_) return FailedPreconditionError("Pool::SetTarget: the pool is closed");
    auto t = targets_.find(type);
    if (t == targets_.end()) return Status::OK();
    missing = t->second;
    for (const auto& [id, e] : entries_) {
      if (e.info.type == type || e.key == type) --missing;
    }
  }
  if (missing <= 0) return Status::OK();
  MachineRequest request;
  request.type = type;
  std::vector<PoolAttempt> local;
  std::vector<PoolAttempt>* log = attempts != nullptr ? attempts : &local;
  Result<std::vector<MachineInfo>> r = Make(request, missing, deadline, log);
  if (!r.ok()) return Explain(r.status(), request, missing, *log);
  for (const auto& m : *r) Release(m.id);
  return Status::OK();
}

void PoolState::Release(const std::string& id) noexcept {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  it->second.leased = false;
  it->second.idle_since = std::chrono::steady_clock::now();
  cv_.notify_all();
}

void PoolState::ReapLoop() {
  std::unique_lock lock(mu_);
  while (!closed_) {
    if (options_.idle_timeout <= std::chrono::nanoseconds::zero()) {
      cv_.wait(lock, [this] { return closed_; });
      break;
    }
    const auto now = std::chrono::steady_clock::now();
    // Idle machines the pool owns, oldest first; targets keep the newest ones.
    std::map<std::string, int> keep;
    for (const auto& [type, n] : targets_) keep[type] = n;
    for (const auto& [id, e] : entries_) {
      if (e.leased) --keep[e.info.type];
    }
    std::vector<std::pair<std::chrono::steady_clock::time_point, std::string>> idle;
    for (const auto& [id, e] : entries_) {
      if (!e.leased && e.owner != nullptr) idle.emplace_back(e.idle_since, id);
    }
    std::sort(idle.rbegin(), idle.rend());  // newest first
    std::map<Provisioner*, std::pair<std::shared_ptr<Provisioner>, std::vector<std::string>>>
        expired;
    Deadline next = kNoDeadline;
    for (const auto& [since, id] : idle) {
      Entry& e = entries_[id];
      if (keep[e.info.type]-- > 0) continue;
      const auto due = since + options_.idle_timeout;
      if (due <= now) {
        expired[e.owner.get()].first = e.owner;
        expired[e.owner.get()].second.push_back(id);
      } else {
        next = std::min(next, due);
      }
    }
    if (!expired.empty()) {
      for (const auto& [raw, group] : expired) {
        for (const auto& id : group.second) entries_.erase(id);
      }
      lock.unlock();
      (void)DestroyAll(std::move(expired));
      lock.lock();
      continue;
    }
    if (next == kNoDeadline) {
      cv_.wait(lock);  // woken by Release, Add, SetTarget and Close
    } else {
      cv_.wait_until(lock, next);
    }
  }
}

Status PoolState::Close() noexcept {
  std::map<Provisioner*, std::pair<std::shared_ptr<Provisioner>, std::vector<std::string>>> all;
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    for (const auto& [id, e] : entries_) {
      if (e.owner == nullptr) continue;
      all[e.owner.get()].first = e.owner;
      all[e.owner.get()].second.push_back(id);
    }
    entries_.clear();
    cv_.notify_all();
  }
  if (reaper_.joinable() && reaper_.get_id() != std::this_thread::get_id()) reaper_.join();
  return DestroyAll(std::move(all));
}

PoolMachine::PoolMachine(std::shared_ptr<PoolState> pool, MachineInfo info)
    : pool_(std::move(pool)), info_(std::move(info)) {}

PoolMachine::PoolMachine(PoolMachine&& other) noexcept
    : pool_(std::move(other.pool_)), info_(std::move(other.info_)) {
  other.pool_ = nullptr;
}

PoolMachine& PoolMachine::operator=(PoolMachine&& other) noexcept {
  if (this != &other) {
    Release();
    pool_ = std::move(other.pool_);
    info_ = std::move(other.info_);
    other.pool_ = nullptr;
  }
  return *this;
}

PoolMachine::~PoolMachine() { Release(); }

void PoolMachine::Release() noexcept {
  if (pool_ == nullptr) return;
  pool_->Release(info_.id);
  pool_ = nullptr;
}

Result<std::unique_ptr<Pool>> Pool::Create(PoolOptions options) {
  if (options.candidates.empty()) {
    return InvalidArgumentError(
        "Pool: no candidates; give at least one provisioner (PoolOptions::candidates)");
  }
  for (std::size_t i = 0; i < options.candidates.size(); ++i) {
    PoolCandidate& c = options.candidates[i];
    if (c.provisioner == nullptr && !c.uri.empty()) {
      auto made = ProvisionerFromUri(c.uri);
      if (!made.ok()) {
        return made.error().WithContext("Pool: candidate " + std::to_string(i + 1));
      }
      c.provisioner = *made;
      if (c.name.empty()) c.name = c.uri;
    }
    if (c.provisioner == nullptr) {
      return InvalidArgumentError(
          "Pool: candidate " + std::to_string(i + 1) +
          " has no provisioner; set PoolCandidate::provisioner or PoolCandidate::uri");
    }
  }
  return std::unique_ptr<Pool>(new Pool(std::make_shared<PoolState>(std::move(options))));
}

Pool::Pool(std::shared_ptr<PoolState> state) : state_(std::move(state)) {}

Pool::~Pool() { (void)Close(); }

Result<std::vector<PoolMachine>> Pool::Acquire(const MachineRequest& request, Deadline deadline,
                                               std::vector<PoolAttempt>* attempts) {
  return state_->Acquire(state_, request, deadline, attempts);
}

Result<std::vector<PoolMachine>> Pool::Acquire(const std::string& type, int count,
                                               Deadline deadline,
                                               std::vector<PoolAttempt>* attempts) {
  MachineRequest request;
  request.type = type;
  request.count = count;
  return Acquire(request, deadline, attempts);
}

void Pool::Release(PoolMachine machine) noexcept { machine.Release(); }

Status Pool::SetTarget(const std::string& type, int n, Deadline deadline,
                       std::vector<PoolAttempt>* attempts) {
  if (type.empty() || n < 0) {
    return InvalidArgumentError("Pool::SetTarget: give a machine type and a count >= 0");
  }
  {
    std::lock_guard lock(state_->mu_);
    if (n == 0) {
      state_->targets_.erase(type);
    } else {
      state_->targets_[type] = n;
    }
    state_->cv_.notify_all();
  }
  return state_->Fill(type, deadline, attempts);
}

Status Pool::Add(const MachineInfo& machine, std::shared_ptr<Provisioner> owner) {
  if (machine.id.empty()) return InvalidArgumentError("Pool::Add: the machine has no id");
  std::lock_guard lock(state_->mu_);
  if (state_->closed_) return FailedPreconditionError("Pool::Add: the pool is closed");
  if (state_->entries_.count(machine.id) > 0) {
    return AlreadyExistsError("Pool::Add: machine " + machine.id + " is already in the pool");
  }
  state_->entries_[machine.id] =
      Entry{machine, machine.type, std::move(owner), false, std::chrono::steady_clock::now()};
  state_->cv_.notify_all();
  return Status::OK();
}

Status Pool::Remove(const std::string& id) {
  std::lock_guard lock(state_->mu_);
  auto it = state_->entries_.find(id);
  if (it == state_->entries_.end()) {
    return NotFoundError("Pool::Remove: machine " + id + " is not in the pool");
  }
  if (it->second.leased) {
    return FailedPreconditionError("Pool::Remove: machine " + id + " is leased; release it first");
  }
  state_->entries_.erase(it);
  return Status::OK();
}

std::map<std::string, Pool::Counts> Pool::Snapshot() const {
  std::lock_guard lock(state_->mu_);
  std::map<std::string, Counts> out;
  for (const auto& [id, e] : state_->entries_) {
    auto& c = out[e.info.type.empty() ? e.key : e.info.type];
    (e.leased ? c.leased : c.idle)++;
  }
  return out;
}

Status Pool::Close() noexcept { return state_->Close(); }

}  // namespace bitfusion
