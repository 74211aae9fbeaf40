#include "apps/vapipe/commands.hpp"
#include "core/error.hpp"

namespace vapipe::cli {

void register_bench(CLI::App& app) {
  auto* command = app.add_subcommand("bench", "(being written)");
  command->callback([] { fail("'bench' is not implemented yet"); });
}

}  // namespace vapipe::cli
