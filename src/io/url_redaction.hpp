#pragma once
// Addresses as they may be logged and shown: camera and server URLs often carry a password
// (rtsp://user:secret@host/...), which must never reach the log, the statistics or a live server's clients.
#include <string>
#include <string_view>

namespace vapipe::io {

// rtsp://user:secret@host/x -> rtsp://user:***@host/x; anything without a password (files, URLs without
// user info, or with a user name only) comes back unchanged.
std::string redact_credentials(std::string_view address);

}  // namespace vapipe::io
