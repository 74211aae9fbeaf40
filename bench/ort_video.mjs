// What the hand-written ONNX Runtime peers of bench/ share: FFmpeg as a child process (a tool check, a probe, one
// decoded still image, a video decoded to raw frames on a pipe) and a fatal-error helper that names the script.
import { spawn, spawnSync } from 'node:child_process';
import process from 'node:process';

// fail(message) for a script named `name`: the message on stderr, exit status 1.
export function make_fail(name) {
  return (message) => {
    console.error(`${name}: error: ${message}`);
    process.exit(1);
  };
}

export function check_tool(tool, fail) {
  const result = spawnSync(tool, ['-version'], { stdio: 'ignore' });
  if (result.error) fail(`${tool} not found (${result.error.code}): install FFmpeg (Debian: apt-get install ffmpeg)`);
}

export function probe_size(file, fail) {
  const result = spawnSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=width,height',
                                       '-of', 'csv=p=0:s=x', file], { encoding: 'utf8' });
  const match = /^(\d+)x(\d+)/.exec(result.stdout ?? '');
  if (result.status !== 0 || !match) fail(`ffprobe cannot read the size of '${file}': ${(result.stderr ?? '').trim()}`);
  return { width: Number(match[1]), height: Number(match[2]) };
}

// One still image as BGR bytes (the first frame ffmpeg decodes).
export function read_image(file, fail) {
  const { width, height } = probe_size(file, fail);
  const result = spawnSync('ffmpeg', ['-nostdin', '-v', 'error', '-i', file, '-frames:v', '1', '-f', 'rawvideo',
                                      '-pix_fmt', 'bgr24', '-'], { maxBuffer: width * height * 3 + 1024 });
  if (result.status !== 0 || result.stdout.length !== width * height * 3)
    fail(`ffmpeg cannot decode '${file}': ${String(result.stderr ?? result.error).trim()}`);
  return { data: result.stdout, width, height };
}

// A channel: ffmpeg decoding the whole video to raw frames of `frame_bytes` on its stdout, read one frame at a
// time. The async iterator pulls only when asked, so a channel that is ahead blocks ffmpeg on a full pipe
// (bounded memory). Options: max_frames (0: all), filter (an -vf graph), pix_fmt (default bgr24), realtime
// (ffmpeg -re: read at the video's own rate, as a camera delivers).
export class VideoChannel {
  constructor(file, frame_bytes, fail, { max_frames = 0, filter = '', pix_fmt = 'bgr24', realtime = false } = {}) {
    this.frame_bytes = frame_bytes;
    this.fail = fail;
    const args = ['-nostdin', '-v', 'error'];
    if (realtime) args.push('-re');
    args.push('-i', file);
    if (max_frames > 0) args.push('-frames:v', String(max_frames));
    if (filter) args.push('-vf', filter);
    args.push('-an', '-f', 'rawvideo', '-pix_fmt', pix_fmt, '-');
    this.process = spawn('ffmpeg', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.stderr = '';
    this.process.stderr.on('data', (chunk) => { this.stderr += chunk; });
    this.exited = new Promise((resolve) => this.process.on('close', (code) => resolve(code)));
    this.chunks = this.process.stdout[Symbol.asyncIterator]();
    this.pending = [];
    this.pending_bytes = 0;
  }

  // The next frame (a Buffer of frame_bytes), or null at the end of the video.
  async next() {
    while (this.pending_bytes < this.frame_bytes) {
      const { value, done } = await this.chunks.next();
      if (done) {
        const code = await this.exited;
        if (code !== 0) this.fail(`ffmpeg exited with ${code}: ${this.stderr.trim()}`);
        return null;
      }
      this.pending.push(value);
      this.pending_bytes += value.length;
    }
    const all = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending);
    const frame = all.subarray(0, this.frame_bytes);
    const rest = all.subarray(this.frame_bytes);
    this.pending = rest.length ? [rest] : [];
    this.pending_bytes = rest.length;
    return frame;
  }
}

// Parses argv into `options`: flags maps each flag to [key, kind], kind 'integer' (non-negative), 'string',
// 'boolean' or a function (text -> value, or undefined when invalid, named in the usage message). -h/--help
// and anything unknown call usage().
export function parse_flags(argv, options, flags, usage) {
  for (let i = 0; i < argv.length; ++i) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') usage();
    if (!(arg in flags)) usage(`unknown argument '${arg}'`);
    const [key, kind] = flags[arg];
    if (kind === 'boolean') {
      options[key] = true;
      continue;
    }
    if (i + 1 >= argv.length) usage(`${arg} needs a value`);
    const text = argv[++i];
    if (kind === 'string') {
      options[key] = text;
    } else if (kind === 'integer') {
      const value = Number(text);
      if (!Number.isInteger(value) || value < 0) usage(`${arg} needs a non-negative integer, got '${text}'`);
      options[key] = value;
    } else {
      const value = kind(text);
      if (value === undefined) usage(`${arg}: invalid value '${text}'`);
      options[key] = value;
    }
  }
  return options;
}
