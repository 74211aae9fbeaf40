// The version strings come from CMake (src/infer/CMakeLists.txt): the project's version and the git
// revision read when the build was configured.
#include <fmt/format.h>

#include "vapipe/runtime.hpp"

namespace vapipe {

std::string_view version() { return VAPIPE_VERSION; }
std::string_view git_revision() { return VAPIPE_GIT_REVISION; }
std::string version_line() {
  return fmt::format("vapipe {} (git {}, oneDNN ISA {})", version(), git_revision(), cpu_isa());
}

}  // namespace vapipe
