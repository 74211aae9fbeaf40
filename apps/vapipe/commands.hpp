#pragma once
#include <CLI/CLI.hpp>

namespace vapipe::cli {

// Each subcommand registers itself on the root app; its callback runs during parse and throws
// vapipe::Error on failure (main turns that into one error line and exit code 1).
void register_compile(CLI::App& app);
void register_combine(CLI::App& app);
void register_info(CLI::App& app);
void register_bench(CLI::App& app);
void register_detect(CLI::App& app);
void register_run(CLI::App& app);
void register_compare(CLI::App& app);

}  // namespace vapipe::cli
