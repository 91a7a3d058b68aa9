// The deterministic simulation, run over many seeds: clients, the edge logic and a faulty
// network on a manual clock. A failing seed is printed; WAYMARK_SIM_SEED=<n> replays it alone
// and WAYMARK_SIM_SEEDS=<count> changes how many run (default 1000).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

#include "core/simulation.h"

using waymark::sim::SimOptions;
using waymark::sim::Simulation;

namespace {

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* value = std::getenv(name);
  return value && *value ? std::strtoull(value, nullptr, 10) : fallback;
}

}  // namespace

TEST_CASE("simulation: every send is one sequenced row, histories identical and gap-free",
          "[simulation]") {
  std::uint64_t first = env_number("WAYMARK_SIM_SEED", 1);
  std::uint64_t count = std::getenv("WAYMARK_SIM_SEED") ? 1 : env_number("WAYMARK_SIM_SEEDS", 1000);
  std::uint64_t messages = 0, failures = 0;
  for (std::uint64_t seed = first; seed < first + count; ++seed) {
    Simulation simulation(seed, SimOptions{});
    bool converged = simulation.run();
    auto problems = simulation.check_properties();
    messages += simulation.store().data().ids.size();
    if (converged && problems.empty()) continue;
    ++failures;
    std::string report = simulation.summary() + (converged ? "" : " (did not converge)");
    for (std::size_t i = 0; i < problems.size() && i < 10; ++i) report += "\n  " + problems[i];
    FAIL_CHECK("replay with WAYMARK_SIM_SEED=" << seed << "\n" << report);
    if (failures >= 5) break;
  }
  INFO(count << " seeds, " << messages << " messages stored");
  CHECK(failures == 0);
  CHECK(messages > 0);
}

TEST_CASE("simulation: a calm network converges too", "[simulation]") {
  SimOptions calm;
  calm.cuts = 0;
  calm.edge_crashes = 0;
  calm.client_reloads = 0;
  calm.duplicate_probability = 0;
  calm.refuse_probability = 0;
  calm.store_failure_probability = 0;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    Simulation simulation(seed, calm);
    INFO("seed " << seed);
    REQUIRE(simulation.run());
    auto problems = simulation.check_properties();
    INFO((problems.empty() ? std::string() : problems.front()));
    REQUIRE(problems.empty());
    REQUIRE(simulation.store().data().ids.size() ==
            static_cast<std::size_t>(calm.clients * calm.sends_per_client));
  }
}
