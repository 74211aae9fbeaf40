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

// Checks of numeric options whose errors name the bound in words (cli_checks.cpp).
CLI::Validator positive_number();
CLI::Validator non_negative_number();
// --threads: 0 (every core) to vapipe::max_threads(); more crashes libgomp or only adds switching.
CLI::Validator thread_count();

}  // namespace vapipe::cli
