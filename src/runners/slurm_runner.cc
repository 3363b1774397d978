#include "runners/slurm_runner.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "bitfusion/log.h"
#include "bitfusion/registry.h"
#include "bitfusion/run_record.h"
#include "net/http_client.h"
#include "net/slurm_rest.h"
#include "runners/container_spec_checks.h"
#include "runners/line_splitter.h"
#include "runners/log_fanout.h"
#include "runners/runner_event_hub.h"
#include "runners/slurm_job_spec.h"

namespace bitfusion {

namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

constexpr const char* kJobIdLabel = "slurm.job_id";
constexpr const char* kStateLabel = "slurm.state";

std::string SignalName(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev != nullptr ? abbrev : std::to_string(sig);
}

}  // namespace

namespace {
class SlurmJob;
}  // namespace

// The runner's shared state, held by the runner and by every job handle. Its watcher is the one
// thread that follows all of the runner's submitted jobs (see Watch()).
//
// Locks: watch_mu is a leaf. It is taken with no other lock held (no job's mu_, not mu), and
// while it is held nothing else is locked and nothing is called on a job (no step, no event, no
// log delivery, no REST call). A job is stepped only while it is `stepping`, which Unwatch waits
// out: a handle leaving the set waits at most for its own step, never for a GET /jobs in flight.
// Events and log lines are handed on from the steps, on the watcher's thread, with no lock of
// the hub held; a callback must not destroy the handle it is called for (Unwatch would wait for
// the step it is in).
struct SlurmRunnerHub {
  ~SlurmRunnerHub();
  // Adds a submitted job to the watcher's set; starts the watcher with the first one.
  void Watch(SlurmJob* job);
  // Takes a job out of the set; returns once the watcher no longer steps it.
  void Unwatch(SlurmJob* job);

  SlurmRunnerOptions options;
  std::shared_ptr<internal::SlurmRest> rest;
  std::shared_ptr<internal::RunnerEventHub> events =
      std::make_shared<internal::RunnerEventHub>("slurm");
  std::string run_id;

  std::mutex mu;
  std::map<std::string, std::weak_ptr<internal::LogFanout>> logs;
  std::map<std::string, std::function<ContainerInfo()>> live;

 private:
  void WatchLoop();
  // Marks `job` as being stepped when it is still in the set.
  bool Enter(SlurmJob* job);
  // Ends a step; a job that ended leaves the set.
  void Leave(SlurmJob* job, bool ended);

  std::mutex watch_mu;
  std::condition_variable watch_cv;
  std::set<SlurmJob*> watched;  // submitted, not ended, handle alive
  SlurmJob* stepping = nullptr;
  bool watch_stop = false;
  std::thread watcher;
};

namespace {

// One job: made at Create, submitted at Start, followed by the hub's watcher until it ends.
class SlurmJob final : public Container {
 public:
  SlurmJob(std::shared_ptr<SlurmRunnerHub> hub, std::string id, std::string body, std::string gres,
           std::filesystem::path out, std::filesystem::path err, std::int64_t timeout_ns,
           Labels labels)
      : hub_(std::move(hub)),
        id_(std::move(id)),
        body_(std::move(body)),
        gres_(std::move(gres)),
        out_path_(std::move(out)),
        err_path_(std::move(err)),
        timeout_ns_(timeout_ns),
        labels_(std::move(labels)),
        logs_(std::make_shared<internal::LogFanout>(hub_->options.log_buffer_bytes)),
        out_split_(hub_->options.max_line_bytes),
        err_split_(hub_->options.max_line_bytes) {
    created_ns_ = WallNowNs();
    {
      std::lock_guard lock(hub_->mu);
      hub_->logs[id_] = logs_;
      hub_->live[id_] = [this] { return InspectNow(); };
    }
    hub_->events->Emit(EventType::kContainerCreated, "create", id_, labels_);
  }

  ~SlurmJob() override {
    std::int64_t job = 0;
    bool running = false;
    {
      std::lock_guard lock(mu_);
      job = job_id_;
      running = job_id_ != 0 && !done_;
    }
    // No more steps: a handle being destroyed stops following its job (cancelled unless kept).
    hub_->Unwatch(this);
    if (running && !kept_) (void)Cancel(job, SIGKILL);
    {
      std::lock_guard lock(hub_->mu);
      hub_->live.erase(id_);
      hub_->logs.erase(id_);
    }
    hub_->events->Emit(EventType::kContainerDestroyed, "destroy", id_, labels_);
    if (!kept_) {
      std::error_code ec;
      std::filesystem::remove(out_path_, ec);
      std::filesystem::remove(err_path_, ec);
    }
  }

  const std::string& id() const override { return id_; }

  Status Start() override {
    {
      std::lock_guard lock(mu_);
      if (submitted_) return FailedPreconditionError("job " + id_ + " was already started");
      submitted_ = true;
    }
    auto r = hub_->rest->Call("POST", "/job/submit", body_);
    Result<json::object> answer =
        r.ok() ? hub_->rest->Json(*r, "submitting job " + id_) : Result<json::object>(r.error());
    if (!answer.ok()) {
      std::lock_guard lock(mu_);
      submitted_ = false;
      return Explain(answer.error(), r.ok() ? &*r : nullptr);
    }
    const std::int64_t job = internal::SlurmJsonInt(*answer, "job_id");
    if (job <= 0) {
      std::lock_guard lock(mu_);
      submitted_ = false;
      return InternalError("slurmrestd at " + hub_->rest->where() + " accepted job " + id_ +
                           " without a job_id");
    }
    {
      std::lock_guard lock(mu_);
      job_id_ = job;
      labels_[kJobIdLabel] = std::to_string(job);
      state_ = "PENDING";
    }
    hub_->Watch(this);
    return Status::OK();
  }

  Result<ExitStatus> Wait(Deadline deadline) override {
    std::unique_lock lock(mu_);
    if (!submitted_) return FailedPreconditionError("job " + id_ + " was not started");
    if (!cv_.wait_until(lock, deadline, [&] { return done_; })) {
      return DeadlineExceededError("slurm job " + std::to_string(job_id_) + " (" + id_ +
                                   ") still " + state_ + " at the deadline");
    }
    if (!end_error_.ok()) return end_error_;
    return exit_;
  }

  Status Stop(std::chrono::nanoseconds grace) override {
    std::int64_t job = 0;
    {
      std::lock_guard lock(mu_);
      if (job_id_ == 0 || done_) return Status::OK();
      job = job_id_;
    }
    BITFUSION_RETURN_IF_ERROR(Cancel(job, SIGTERM));
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, grace, [&] { return done_; })) return Status::OK();
    lock.unlock();
    return Cancel(job, SIGKILL);
  }

  Status Kill(int signal) override {
    std::int64_t job = 0;
    {
      std::lock_guard lock(mu_);
      if (job_id_ == 0 || done_) return Status::OK();
      job = job_id_;
    }
    return Cancel(job, signal);
  }

  Subscription Logs(LogCallback callback) override { return logs_->Subscribe(std::move(callback)); }

  void Keep() override { kept_ = true; }

  Result<ContainerInfo> Inspect() override { return InspectNow(); }

 private:
  ContainerInfo InspectNow() {
    std::lock_guard lock(mu_);
    ContainerInfo i;
    i.id = id_;
    i.name = id_;
    i.labels = labels_;
    i.created_ns = created_ns_;
    if (job_id_ != 0) i.labels[kStateLabel] = state_;
    if (done_) {
      i.state = end_error_.ok() ? "exited" : "dead";
      i.exit_code = exit_.signal != 0 ? 128 + exit_.signal : exit_.exit_code;
      i.oom_killed = exit_.oom_killed;
      i.started_ns = exit_.start_ns;
      i.finished_ns = exit_.end_ns;
    } else if (state_ == "RUNNING" || state_ == "COMPLETING" || state_ == "SUSPENDED") {
      i.state = "running";
      i.started_ns = start_ns_;
    } else {
      i.state = "created";
    }
    return i;
  }

  // Names what the request asked for when slurmrestd's error is about it.
  Status Explain(const Status& error, const net::HttpResponse* r) const {
    if (r == nullptr) return error;
    const auto errors = internal::ParseSlurmErrors(r->body);
    auto has = [&](int code) {
      return std::any_of(errors.begin(), errors.end(),
                         [&](const auto& e) { return e.code == code; });
    };
    const std::string partition = hub_->options.partition;
    if (has(2000)) {
      return InvalidArgumentError("Slurm has no partition \"" + partition + "\" (slurmrestd at " +
                                  hub_->rest->where() +
                                  " rejected the job: Invalid partition name [2000]); give "
                                  "an existing partition in ?partition= (see sinfo)");
    }
    if (has(2018) && !hub_->options.nodelist.empty()) {
      return InvalidArgumentError("Slurm has no node \"" + hub_->options.nodelist +
                                  "\" (slurmrestd at " + hub_->rest->where() +
                                  " rejected the job: Invalid node name specified [2018]); give "
                                  "nodes the cluster has in ?nodelist= (see sinfo -N)");
    }
    if (!gres_.empty() && (has(2072) || has(2014) || has(9001))) {
      return InvalidArgumentError(
          "Slurm cannot give GRES \"" + gres_ + "\"" +
          (partition.empty() ? "" : " in partition \"" + partition + "\"") +
          " (the type is not in GresTypes, or no node has that many): " + error.message() +
          "; ask for a GRES the nodes have (sinfo -o '%N %G')");
    }
    return error;
  }

  Status Cancel(std::int64_t job, int signal) {
    {
      std::lock_guard lock(mu_);
      sent_signal_ = signal;
    }
    const std::string what =
        "signalling slurm job " + std::to_string(job) + " with " + SignalName(signal);
    auto r =
        hub_->rest->Call("DELETE", "/job/" + std::to_string(job) + "?signal=" + SignalName(signal));
    if (!r.ok()) return r.error();
    if (r->status == 200) return Status::OK();
    const auto errors = internal::ParseSlurmErrors(r->body);
    const bool busy =
        std::any_of(errors.begin(), errors.end(), [](const auto& e) { return e.code == 2020; });
    if (!busy || signal == SIGKILL) return hub_->rest->Error(*r, what);
    // "Job can not be altered now" [2020]: a pending job takes no signal but SIGKILL (it has no
    // process), and one being launched takes none until its batch step runs: cancel the first,
    // signal the second once it runs.
    for (int attempt = 0; attempt < 50; ++attempt) {
      std::string state;
      {
        std::lock_guard lock(mu_);
        if (done_) return Status::OK();
        state = state_;
      }
      auto g = hub_->rest->Call("GET", "/job/" + std::to_string(job));
      if (g.ok() && g->status == 200) {
        auto body = hub_->rest->Json(*g, "GET /job");
        if (body.ok()) {
          const auto jobs = internal::SlurmJobsOf(*body);
          if (!jobs.empty()) state = jobs.front().state;
        }
      }
      if (state == "PENDING") {
        // Reported as ended by the signal asked for (sent_signal_ keeps it).
        auto k = hub_->rest->Call("DELETE", "/job/" + std::to_string(job) + "?signal=KILL");
        if (!k.ok()) return k.error();
        return k->status == 200 ? Status::OK() : hub_->rest->Error(*k, what);
      }
      if (internal::SlurmJobTerminal(state)) return Status::OK();
      std::this_thread::sleep_for(100ms);
      r = hub_->rest->Call("DELETE",
                           "/job/" + std::to_string(job) + "?signal=" + SignalName(signal));
      if (!r.ok()) return r.error();
      if (r->status == 200) return Status::OK();
    }
    return Cancel(job, SIGKILL);
  }

  void ReadOutput(bool last) {
    for (auto* f : {&out_, &err_}) {
      const bool is_out = f == &out_;
      const auto& path = is_out ? out_path_ : err_path_;
      std::ifstream in(path, std::ios::binary);
      if (!in) continue;
      in.seekg(static_cast<std::streamoff>(f->offset));
      std::string chunk((std::istreambuf_iterator<char>(in)), {});
      f->offset += chunk.size();
      auto& split = is_out ? out_split_ : err_split_;
      const LogStream stream = is_out ? LogStream::kStdout : LogStream::kStderr;
      auto deliver = [&](std::string_view line) { logs_->Deliver(stream, line); };
      split.Feed(chunk, deliver);
      if (last) split.Finish(deliver);
    }
  }

  // The watcher's steps; called on its thread only, one at a time, never with the hub's
  // watch_mu held. They use the poll state below without a lock for that reason.
  friend struct bitfusion::SlurmRunnerHub;

  // Every tick (100 ms): new output, and the timeout (the job is killed and polled at once).
  void Tick(std::chrono::steady_clock::time_point now) {
    ReadOutput(false);
    if (started_ && timeout_ns_ > 0 && !timed_out_ &&
        now - run_began_ >= std::chrono::nanoseconds(timeout_ns_)) {
      timed_out_ = true;
      (void)Cancel(job_id_, SIGKILL);
      next_poll_ = now;
    }
  }

  // When this job wants slurmctld's view next (it backs off while its state does not change).
  std::chrono::steady_clock::time_point NextPoll() const { return next_poll_; }

  // This job's entry of a GET /jobs answer: `v` is null when it is not in it, `listed` says
  // whether that answer was a good one. Returns true once the job has ended (or was purged).
  bool Poll(std::chrono::steady_clock::time_point now, const internal::SlurmJobView* v,
            bool listed) {
    const std::string job = std::to_string(job_id_);
    std::optional<internal::SlurmJobView> own;
    if (v == nullptr && listed) {
      // Not in a good list: purged after MinJobAge while nobody looked (a long pause of this
      // process), or not listed yet. GET /job/{id} tells which (error 2017 = purged).
      auto r = hub_->rest->Call("GET", "/job/" + job);
      Result<json::object> body =
          r.ok() ? hub_->rest->Json(*r, "GET /job/" + job) : Result<json::object>(r.error());
      // An entry that is not an object is no job: the same as none.
      const std::vector<internal::SlurmJobView> jobs =
          body.ok() ? internal::SlurmJobsOf(*body) : std::vector<internal::SlurmJobView>{};
      if (jobs.empty() && r.ok()) {
        const auto errors = internal::ParseSlurmErrors(r->body);
        if (std::any_of(errors.begin(), errors.end(),
                        [](const auto& e) { return e.code == 2017; })) {
          ReadOutput(true);
          {
            std::lock_guard lock(mu_);
            end_error_ = UnavailableError("slurm job " + job + " (" + id_ +
                                          ") is no longer known to slurmctld (purged after "
                                          "MinJobAge before its end was seen); its exit status "
                                          "is lost");
            exit_.end_ns = WallNowNs();
            done_ = true;
          }
          cv_.notify_all();
          hub_->events->Emit(EventType::kContainerDied, "die", id_, labels_,
                             {{"exitCode", "-1"}, {kStateLabel, "PURGED"}});
          return true;
        }
      }
      if (!jobs.empty()) own = jobs.front();
      v = own ? &*own : nullptr;
    }
    if (v == nullptr) {
      // slurmctld busy or slurmrestd restarting: try again later.
      LogAt(LogLevel::kDebug, "slurm job ", job, ": no such job in the answer");
      next_poll_ = now + hub_->options.poll_max;
      return false;
    }
    std::string previous;
    {
      std::lock_guard lock(mu_);
      previous = state_;
      state_ = v->state;
    }
    if (v->state != previous) {
      backoff_ = 100ms;
    } else {
      backoff_ = std::min<std::chrono::milliseconds>(backoff_ * 2, hub_->options.poll_max);
    }
    next_poll_ = now + backoff_;
    const bool ended = internal::SlurmJobTerminal(v->state);
    if (!started_ && (v->state == "RUNNING" || v->state == "COMPLETING" || ended)) {
      started_ = true;
      run_began_ = now;
      {
        std::lock_guard lock(mu_);
        start_ns_ = v->start_ns > 0 ? v->start_ns : WallNowNs();
      }
      hub_->events->Emit(EventType::kContainerStarted, "start", id_, labels_);
    }
    if (!ended) return false;
    ReadOutput(true);
    Finish(*v, timed_out_, now - run_began_);
    return true;
  }

  void Finish(const internal::SlurmJobView& v, bool timed_out,
              std::chrono::steady_clock::duration ran) {
    int sent = 0;
    {
      std::lock_guard lock(mu_);
      sent = sent_signal_;
    }
    auto mapped = internal::SlurmExitStatus(v.state, v.exit_code, sent, v.reason);
    Status error;
    ExitStatus e;
    if (mapped.ok()) {
      e = *mapped;
    } else {
      error = Status(mapped.error().code(), "slurm job " + std::to_string(v.job_id) + " (" + id_ +
                                                ") " + mapped.error().message());
    }
    if (timed_out) e.timed_out = true;
    e.start_ns = v.start_ns > 0 ? v.start_ns : start_ns_;
    e.end_ns = v.end_ns > 0 ? v.end_ns : WallNowNs();
    if (e.end_ns < e.start_ns) e.end_ns = e.start_ns;
    e.wall_time_ns = std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::nanoseconds>(ran).count());
    {
      std::lock_guard lock(mu_);
      exit_ = e;
      end_error_ = error;
      done_ = true;
    }
    cv_.notify_all();
    const int code = e.signal != 0 ? 128 + e.signal : e.exit_code;
    hub_->events->Emit(EventType::kContainerDied, "die", id_, labels_,
                       {{"exitCode", std::to_string(code)}, {kStateLabel, v.state}});
  }

  struct Tail {
    std::size_t offset = 0;
  };
  std::shared_ptr<SlurmRunnerHub> hub_;
  const std::string id_;
  const std::string body_;
  const std::string gres_;  // as asked for, for messages
  const std::filesystem::path out_path_, err_path_;
  const std::int64_t timeout_ns_;
  Labels labels_;
  std::shared_ptr<internal::LogFanout> logs_;
  LineSplitter out_split_, err_split_;
  Tail out_, err_;
  std::atomic<bool> kept_{false};
  std::int64_t created_ns_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  bool submitted_ = false;
  bool done_ = false;
  std::int64_t job_id_ = 0;
  std::string state_;
  std::int64_t start_ns_ = 0;
  int sent_signal_ = 0;
  ExitStatus exit_;
  Status end_error_;

  // The watcher's poll state (its thread only).
  std::chrono::milliseconds backoff_ = 100ms;
  std::chrono::steady_clock::time_point next_poll_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point run_began_{};
  bool started_ = false, timed_out_ = false;
};

}  // namespace

SlurmRunnerHub::~SlurmRunnerHub() {
  {
    std::lock_guard lock(watch_mu);
    watch_stop = true;
  }
  watch_cv.notify_all();
  if (watcher.joinable()) watcher.join();
}

void SlurmRunnerHub::Watch(SlurmJob* job) {
  std::lock_guard lock(watch_mu);
  watched.insert(job);
  if (!watcher.joinable()) watcher = std::thread([this] { WatchLoop(); });
}

void SlurmRunnerHub::Unwatch(SlurmJob* job) {
  std::unique_lock lock(watch_mu);
  watched.erase(job);
  watch_cv.wait(lock, [&] { return stepping != job; });
}

bool SlurmRunnerHub::Enter(SlurmJob* job) {
  std::lock_guard lock(watch_mu);
  if (!watched.count(job)) return false;
  stepping = job;
  return true;
}

void SlurmRunnerHub::Leave(SlurmJob* job, bool ended) {
  {
    std::lock_guard lock(watch_mu);
    stepping = nullptr;
    if (ended) watched.erase(job);
  }
  watch_cv.notify_all();
}

// Every 100 ms: each watched job's output and timeout; then, when any job's poll is due, one
// GET /jobs for all of them, each due job handed its entry.
void SlurmRunnerHub::WatchLoop() {
  for (;;) {
    std::vector<SlurmJob*> jobs;
    {
      std::unique_lock lock(watch_mu);
      if (watch_cv.wait_for(lock, 100ms, [&] { return watch_stop; })) return;
      jobs.assign(watched.begin(), watched.end());
    }
    const auto now = std::chrono::steady_clock::now();
    bool due = false;
    for (SlurmJob* job : jobs) {
      if (!Enter(job)) continue;
      job->Tick(now);
      due = due || job->NextPoll() <= now;
      Leave(job, false);
    }
    if (!due) continue;
    auto r = rest->Call("GET", "/jobs");
    Result<json::object> body =
        r.ok() ? rest->Json(*r, "GET /jobs") : Result<json::object>(r.error());
    if (!body.ok()) LogAt(LogLevel::kDebug, "slurm: GET /jobs: ", body.error().ToString());
    std::map<std::int64_t, internal::SlurmJobView> views;
    if (body.ok()) {
      for (auto& v : internal::SlurmJobsOf(*body)) views[v.job_id] = std::move(v);
    }
    for (SlurmJob* job : jobs) {
      if (!Enter(job)) continue;
      bool ended = false;
      if (job->NextPoll() <= now) {
        const auto it = views.find(job->job_id_);
        ended = job->Poll(now, it != views.end() ? &it->second : nullptr, body.ok());
      }
      Leave(job, ended);
    }
  }
}

std::string SlurmRunnerOptions::Endpoint() const {
  if (host.empty()) return "unix:" + socket_path;
  return "http://" + host + ":" + std::to_string(port);
}

Result<SlurmRunnerOptions> SlurmRunnerOptions::FromUri(const Uri& uri) {
  if (uri.Query("token")) {
    return InvalidArgumentError(
        "slurm:// takes no token in the URI (it would end up in logs); set SLURM_JWT instead");
  }
  BITFUSION_RETURN_IF_ERROR(
      uri.CheckQueryKeys({"partition", "gres", "nodelist", "output_dir", "api", "poll_max", "ttl",
                          "run_id", "api_timeout", "max_line_bytes", "log_buffer_bytes"}));
  SlurmRunnerOptions o;
  if (uri.host.empty()) {
    if (uri.path.empty() || uri.path.front() != '/') {
      return InvalidArgumentError(
          "slurm:// needs slurmrestd's unix socket (slurm:///run/slurmrestd.sock) or a TCP "
          "endpoint (slurm://USER@HOST:PORT), got \"" +
          uri.ToString() + "\"");
    }
    o.socket_path = uri.path;
  } else {
    if (!uri.password.empty()) {
      return InvalidArgumentError(
          "slurm:// takes no password or token in the URI; set SLURM_JWT instead");
    }
    if (!uri.path.empty() && uri.path != "/") {
      return InvalidArgumentError("slurm://HOST:PORT takes no path, got \"" + uri.ToString() +
                                  "\"");
    }
    o.host = uri.host;
    if (uri.port) o.port = *uri.port;
    o.user = uri.user;
    if (o.user.empty()) {
      const char* u = std::getenv("USER");
      o.user = u != nullptr ? u : "";
    }
    const char* token = std::getenv("SLURM_JWT");
    if (token == nullptr || *token == '\0') {
      return InvalidArgumentError("slurm://" + o.host +
                                  " (TCP) needs a JWT in the environment variable SLURM_JWT "
                                  "(from `scontrol token`); over TCP slurmrestd accepts only "
                                  "rest_auth/jwt");
    }
    if (o.user.empty()) {
      return InvalidArgumentError("slurm://USER@" + o.host +
                                  ": give the Slurm user name (X-SLURM-USER-NAME) or set USER");
    }
    o.token = token;
  }
  o.partition = uri.Query("partition").value_or("");
  o.gres = uri.Query("gres").value_or("");
  o.nodelist = uri.Query("nodelist").value_or("");
  if (auto d = uri.Query("output_dir")) o.output_dir = *d;
  if (!o.output_dir.is_absolute()) {
    return InvalidArgumentError("slurm://?output_dir= must be an absolute path, got \"" +
                                o.output_dir.string() + "\"");
  }
  o.api_version = uri.Query("api").value_or("");
  if (!o.api_version.empty() && o.api_version.front() != 'v') o.api_version = "v" + o.api_version;
  BITFUSION_ASSIGN_OR_RETURN(auto poll, uri.QueryDuration("poll_max", o.poll_max));
  o.poll_max = std::max(std::chrono::duration_cast<std::chrono::milliseconds>(poll), 100ms);
  BITFUSION_ASSIGN_OR_RETURN(o.ttl, uri.QueryDuration("ttl", o.ttl));
  BITFUSION_ASSIGN_OR_RETURN(auto api_timeout, uri.QueryDuration("api_timeout", o.api_timeout));
  o.api_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(api_timeout);
  o.run_id = uri.Query("run_id").value_or("");
  BITFUSION_ASSIGN_OR_RETURN(auto line, uri.QueryInt("max_line_bytes", 64 * 1024));
  BITFUSION_ASSIGN_OR_RETURN(auto buffer, uri.QueryInt("log_buffer_bytes", 1 << 20));
  if (line < 1 || buffer < 0) {
    return InvalidArgumentError("max_line_bytes must be >= 1 and log_buffer_bytes >= 0 in " +
                                uri.ToString());
  }
  o.max_line_bytes = static_cast<std::size_t>(line);
  o.log_buffer_bytes = static_cast<std::size_t>(buffer);
  return o;
}

Result<std::shared_ptr<SlurmRunner>> SlurmRunner::Make(const SlurmRunnerOptions& options) {
  auto hub = std::make_shared<SlurmRunnerHub>();
  hub->options = options;
  hub->run_id = options.run_id.empty() ? NewRunId() : options.run_id;
  BITFUSION_ASSIGN_OR_RETURN(hub->rest, internal::SlurmRest::Make(options));
  return std::shared_ptr<SlurmRunner>(new SlurmRunner(std::move(hub)));
}

SlurmRunner::SlurmRunner(std::shared_ptr<SlurmRunnerHub> hub) : hub_(std::move(hub)) {}
SlurmRunner::~SlurmRunner() = default;

Result<RunnerCapabilities> SlurmRunner::Capabilities() {
  BITFUSION_ASSIGN_OR_RETURN(auto prefix, hub_->rest->Prefix());
  BITFUSION_ASSIGN_OR_RETURN(auto r, hub_->rest->Call("GET", "/ping"));
  BITFUSION_ASSIGN_OR_RETURN(auto body, hub_->rest->Json(r, "GET /ping"));
  RunnerCapabilities caps;
  caps.engine = "slurm";
  if (const auto* meta = body.if_contains("meta"); meta != nullptr && meta->is_object()) {
    if (const auto* s = meta->as_object().if_contains("Slurm"); s != nullptr && s->is_object()) {
      caps.version = internal::SlurmJsonString(s->as_object(), "release");
    }
  }
  caps.api_version = prefix.substr(std::string("/slurm/").size());
  caps.events = true;
  caps.reap = true;
  return caps;
}

Status SlurmRunner::EnsureImage(const std::string& image, Deadline) {
  if (image.empty()) return Status::OK();
  return InvalidArgumentError(
      "slurm:// runs host commands as batch jobs and has no images (asked "
      "for \"" +
      image + "\"); leave image empty, or use a docker:// runner");
}

Result<std::unique_ptr<Container>> SlurmRunner::Create(const ContainerSpec& spec) {
  const auto& o = hub_->options;
  const std::string id = spec.name.empty() ? "bf-" + NewRunId().substr(0, 20) : spec.name;
  const Labels labels = internal::SpecOwnerLabels(spec, hub_->run_id, o.ttl);
  BITFUSION_ASSIGN_OR_RETURN(auto job, internal::SlurmSubmissionFor(spec, o, id, labels));

  std::error_code ec;
  if (!std::filesystem::exists(o.output_dir, ec)) {
    std::filesystem::create_directories(o.output_dir, ec);
    // Jobs run as slurmrestd's user, which may not be ours: a sticky world-writable directory.
    if (!ec) ::chmod(o.output_dir.c_str(), 01777);
  }
  if (ec || !std::filesystem::is_directory(o.output_dir)) {
    return ErrnoError(ec ? ec.value() : ENOTDIR,
                      "slurm:// output directory " + o.output_dir.string() + " cannot be made");
  }
  // Stale files of an earlier job with this name would be read as this one's output.
  std::filesystem::remove(job.out, ec);
  std::filesystem::remove(job.err, ec);
  return std::unique_ptr<Container>(std::make_unique<SlurmJob>(
      hub_, id, std::move(job.body), job.gres, job.out, job.err, spec.timeout_ns, labels));
}

Result<std::vector<ContainerInfo>> SlurmRunner::ListContainers(const Labels& labels) {
  auto matches = [&](const Labels& have) {
    return std::all_of(labels.begin(), labels.end(), [&](const auto& kv) {
      const auto it = have.find(kv.first);
      return it != have.end() && it->second == kv.second;
    });
  };
  std::vector<ContainerInfo> out;
  std::set<std::string> seen;
  std::vector<std::function<ContainerInfo()>> live;
  {
    std::lock_guard lock(hub_->mu);
    for (const auto& [id, f] : hub_->live) live.push_back(f);
  }
  for (const auto& f : live) {
    ContainerInfo i = f();
    seen.insert(i.id);
    if (matches(i.labels)) out.push_back(std::move(i));
  }
  BITFUSION_ASSIGN_OR_RETURN(auto r, hub_->rest->Call("GET", "/jobs"));
  BITFUSION_ASSIGN_OR_RETURN(auto body, hub_->rest->Json(r, "GET /jobs"));
  for (const internal::SlurmJobView& v : internal::SlurmJobsOf(body)) {
    Labels l = internal::SlurmCommentLabels(v.comment);
    if (l.empty() || seen.count(v.name)) continue;
    l[kJobIdLabel] = std::to_string(v.job_id);
    l[kStateLabel] = v.state;
    if (!matches(l)) continue;
    ContainerInfo i;
    i.id = v.name;
    i.name = v.name;
    i.labels = std::move(l);
    i.state = internal::SlurmJobTerminal(v.state) ? "exited"
              : v.state == "PENDING"              ? "created"
                                                  : "running";
    i.exit_code = (v.exit_code & 0x7f) != 0 ? 128 + (v.exit_code & 0x7f) : (v.exit_code >> 8);
    i.created_ns = v.submit_ns;
    i.started_ns = v.start_ns;
    if (internal::SlurmJobTerminal(v.state)) i.finished_ns = v.end_ns;
    out.push_back(std::move(i));
  }
  return out;
}

Result<std::vector<LogLine>> SlurmRunner::TailLogs(const std::string& container_id,
                                                   std::size_t lines) {
  std::shared_ptr<internal::LogFanout> logs;
  {
    std::lock_guard lock(hub_->mu);
    const auto it = hub_->logs.find(container_id);
    if (it != hub_->logs.end()) logs = it->second.lock();
  }
  if (!logs) {
    return NotFoundError("slurm:// has no live job handle \"" + container_id +
                         "\"; only jobs whose handles are alive keep their output here");
  }
  return logs->Tail(lines);
}

Result<Subscription> SlurmRunner::Events(EventCallback callback) {
  return hub_->events->Subscribe(std::move(callback));
}

Result<ReapReport> SlurmRunner::Reap(const ReapPolicy& policy) {
  BITFUSION_ASSIGN_OR_RETURN(auto r, hub_->rest->Call("GET", "/jobs"));
  BITFUSION_ASSIGN_OR_RETURN(auto body, hub_->rest->Json(r, "GET /jobs"));
  ReapReport report;
  const std::int64_t now_s = WallNowNs() / 1'000'000'000;
  for (const internal::SlurmJobView& v : internal::SlurmJobsOf(body)) {
    if (internal::SlurmJobTerminal(v.state)) continue;
    const Labels l = internal::SlurmCommentLabels(v.comment);
    if (l.empty()) continue;
    const std::string why = ReapReason(l, policy, now_s);
    if (why.empty()) continue;
    const std::string line = std::to_string(v.job_id) + " " + v.name + " (" + why + ")";
    if (policy.dry_run) {
      report.containers.push_back(line);
      continue;
    }
    auto d = hub_->rest->Call("DELETE", "/job/" + std::to_string(v.job_id) + "?signal=KILL");
    if (d.ok() && d->status == 200) {
      report.containers.push_back(line);
    } else {
      report.errors.push_back(
          line + ": " +
          (d.ok() ? hub_->rest->Error(*d, "cancelling it").message() : d.error().message()));
    }
  }
  return report;
}

BITFUSION_REGISTER(ContainerRunner, "slurm", SlurmRunnerOptions, SlurmRunner);

}  // namespace bitfusion
