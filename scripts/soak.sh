#!/usr/bin/env bash
# Soak of `vapipe run`: 4 channels (a looping file, an RTSP camera killed and restarted every cycle, two files
# played once), a channel removed and one added through the control API every cycle; checks that fds and
# threads return to their level after each removal, RSS growth, and per-channel frame accounting from the
# final summary. Details: scripts/soak.py and docs/reliability.md (## Soak).
#   bash scripts/soak.sh [--minutes N] [--short] [--keep] [--rss-growth-mib M]
# Needs the build (BUILD_DIR, default build/), Debian's python3-gi + gir1.2-gst-rtsp-server-1.0 (the camera)
# and ../shared/models/yolofastestv2.onnx (or $VAPIPE_MODELS).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Debian's python3 (not a pyenv or venv one): python3-gi is installed for it.
PYTHONDONTWRITEBYTECODE=1 exec /usr/bin/python3 scripts/soak.py "$@"
