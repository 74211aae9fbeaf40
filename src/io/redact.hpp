#pragma once
// Camera and server URLs carry credentials (rtsp://user:secret@host/...); nothing vapipe logs, shows or
// answers may contain them. This masks the password of every URL in a text.
#include <string>
#include <string_view>

namespace vapipe::io {

// "open rtsp://admin:pw@cam/1 failed" -> "open rtsp://admin:***@cam/1 failed". The user info ends at the
// authority's last '@' (a password may contain an unescaped '@'); URLs without a password are unchanged.
std::string redact_credentials(std::string_view text);

}  // namespace vapipe::io
