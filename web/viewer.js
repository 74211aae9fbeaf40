// vapipe web viewer: a tile per channel with live video and the detections drawn over it, fps/latency
// charts and the statistics table. Served by `vapipe run` (the `http` section of the config); no external
// files. Video: H.264 in fragmented MP4 over a WebSocket into Media Source Extensions where the browser
// plays it (measured on Debian's chromium, docs/viewer.md), else JPEG pictures. Each frame's results come
// with `t`, the frame's time on the video's own timeline, so boxes are drawn over the frame they belong to.
//
// URL parameters: ?token=T (sent to the API and WebSockets), ?mode=jpeg|mse (force a video path).
'use strict';

(() => {
  const params = new URLSearchParams(location.search);
  const token = params.get('token');
  const forcedMode = params.get('mode');
  const kProbeMime = 'video/mp4; codecs="avc1.42E01E"';
  const mseUsable = typeof MediaSource !== 'undefined' && MediaSource.isTypeSupported(kProbeMime);
  const kChannelsEveryMs = 2000;
  const kStatsEveryMs = 2000;
  const kHistoryEveryMs = 5000;
  const kReconnectMs = 2000;
  const kStallFallbackMs = 8000;  // MSE fed but never presenting a frame: this browser cannot play it
  const kLiveEdgeS = 1.0;         // behind the newest buffered frame by more: jump forward
  const kKeepBufferS = 20;
  const palette = ['#ff6b6b', '#4fb3ff', '#ffd93d', '#6bff95', '#c77dff', '#ff9f43', '#00d2d3', '#f368e0',
    '#a3cb38', '#ee5a24', '#1289a7', '#d980fa'];

  const showLabels = document.getElementById('show-labels');
  const showTracks = document.getElementById('show-tracks');
  const showKeypoints = document.getElementById('show-keypoints');
  const showMasks = document.getElementById('show-masks');
  const grid = document.getElementById('grid');
  const summary = document.getElementById('summary');
  const playback = document.getElementById('playback');

  function authHeaders() { return token ? { Authorization: `Bearer ${token}` } : {}; }

  async function api(path) {
    const response = await fetch(path, { headers: authHeaders(), cache: 'no-store' });
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }

  function socketUrl(path, channel) {
    const url = new URL(path, location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('channel', channel);
    if (token) url.searchParams.set('token', token);
    return url.href;
  }

  function colour(index) { return palette[((index % palette.length) + palette.length) % palette.length]; }

  // GET /api/channels: {"channels": [{"id", "name", "model", "address", "state", "counters", ...}]}.
  function channelsOf(json) {
    // A channel being removed drains its last frames for a while: it is gone for the user already.
    return (json.channels || []).filter((c) => c.state !== 'removed' && c.state !== 'removing');
  }

  // Results by media time; out of order is fine (B-frames arrive in decode order).
  class Timeline {
    constructor() { this.items = []; }
    clear() { this.items = []; }
    add(t, record) {
      let i = this.items.length;
      while (i > 0 && this.items[i - 1].t > t) --i;
      this.items.splice(i, 0, { t, record });
      if (this.items.length > 900) this.items.splice(0, this.items.length - 900);
    }
    // The frame shown at `t`: the last one at or before it ({t, record}).
    at(t) {
      for (let i = this.items.length - 1; i >= 0; --i) {
        if (this.items[i].t <= t + 0.002) return this.items[i];
      }
      return null;
    }
  }

  const kMinKeypointScore = 0.3;  // a keypoint below it is not drawn (as vision/osd.hpp's)
  const kKeypointColour = '#ffff00';

  // The pairs of keypoints joined by lines for a detection of `classId`: the second stage's skeleton for the
  // classes it runs on, else the detector's; both from the channel's description (GET /api/channels:
  // "skeleton", "secondary"), since the per-frame records carry none.
  function skeletonFor(info, classId) {
    const secondary = info && info.secondary;
    if (secondary && (secondary.classes || []).includes(classId)) return secondary.skeleton || [];
    return (info && info.skeleton) || [];
  }

  // The text over a box, as the annotated output writes it (models/detection_label.hpp): class and score,
  // or a face's identity (name or "unknown") and similarity, then the track.
  function labelOf(d, { labels, tracks }) {
    const parts = [];
    if (labels) {
      parts.push(d.identity ? `${d.identity.name} ${d.identity.similarity.toFixed(2)}`
        : `${d.label} ${d.score.toFixed(2)}`);
    }
    if (tracks && d.track_id >= 0) parts.push(`#${d.track_id}`);
    return parts.join(' ');
  }

  const kMaskAlpha = 128;  // half the box's colour over the picture, as the annotated output blends it

  // Paints an instance mask ({origin: [x, y], size: [height, width], counts}: COCO's uncompressed RLE over the
  // box's pixels, column-major, first run of 0; models/detection_json.hpp) in `fill` (#rrggbb), half
  // transparent. Returns whether it painted.
  function drawMask(context, mask, fill) {
    const [height, width] = mask.size || [0, 0];
    if (!(width > 0 && height > 0) || !Array.isArray(mask.counts)) return false;
    const image = context.createImageData(width, height);
    const rgb = [1, 3, 5].map((i) => parseInt(fill.slice(i, i + 2), 16));
    let position = 0;
    mask.counts.forEach((count, i) => {
      if (i % 2 === 1) {
        for (let p = position; p < position + count && p < width * height; ++p) {
          const at = ((p % height) * width + Math.floor(p / height)) * 4;
          image.data.set([rgb[0], rgb[1], rgb[2], kMaskAlpha], at);
        }
      }
      position += count;
    });
    // Through a canvas of its own: putImageData would replace what lies under the mask, drawImage blends.
    const sprite = document.createElement('canvas');
    sprite.width = width;
    sprite.height = height;
    sprite.getContext('2d').putImageData(image, 0, 0);
    context.drawImage(sprite, mask.origin[0], mask.origin[1]);
    return true;
  }

  // Draws one JSON Lines record (detections in source pixels: box, keypoints [[x, y, score]], identity, mask)
  // on a context the size of the source picture, after clearing it. Returns what was drawn (tests read it).
  function drawRecord(context, record, info, options) {
    const { canvas } = context;
    const drawn = { boxes: 0, points: 0, lines: 0, masks: 0, labels: [] };
    context.clearRect(0, 0, canvas.width, canvas.height);
    // Masks under every box and label.
    if (options.masks !== false) {
      for (const d of record.detections) {
        const tracked = options.tracks && d.track_id >= 0;
        if (d.mask && drawMask(context, d.mask, colour(tracked ? d.track_id : d.class_id))) drawn.masks += 1;
      }
    }
    const line = Math.max(2, Math.round(canvas.height / 240));
    const fontPx = Math.max(12, Math.round(canvas.height / 32));
    context.lineWidth = line;
    context.font = `${fontPx}px system-ui, sans-serif`;
    context.textBaseline = 'bottom';
    for (const d of record.detections) {
      const [x1, y1, x2, y2] = d.box;
      const tracked = options.tracks && d.track_id >= 0;
      const stroke = colour(tracked ? d.track_id : d.class_id);
      context.strokeStyle = stroke;
      context.strokeRect(x1, y1, x2 - x1, y2 - y1);
      drawn.boxes += 1;
      const points = (options.keypoints !== false && d.keypoints) || [];
      const shown = points.map((p) => p[2] >= kMinKeypointScore);
      context.beginPath();
      for (const [a, b] of skeletonFor(info, d.class_id)) {
        if (!shown[a] || !shown[b]) continue;
        context.moveTo(points[a][0], points[a][1]);
        context.lineTo(points[b][0], points[b][1]);
        drawn.lines += 1;
      }
      context.stroke();
      context.fillStyle = kKeypointColour;
      points.forEach(([x, y], i) => {
        if (!shown[i]) return;
        context.beginPath();
        context.arc(x, y, line + 1, 0, 2 * Math.PI);
        context.fill();
        drawn.points += 1;
      });
      const text = labelOf(d, options);
      if (!text) continue;
      const width = context.measureText(text).width + 6;
      const top = Math.max(fontPx + 2, y1);
      context.fillStyle = stroke;
      context.fillRect(x1 - line / 2, top - fontPx - 2, width, fontPx + 2);
      context.fillStyle = '#000';
      context.fillText(text, x1 + 3, top);
      drawn.labels.push(text);
    }
    return drawn;
  }

  class Tile {
    constructor(channel) {
      this.name = channel.name;
      this.info = channel;
      this.timeline = new Timeline();
      this.frames = 0;  // pictures presented (video frames or JPEGs): tests read it
      this.disposed = false;
      this.build();
      this.mode = forcedMode === 'jpeg' || !mseUsable ? 'jpeg' : 'mse';
      this.reason = !mseUsable && forcedMode !== 'jpeg' ? 'no H.264 in MediaSource' : '';
      this.connect();
    }

    build() {
      this.root = document.createElement('article');
      this.root.className = 'tile';
      this.root.dataset.channel = this.name;
      this.screen = document.createElement('div');
      this.screen.className = 'screen';
      this.video = document.createElement('video');
      this.video.muted = true;
      this.video.playsInline = true;
      this.picture = document.createElement('canvas');  // JPEG pictures
      this.picture.className = 'picture';
      this.picture.hidden = true;
      this.overlay = document.createElement('canvas');
      this.overlay.className = 'overlay';
      this.screen.append(this.video, this.picture, this.overlay);
      const caption = document.createElement('div');
      caption.className = 'caption';
      this.title = document.createElement('span');
      this.title.className = 'name';
      this.title.textContent = this.name;
      this.fpsText = document.createElement('span');
      this.status = document.createElement('span');
      this.status.className = 'status';
      caption.append(this.title, this.fpsText, this.status);
      this.root.append(this.screen, caption);
      this.root.addEventListener('click', () => {
        const enlarge = !this.root.classList.contains('enlarged');
        for (const other of grid.querySelectorAll('.tile.enlarged')) other.classList.remove('enlarged');
        this.root.classList.toggle('enlarged', enlarge);
      });
    }

    setStatus(text) { this.status.textContent = text; }

    connect() {
      if (this.disposed) return;
      this.root.dataset.mode = this.mode;
      this.video.hidden = this.mode !== 'mse';
      this.picture.hidden = this.mode !== 'jpeg';
      const path = this.mode === 'mse' ? '/ws/video' : '/ws/jpeg';
      const socket = new WebSocket(socketUrl(path, this.name));
      socket.binaryType = 'arraybuffer';
      this.socket = socket;
      this.setStatus('connecting');
      socket.onmessage = (event) => {
        if (typeof event.data === 'string') {
          this.onControl(JSON.parse(event.data));
        } else if (this.mode === 'mse') {
          this.onFragment(event.data);
        } else {
          this.onJpeg(event.data);
        }
      };
      socket.onclose = () => {
        if (this.socket !== socket || this.disposed) return;
        this.setStatus('reconnecting');
        this.reconnectTimer = setTimeout(() => this.connect(), kReconnectMs);
      };
    }

    onControl(message) {
      switch (message.type) {
        case 'init':
          if (!MediaSource.isTypeSupported(message.mime)) {
            this.fallBack(`${message.codec} not playable here`);
            return;
          }
          this.setAspect(message.width, message.height);
          this.startMse(message.mime);
          this.setStatus(`${message.codec} · MSE`);
          break;
        case 'hello':
          this.setAspect(message.width, message.height);
          this.setStatus(`JPEG${this.reason ? ` (${this.reason})` : ''}`);
          break;
        case 'frame':
          this.timeline.add(message.t, message.record);
          this.fpsText.textContent = `${message.fps.toFixed(1)} fps`;
          // A record that arrives after its picture was presented is drawn at once: otherwise (MSE) the
          // previous frame's boxes stay until the next picture, which never comes while the video stalls.
          if (this.lastPictureT !== undefined &&
              (this.pendingRedraw ||
               (message.t <= this.lastPictureT + 0.002 && message.t > (this.drawnT ?? -Infinity)))) {
            this.draw(this.lastPictureT);
          }
          break;
        case 'unsupported':
          this.fallBack(message.error || 'video not available');
          break;
        case 'closed':
          this.setStatus('channel closed');
          break;
        case 'error':
          this.setStatus(message.error);
          break;
        default:
          break;
      }
      updatePlayback();
    }

    setAspect(width, height) {
      if (width > 0 && height > 0) this.screen.style.setProperty('--aspect', `${width} / ${height}`);
    }

    fallBack(reason) {
      if (this.mode === 'jpeg') return;
      this.reason = reason;
      this.mode = 'jpeg';
      this.stopMse();
      const socket = this.socket;
      this.socket = null;
      if (socket) socket.close();
      this.connect();
      updatePlayback();
    }

    // ---- Media Source Extensions
    startMse(mime) {
      this.stopMse();
      this.timeline.clear();
      this.queue = [];
      const source = new MediaSource();
      this.mediaSource = source;
      this.objectUrl = URL.createObjectURL(source);
      this.video.src = this.objectUrl;
      this.fedAt = 0;
      this.presentedAt = performance.now();
      source.addEventListener('sourceopen', () => {
        if (this.mediaSource !== source) return;
        try {
          this.buffer = source.addSourceBuffer(mime);
        } catch (error) {
          this.fallBack(`MediaSource refused ${mime}`);
          return;
        }
        this.buffer.mode = 'segments';
        this.buffer.addEventListener('updateend', () => this.pump());
        this.buffer.addEventListener('error', () => this.fallBack('the video could not be decoded'));
        this.pump();
      }, { once: true });
      const presented = (now, metadata) => {
        if (this.mediaSource !== source) return;
        this.frames += 1;
        this.presentedAt = performance.now();
        this.root.dataset.frames = String(this.frames);
        this.lastPictureT = metadata.mediaTime;
        this.draw(metadata.mediaTime);
        this.video.requestVideoFrameCallback(presented);
      };
      this.video.requestVideoFrameCallback(presented);
      clearInterval(this.watchdog);
      this.watchdog = setInterval(() => this.keepLive(), 500);
    }

    stopMse() {
      clearInterval(this.watchdog);
      this.buffer = null;
      this.mediaSource = null;
      this.queue = [];
      if (this.objectUrl) {
        this.video.removeAttribute('src');
        this.video.load();
        URL.revokeObjectURL(this.objectUrl);
        this.objectUrl = null;
      }
    }

    onFragment(data) {
      if (!this.queue) return;
      this.queue.push(data);
      if (this.queue.length > 300) this.queue.splice(0, this.queue.length - 300);
      this.fedAt = performance.now();
      this.pump();
    }

    pump() {
      const buffer = this.buffer;
      if (!buffer || buffer.updating || !this.queue.length || this.mediaSource.readyState !== 'open') return;
      const ranges = buffer.buffered;
      if (ranges.length && ranges.end(ranges.length - 1) - ranges.start(0) > 2 * kKeepBufferS) {
        buffer.remove(ranges.start(0), ranges.end(ranges.length - 1) - kKeepBufferS);
        return;  // updateend pumps again
      }
      try {
        buffer.appendBuffer(this.queue.shift());
      } catch (error) {
        this.fallBack(`appendBuffer: ${error.name}`);
        return;
      }
      if (this.video.paused) this.video.play().catch(() => {});
    }

    // Live: stay near the newest frame, and step over gaps (a client that fell behind skips to a key frame).
    keepLive() {
      const ranges = this.video.buffered;
      if (ranges.length) {
        const end = ranges.end(ranges.length - 1);
        const now = this.video.currentTime;
        let inside = false;
        for (let i = 0; i < ranges.length; ++i) inside ||= now >= ranges.start(i) && now < ranges.end(i);
        if (end - now > kLiveEdgeS || !inside) {
          this.video.currentTime = Math.max(ranges.start(ranges.length - 1), end - 0.2);
        }
        if (this.video.paused) this.video.play().catch(() => {});
      }
      const idle = performance.now() - this.presentedAt;
      if (this.fedAt && this.fedAt - this.presentedAt > kStallFallbackMs && idle > kStallFallbackMs) {
        this.fallBack('MSE video does not advance');
      }
    }

    // ---- JPEG
    onJpeg(data) {
      const t = new DataView(data).getFloat64(0, true);
      const blob = new Blob([new Uint8Array(data, 8)], { type: 'image/jpeg' });
      // One decode at a time; a newer picture replaces one that waits.
      this.nextJpeg = { t, blob };
      if (!this.decoding) this.decodeJpeg();
    }

    decodeJpeg() {
      const next = this.nextJpeg;
      if (!next) return;
      this.nextJpeg = null;
      this.decoding = true;
      createImageBitmap(next.blob).then((bitmap) => {
        if (this.picture.width !== bitmap.width || this.picture.height !== bitmap.height) {
          this.picture.width = bitmap.width;
          this.picture.height = bitmap.height;
          this.setAspect(bitmap.width, bitmap.height);
        }
        this.picture.getContext('2d').drawImage(bitmap, 0, 0);
        bitmap.close();
        this.frames += 1;
        this.root.dataset.frames = String(this.frames);
        this.lastPictureT = next.t;
        this.draw(next.t);
      }).catch(() => {}).finally(() => {
        this.decoding = false;
        this.decodeJpeg();
      });
    }

    // ---- Overlay: the boxes of the frame presented at media time `t`, in source pixels.
    draw(t) {
      const item = this.timeline.at(t);
      this.pendingRedraw = !item;
      if (!item) return;
      const { record } = item;
      this.drawnT = item.t;
      // How far the boxes drawn are from the picture shown (0 when the frame's own results are there).
      this.root.dataset.syncMs = (Math.abs(t - item.t) * 1000).toFixed(1);
      const canvas = this.overlay;
      if (canvas.width !== record.width || canvas.height !== record.height) {
        canvas.width = record.width;
        canvas.height = record.height;
      }
      const drawn = drawRecord(canvas.getContext('2d'), record, this.info, {
        labels: showLabels.checked, tracks: showTracks.checked, keypoints: showKeypoints.checked,
        masks: showMasks.checked,
      });
      this.root.dataset.boxes = String(drawn.boxes);
      this.root.dataset.points = String(drawn.points);
      this.root.dataset.lines = String(drawn.lines);
      this.root.dataset.masks = String(drawn.masks);
    }

    dispose() {
      this.disposed = true;
      clearTimeout(this.reconnectTimer);
      this.stopMse();
      const socket = this.socket;
      this.socket = null;
      if (socket) socket.close();
      this.root.remove();
    }
  }

  const tiles = new Map();

  function updatePlayback() {
    const modes = new Set([...tiles.values()].map((t) => t.mode));
    const reasons = [...new Set([...tiles.values()].map((t) => t.reason).filter(Boolean))];
    const text = [...modes].map((m) => (m === 'mse' ? 'H.264 via MSE' : 'JPEG')).join(' + ');
    playback.textContent = text ? `video: ${text}${reasons.length ? ` (${reasons.join('; ')})` : ''}` : '';
  }

  async function refreshChannels() {
    let channels;
    try {
      channels = channelsOf(await api('/api/channels'));
    } catch (error) {
      summary.textContent = `API unavailable: ${error.message}`;
      return;
    }
    latestChannels = channels;
    for (const c of channels) names.set(c.id, c.name);
    const listed = new Set(channels.map((c) => c.name));
    for (const [name, tile] of tiles) {
      if (!listed.has(name)) {
        tile.dispose();
        tiles.delete(name);
      }
    }
    for (const channel of channels) {
      if (!tiles.has(channel.name)) {
        const tile = new Tile(channel);
        tiles.set(channel.name, tile);
        grid.append(tile.root);
      } else {
        tiles.get(channel.name).info = channel;
      }
    }
    document.getElementById('empty').hidden = channels.length > 0;
    summary.textContent = `${channels.length} channel${channels.length === 1 ? '' : 's'}`;
    updatePlayback();
  }

  // ---- Statistics table: the channel list (state, counters, address) and the latest rates (latency).
  let latestChannels = [];
  const names = new Map();  // channel id -> name, for the charts

  function cell(row, value) {
    const td = document.createElement('td');
    td.textContent = value ?? '';
    row.append(td);
  }

  function fixed(value, digits) { return typeof value === 'number' ? value.toFixed(digits) : value; }

  async function refreshStats() {
    let stats;
    try {
      stats = await api('/api/stats');
    } catch (error) {
      return;
    }
    const rates = new Map((stats.channels || []).map((r) => [r.id, r]));
    const body = document.querySelector('#stats tbody');
    body.replaceChildren();
    for (const c of latestChannels) {
      const r = rates.get(c.id) || {};
      const counters = c.counters || {};
      const row = document.createElement('tr');
      cell(row, c.name);
      cell(row, c.state);
      cell(row, fixed(r.fps ?? c.fps, 1));
      cell(row, counters.decoded);
      cell(row, counters.output);
      cell(row, counters.dropped);
      cell(row, fixed(r.latency_ms, 1));
      cell(row, counters.reconnects);
      cell(row, c.address);
      body.append(row);
    }
  }

  // ---- Charts: one line per channel over the history the server keeps
  // ({"interval_ms", "samples": [{"time_ms", "channels": [{"id", "fps", "latency_ms"}]}]}).
  function seriesOf(samples, key) {
    const byId = new Map();
    for (const sample of samples) {
      for (const c of sample.channels || []) {
        if (typeof c[key] !== 'number') continue;
        if (!byId.has(c.id)) byId.set(c.id, []);
        byId.get(c.id).push([sample.time_ms / 1000, c[key]]);
      }
    }
    return [...byId].map(([id, points]) => ({ name: names.get(id) || `channel ${id}`, colour: colour(id), points }));
  }

  function drawChart(canvas, series, unit) {
    const context = canvas.getContext('2d');
    const { width, height } = canvas;
    context.clearRect(0, 0, width, height);
    context.font = '11px system-ui, sans-serif';
    const all = series.flatMap((s) => s.points);
    if (!all.length) {
      context.fillStyle = '#8a94a3';
      context.fillText('no history yet', 10, 20);
      return;
    }
    const x0 = Math.min(...all.map((p) => p[0]));
    const x1 = Math.max(...all.map((p) => p[0]), x0 + 1);
    const y1 = Math.max(1, ...all.map((p) => p[1])) * 1.1;
    const left = 40;
    const bottom = height - 18;
    context.strokeStyle = '#2a313b';
    context.fillStyle = '#8a94a3';
    for (let i = 0; i <= 4; ++i) {
      const y = bottom - (bottom - 6) * (i / 4);
      context.beginPath();
      context.moveTo(left, y);
      context.lineTo(width, y);
      context.stroke();
      context.fillText(`${(y1 * i / 4).toFixed(y1 < 10 ? 1 : 0)}`, 2, y + 4);
    }
    context.fillText(`last ${Math.round(x1 - x0)} s`, left, height - 4);
    context.fillText(unit, width - 30, height - 4);
    for (const s of series) {
      context.strokeStyle = s.colour;
      context.lineWidth = 2;
      context.beginPath();
      s.points.forEach(([x, y], i) => {
        const px = left + (width - left) * ((x - x0) / (x1 - x0));
        const py = bottom - (bottom - 6) * (y / y1);
        if (i === 0) context.moveTo(px, py); else context.lineTo(px, py);
      });
      context.stroke();
    }
  }

  async function refreshHistory() {
    let history;
    try {
      history = await api('/api/stats/history');
    } catch (error) {
      return;
    }
    const samples = history.samples || [];
    const fps = seriesOf(samples, 'fps');
    drawChart(document.getElementById('fps-chart'), fps, 'fps');
    drawChart(document.getElementById('latency-chart'), seriesOf(samples, 'latency_ms'), 'ms');
    const legend = document.getElementById('legend');
    legend.replaceChildren(...fps.map((s) => {
      const span = document.createElement('span');
      span.textContent = s.name;
      span.style.setProperty('--swatch', s.colour);
      return span;
    }));
  }

  for (const toggle of [showLabels, showTracks, showKeypoints, showMasks]) {
    toggle.addEventListener('change', () => {
      for (const tile of tiles.values()) {
        if (tile.mode === 'jpeg' && tile.lastPictureT !== undefined) tile.draw(tile.lastPictureT);
      }
    });
  }
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') for (const t of grid.querySelectorAll('.tile.enlarged')) t.classList.remove('enlarged');
  });

  refreshChannels();
  refreshStats();
  refreshHistory();
  setInterval(refreshChannels, kChannelsEveryMs);
  setInterval(refreshStats, kStatsEveryMs);
  setInterval(refreshHistory, kHistoryEveryMs);
  window.vapipeViewer = { tiles, drawRecord, skeletonFor };
})();
