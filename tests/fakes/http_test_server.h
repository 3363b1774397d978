// A small HTTP/1.1 server for tests: TCP on 127.0.0.1 (ephemeral port) or a unix socket, one
// thread per connection, keep-alive, a handler per request. A handler may stream its answer in
// chunks (Transfer-Encoding: chunked) with pauses, or drop the connection, to inject faults.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace bitfusion::testing {

struct TestRequest {
  std::string method, target, body;
  std::map<std::string, std::string> headers;  // lower-case names
};

struct TestResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  /// When non-empty, sent as chunks (body is ignored), each after `chunk_pause`.
  std::vector<std::string> chunks;
  std::chrono::milliseconds chunk_pause{0};
  /// Keep the stream open after the chunks until the server stops (for cancel tests).
  bool hold_open = false;
  /// Close the connection without answering.
  bool drop = false;
};

class HttpTestServer {
 public:
  using Handler = std::function<TestResponse(const TestRequest&)>;

  /// Listens on 127.0.0.1:<ephemeral>, or on `unix_path` when given.
  explicit HttpTestServer(Handler handler, std::string unix_path = {})
      : handler_(std::move(handler)), unix_path_(std::move(unix_path)) {
    if (unix_path_.empty()) {
      listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
      socklen_t len = sizeof addr;
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
      port_ = ntohs(addr.sin_port);
    } else {
      ::unlink(unix_path_.c_str());
      listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", unix_path_.c_str());
      ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    }
    ::listen(listen_fd_, 64);
    acceptor_ = std::thread([this] { Accept(); });
  }

  ~HttpTestServer() {
    stopping_.store(true);
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    acceptor_.join();
    {
      std::lock_guard lock(mu_);
      for (int fd : open_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : workers_) t.join();
    if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_.load(); }

 private:
  void Accept() {
    while (!stopping_.load()) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      std::lock_guard lock(mu_);
      open_.push_back(fd);
      workers_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  static bool SendAll(int fd, const std::string& data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
      const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }

  void Serve(int fd) {
    std::string buffer;
    char chunk[65536];
    while (!stopping_.load()) {
      std::size_t header_end;
      while ((header_end = buffer.find("\r\n\r\n")) == std::string::npos) {
        const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) return Close(fd);
        buffer.append(chunk, static_cast<std::size_t>(n));
      }
      TestRequest request;
      const std::string head = buffer.substr(0, header_end);
      std::size_t line_end = head.find("\r\n");
      const std::string first = head.substr(0, line_end);
      const auto sp1 = first.find(' ');
      const auto sp2 = first.find(' ', sp1 + 1);
      request.method = first.substr(0, sp1);
      request.target = first.substr(sp1 + 1, sp2 - sp1 - 1);
      std::size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
      while (pos < head.size()) {
        std::size_t end = head.find("\r\n", pos);
        if (end == std::string::npos) end = head.size();
        const std::string line = head.substr(pos, end - pos);
        const auto colon = line.find(':');
        if (colon != std::string::npos) {
          std::string name = line.substr(0, colon);
          for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          std::string value = line.substr(colon + 1);
          while (!value.empty() && value.front() == ' ') value.erase(0, 1);
          request.headers[name] = value;
        }
        pos = end + 2;
      }
      buffer.erase(0, header_end + 4);
      const std::size_t length = request.headers.count("content-length")
                                     ? std::stoul(request.headers["content-length"])
                                     : 0;
      while (buffer.size() < length) {
        const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) return Close(fd);
        buffer.append(chunk, static_cast<std::size_t>(n));
      }
      request.body = buffer.substr(0, length);
      buffer.erase(0, length);
      ++requests_;
      const TestResponse response = handler_(request);
      if (response.drop) return Close(fd);
      std::string out = "HTTP/1.1 " + std::to_string(response.status) + " X\r\n";
      for (const auto& [name, value] : response.headers) out += name + ": " + value + "\r\n";
      if (response.chunks.empty()) {
        out +=
            "Content-Length: " + std::to_string(response.body.size()) + "\r\n\r\n" + response.body;
        if (!SendAll(fd, out)) return Close(fd);
        continue;
      }
      out += "Transfer-Encoding: chunked\r\n\r\n";
      if (!SendAll(fd, out)) return Close(fd);
      for (const auto& c : response.chunks) {
        std::this_thread::sleep_for(response.chunk_pause);
        char size[32];
        std::snprintf(size, sizeof size, "%zx\r\n", c.size());
        if (!SendAll(fd, size + c + "\r\n")) return Close(fd);
      }
      if (response.hold_open) {
        while (!stopping_.load() && ::recv(fd, chunk, sizeof chunk, 0) > 0) {
        }
        return Close(fd);
      }
      if (!SendAll(fd, "0\r\n\r\n")) return Close(fd);
    }
    Close(fd);
  }

  void Close(int fd) {
    std::lock_guard lock(mu_);
    open_.erase(std::remove(open_.begin(), open_.end(), fd), open_.end());
    ::close(fd);
  }

  Handler handler_;
  std::string unix_path_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> requests_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<int> open_;
  std::vector<std::thread> workers_;
};

}  // namespace bitfusion::testing
