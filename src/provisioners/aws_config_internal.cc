#include "provisioners/aws_config_internal.h"

#include <boost/json.hpp>

#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <sstream>

#include <re2/re2.h>

#include "bitfusion/clock.h"
#include "core/env.h"
#include "core/rfc3339.h"
#include "net/http_client.h"

namespace bitfusion::internal {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

std::string Trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

std::string Home() {
  const std::string home = GetEnv("HOME");
  return home.empty() ? "/root" : home;
}

std::optional<AwsIni> ReadIni(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream s;
  s << in.rdbuf();
  return ParseAwsIni(s.str());
}

// "2026-08-01T12:00:00Z" -> unix seconds; 0 when it does not parse.
std::int64_t ParseIso8601(const std::string& text) {
  return internal::ParseRfc3339Seconds(text).value_or(0);
}

// The profile's section in the config file: [default] or [profile NAME] (a bare [NAME] is not
// a profile there).
const std::map<std::string, std::string>* ConfigProfile(const AwsIni& config,
                                                        const std::string& profile) {
  auto it = config.find(profile == "default" ? "default" : "profile " + profile);
  if (it == config.end() && profile == "default") it = config.find("profile default");
  return it == config.end() ? nullptr : &it->second;
}

std::string Get(const std::map<std::string, std::string>* section, const std::string& key) {
  if (section == nullptr) return "";
  auto it = section->find(key);
  return it == section->end() ? "" : it->second;
}

Result<net::AwsCredentials> FromImds(std::string* tried) {
  std::string endpoint = GetEnv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
  if (endpoint.empty()) endpoint = "http://169.254.169.254";
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  *tried += ", the instance role through IMDSv2 at " + endpoint;
  net::HttpClientOptions o;
  o.base_url = endpoint;
  o.connect_timeout = 1s;
  o.peer_name = "the EC2 instance metadata service at " + endpoint;
  BITFUSION_ASSIGN_OR_RETURN(auto client, net::HttpClient::Make(o));
  net::HttpRequest token;
  token.method = "PUT";
  token.target = "/latest/api/token";
  token.headers = {{"X-aws-ec2-metadata-token-ttl-seconds", "21600"}};
  token.deadline = DeadlineAfter(2s);
  BITFUSION_ASSIGN_OR_RETURN(auto t, client->Send(token));
  if (t.status != 200)
    return NotFoundError("IMDSv2 token request answered " + std::to_string(t.status));
  net::HttpRequest get;
  get.target = "/latest/meta-data/iam/security-credentials/";
  get.headers = {{"X-aws-ec2-metadata-token", t.body}};
  get.deadline = DeadlineAfter(2s);
  BITFUSION_ASSIGN_OR_RETURN(auto roles, client->Send(get));
  const std::string role = Trim(roles.body.substr(0, roles.body.find('\n')));
  if (roles.status != 200 || role.empty()) return NotFoundError("this instance has no IAM role");
  get.target += role;
  BITFUSION_ASSIGN_OR_RETURN(auto creds, client->Send(get));
  return ParseImdsCredentials(creds.status, creds.body, role);
}

}  // namespace

Result<net::AwsCredentials> ParseImdsCredentials(int status, const std::string& body,
                                                 const std::string& role) {
  boost::system::error_code ec;
  const json::value v = json::parse(body, ec);
  if (status != 200 || ec || !v.is_object()) {
    return NotFoundError("IMDS answered role credentials " + std::to_string(status));
  }
  auto str = [&](const char* key) {
    const auto* f = v.as_object().if_contains(key);
    return f != nullptr && f->is_string() ? std::string(f->as_string()) : std::string();
  };
  net::AwsCredentials c;
  c.access_key_id = str("AccessKeyId");
  c.secret_access_key = str("SecretAccessKey");
  c.session_token = str("Token");
  c.expires_unix_s = ParseIso8601(str("Expiration"));
  c.source = "the instance role " + role + " (IMDSv2)";
  if (c.access_key_id.empty() || c.secret_access_key.empty()) {
    return NotFoundError("IMDS role credentials lack keys");
  }
  return c;
}

AwsIni ParseAwsIni(const std::string& text) {
  AwsIni out;
  std::string section, last_key;
  std::istringstream in(text);
  for (std::string raw; std::getline(in, raw);) {
    if (!raw.empty() && raw.back() == '\r') raw.pop_back();
    const std::string line = Trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = Trim(line.substr(1, line.size() - 2));
      out[section];
      last_key.clear();
      continue;
    }
    const auto eq = line.find('=');
    if (eq == std::string::npos || section.empty()) continue;
    const std::string key = Trim(line.substr(0, eq));
    const std::string value = Trim(line.substr(eq + 1));
    const bool nested = raw[0] == ' ' || raw[0] == '\t';
    if (nested && !last_key.empty()) {
      out[section][last_key + "." + key] = value;
    } else {
      out[section][key] = value;
      last_key = key;
    }
  }
  return out;
}

Result<AwsSettings> ResolveAwsSettings(const AwsSettingsInput& input) {
  AwsSettings s;
  s.profile = !input.profile.empty()                   ? input.profile
              : !GetEnv("AWS_PROFILE").empty()         ? GetEnv("AWS_PROFILE")
              : !GetEnv("AWS_DEFAULT_PROFILE").empty() ? GetEnv("AWS_DEFAULT_PROFILE")
                                                       : "default";
  s.credentials_file = !GetEnv("AWS_SHARED_CREDENTIALS_FILE").empty()
                           ? GetEnv("AWS_SHARED_CREDENTIALS_FILE")
                           : Home() + "/.aws/credentials";
  s.config_file =
      !GetEnv("AWS_CONFIG_FILE").empty() ? GetEnv("AWS_CONFIG_FILE") : Home() + "/.aws/config";
  const auto config = ReadIni(s.config_file);
  const auto* profile = config ? ConfigProfile(*config, s.profile) : nullptr;

  s.region = !input.region.empty()                   ? input.region
             : !GetEnv("AWS_REGION").empty()         ? GetEnv("AWS_REGION")
             : !GetEnv("AWS_DEFAULT_REGION").empty() ? GetEnv("AWS_DEFAULT_REGION")
                                                     : Get(profile, "region");
  if (s.region.empty()) {
    return InvalidArgumentError(
        "no AWS region: write aws://REGION (e.g. aws://us-east-1), or set AWS_REGION, or a "
        "region in the profile \"" +
        s.profile + "\" of " + s.config_file);
  }
  static const RE2 kRegion("[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}");
  if (!RE2::FullMatch(s.region, kRegion)) {
    return InvalidArgumentError("\"" + s.region +
                                "\" is not an AWS region name (like us-east-1 or eu-west-2)");
  }

  const bool ignore_configured = GetEnv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") == "true";
  std::string services_endpoint;
  if (profile != nullptr && config) {
    const std::string services = Get(profile, "services");
    if (!services.empty()) {
      auto it = config->find("services " + services);
      if (it != config->end()) services_endpoint = Get(&it->second, "ec2.endpoint_url");
    }
  }
  s.endpoint = !input.endpoint.empty()                   ? input.endpoint
               : ignore_configured                       ? ""
               : !GetEnv("AWS_ENDPOINT_URL_EC2").empty() ? GetEnv("AWS_ENDPOINT_URL_EC2")
               : !GetEnv("AWS_ENDPOINT_URL").empty()     ? GetEnv("AWS_ENDPOINT_URL")
               : !services_endpoint.empty()              ? services_endpoint
                                                         : Get(profile, "endpoint_url");
  if (s.endpoint.empty()) s.endpoint = "https://ec2." + s.region + ".amazonaws.com";
  while (!s.endpoint.empty() && s.endpoint.back() == '/') s.endpoint.pop_back();
  if (s.endpoint.rfind("http://", 0) != 0 && s.endpoint.rfind("https://", 0) != 0) {
    return InvalidArgumentError("EC2 endpoint \"" + s.endpoint +
                                "\" must start with http:// or https://");
  }
  return s;
}

Result<net::AwsCredentials> ResolveAwsCredentials(const AwsSettings& settings) {
  const std::int64_t now = WallNowNs() / 1'000'000'000;
  auto check_expiry = [&](net::AwsCredentials c) -> Result<net::AwsCredentials> {
    if (c.expires_unix_s > 0 && c.expires_unix_s <= now) {
      return PermissionDeniedError("the AWS credentials from " + c.source + " expired " +
                                   std::to_string(now - c.expires_unix_s) +
                                   " s ago; refresh them (aws sso login, a new session token)");
    }
    return c;
  };
  std::string tried = "the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)";
  const std::string env_id = GetEnv("AWS_ACCESS_KEY_ID"),
                    env_secret = GetEnv("AWS_SECRET_ACCESS_KEY");
  if (!env_id.empty() || !env_secret.empty()) {
    if (env_id.empty() || env_secret.empty()) {
      return PermissionDeniedError(std::string("the environment sets ") +
                                   (env_id.empty()
                                        ? "AWS_SECRET_ACCESS_KEY but not AWS_ACCESS_KEY_ID"
                                        : "AWS_ACCESS_KEY_ID but not AWS_SECRET_ACCESS_KEY") +
                                   "; set both, or neither to use a profile");
    }
    net::AwsCredentials c;
    c.access_key_id = env_id;
    c.secret_access_key = env_secret;
    c.session_token = !GetEnv("AWS_SESSION_TOKEN").empty() ? GetEnv("AWS_SESSION_TOKEN")
                                                           : GetEnv("AWS_SECURITY_TOKEN");
    c.expires_unix_s = ParseIso8601(GetEnv("AWS_CREDENTIAL_EXPIRATION"));
    c.source = "the environment";
    return check_expiry(c);
  }
  auto from_section = [&](const std::map<std::string, std::string>* section,
                          const std::string& where) -> std::optional<net::AwsCredentials> {
    const std::string id = Get(section, "aws_access_key_id");
    const std::string secret = Get(section, "aws_secret_access_key");
    if (id.empty() || secret.empty()) return std::nullopt;
    net::AwsCredentials c;
    c.access_key_id = id;
    c.secret_access_key = secret;
    c.session_token = Get(section, "aws_session_token");
    c.source = where;
    return c;
  };
  tried += ", profile \"" + settings.profile + "\" in " + settings.credentials_file;
  if (auto ini = ReadIni(settings.credentials_file)) {
    auto it = ini->find(settings.profile);
    if (auto c =
            from_section(it == ini->end() ? nullptr : &it->second,
                         "profile \"" + settings.profile + "\" in " + settings.credentials_file)) {
      return check_expiry(*c);
    }
  }
  tried += " and " + settings.config_file;
  if (auto ini = ReadIni(settings.config_file)) {
    if (auto c = from_section(ConfigProfile(*ini, settings.profile),
                              "profile \"" + settings.profile + "\" in " + settings.config_file)) {
      return check_expiry(*c);
    }
  }
  if (GetEnv("AWS_EC2_METADATA_DISABLED") != "true") {
    auto c = FromImds(&tried);
    if (c.ok()) return check_expiry(*c);
  }
  return PermissionDeniedError(
      "no AWS credentials found (looked in " + tried +
      "); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with keys in "
      "~/.aws/credentials");
}

}  // namespace bitfusion::internal
