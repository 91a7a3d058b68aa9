// The relay tree's deterministic simulation over many seeds: a root, two relays, users on each,
// faulty links and crashing nodes on a manual clock. A failing seed is printed;
// WAYMARK_RELAY_SIM_SEED=<n> replays it alone and WAYMARK_RELAY_SIM_SEEDS=<count> changes how
// many run (default 1000); WAYMARK_RELAY_SIM_ROW=<id> traces one row's states on stderr.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

#include "core/relay_simulation.h"

using waymark::sim::RelaySimOptions;
using waymark::sim::RelaySimulation;

namespace {

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* value = std::getenv(name);
  return value && *value ? std::strtoull(value, nullptr, 10) : fallback;
}

}  // namespace

TEST_CASE("relay simulation: acked once at the root, every log a prefix of the root's, one order",
          "[simulation][relay]") {
  std::uint64_t first = env_number("WAYMARK_RELAY_SIM_SEED", 1);
  std::uint64_t count =
      std::getenv("WAYMARK_RELAY_SIM_SEED") ? 1 : env_number("WAYMARK_RELAY_SIM_SEEDS", 1000);
  std::uint64_t messages = 0, failures = 0;
  for (std::uint64_t seed = first; seed < first + count; ++seed) {
    RelaySimulation simulation(seed, RelaySimOptions{});
    bool converged = simulation.run();
    auto problems = simulation.check_properties();
    messages += simulation.root_messages();
    if (std::getenv("WAYMARK_RELAY_SIM_SEED")) WARN(simulation.summary());  // a replay says what it did
    if (converged && problems.empty()) continue;
    ++failures;
    std::string report = simulation.summary() + (converged ? "" : " (did not converge)");
    for (std::size_t i = 0; i < problems.size() && i < 10; ++i) report += "\n  " + problems[i];
    FAIL_CHECK("replay with WAYMARK_RELAY_SIM_SEED=" << seed << "\n" << report);
    if (failures >= 5) break;
  }
  INFO(count << " seeds, " << messages << " messages at the root");
  CHECK(failures == 0);
  CHECK(messages > 0);
}

TEST_CASE("relay simulation: a calm tree converges with every send", "[simulation][relay]") {
  RelaySimOptions calm;
  calm.link_faults = 0;
  calm.client_cuts = 0;
  calm.root_crashes = 0;
  calm.relay_crashes = 0;
  calm.client_reloads = 0;
  calm.duplicate_probability = 0;
  calm.refuse_probability = 0;
  calm.store_failure_probability = 0;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    RelaySimulation simulation(seed, calm);
    INFO("seed " << seed);
    REQUIRE(simulation.run());
    auto problems = simulation.check_properties();
    INFO((problems.empty() ? std::string() : problems.front()));
    REQUIRE(problems.empty());
    REQUIRE(simulation.root_messages() ==
            static_cast<std::size_t>(3 * calm.clients_per_node * calm.sends_per_client));
  }
}
