// Links the installed libbitfusion: fingerprints this host, samples it for 50 ms into a JSONL
// file under the given directory, and checks the file holds what was sampled.
#include <bitfusion/bitfusion.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

int main(int argc, char** argv) {
  using namespace bitfusion;
  const std::string dir = argc > 1 ? argv[1] : ".";
  auto machine = ProvisionerFromUri("local://").value()->WaitReady("local", kNoDeadline);
  if (!machine) return std::fprintf(stderr, "%s\n", machine.error().ToString().c_str()), 1;

  const std::string path = dir + "/consumer.jsonl";
  std::remove(path.c_str());  // from an earlier consumer
  auto sink = ResultSinkFromUri("jsonl://" + path);
  if (!sink) return std::fprintf(stderr, "%s\n", sink.error().ToString().c_str()), 1;
  auto stream = MetricStream::Make({}).value();
  if (!stream->Add("host").ok() || !stream->Attach(*sink).ok() || !stream->Start().ok()) return 1;
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (!stream->Stop().ok() || !(*sink)->Close().ok()) return 1;

#ifdef BITFUSION_CONSUMER_POSTGRES
  // Linked with the postgres component (and nothing of it named): postgres:// is registered.
  // No server listens on port 1; the sink only spools until one does.
  auto pg = ResultSinkFromUri("postgres://bench@127.0.0.1:1/results?spool=" + dir +
                              "/pg-spool&flush_timeout=100ms");
  if (!pg)
    return std::fprintf(stderr, "postgres component: %s\n", pg.error().ToString().c_str()), 1;
  (void)(*pg)->Close();
  std::printf("postgres:// is registered (the postgres component)\n");
#endif

  std::ifstream in(path);
  long lines = 0;
  for (std::string line; std::getline(in, line);) ++lines;
  std::printf("bitfusion %s on %s (%d threads): %ld samples in %s\n", Version(),
              machine->hostname.c_str(), machine->cpu.threads, lines, path.c_str());
  return lines > 0 && lines == stream->Overhead().samples ? 0 : 1;
}
