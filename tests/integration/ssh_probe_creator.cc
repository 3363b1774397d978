// The controller for the host+ssh:// killed-controller test: makes the source named by argv[1],
// prints the remote probe's directory once it runs, and waits to be killed (SIGKILL: nothing of
// bitfusion's cleanup runs).
//
//   ssh_probe_creator URI
#include <unistd.h>

#include <cstdio>

#include "bitfusion/uri.h"
#include "metrics/ssh_probe_source.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: ssh_probe_creator URI\n");
    return 2;
  }
  auto uri = bitfusion::Uri::Parse(argv[1]);
  auto options = uri.ok() ? bitfusion::SshProbeSourceOptions::FromUri(*uri)
                          : bitfusion::Result<bitfusion::SshProbeSourceOptions>(uri.error());
  auto source =
      options.ok() ? bitfusion::SshProbeSource::Make(*options)
                   : bitfusion::Result<std::shared_ptr<bitfusion::SshProbeSource>>(options.error());
  if (!source.ok()) {
    std::fprintf(stderr, "ssh_probe_creator: %s\n", source.error().ToString().c_str());
    return 1;
  }
  std::printf("%s\n", (*source)->remote_dir().c_str());
  std::fflush(stdout);
  for (;;) ::pause();
}
