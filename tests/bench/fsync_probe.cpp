// waymark-fsync-probe: the disk's durability ceiling. Writes `count` blocks of `block` bytes
// in place into a preallocated file in DIR, each followed by fdatasync (what LMDB's commit
// pays, at most once per group commit), and prints one JSON line with the latencies in ms.
// Usage: waymark-fsync-probe DIR [count=1000] [block=4096]; --help prints it, a bad argument
// exits 2.
#include <CLI/CLI.hpp>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  std::string dir;
  long count = 1000;
  long block = 4096;
  CLI::App app{"waymark-fsync-probe: fdatasync latency of DIR's disk (the benchmarks' durability "
               "ceiling), one JSON line on stdout"};
  app.add_option("dir", dir, "Directory to write the probe file in")->required()->check(CLI::ExistingDirectory);
  app.add_option("count", count, "Blocks written, each followed by fdatasync")
      ->capture_default_str()->check(CLI::Range(1L, 1000000000L));
  app.add_option("block", block, "Bytes per block")->capture_default_str()->check(CLI::Range(1L, 1L << 30));
  app.failure_message(CLI::FailureMessage::help);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  std::string path = dir + "/fsync-probe.dat";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) {
    std::perror("open");
    return 1;
  }
  const long span = 256;  // blocks the writes cycle over: the file's size never changes
  if (posix_fallocate(fd, 0, span * block) != 0 || fsync(fd) != 0) {
    std::perror("fallocate");
    return 1;
  }
  std::vector<char> data(static_cast<std::size_t>(block), 'w');
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(count));
  for (long i = 0; i < count; ++i) {
    data[0] = static_cast<char>(i);
    auto start = std::chrono::steady_clock::now();
    if (pwrite(fd, data.data(), data.size(), (i % span) * block) != block || fdatasync(fd) != 0) {
      std::perror("write");
      return 1;
    }
    samples.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  ::close(fd);
  ::unlink(path.c_str());
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) { return samples[std::min(samples.size() - 1, static_cast<std::size_t>(q * samples.size()))]; };
  std::printf("{\"probe\":\"fdatasync\",\"count\":%ld,\"block\":%ld,\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"p999_ms\":%.4f,\"max_ms\":%.4f}\n",
              count, block, at(0.5), at(0.99), at(0.999), samples.back());
  return 0;
}
