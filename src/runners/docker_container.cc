#include "runners/docker_container.h"

#include <signal.h>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include "bitfusion/log.h"
#include "core/ascii.h"
#include "core/event_loop.h"
#include "core/percent_encode.h"
#include "runners/line_splitter.h"
#include "runners/log_fanout.h"
#include "runners/tar_archive.h"

namespace bitfusion {

namespace asio = boost::asio;
namespace json = boost::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

using internal::Demuxer;
using internal::JsonAt;
using internal::JsonInt;
using internal::JsonLines;
using internal::JsonString;
using internal::JsonStrings;
using internal::ParseEngineTime;

namespace internal {
namespace {
// An engine (or something posing as one) may send counters whose sum int64 cannot hold.
void AddSaturating(std::int64_t& sum, std::int64_t add) {
  if (__builtin_add_overflow(sum, add, &sum)) sum = add > 0 ? INT64_MAX : INT64_MIN;
}
}  // namespace

ContainerStats ParseDockerStats(const json::value& v) {
  ContainerStats st;
  st.time_ns = ParseEngineTime(JsonString(JsonAt(v, {"read"})));
  // A container that is not running gets readings with only its name and id, read
  // "0001-01-01T00:00:00Z".
  st.running = st.time_ns != 0;
  if (st.time_ns == 0) st.time_ns = WallNowNs();
  st.cpu_ns = JsonInt(JsonAt(v, {"cpu_stats", "cpu_usage", "total_usage"}));
  st.system_cpu_ns = JsonInt(JsonAt(v, {"cpu_stats", "system_cpu_usage"}));
  st.online_cpus = static_cast<int>(JsonInt(JsonAt(v, {"cpu_stats", "online_cpus"})));
  st.memory_bytes = JsonInt(JsonAt(v, {"memory_stats", "usage"}));
  st.memory_limit_bytes = JsonInt(JsonAt(v, {"memory_stats", "limit"}));
  st.pids = JsonInt(JsonAt(v, {"pids_stats", "current"}));
  if (const auto* nets = JsonAt(v, {"networks"}); nets && nets->is_object()) {
    for (const auto& kv : nets->get_object()) {
      AddSaturating(st.rx_bytes, JsonInt(JsonAt(kv.value(), {"rx_bytes"})));
      AddSaturating(st.tx_bytes, JsonInt(JsonAt(kv.value(), {"tx_bytes"})));
    }
  }
  if (const auto* io = JsonAt(v, {"blkio_stats", "io_service_bytes_recursive"});
      io && io->is_array()) {
    for (const auto& e : io->get_array()) {
      const std::string op = internal::AsciiLower(JsonString(JsonAt(e, {"op"})));
      if (op == "read") AddSaturating(st.read_bytes, JsonInt(JsonAt(e, {"value"})));
      if (op == "write") AddSaturating(st.write_bytes, JsonInt(JsonAt(e, {"value"})));
    }
  }
  return st;
}

}  // namespace internal

namespace {

// What Exec keeps of each of its command's streams.
constexpr std::size_t kMaxExecOutput = 64u << 20;

// The most of a /wait or inspect answer kept (both are a few hundred bytes to a few KiB).
constexpr std::size_t kMaxAnswer = 4u << 20;

// One Stats() subscription: the engine's stats stream, read on the HTTP client's stream pump
// (no thread of its own); each reading goes to the callback on the event loop, one at a time
// and in order. A reading that arrives while the last one still waits replaces it, so a slow
// callback holds at most one reading, never a queue.
class DockerStatsFeed : public std::enable_shared_from_this<DockerStatsFeed> {
 public:
  DockerStatsFeed(std::string id, std::chrono::nanoseconds interval, StatsCallback callback)
      : id_(std::move(id)),
        interval_(interval),
        callback_(std::move(callback)),
        strand_(asio::make_strand(internal::EventLoop())) {}

  void Start(DockerApi& api) {
    DockerApi::Call c;
    c.path = "/containers/" + id_ + "/stats?stream=1";
    auto self = shared_from_this();
    auto stream = api.StartStream(
        c,
        [self](std::string_view chunk) {
          // Pump thread only, so lines_ and last_ need no lock.
          self->lines_.Feed(chunk, [&](const json::value& v) { self->OnValue(v); });
          return true;
        },
        [self](Result<net::HttpResponse> r) { self->OnEnd(r.status()); });
    if (!stream) {
      OnEnd(stream.error());
      return;
    }
    std::lock_guard lock(mu_);
    if (ended_) {
      (*stream)->Cancel();
    } else {
      stream_ = std::move(*stream);
    }
  }

  // When it returns, the callback is not running (unless End was called from it) and will not
  // run again.
  void End() {
    std::shared_ptr<net::AsyncStream> stream;
    {
      std::lock_guard lock(mu_);
      ended_ = true;
      pending_.reset();
      stream = std::move(stream_);
    }
    if (stream) stream->Cancel();
    std::unique_lock lock(mu_);
    if (!internal::EventLoopRunning()) return;
    cv_.wait(lock, [&] { return !running_ || running_on_ == std::this_thread::get_id(); });
  }

 private:
  void OnValue(const json::value& v) {
    ContainerStats st = internal::ParseDockerStats(v);
    // The engine samples about once a second; a longer interval skips readings.
    if (last_ != 0 && st.time_ns - last_ < interval_.count() * 9 / 10) return;
    last_ = st.time_ns;
    Offer(st);
  }

  void OnEnd(const Status& s) {
    if (!s.ok() && s.code() != StatusCode::kCancelled) {
      LogAt(LogLevel::kWarning, "stats of container ", id_, " ended: ", s.ToString());
    }
    // The engine closed the stream (container removed, engine gone): say so once. (A
    // cancelled stream's end is not reported: End() came first.)
    ContainerStats last;
    last.time_ns = WallNowNs();
    last.running = false;
    Offer(last);
  }

  void Offer(const ContainerStats& st) {
    std::lock_guard lock(mu_);
    if (ended_) return;
    pending_ = st;
    if (posted_) return;
    posted_ = true;
    asio::post(strand_, [self = shared_from_this()] { self->Deliver(); });
  }

  // On strand_.
  void Deliver() {
    std::unique_lock lock(mu_);
    posted_ = false;
    if (ended_ || !pending_) return;
    const ContainerStats st = *pending_;
    pending_.reset();
    running_ = true;
    running_on_ = std::this_thread::get_id();
    lock.unlock();
    try {
      callback_(st);
    } catch (const std::exception& e) {
      LogAt(LogLevel::kError, "a Stats() callback of container ", id_, " threw: ", e.what());
    } catch (...) {
      LogAt(LogLevel::kError, "a Stats() callback of container ", id_, " threw");
    }
    lock.lock();
    running_ = false;
    cv_.notify_all();
  }

  const std::string id_;
  const std::chrono::nanoseconds interval_;
  const StatsCallback callback_;
  asio::strand<asio::io_context::executor_type> strand_;
  JsonLines lines_;
  std::int64_t last_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<net::AsyncStream> stream_;
  std::optional<ContainerStats> pending_;
  bool posted_ = false;
  bool ended_ = false;
  bool running_ = false;
  std::thread::id running_on_;
};

class DockerContainer final : public Container {
 public:
  DockerContainer(std::shared_ptr<DockerApi> api, std::string id, std::string name,
                  std::int64_t timeout_ns)
      : api_(std::move(api)), id_(std::move(id)), name_(std::move(name)), timeout_ns_(timeout_ns) {}

  // A handle on a container made elsewhere (ContainerRunner::OpenContainer): never removed, and
  // its output and exit are only followed once someone waits or subscribes to its logs.
  static std::unique_ptr<DockerContainer> Attach(std::shared_ptr<DockerApi> api, std::string id) {
    auto c = std::make_unique<DockerContainer>(std::move(api), std::move(id), "", 0);
    c->attached_ = true;
    c->kept_ = true;
    c->started_ = true;
    c->start_mono_ns_ = MonoNowNs();
    return c;
  }

  ~DockerContainer() override {
    {
      std::lock_guard lock(mu_);
      closing_ = true;
    }
    cv_.notify_all();
    std::vector<std::shared_ptr<DockerStatsFeed>> feeds;
    {
      std::lock_guard lock(mu_);
      feeds.swap(stats_feeds_);
    }
    for (auto& f : feeds) f->End();
    if (timeout_) timeout_->Cancel();
    if (!kept_) {
      // Removing it also ends its log stream and wait; the cancels below cover an engine that
      // went away.
      if (Status s = api_->RemoveContainer(id_); !s.ok()) {
        LogAt(LogLevel::kError, "could not remove container ", id_, " (", s.ToString(),
              "); `bitfusion reap` (with `--runner URI` for an engine on another host) removes it "
              "once its expiry passes");
      }
    }
    std::vector<std::shared_ptr<net::AsyncStream>> following;
    {
      std::lock_guard lock(mu_);
      following.swap(following_);
    }
    for (auto& s : following) s->Cancel();
  }

  const std::string& id() const override { return id_; }

  Status Start() override {
    if (attached_) {
      return FailedPreconditionError("container " + id_ +
                                     " was opened, not created, by this handle; its creator "
                                     "starts it");
    }
    if (started_.exchange(true)) {
      return FailedPreconditionError("container " + id_ + " was already started");
    }
    DockerApi::Call c;
    c.method = "POST";
    c.path = "/containers/" + id_ + "/start";
    c.deadline = DeadlineAfter(120s);
    auto r = api_->Send(c);
    if (!r || (r->status != 204 && r->status != 304)) {
      started_ = false;
      return r ? api_->ApiError(*r, c.method, c.path) : r.error();
    }
    start_mono_ns_ = MonoNowNs();
    Follow();
    if (timeout_ns_ > 0) {
      // On the event loop; the destructor cancels it (and waits for a kill in progress).
      timeout_ = internal::LoopTimer::Start(std::chrono::nanoseconds(timeout_ns_), [this] {
        EnforceTimeout();
        return std::optional<std::chrono::nanoseconds>();
      });
    }
    return Status::OK();
  }

  Result<ExitStatus> Wait(Deadline deadline) override {
    if (!started_) return FailedPreconditionError("container " + id_ + " was not started");
    FollowIfAttached();
    std::unique_lock lock(mu_);
    auto done = [&] { return finished_; };
    if (deadline == kNoDeadline) {
      cv_.wait(lock, done);
    } else if (!cv_.wait_until(lock, deadline, done)) {
      return DeadlineExceededError("container " + id_ + " still running at the wait deadline");
    }
    if (!wait_error_.ok()) return wait_error_;
    return exit_;
  }

  Status Stop(std::chrono::nanoseconds grace) override {
    if (!started_ || Finished()) return Status::OK();
    const auto seconds =
        static_cast<long long>(std::ceil(std::chrono::duration<double>(grace).count()));
    DockerApi::Call c;
    c.method = "POST";
    c.path = "/containers/" + id_ + "/stop?t=" + std::to_string(std::max(0LL, seconds));
    c.deadline = DeadlineAfter(grace + 60s);
    BITFUSION_ASSIGN_OR_RETURN(auto r, api_->Send(c));
    if (r.status != 204 && r.status != 304 && r.status != 404) {
      return api_->ApiError(r, c.method, c.path);
    }
    auto waited = Wait(DeadlineAfter(30s));
    if (!waited && waited.error().code() == StatusCode::kDeadlineExceeded) {
      return InternalError("container " + id_ + " was stopped but did not exit within 30 s");
    }
    return Status::OK();
  }

  Status Kill(int signal) override {
    if (!started_ || Finished()) return Status::OK();
    DockerApi::Call c;
    c.method = "POST";
    c.path = "/containers/" + id_ + "/kill?signal=" + std::to_string(signal);
    c.deadline = DeadlineAfter(60s);
    BITFUSION_ASSIGN_OR_RETURN(auto r, api_->Send(c));
    // 409: not running any more; 404: already gone. Either way there is nothing to signal.
    if (r.status == 204 || r.status == 409 || r.status == 404) return Status::OK();
    return api_->ApiError(r, c.method, c.path);
  }

  Subscription Logs(LogCallback callback) override {
    Subscription subscription = logs_->Subscribe(std::move(callback));
    FollowIfAttached();
    return subscription;
  }

  void Keep() override {
    if (kept_.exchange(true) || name_.empty()) return;
    // Renamed, so that Reap leaves it to its run id and expiry (labels cannot change).
    DockerApi::Call c;
    c.method = "POST";
    c.path =
        "/containers/" + id_ + "/rename?name=" + internal::PercentEncode(name_ + kDockerKeptSuffix);
    c.deadline = DeadlineAfter(30s);
    auto r = api_->Send(c);
    if (!r.ok() || (r->status != 204 && r->status != 200)) {
      LogAt(LogLevel::kWarning, "container ", name_, " is kept, but renaming it to ", name_,
            kDockerKeptSuffix, " failed (",
            r.ok() ? api_->ApiError(*r, c.method, c.path).message() : r.error().message(),
            "); `bitfusion reap` (with `--runner URI` for an engine on another host) may remove it "
            "once this process has ended");
    }
  }

  Result<ExecResult> Exec(const ExecSpec& spec, Deadline deadline) override {
    if (spec.command.empty()) return InvalidArgumentError("exec needs a command");
    json::object body;
    body["AttachStdout"] = true;
    body["AttachStderr"] = true;
    body["Cmd"] = JsonStrings(spec.command);
    if (!spec.env.empty()) {
      json::array env;
      for (const auto& [k, v] : spec.env) env.emplace_back(k + "=" + v);
      body["Env"] = std::move(env);
    }
    if (!spec.working_dir.empty()) body["WorkingDir"] = spec.working_dir;
    if (!spec.user.empty()) body["User"] = spec.user;
    std::string exec_id;
    auto result = RunExec(body, deadline, &exec_id);
    if (result || result.error().code() != StatusCode::kDeadlineExceeded || exec_id.empty()) {
      return result;
    }
    const std::string what = "exec of `" + CommandText(spec.command) + "` in container " + id_ +
                             " did not finish by its deadline";
    auto stopped = StopExec(exec_id, spec.command);
    if (!stopped) {
      return DeadlineExceededError(what + " and could not be stopped (" +
                                   stopped.error().message() +
                                   "); it may still be running: stop the container to end it");
    }
    return DeadlineExceededError(what + (*stopped ? "; it was killed" : ""));
  }

  Status CopyIn(const fs::path& host_path, const std::string& container_dir) override {
    if (container_dir.empty() || container_dir[0] != '/') {
      return InvalidArgumentError("copy target \"" + container_dir +
                                  "\" must be an absolute directory in the container");
    }
    internal::TarWriter tar;
    const fs::path clean = host_path.lexically_normal();
    std::string name = clean.filename().string();
    if (name.empty()) name = clean.parent_path().filename().string();
    BITFUSION_RETURN_IF_ERROR(tar.AddPath(host_path, name));
    DockerApi::Call c;
    c.method = "PUT";
    c.path = "/containers/" + id_ + "/archive?path=" + internal::PercentEncode(container_dir);
    c.body = tar.Finish();
    c.content_type = "application/x-tar";
    c.deadline = DeadlineAfter(10min);
    BITFUSION_ASSIGN_OR_RETURN(auto r, api_->Send(c));
    if (r.status == 200) return Status::OK();
    if (r.status == 404) {
      return NotFoundError("directory " + container_dir + " does not exist in container " + id_);
    }
    return api_->ApiError(r, c.method, c.path);
  }

  Status CopyOut(const std::string& container_path, const fs::path& host_dir) override {
    DockerApi::Call c;
    c.path = "/containers/" + id_ + "/archive?path=" + internal::PercentEncode(container_path);
    c.deadline = DeadlineAfter(10min);
    const std::string context = "copying " + container_path + " out of container " + id_;
    // Extracted as it arrives, confined to host_dir and capped: the archive is the
    // container's, so whatever runs in it chooses its names, links, modes and size.
    auto extractor = internal::TarExtractor::Make(host_dir);
    if (!extractor) return extractor.error().WithContext(context);
    Status extracted;
    auto r = api_->Stream(
        c,
        [&](std::string_view chunk) {
          extracted = (*extractor)->Write(chunk);
          return extracted.ok();
        },
        nullptr);
    if (!extracted.ok()) return extracted.WithContext(context);
    if (!r) return r.error();
    if (r->status == 404) {
      return NotFoundError(container_path + " does not exist in container " + id_);
    }
    if (r->status != 200) return api_->ApiError(*r, c.method, c.path);
    return (*extractor)->Finish().WithContext(context);
  }

  Result<bool> PathExists(const std::string& path) override {
    DockerApi::Call c;
    c.method = "HEAD";
    c.path = "/containers/" + id_ + "/archive?path=" + internal::PercentEncode(path);
    c.deadline = DeadlineAfter(60s);
    BITFUSION_ASSIGN_OR_RETURN(auto r, api_->Send(c));
    if (r.status == 200) return true;
    if (r.status == 404) {
      // A missing container answers 404 too; tell the two apart.
      BITFUSION_RETURN_IF_ERROR(api_->InspectContainer(id_).status());
      return false;
    }
    return api_->ApiError(r, c.method, c.path);
  }

  Result<ContainerInfo> Inspect() override { return api_->InspectContainer(id_); }

  Result<Subscription> Stats(StatsCallback callback, std::chrono::nanoseconds interval) override {
    if (interval.count() <= 0) return InvalidArgumentError("stats interval must be positive");
    auto feed = std::make_shared<DockerStatsFeed>(id_, interval, std::move(callback));
    {
      std::lock_guard lock(mu_);
      stats_feeds_.push_back(feed);
    }
    feed->Start(*api_);
    return Subscription([feed] { feed->End(); });
  }

 private:
  static std::string CommandText(const std::vector<std::string>& command) {
    std::string text;
    for (const auto& arg : command) text += (text.empty() ? "" : " ") + arg;
    return text.size() > 200 ? text.substr(0, 197) + "..." : text;
  }

  static bool ExecRunning(const json::value& info) {
    const auto* running = JsonAt(info, {"Running"});
    return running != nullptr && running->is_bool() && running->get_bool();
  }

  // Creates an exec of `body` and runs it to its end, collecting what it prints; `*exec_id` is
  // set as soon as the engine has made it. DeadlineExceeded when `deadline` passes first.
  Result<ExecResult> RunExec(const json::object& body, Deadline deadline, std::string* exec_id) {
    DockerApi::Call create;
    create.method = "POST";
    create.path = "/containers/" + id_ + "/exec";
    create.body = json::serialize(body);
    create.deadline = deadline;
    BITFUSION_ASSIGN_OR_RETURN(auto made, api_->Json(create));
    *exec_id = JsonString(JsonAt(made, {"Id"}));

    DockerApi::Call start;
    start.method = "POST";
    start.path = "/exec/" + *exec_id + "/start";
    start.body = R"({"Detach":false,"Tty":false})";
    start.deadline = deadline;
    ExecResult result;
    Demuxer demux;
    // Each stream keeps its first kMaxExecOutput bytes; what is cut is said at its end.
    std::size_t cut[2] = {0, 0};
    BITFUSION_ASSIGN_OR_RETURN(
        auto r, api_->Stream(
                    start,
                    [&](std::string_view chunk) {
                      demux.Feed(chunk, [&](LogStream s, std::string_view bytes) {
                        const bool out = s == LogStream::kStdout;
                        std::string& to = out ? result.output : result.errors;
                        const std::size_t room =
                            kMaxExecOutput - std::min(kMaxExecOutput, to.size());
                        to.append(bytes.substr(0, room));
                        cut[out ? 0 : 1] += bytes.size() - std::min(room, bytes.size());
                      });
                      return true;
                    },
                    nullptr));
    if (r.status != 200) return api_->ApiError(r, start.method, start.path);
    for (int i = 0; i < 2; ++i) {
      if (cut[i] == 0) continue;
      (i == 0 ? result.output : result.errors) +=
          "\n[bitfusion: " + std::to_string(cut[i]) + " more bytes of output not kept]\n";
    }
    // The stream ends when the command does; its exit code is recorded a moment later.
    DockerApi::Call poll = DockerApi::Get("/exec/" + *exec_id + "/json");
    poll.deadline = deadline;
    while (true) {
      BITFUSION_ASSIGN_OR_RETURN(auto info, api_->Json(poll));
      if (!ExecRunning(info)) {
        result.exit_code = static_cast<int>(JsonInt(JsonAt(info, {"ExitCode"})));
        return result;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return DeadlineExceededError("exec in container " + id_ + " still running at the deadline");
      }
      std::this_thread::sleep_for(5ms);
    }
  }

  // Docker has no call that ends an exec: its process, whose host PID the engine reports, is
  // killed from inside the container (as root there), or from this host when that fails.
  // True when it was running and is no longer.
  Result<bool> StopExec(const std::string& exec_id, const std::vector<std::string>& command) {
    const DockerApi::Call inspect = DockerApi::Get("/exec/" + exec_id + "/json");
    BITFUSION_ASSIGN_OR_RETURN(auto info, api_->Json(inspect));
    if (!ExecRunning(info)) return false;
    const auto pid = static_cast<pid_t>(JsonInt(JsonAt(info, {"Pid"})));
    if (pid <= 0) return FailedPreconditionError("the engine reported no process for it");
    if (!api_->local()) {
      return FailedPreconditionError("the engine at " + api_->endpoint() +
                                     " runs on another host, where its process " +
                                     std::to_string(pid) + " cannot be found from here");
    }
    BITFUSION_ASSIGN_OR_RETURN(long in_container, ContainerPid(pid, command));
    if (Status inside = KillInside(in_container); !inside.ok() && ::kill(pid, SIGKILL) != 0) {
      return ErrnoError(errno, "killing its process " + std::to_string(pid) + " on this host (" +
                                   "killing it in the container failed too: " + inside.message() +
                                   ")");
    }
    const Deadline until = DeadlineAfter(10s);
    while (std::chrono::steady_clock::now() < until) {
      BITFUSION_ASSIGN_OR_RETURN(info, api_->Json(inspect));
      if (!ExecRunning(info)) return true;
      std::this_thread::sleep_for(10ms);
    }
    return InternalError("its process " + std::to_string(pid) + " still ran 10 s after SIGKILL");
  }

  // The PID that host process `pid` has in its own (the container's) PID namespace, once its
  // command line is known to be `command`: bitfusion in a PID namespace of its own, or a PID
  // reused since, would otherwise have another process killed.
  static Result<long> ContainerPid(pid_t pid, const std::vector<std::string>& command) {
    const std::string proc = "/proc/" + std::to_string(pid);
    std::ifstream cmdline_file(proc + "/cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(cmdline_file)), {});
    std::string expected;
    for (const auto& arg : command) expected += arg + '\0';
    if (!cmdline_file || cmdline != expected) {
      return FailedPreconditionError("the engine's process " + std::to_string(pid) +
                                     " is not visible from this process as `" +
                                     CommandText(command) + "` (another PID namespace?)");
    }
    std::ifstream status(proc + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("NSpid:", 0) != 0) continue;
      const auto last = line.find_last_of(" \t");
      return std::strtol(line.c_str() + last + 1, nullptr, 10);
    }
    return FailedPreconditionError(proc + "/status has no NSpid line (Linux 4.1 or newer needed)");
  }

  // `kill -KILL pid` run as root inside the container.
  Status KillInside(long pid) {
    json::object body;
    body["AttachStdout"] = true;
    body["AttachStderr"] = true;
    body["Cmd"] = JsonStrings({"kill", "-KILL", std::to_string(pid)});
    body["User"] = "0";
    std::string exec_id;
    BITFUSION_ASSIGN_OR_RETURN(auto killed, RunExec(body, DeadlineAfter(10s), &exec_id));
    if (killed.exit_code != 0) {
      return FailedPreconditionError("`kill -KILL " + std::to_string(pid) +
                                     "` in the container exited with " +
                                     std::to_string(killed.exit_code) + ": " + killed.errors);
    }
    return Status::OK();
  }

  bool Finished() {
    std::lock_guard lock(mu_);
    return finished_;
  }

  void FollowIfAttached() {
    if (!attached_) return;
    std::call_once(follow_once_, [this] { Follow(); });
  }

  void Deliver(LogStream stream, std::string_view line) { logs_->Deliver(stream, line); }

  // Follows the container on the HTTP client's stream pump, one request after the other: its
  // output until it stops (logs?follow=1), its exit (/wait), then how it ended (inspect). The
  // callbacks below run on the pump's thread and only parse and hand lines on.
  void Follow() {
    DockerApi::Call logs;
    logs.path = "/containers/" + id_ + "/logs?follow=1&stdout=1&stderr=1";
    auto stream = api_->StartStream(
        logs,
        [this](std::string_view chunk) {
          demux_.Feed(chunk, [&](LogStream s, std::string_view bytes) {
            (s == LogStream::kStdout ? out_ : err_).Feed(bytes, [&](std::string_view line) {
              Deliver(s, line);
            });
          });
          return true;
        },
        [this, path = logs.path](Result<net::HttpResponse> r) { LogsEnded(r, path); });
    if (!stream) return LogsEnded(stream.error(), logs.path);
    Track(std::move(*stream));
  }

  void LogsEnded(const Result<net::HttpResponse>& streamed, const std::string& path) {
    out_.Finish([&](std::string_view l) { Deliver(LogStream::kStdout, l); });
    err_.Finish([&](std::string_view l) { Deliver(LogStream::kStderr, l); });
    if (streamed && streamed->status != 200) {
      LogAt(LogLevel::kWarning, "no output from container ", id_, ": ",
            api_->ApiError(*streamed, "GET", path).ToString());
    }
    DockerApi::Call wait;
    wait.method = "POST";
    wait.path = "/containers/" + id_ + "/wait";
    auto stream = api_->StartStream(
        wait,
        [this](std::string_view chunk) {
          wait_body_.append(chunk.substr(0, kMaxAnswer - std::min(kMaxAnswer, wait_body_.size())));
          return true;
        },
        [this, wait](Result<net::HttpResponse> r) { Exited(r, wait); });
    if (!stream) return Exited(stream.error(), wait);
    Track(std::move(*stream));
  }

  void Exited(const Result<net::HttpResponse>& waited, const DockerApi::Call& wait) {
    Status error;
    if (!waited) {
      error = waited.error();
    } else if (waited->status != 200) {
      error = api_->ApiError(*waited, wait.method, wait.path);
    }
    const std::int64_t end_mono = MonoNowNs();
    if (!error.ok()) return Finish(ExitStatus(), error);
    DockerApi::Call inspect = DockerApi::Get("/containers/" + id_ + "/json");
    inspect.deadline = DeadlineAfter(api_->options().api_timeout);
    auto stream = api_->StartStream(
        inspect,
        [this](std::string_view chunk) {
          if (chunk.size() > kMaxAnswer - inspect_body_.size()) return false;
          inspect_body_.append(chunk);
          return true;
        },
        [this, end_mono](Result<net::HttpResponse> r) { Inspected(r, end_mono); });
    if (!stream) return Inspected(stream.error(), end_mono);
    Track(std::move(*stream));
  }

  void Inspected(const Result<net::HttpResponse>& inspected, std::int64_t end_mono) {
    std::optional<ContainerInfo> info;
    if (inspected && inspected->status == 200) {
      boost::system::error_code ec;
      const json::value v = json::parse(inspect_body_, ec);
      if (!ec) info = internal::ContainerInfoFromJson(v);
    }
    ExitStatus exit;
    if (info) {
      exit.exit_code = info->exit_code;
      exit.oom_killed = info->oom_killed;
      exit.start_ns = info->started_ns;
      exit.end_ns = info->finished_ns;
      exit.wall_time_ns = exit.end_ns - exit.start_ns;
      if (exit.wall_time_ns <= 0) {
        // Podman can record a short-lived container's start after its end: fall back to
        // this side's clock, ending where the engine says it ended.
        exit.wall_time_ns = std::max<std::int64_t>(end_mono - start_mono_ns_, 1);
        exit.start_ns = exit.end_ns - exit.wall_time_ns;
      }
    } else {
      // Removed by someone else the moment it ended: /wait's answer still has the code.
      boost::system::error_code ec;
      const json::value v = json::parse(wait_body_, ec);
      exit.exit_code = ec ? -1 : static_cast<int>(JsonInt(JsonAt(v, {"StatusCode"})));
      exit.end_ns = WallNowNs();
      exit.wall_time_ns = end_mono - start_mono_ns_;
      exit.start_ns = exit.end_ns - exit.wall_time_ns;
    }
    Finish(exit, Status::OK());
  }

  void Finish(ExitStatus exit, const Status& error) {
    std::lock_guard lock(mu_);
    exit.timed_out = timed_out_;
    exit_ = exit;
    wait_error_ = error;
    finished_ = true;
    cv_.notify_all();
  }

  // Keeps a request of Follow()'s for the destructor to cancel; cancels it if that has begun.
  void Track(std::shared_ptr<net::AsyncStream> s) {
    {
      std::lock_guard lock(mu_);
      if (!closing_) {
        following_.push_back(std::move(s));
        return;
      }
    }
    s->Cancel();
  }

  void EnforceTimeout() {
    std::unique_lock lock(mu_);
    if (finished_ || closing_) return;
    timed_out_ = true;
    lock.unlock();
    if (Status s = Kill(SIGKILL); !s.ok()) {
      LogAt(LogLevel::kError, "killing container ", id_, " at its timeout: ", s.ToString());
    }
  }

  const std::shared_ptr<DockerApi> api_;
  const std::string id_;
  const std::string name_;  // empty for an attached handle: Keep() renames nothing
  const std::int64_t timeout_ns_;
  std::atomic<bool> started_{false};
  std::atomic<bool> kept_{false};
  bool attached_ = false;  // made by OpenContainer
  std::once_flag follow_once_;
  std::int64_t start_mono_ns_ = 0;
  // Follow()'s state, used on the stream pump's thread only.
  Demuxer demux_;
  LineSplitter out_{api_->options().max_line_bytes}, err_{api_->options().max_line_bytes};
  std::string wait_body_, inspect_body_;
  std::shared_ptr<internal::LoopTimer> timeout_;  // ContainerSpec::timeout_ns

  std::mutex mu_;
  std::condition_variable cv_;
  bool finished_ = false;
  bool closing_ = false;
  bool timed_out_ = false;
  ExitStatus exit_;
  Status wait_error_;
  std::vector<std::shared_ptr<DockerStatsFeed>> stats_feeds_;
  std::vector<std::shared_ptr<net::AsyncStream>> following_;  // Follow()'s requests

  const std::shared_ptr<internal::LogFanout> logs_ =
      std::make_shared<internal::LogFanout>(api_->options().log_buffer_bytes);
};

}  // namespace

std::unique_ptr<Container> NewDockerContainer(std::shared_ptr<DockerApi> api, std::string id,
                                              std::string name, std::int64_t timeout_ns) {
  return std::make_unique<DockerContainer>(std::move(api), std::move(id), std::move(name),
                                           timeout_ns);
}

std::unique_ptr<Container> AttachDockerContainer(std::shared_ptr<DockerApi> api, std::string id) {
  return DockerContainer::Attach(std::move(api), std::move(id));
}

}  // namespace bitfusion
