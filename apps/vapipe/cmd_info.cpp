#include <filesystem>

#include <fmt/format.h>

#include "apps/vapipe/commands.hpp"
#include "core/error.hpp"
#include "core/package.hpp"
#include "core/package_info.hpp"

namespace vapipe::cli {
namespace {

void print_info(const std::string& path, bool as_json, bool layers) {
  const ir::Package package = ir::read_package(path);
  const auto file_bytes = std::filesystem::file_size(path);
  fmt::print("{}", ir::describe_package(package, path, file_bytes, {.as_json = as_json, .layers = layers}));
}

}  // namespace

void register_info(CLI::App& app) {
  auto* command =
      app.add_subcommand("info", "Print the networks, stages, tensors and precision of a .vpk package");
  static std::string path;
  static bool as_json = false;
  static bool layers = false;
  command->add_option("package", path, "Package file (.vpk)")->required();
  command->add_flag("--json", as_json, "Print one JSON object");
  command->add_flag("--layers", layers,
                    "List every layer of the first stage with its precision and output dtype");
  command->callback([] { print_info(path, as_json, layers); });
}

}  // namespace vapipe::cli
