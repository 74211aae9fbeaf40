// Browser acceptance test of the web viewer (issue 5): Debian's chromium, headless, driven by
// playwright-core, against a real `vapipe run` with two channels on loopback.
//   - the page loads and shows one tile per channel;
//   - every channel's video advances (MSE: video.currentTime and presented frames; JPEG: pictures drawn);
//   - boxes are drawn (pixels on each tile's overlay canvas);
//   - a channel added through the API appears, one removed disappears;
//   - the JPEG fallback (?mode=jpeg) shows pictures and boxes too;
//   - a record with keypoints and identities (issue 19) draws the dots, the skeleton's lines between shown
//     points only, and the name or "unknown" with the similarity; the skeleton comes from GET /api/channels;
//   - screenshots are saved in the build folder (viewer.png, viewer-jpeg.png).
// Exit 77 (CTest SKIP_RETURN_CODE) with the reason when chromium, playwright-core or the model is absent.
//
// node viewer_test.mjs --vapipe BIN --source-dir DIR --out DIR [--models DIR]
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const kSkip = 77;
const here = path.dirname(fileURLToPath(import.meta.url));

function argument(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

function skip(reason) {
  console.log(`SKIPPED: ${reason}`);
  process.exit(kSkip);
}

const vapipe = argument('vapipe');
const sourceDir = argument('source-dir', path.resolve(here, '..', '..'));
const outDir = argument('out', path.join(process.cwd(), 'web-test'));
const modelsDir = argument('models', process.env.VAPIPE_MODELS || path.resolve(sourceDir, '..', 'shared', 'models'));
const chromiumPath = '/usr/bin/chromium';
// Yolo-FastestV2 when present: a few times cheaper than YOLOv5n, so both channels move even on a busy
// 2-core machine (the test is about the page, not the detector).
const modelFile = ['yolofastestv2.onnx', 'yolov5n.onnx'].find((f) => fs.existsSync(path.join(modelsDir, f))) ||
  'yolofastestv2.onnx';
const model = path.join(modelsDir, modelFile);
const modelType = modelFile.startsWith('yolofastestv2') ? 'yolofastestv2' : 'yolov5n';
const vtest = '/usr/share/doc/opencv-doc/examples/data/vtest.avi';

if (!vapipe || !fs.existsSync(vapipe)) skip(`no vapipe binary (${vapipe})`);
if (!fs.existsSync(chromiumPath)) skip(`${chromiumPath} is not installed (Debian package chromium)`);
if (!fs.existsSync(model)) skip(`model ${model} not found (set VAPIPE_MODELS)`);
if (!fs.existsSync(vtest)) skip(`${vtest} not found (Debian package opencv-doc)`);
let chromium;
try {
  ({ chromium } = await import(path.join(here, 'node_modules', 'playwright-core', 'index.mjs')));
} catch (error) {
  skip(`playwright-core is not installed in ${here} (npm ci there, or scripts/setup.sh): ${error.message}`);
}

fs.mkdirSync(outDir, { recursive: true });
const work = fs.mkdtempSync(path.join(outDir, 'run-'));

const failures = [];
function check(condition, what) {
  console.log(`${condition ? 'ok  ' : 'FAIL'} ${what}`);
  if (!condition) failures.push(what);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitFor(what, condition, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`${what}: ${error.message}`);
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

// An H.264 MP4 for the second camera: passthrough of real source timestamps (the first camera, MPEG-4
// part 2, is re-encoded by the channel: frame-counted timestamps). Both paths of the box alignment.
const h264Clip = path.join(work, 'walk.mp4');
const made = spawnSync('ffmpeg', ['-nostdin', '-v', 'error', '-y', '-i', vtest, '-frames:v', '200', '-an', '-c:v',
  'libx264', '-preset', 'ultrafast', '-g', '20', '-bf', '2', h264Clip], { timeout: 120000 });
if (made.status !== 0) skip(`ffmpeg could not make the H.264 clip: ${made.stderr}`);

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const config = {
  cards: [{
    devid: 0,
    cameras: [
      { address: vtest, chan_num: 1, model_names: ['det'], loop: true, pace: true },
      { address: h264Clip, chan_num: 1, model_names: ['det'], loop: true, pace: true },
    ],
  }],
  models: [{
    name: 'det', path: model, model_type: modelType, class_num: 80,
    obj_threshold: 0.4, nms_threshold: 0.5, class_threshold: 0.4,
  }],
  http: { port },
};
const configPath = path.join(work, 'cameras.json');
fs.writeFileSync(configPath, JSON.stringify(config, null, 2));

const log = fs.openSync(path.join(work, 'vapipe.log'), 'w');
const child = spawn(vapipe, ['run', '--config', configPath, '--duration', '240', '--stats', 'none',
  '--cache-dir', path.join(outDir, 'model-cache')], { stdio: ['ignore', log, log] });
let exited = null;
child.on('exit', (code, signal) => { exited = { code, signal }; });

async function api(method, route, body) {
  const response = await fetch(base + route, {
    method,
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${route}: HTTP ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// Every tile's state as the page shows it.
function tilesState(page) {
  return page.evaluate(() => [...document.querySelectorAll('.tile')].map((tile) => {
    const overlay = tile.querySelector('canvas.overlay');
    let painted = 0;
    if (overlay.width > 0 && overlay.height > 0) {
      const pixels = overlay.getContext('2d').getImageData(0, 0, overlay.width, overlay.height).data;
      for (let i = 3; i < pixels.length; i += 4) painted += pixels[i] > 0 ? 1 : 0;
    }
    const video = tile.querySelector('video');
    return {
      channel: tile.dataset.channel,
      mode: tile.dataset.mode,
      frames: Number(tile.dataset.frames || 0),
      syncMs: Number(tile.dataset.syncMs ?? NaN),
      currentTime: video.currentTime,
      painted,
      area: overlay.width * overlay.height,
    };
  }));
}

// Generous bounds: the machine running the tests may be busy (the pipeline then runs at a few fps); the
// checks are about the video advancing at all, never about its speed.
async function checkTilesAdvance(page, label, expectedMode) {
  const before = await waitFor(`${label}: two tiles presenting pictures`, async () => {
    const tiles = await tilesState(page);
    return tiles.length >= 2 && tiles.every((t) => t.frames > 0) ? tiles : null;
  }, 120000);
  const advanced = (tile, later) => later && later.frames >= tile.frames + 3 &&
    (expectedMode !== 'mse' || later.currentTime > tile.currentTime + 0.2);
  const after = await waitFor(`${label}: every tile to advance`, async () => {
    const tiles = await tilesState(page);
    return before.every((t) => advanced(t, tiles.find((l) => l.channel === t.channel))) ? tiles : null;
  }, 60000).catch(() => tilesState(page));
  for (const tile of before) {
    const later = after.find((t) => t.channel === tile.channel);
    check(later && later.mode === expectedMode, `${label}: ${tile.channel} plays as ${expectedMode} (${later?.mode})`);
    check(advanced(tile, later), `${label}: ${tile.channel} advances (${tile.frames} -> ${later?.frames} pictures, ` +
      `currentTime ${tile.currentTime.toFixed(2)} -> ${later?.currentTime.toFixed(2)} s)`);
  }
  // Boxes: people walk through every frame of vtest.avi; the overlay has box pixels, and is not a fill.
  const boxed = await waitFor(`${label}: boxes on every overlay`, async () => {
    const tiles = await tilesState(page);
    return tiles.length >= 2 && tiles.every((t) => t.painted > 200) ? tiles : null;
  }, 60000).catch(() => null);
  for (const tile of boxed || await tilesState(page)) {
    check(tile.painted > 200 && tile.painted < tile.area / 2,
      `${label}: ${tile.channel} overlay has boxes (${tile.painted} of ${tile.area} pixels painted)`);
    // The boxes drawn are those of the frame on screen (its own record, by media time).
    check(tile.syncMs < 1, `${label}: ${tile.channel} boxes belong to the frame shown (${tile.syncMs} ms apart)`);
  }
}

// The page's own overlay code (window.vapipeViewer.drawRecord, what every tile draws with) on a canvas of its
// own, fed a record as JSON Lines writes one: a person with 4 joints (one below the score shown) chained to a
// second stage whose skeleton closes a square, identified as "0016"; a face of another class with one
// landmark, unknown. Read back: what it says it drew, and the pixels of dots, bones and what must stay empty.
async function checkKeypointsAndIdentities(page) {
  const result = await page.evaluate(() => {
    const canvas = document.createElement('canvas');
    canvas.width = 320;
    canvas.height = 240;
    const context = canvas.getContext('2d');
    const info = { skeleton: [], secondary: { classes: [0], skeleton: [[0, 1], [1, 2], [2, 3], [3, 0]] } };
    const record = {
      width: 320,
      height: 240,
      detections: [
        { class_id: 0, label: 'person', score: 0.9, box: [60, 30, 240, 200], track_id: 3,
          keypoints: [[100, 60, 0.9], [200, 60, 0.8], [200, 160, 0.95], [100, 160, 0.1]],
          identity: { name: '0016', known: true, similarity: 0.62 } },
        { class_id: 1, label: 'face', score: 0.8, box: [260, 150, 310, 230], track_id: -1,
          keypoints: [[285, 190, 1]], identity: { name: 'unknown', known: false, similarity: 0.18 } },
      ],
    };
    const drawn = window.vapipeViewer.drawRecord(context, record, info, { labels: true, tracks: true, keypoints: true });
    const pixel = (x, y) => Array.from(context.getImageData(x, y, 1, 1).data);
    return {
      drawn,
      dots: [pixel(100, 60), pixel(200, 160), pixel(285, 190)],
      hiddenDot: pixel(100, 160),
      bones: [pixel(150, 60), pixel(200, 110)],
      noBones: [pixel(150, 160), pixel(100, 110)],  // 2-3 and 3-0 end at the hidden joint
    };
  });
  const { drawn } = result;
  const yellow = ([r, g, b, a]) => r > 200 && g > 200 && b < 100 && a > 200;
  const bone = ([r, g, b, a]) => a > 200 && !yellow([r, g, b, a]);
  check(drawn.points === 4 && drawn.lines === 2,
    `keypoints: 4 dots and 2 skeleton lines drawn (${drawn.points} dots, ${drawn.lines} lines)`);
  check(result.dots.every(yellow), `keypoint dots are painted (${JSON.stringify(result.dots)})`);
  check(result.hiddenDot[3] === 0, `a joint under the score shown stays empty (${result.hiddenDot})`);
  check(result.bones.every(bone), `skeleton lines join shown joints (${JSON.stringify(result.bones)})`);
  check(result.noBones.every((p) => p[3] === 0),
    `no line to a joint not shown (${JSON.stringify(result.noBones)})`);
  check(JSON.stringify(drawn.labels) === JSON.stringify(['0016 0.62 #3', 'unknown 0.18']),
    `identity labels: name or unknown, similarity, track (${JSON.stringify(drawn.labels)})`);
}

// An instance mask (issue 20) as JSON Lines writes it (COCO RLE over the box's pixels, column-major): the
// left half of the box's columns, rows 20 to 79 of it. Painted half transparent in the detection's colour
// exactly there, under the box; nothing in the right half or above.
async function checkMasks(page) {
  const result = await page.evaluate(() => {
    const canvas = document.createElement('canvas');
    canvas.width = 320;
    canvas.height = 240;
    const context = canvas.getContext('2d');
    const rle = [];
    let run = 0;
    let current = 0;
    for (let x = 0; x < 100; ++x) {
      for (let y = 0; y < 100; ++y) {
        const value = x < 50 && y >= 20 && y < 80 ? 1 : 0;
        if (value !== current) {
          rle.push(run);
          current = value;
          run = 0;
        }
        ++run;
      }
    }
    rle.push(run);
    const record = {
      width: 320,
      height: 240,
      detections: [{ class_id: 0, label: 'person', score: 0.9, box: [40, 30, 140, 130], track_id: -1,
        mask: { origin: [40, 30], size: [100, 100], counts: rle } }],
    };
    const drawn = window.vapipeViewer.drawRecord(context, record, {}, { labels: true, tracks: true, keypoints: true });
    const hidden = window.vapipeViewer.drawRecord(context, record, {}, { labels: true, masks: false });
    const pixelAfterHiding = Array.from(context.getImageData(60, 80, 1, 1).data);
    window.vapipeViewer.drawRecord(context, record, {}, { labels: true, tracks: true });
    const pixel = (x, y) => Array.from(context.getImageData(x, y, 1, 1).data);
    return { drawn, hidden, inside: [pixel(60, 80), pixel(89, 109)], outside: [pixel(120, 80), pixel(60, 45)],
      pixelAfterHiding };
  });
  const tinted = ([r, g, b, a]) => r > 200 && g < 160 && b < 160 && a > 90 && a < 170;
  check(result.drawn.masks === 1 && result.hidden.masks === 0,
    `masks: one drawn, none when hidden (${result.drawn.masks}, ${result.hidden.masks})`);
  check(result.inside.every(tinted), `mask pixels are tinted half transparent (${JSON.stringify(result.inside)})`);
  check(result.outside.every((p) => p[3] === 0), `pixels beside the mask stay empty (${JSON.stringify(result.outside)})`);
  check(result.pixelAfterHiding[3] === 0, `a hidden mask paints nothing (${result.pixelAfterHiding})`);
}

let browser;
try {
  await waitFor('vapipe to serve the page', async () => {
    if (exited) throw new Error(`vapipe exited ${JSON.stringify(exited)}, see ${work}/vapipe.log`);
    const response = await fetch(`${base}/`);
    return response.ok;
  }, 180000);

  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const consoleErrors = [];
  page.on('pageerror', (error) => consoleErrors.push(error.message));
  await page.goto(`${base}/`);
  check(await page.title() === 'vapipe viewer', 'the page loads');
  await checkKeypointsAndIdentities(page);
  await checkMasks(page);
  const mse = await page.evaluate(() => MediaSource.isTypeSupported('video/mp4; codecs="avc1.42E01E"'));
  console.log(`chromium MediaSource H.264: ${mse}`);

  await checkTilesAdvance(page, 'auto', mse ? 'mse' : 'jpeg');
  await page.screenshot({ path: path.join(outDir, 'viewer.png') });

  // Run-time channels through the API.
  const listed = await api('GET', '/api/channels');
  const channels = Array.isArray(listed) ? listed : listed.channels;
  // The skeleton reaches the page with the channel list: a box detector's is empty and it has no second stage.
  check(channels.every((c) => Array.isArray(c.skeleton) && c.skeleton.length === 0 && !('secondary' in c)),
    `GET /api/channels: every channel has an empty skeleton and no secondary (${JSON.stringify(
      channels.map((c) => [c.skeleton, c.secondary]))})`);
  const pageSkeletons = await page.evaluate(() => [...window.vapipeViewer.tiles.values()].map((t) => t.info.skeleton));
  check(pageSkeletons.length >= 2 && pageSkeletons.every(Array.isArray),
    `the tiles hold their channel's skeleton (${JSON.stringify(pageSkeletons)})`);
  const added = await api('POST', '/api/channels', { address: h264Clip, model: 'det', loop: true, pace: true });
  const addedName = added.name;
  await waitFor(`the added channel ${addedName} to show pictures`, async () => {
    const tiles = await tilesState(page);
    return tiles.find((t) => t.channel === addedName && t.frames > 0);
  }, 120000).then(() => check(true, `added channel ${addedName} appears and plays`),
    (error) => check(false, `added channel ${addedName} appears and plays: ${error.message}`));
  const removed = channels[0];
  const removedId = removed.id;
  const removedName = removed.name;
  await api('DELETE', `/api/channels/${removedId}`);
  await waitFor(`the removed channel ${removedName} to disappear`, async () => {
    const tiles = await tilesState(page);
    return !tiles.some((t) => t.channel === removedName);
  }, 60000).then(() => check(true, `removed channel ${removedName} disappears`),
    (error) => check(false, `removed channel ${removedName} disappears: ${error.message}`));

  // The fallback, forced: pictures and boxes as well.
  const jpegPage = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await jpegPage.goto(`${base}/?mode=jpeg`);
  await checkTilesAdvance(jpegPage, 'jpeg', 'jpeg');
  await jpegPage.screenshot({ path: path.join(outDir, 'viewer-jpeg.png') });
  check(consoleErrors.length === 0, `no page errors (${consoleErrors.join('; ')})`);
} catch (error) {
  check(false, error.message);
} finally {
  if (browser) await browser.close();
  if (!exited) {
    child.kill('SIGINT');
    await waitFor('vapipe to stop', async () => exited, 30000).catch(() => child.kill('SIGKILL'));
  }
  console.log(`vapipe log and config: ${work}; screenshots: ${outDir}`);
}
if (failures.length) {
  console.log(`${failures.length} check(s) failed`);
  process.exit(1);
}
console.log('all checks passed');
