#include "apps/vapipe/commands.hpp"
#include "core/error.hpp"

namespace vapipe::cli {

void register_info(CLI::App& app) {
  auto* command = app.add_subcommand("info", "(being written)");
  command->callback([] { fail("'info' is not implemented yet"); });
}

}  // namespace vapipe::cli
