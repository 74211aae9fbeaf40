#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "apps/vapipe/commands.hpp"
#include "core/error.hpp"
#include "core/package.hpp"

namespace vapipe::cli {
namespace {

struct CombineArgs {
  std::vector<std::string> inputs;
  std::string output;
};

void run_combine(const CombineArgs& args) {
  ir::Package combined;
  std::map<std::string, std::string> origin;  // network name -> file that brought it
  for (const auto& path : args.inputs) {
    ir::Package package = ir::read_package(path);
    for (auto& network : package.networks) {
      const auto [it, inserted] = origin.emplace(network.name, path);
      if (!inserted)
        fail("network '{}' is in both {} and {}; recompile one with --name", network.name, it->second, path);
      combined.networks.push_back(std::move(network));
    }
  }
  ir::write_package(combined, args.output);
  std::printf("%s: %zu network(s) from %zu file(s)\n", args.output.c_str(), combined.networks.size(),
              args.inputs.size());
}

}  // namespace

void register_combine(CLI::App& app) {
  auto args = std::make_shared<CombineArgs>();
  auto* command = app.add_subcommand("combine", "Merge the networks of several .vpk packages into one");
  command->add_option("inputs", args->inputs, "Input .vpk files")->required();
  command->add_option("-o,--output", args->output, "Output .vpk file")->required();
  command->callback([args] { run_combine(*args); });
}

}  // namespace vapipe::cli
