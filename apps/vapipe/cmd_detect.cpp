#include "apps/vapipe/commands.hpp"
#include "core/error.hpp"

namespace vapipe::cli {

void register_detect(CLI::App& app) {
  auto* command = app.add_subcommand("detect", "(being written)");
  command->callback([] { fail("'detect' is not implemented yet"); });
}

}  // namespace vapipe::cli
