#include "io/url_redaction.hpp"

namespace vapipe::io {

std::string redact_credentials(std::string_view address) {
  const std::size_t scheme = address.find("://");
  if (scheme == std::string_view::npos) return std::string(address);
  // The user info ends at the last '@' before the path: a password may itself contain '@'.
  const std::size_t slash = address.find('/', scheme + 3);
  const std::size_t at = address.substr(0, slash).rfind('@');
  if (at == std::string_view::npos || at < scheme + 3) return std::string(address);
  const std::size_t colon = address.find(':', scheme + 3);
  if (colon == std::string_view::npos || colon > at) return std::string(address);
  std::string redacted(address.substr(0, colon + 1));
  redacted += "***";
  redacted += address.substr(at);
  return redacted;
}

}  // namespace vapipe::io
