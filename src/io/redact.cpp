#include "io/redact.hpp"

#include <algorithm>

namespace vapipe::io {

std::string redact_credentials(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t copied = 0;
  for (std::size_t scheme = text.find("://"); scheme != std::string_view::npos;
       scheme = text.find("://", scheme + 3)) {
    const std::size_t authority = scheme + 3;
    // The authority ends at the path, query or fragment, or at whitespace or a quote around the URL.
    const std::size_t end = std::min(text.find_first_of("/?# \t\r\n\"'", authority), text.size());
    const std::string_view userinfo_host = text.substr(authority, end - authority);
    const std::size_t at = userinfo_host.rfind('@');
    if (at == std::string_view::npos) continue;
    const std::size_t colon = userinfo_host.find(':');
    if (colon == std::string_view::npos || colon > at) continue;
    out.append(text.substr(copied, authority + colon + 1 - copied));
    out += "***";
    copied = authority + at;
  }
  out.append(text.substr(copied));
  return out;
}

}  // namespace vapipe::io
