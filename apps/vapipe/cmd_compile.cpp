#include "apps/vapipe/commands.hpp"
#include "core/error.hpp"

namespace vapipe::cli {

void register_compile(CLI::App& app) {
  auto* command = app.add_subcommand("compile", "(being written)");
  command->callback([] { fail("'compile' is not implemented yet"); });
}

}  // namespace vapipe::cli
