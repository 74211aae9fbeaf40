#pragma once
// FFmpeg's own log (av_log) sent to spdlog instead of stderr, one line per message, at most a few
// repeats of the same text per interval: a corrupt stream makes libavcodec print the same complaint for
// every frame, and a camera that is down for an hour must not fill the disk.
namespace vapipe::io {

// Installs the callback (idempotent, process-wide). FFmpeg messages below `AV_LOG_WARNING` (info,
// verbose, debug) are dropped unless spdlog runs at debug level.
void route_ffmpeg_log_to_spdlog();

}  // namespace vapipe::io
