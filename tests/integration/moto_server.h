// moto's EC2 emulator for tests: started on 127.0.0.1 with a free port, with signature checking
// on (INITIAL_NO_AUTH_ACTION_COUNT: the first three calls make an IAM user with a policy and an
// access key, every later call must be signed with that key), and instance-type and image
// validation on.
// Stopped by PID when destroyed.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "core/percent_encode.h"
#include "integration/service.h"
#include "net/http_client.h"
#include "net/sigv4.h"

namespace bitfusion::testing {

/// moto_server: BITFUSION_MOTO_SERVER, else the image's pyenv Python 3.11, else PATH.
inline std::string MotoServerPath() {
  if (const char* p = std::getenv("BITFUSION_MOTO_SERVER"); p != nullptr && *p != '\0') return p;
  const std::string pyenv = "/root/.pyenv/versions/3.11.7/bin/moto_server";
  if (HaveProgram(pyenv)) return pyenv;
  return HaveProgram("moto_server") ? "moto_server" : "";
}

class MotoServer {
 public:
  /// Starts it; `error()` says why it is not running.
  MotoServer() {
    const std::string moto = MotoServerPath();
    if (moto.empty()) {
      error_ = "moto_server not found (set BITFUSION_MOTO_SERVER)";
      return;
    }
    port_ = FreePort();
    dir_ = FreshDir("moto-" + std::to_string(port_));
    remove_dir_.path = dir_;
    process_ = std::make_unique<ServiceProcess>(
        std::vector<std::string>{moto, "-H", "127.0.0.1", "-p", std::to_string(port_)},
        (dir_ / "moto.log").string(),
        std::vector<std::string>{"INITIAL_NO_AUTH_ACTION_COUNT=3",
                                 "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION=true",
                                 "MOTO_ENABLE_AMI_VALIDATION=true"});
    net::HttpClientOptions o;
    o.base_url = url();
    o.connect_timeout = std::chrono::milliseconds(500);
    client_ = *net::HttpClient::Make(o);
    const bool up = process_->WaitReady([&] {
      net::HttpRequest r;
      r.target = "/moto-api/";
      r.deadline = DeadlineAfter(std::chrono::seconds(2));
      auto got = client_->Send(r);
      return got.ok() && got->status == 200;
    });
    if (!up) {
      error_ = "moto_server did not start: " + process_->Log();
      return;
    }
    error_ = MakeKey();
  }

  const std::string& error() const { return error_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& access_key_id() const { return key_id_; }
  const std::string& secret_access_key() const { return secret_; }
  std::string Log() const { return process_ ? process_->Log() : ""; }

 private:
  // One IAM call, signed with a throwaway key (moto does not check the first three).
  std::string Iam(const std::string& body) {
    net::SigV4Request sig;
    sig.body = body + "&Version=2010-05-08";
    sig.headers = {{"Host", "127.0.0.1:" + std::to_string(port_)},
                   {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
    net::AwsCredentials bootstrap;
    bootstrap.access_key_id = "AKIDBOOTSTRAP";
    bootstrap.secret_access_key = "bootstrap";
    net::SignV4(sig, bootstrap, "us-east-1", "iam", WallNowNs() / 1'000'000'000);
    net::HttpRequest r;
    r.method = "POST";
    r.target = "/";
    r.headers = sig.headers;
    r.body = sig.body;
    r.deadline = DeadlineAfter(std::chrono::seconds(30));
    auto got = client_->Send(r);
    return got.ok() && got->status == 200 ? got->body : "";
  }

  static std::string Between(const std::string& s, const std::string& open) {
    const auto b = s.find("<" + open + ">");
    const auto e = s.find("</" + open + ">");
    return b == std::string::npos || e == std::string::npos
               ? ""
               : s.substr(b + open.size() + 2, e - b - open.size() - 2);
  }

  std::string MakeKey() {
    if (Iam("Action=CreateUser&UserName=bench").empty()) return "IAM CreateUser failed: " + Log();
    const std::string policy = internal::PercentEncode(
        R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]})");
    if (Iam("Action=PutUserPolicy&UserName=bench&PolicyName=all&PolicyDocument=" + policy)
            .empty()) {
      return "IAM PutUserPolicy failed: " + Log();
    }
    const std::string key = Iam("Action=CreateAccessKey&UserName=bench");
    key_id_ = Between(key, "AccessKeyId");
    secret_ = Between(key, "SecretAccessKey");
    return key_id_.empty() || secret_.empty() ? "IAM CreateAccessKey failed: " + Log() : "";
  }

  int port_ = 0;
  std::filesystem::path dir_;
  RemoveDirLater remove_dir_;  // after the process has stopped
  std::unique_ptr<ServiceProcess> process_;
  std::unique_ptr<net::HttpClient> client_;
  std::string error_, key_id_, secret_;
};

}  // namespace bitfusion::testing
