#include "apps/vapipe/commands.hpp"
#include "core/error.hpp"

namespace vapipe::cli {

void register_combine(CLI::App& app) {
  auto* command = app.add_subcommand("combine", "(being written)");
  command->callback([] { fail("'combine' is not implemented yet"); });
}

}  // namespace vapipe::cli
