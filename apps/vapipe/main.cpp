#include <csignal>
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "apps/vapipe/commands.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "vapipe/runtime.hpp"

int main(int argc, char** argv) {
  // A reader that goes away (`vapipe run ... | head`, a dropped TCP output) must not kill the process with
  // SIGPIPE before the outputs are drained: writes fail with EPIPE instead and each output handles it.
  std::signal(SIGPIPE, SIG_IGN);
  // The log is for people and goes to stderr; stdout carries results (JSON Lines, statistics).
  spdlog::set_default_logger(spdlog::stderr_color_mt("vapipe"));
  // Control characters in logged values (a camera address, a model name) are escaped (core/log.hpp).
  spdlog::set_formatter(vapipe::make_log_formatter("[%Y-%m-%d %H:%M:%S.%e] [%l] %v"));
  CLI::App app{"vapipe: compile detection models and run them on video streams"};
  app.require_subcommand(1);
  // The same line as the Python module's vapipe.version_line(): version, git revision, oneDNN's ISA here.
  app.set_version_flag("--version", [] { return vapipe::version_line(); });
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Log debug details to stderr");
  app.parse_complete_callback(
      [&] { spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::warn); });
  vapipe::cli::register_compile(app);
  vapipe::cli::register_combine(app);
  vapipe::cli::register_info(app);
  vapipe::cli::register_bench(app);
  vapipe::cli::register_detect(app);
#if VAPIPE_WITH_RUN  // a runtime-only build (VAPIPE_RUNTIME_ONLY, e.g. the aarch64 one) has no video pipeline
  vapipe::cli::register_run(app);
#endif
  vapipe::cli::register_compare(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // --help and --version print and exit 0; a usage error is one line, like every other error.
    if (error.get_exit_code() == 0) return app.exit(error);
    std::fprintf(stderr, "vapipe: error: %s (--help lists the options)\n", error.what());
    return error.get_exit_code();
  } catch (const std::exception& error) {
    // One line a script or a person can act on; the message names the file, node or key.
    std::fprintf(stderr, "vapipe: error: %s\n", vapipe::printable(error.what()).c_str());
    return 1;
  }
  return 0;
}
