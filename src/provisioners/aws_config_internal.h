// The settings AWS users expect to be honoured, in botocore's order: credentials from the
// environment, then ~/.aws/credentials and ~/.aws/config (AWS_PROFILE), then the instance's
// role through IMDSv2; the region and the endpoint from the URI, the environment or the
// profile. Secrets stay in AwsCredentials and never enter a message.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "bitfusion/status.h"
#include "net/sigv4.h"

namespace bitfusion::internal {

/// One INI file as AWS writes them: section -> key -> value. Indented lines belong to the key
/// above (the nested `ec2 =` blocks of a services section) and are kept as "key.subkey".
using AwsIni = std::map<std::string, std::map<std::string, std::string>>;
AwsIni ParseAwsIni(const std::string& text);

/// The instance role's credentials as IMDS answers them (`GET
/// /latest/meta-data/iam/security-credentials/ROLE`, HTTP `status`): AccessKeyId,
/// SecretAccessKey, Token, Expiration. NotFound for another status, a body that is not a JSON
/// object, or one without both keys; the message never holds the body.
Result<net::AwsCredentials> ParseImdsCredentials(int status, const std::string& body,
                                                 const std::string& role);

/// Where to look; empty fields fall back to the environment and then to the defaults.
struct AwsSettingsInput {
  std::string region;    ///< from the URI
  std::string endpoint;  ///< from the URI (?endpoint=)
  std::string profile;   ///< from the URI (?profile=)
};

struct AwsSettings {
  std::string region;
  std::string endpoint;  ///< "https://ec2.us-east-1.amazonaws.com" or an override
  std::string profile;
  std::string credentials_file, config_file;
};

/// Region: URI, AWS_REGION, AWS_DEFAULT_REGION, the profile's `region`. Endpoint: URI,
/// AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL, the profile's services `ec2.endpoint_url`, its
/// `endpoint_url` (AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true skips all but the URI), else
/// https://ec2.REGION.amazonaws.com. InvalidArgument for a missing or malformed region.
Result<AwsSettings> ResolveAwsSettings(const AwsSettingsInput& input);

/// The first credentials the chain finds: environment, the credentials file's profile, the
/// config file's profile, IMDSv2 (unless AWS_EC2_METADATA_DISABLED=true;
/// AWS_EC2_METADATA_SERVICE_ENDPOINT moves it). PermissionDenied naming every place looked in
/// when none has any, or when the ones found have expired.
Result<net::AwsCredentials> ResolveAwsCredentials(const AwsSettings& settings);

}  // namespace bitfusion::internal
