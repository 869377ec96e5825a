// slovo-edge dashboard. Plain JS, no build step, no external requests: everything comes from this device.
"use strict";

const $ = (id) => document.getElementById(id);
const HAND_EDGES = [[0, 1], [1, 2], [2, 3], [3, 4], [0, 5], [5, 6], [6, 7], [7, 8], [5, 9], [9, 10], [10, 11],
  [11, 12], [9, 13], [13, 14], [14, 15], [15, 16], [13, 17], [17, 18], [18, 19], [19, 20], [0, 17]];
const POSE_EDGES = [[11, 12], [11, 13], [13, 15], [12, 14], [14, 16], [11, 23], [12, 24], [23, 24], [15, 17],
  [15, 19], [15, 21], [17, 19], [16, 18], [16, 20], [16, 22], [18, 20]];
// Distinct colours per part (tests look for them on the canvas).
const COLOURS = { pose: "#3d8bff", left_hand: "#00e676", right_hand: "#ff9100", lips: "#ff1744" };
const STALE_STATUS_MS = 4000;

const state = {
  config: null,
  lastStatusAt: 0,
  daemonModel: null,
  signs: new Map(), // key -> transcript entry (segment or sign), for de-duplication across reconnects
  segmentsSeen: false, // once the daemon publishes segments, they alone make the transcript
  clearedAt: 0,
  uploading: false,
  clipFile: null,
};
// Figures for benchmarks/bench_web.py (read through WebDriver): sign publish -> painted, in ms.
window.slrStats = { signLatencyMs: [], previewFrames: 0, previewPoints: 0 };

function confidenceClass(p) {
  return p >= 0.7 ? "hi" : p >= 0.4 ? "mid" : "lo";
}

function renderBars(list, topK) {
  const items = topK.slice(0, 5).map((entry) => {
    const li = document.createElement("li");
    const cls = confidenceClass(entry.prob);
    const label = document.createElement("span");
    label.className = `label ${cls}`;
    label.textContent = entry.label;
    label.title = `${entry.label} (class ${entry.index})`;
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = `fill ${cls}`;
    fill.style.width = `${Math.max(0, Math.min(100, entry.prob * 100)).toFixed(1)}%`;
    track.append(fill);
    const pct = document.createElement("span");
    pct.className = `pct ${cls}`;
    pct.textContent = `${(entry.prob * 100).toFixed(1)}%`;
    li.append(label, track, pct);
    return li;
  });
  list.replaceChildren(...items);
}

// ---- live ---------------------------------------------------------------------------------

function onPrediction(msg) {
  const top = msg.top_k[0];
  const topLabel = $("top-label");
  topLabel.textContent = top ? top.label : "—";
  topLabel.className = `top-label ${top ? confidenceClass(top.prob) : ""}`;
  renderBars($("top5"), msg.top_k);
  $("pred-meta").textContent =
    `window ${msg.window_start.toFixed(2)}–${msg.window_end.toFixed(2)} s · ${msg.frames_used} hand frames · ` +
    `${msg.inference_ms.toFixed(1)} ms · ${msg.model}`;
}

function signKey(msg) {
  return `${msg.seq}@${msg.ts}`;
}

// The transcript lists recognised segments (a whole signing episode classified like an uploaded
// clip) once the daemon publishes them; sliding-window sign events fill in only for a daemon that
// publishes windows alone.
function onSegment(msg) {
  if (!state.segmentsSeen) {
    state.segmentsSeen = true;
    for (const [key, entry] of [...state.signs]) {
      if (entry.kind !== "sign") continue;
      state.signs.delete(key);
      document.querySelector(`#transcript li[data-key="${key}"]`)?.remove();
    }
  }
  const best = msg.top_k[0];
  addTranscriptEntry({ ...msg, label: best.label, prob: best.prob, kind: "segment" });
}

function onSign(msg) {
  if (state.segmentsSeen) return;
  addTranscriptEntry({ ...msg, kind: "sign" });
}

function addTranscriptEntry(msg) {
  const key = `${msg.kind}:${signKey(msg)}`;
  if (state.signs.has(key) || msg.ts <= state.clearedAt) return;
  state.signs.set(key, msg);
  const li = document.createElement("li");
  const word = document.createElement("span");
  word.className = `word ${confidenceClass(msg.prob)}`;
  word.textContent = msg.label;
  const time = document.createElement("time");
  const at = new Date(msg.ts * 1000);
  time.dateTime = at.toISOString();
  time.textContent = at.toLocaleTimeString();
  const pct = document.createElement("span");
  pct.className = "meta";
  pct.textContent = `${Math.round(msg.prob * 100)}%`;
  li.append(time, word, pct);
  const list = $("transcript");
  // Newest first, ordered by publication time (replayed history may arrive after live signs).
  const after = [...list.children].find((child) => Number(child.dataset.ts) < msg.ts);
  li.dataset.ts = String(msg.ts);
  li.dataset.key = key;
  list.insertBefore(li, after || null);
  requestAnimationFrame(() => {
    window.slrStats.signLatencyMs.push(Date.now() - msg.ts * 1000);
  });
}

function fmt(value, digits, unit) {
  return value === null || value === undefined ? "—" : `${Number(value).toFixed(digits)}${unit}`;
}

function uptime(seconds) {
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${m} min` : `${m} min ${s % 60} s`;
}

function onStatus(msg) {
  state.lastStatusAt = Date.now();
  state.daemonModel = msg.model;
  $("st-state").textContent = msg.state;
  const camera = $("st-camera");
  camera.textContent = `${msg.camera} (${msg.source})`;
  camera.className = msg.camera === "ok" ? "hi" : "lo";
  $("st-capture").textContent = fmt(msg.capture_fps, 1, " frames/s");
  $("st-extraction").textContent = fmt(msg.extraction_fps, 1, " frames/s");
  $("st-dropped").textContent = String(msg.dropped_frames);
  $("st-idle").textContent = msg.idle ? "yes (no hands: inference paused)" : "no";
  $("st-inference").textContent = fmt(msg.inference_p50_ms, 1, " ms");
  $("st-publish").textContent = fmt(Math.max(0, Date.now() - msg.ts * 1000), 0, " ms");
  $("st-model").textContent = `${msg.model.name} (${msg.model.sha256.slice(0, 12)})`;
  $("st-uptime").textContent = uptime(msg.uptime_s);
  $("st-errors").textContent =
    `extraction ${msg.errors.extraction} · inference ${msg.errors.inference} · frames ${msg.errors.frames}`;
  checkModelMatch();
  updateLink();
}

function checkModelMatch() {
  const cfg = state.config;
  const banner = $("model-mismatch");
  if (!cfg || !cfg.upload_model_sha256 || !state.daemonModel) return;
  const differs = cfg.upload_model_sha256 !== state.daemonModel.sha256;
  banner.hidden = !differs;
  banner.textContent = differs
    ? `Uploaded clips use model ${cfg.upload_model}, the live camera uses ${state.daemonModel.name}.`
    : "";
}

let eventsOpen = false;
function updateLink() {
  const pill = $("link");
  const fresh = Date.now() - state.lastStatusAt < STALE_STATUS_MS;
  if (!eventsOpen) {
    pill.textContent = "device unreachable, retrying…";
    pill.className = "pill bad";
  } else if (!fresh) {
    pill.textContent = "daemon not responding";
    pill.className = "pill warn";
  } else {
    pill.textContent = "live";
    pill.className = "pill ok";
  }
}

function connectEvents() {
  const source = new EventSource("/api/events");
  const parse = (handler) => (event) => {
    try {
      handler(JSON.parse(event.data));
    } catch (err) {
      console.error("bad event", err);
    }
  };
  source.addEventListener("prediction", parse(onPrediction));
  source.addEventListener("sign", parse(onSign));
  source.addEventListener("segment", parse(onSegment));
  source.addEventListener("status", parse(onStatus));
  source.addEventListener("progress", parse(onProgress));
  source.onopen = () => {
    eventsOpen = true;
    updateLink();
  };
  source.onerror = () => {
    // EventSource reconnects by itself (retry: 2000); a closed one (e.g. 401) is reopened here.
    eventsOpen = false;
    updateLink();
    if (source.readyState === EventSource.CLOSED) setTimeout(connectEvents, 3000);
  };
}

// ---- transcript buttons ---------------------------------------------------------------------

function transcriptText() {
  return [...state.signs.values()].sort((a, b) => a.ts - b.ts).map((s) => s.label).join(" ");
}

async function copyTranscript() {
  const text = transcriptText();
  const msg = $("copy-msg");
  try {
    await navigator.clipboard.writeText(text);
  } catch (err) {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  msg.textContent = text ? "copied" : "nothing to copy yet";
}

function clearTranscript() {
  for (const sign of state.signs.values()) state.clearedAt = Math.max(state.clearedAt, sign.ts);
  state.signs.clear();
  $("transcript").replaceChildren();
  $("copy-msg").textContent = "";
}

// ---- camera preview -------------------------------------------------------------------------

let preview = null;
function drawPoints(ctx, points, edges, colour, w, h) {
  if (!points) return 0;
  ctx.strokeStyle = colour;
  ctx.fillStyle = colour;
  ctx.lineWidth = 2;
  for (const [a, b] of edges) {
    if (!points[a] || !points[b]) continue;
    ctx.beginPath();
    ctx.moveTo(points[a][0] * w, points[a][1] * h);
    ctx.lineTo(points[b][0] * w, points[b][1] * h);
    ctx.stroke();
  }
  for (const [x, y] of points) {
    ctx.beginPath();
    ctx.arc(x * w, y * h, 3, 0, 2 * Math.PI);
    ctx.fill();
  }
  return points.length;
}

async function onPreview(msg) {
  const bytes = Uint8Array.from(atob(msg.jpeg), (c) => c.charCodeAt(0));
  const bitmap = await createImageBitmap(new Blob([bytes], { type: "image/jpeg" }));
  const canvas = $("preview");
  if (canvas.width !== msg.width || canvas.height !== msg.height) {
    canvas.width = msg.width;
    canvas.height = msg.height;
  }
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const kp = msg.keypoints;
  let drawn = 0;
  drawn += drawPoints(ctx, kp.pose, POSE_EDGES, COLOURS.pose, msg.width, msg.height);
  drawn += drawPoints(ctx, kp.lips, [], COLOURS.lips, msg.width, msg.height);
  drawn += drawPoints(ctx, kp.left_hand, HAND_EDGES, COLOURS.left_hand, msg.width, msg.height);
  drawn += drawPoints(ctx, kp.right_hand, HAND_EDGES, COLOURS.right_hand, msg.width, msg.height);
  window.slrStats.previewFrames += 1;
  window.slrStats.previewPoints = drawn;
  const hands = [kp.left_hand && "left", kp.right_hand && "right"].filter(Boolean);
  $("preview-meta").textContent =
    `${msg.width}×${msg.height} · hands: ${hands.length ? hands.join(" + ") : "none detected"}` +
    ` · ${drawn} keypoints`;
}

function setPreview(on) {
  if (on && !preview) {
    preview = new EventSource("/api/preview");
    preview.addEventListener("preview", (event) => onPreview(JSON.parse(event.data)).catch(console.error));
  } else if (!on && preview) {
    preview.close(); // the daemon stops making frames once nobody watches
    preview = null;
    $("preview-meta").textContent = "camera view off";
  }
}

function previewWanted() {
  return $("preview-on").checked && !document.hidden;
}

// ---- clips: upload and record ---------------------------------------------------------------

function clipMessage(text) {
  $("clip-msg").textContent = text;
}

function clipError(text) {
  const el = $("clip-error");
  el.textContent = text;
  el.hidden = !text;
}

function onProgress(msg) {
  if (!state.uploading) return;
  const bar = $("progress");
  if (msg.state === "extracting") {
    bar.hidden = false;
    if (msg.total) {
      bar.max = msg.total;
      bar.value = Math.min(msg.done, msg.total);
      clipMessage(`extracting keypoints: frame ${msg.done} of ${msg.total}`);
    } else {
      bar.removeAttribute("value");
      clipMessage(`extracting keypoints: frame ${msg.done}`);
    }
  }
}

function showClip(blob) {
  const video = $("clip-video");
  video.srcObject = null;
  if (video.src) URL.revokeObjectURL(video.src);
  video.src = URL.createObjectURL(blob);
  video.hidden = false;
}

function chooseFile(file) {
  clipError("");
  $("clip-result").hidden = true;
  state.clipFile = null;
  $("send").disabled = true;
  if (!file) return;
  const limit = state.config ? state.config.max_upload_bytes : Infinity;
  if (file.size === 0) {
    clipError("The file is empty.");
    return;
  }
  if (file.size > limit) {
    clipError(`The file is ${(file.size / 2 ** 20).toFixed(1)} MB; the limit is ${(limit / 2 ** 20).toFixed(0)} MB.`);
    return;
  }
  state.clipFile = file;
  showClip(file);
  $("send").disabled = state.uploading;
  clipMessage(`${file.name}: ${(file.size / 2 ** 20).toFixed(2)} MB, ready`);
}

function showResult(result) {
  const top = result.top_k[0];
  $("clip-top").textContent = top ? top.label : "—";
  $("clip-top").className = `top-label ${top ? confidenceClass(top.prob) : ""}`;
  renderBars($("clip-top5"), result.top_k);
  const fps = result.clip_fps ? `${result.clip_fps.toFixed(1)} frames/s` : "unknown frame rate";
  $("clip-meta").textContent =
    `${result.frames} frames at ${fps}, hands in ${result.hand_frames}` +
    `${result.resampled ? ", resampled to the model's frame rate" : ""} · model ${result.model}`;
  $("clip-result").hidden = false;
  if (result.hand_frames === 0) clipError("No hands were found in this clip: the result is not meaningful.");
}

function upload(blob, name) {
  state.uploading = true;
  $("send").disabled = true;
  $("record").disabled = true;
  clipError("");
  $("clip-result").hidden = true;
  const bar = $("progress");
  bar.hidden = false;
  bar.max = 100;
  bar.value = 0;
  clipMessage("uploading…");
  const form = new FormData();
  form.append("file", blob, name);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/predict");
  xhr.responseType = "json";
  xhr.upload.onprogress = (event) => {
    if (event.lengthComputable) {
      bar.value = (100 * event.loaded) / event.total;
      clipMessage(`uploading: ${Math.round((100 * event.loaded) / event.total)}%`);
    }
  };
  const done = () => {
    state.uploading = false;
    $("send").disabled = !state.clipFile;
    $("record").disabled = false;
    bar.hidden = true;
  };
  xhr.onload = () => {
    done();
    const body = xhr.response || {};
    if (xhr.status === 200) {
      clipMessage("done");
      showResult(body);
    } else {
      clipMessage("");
      clipError(body.error ? `Could not classify the clip: ${body.error}` : `Server answered ${xhr.status}.`);
    }
  };
  xhr.onerror = () => {
    done();
    clipMessage("");
    clipError("The upload failed: the connection was closed (is the file over the size limit?).");
  };
  xhr.send(form);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function record() {
  clipError("");
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    clipError("Recording needs a browser with camera access over HTTPS or on localhost.");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (err) {
    clipError(`Cannot use the camera: ${err.message || err.name}`);
    return;
  }
  $("record").disabled = true;
  $("send").disabled = true;
  const video = $("clip-video");
  if (video.src) URL.revokeObjectURL(video.src);
  video.removeAttribute("src");
  video.srcObject = stream;
  video.hidden = false;
  await video.play().catch(() => {});
  const countdown = $("countdown");
  countdown.hidden = false;
  for (let n = 3; n > 0; n -= 1) {
    countdown.textContent = String(n);
    await sleep(1000);
  }
  const chunks = [];
  const recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (event) => event.data.size && chunks.push(event.data);
  const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
  recorder.start();
  for (let n = 3; n > 0; n -= 1) {
    countdown.textContent = `● ${n}`;
    clipMessage(`recording… ${n}`);
    await sleep(1000);
  }
  recorder.stop();
  await stopped;
  stream.getTracks().forEach((track) => track.stop());
  countdown.hidden = true;
  const blob = new Blob(chunks, { type: recorder.mimeType || "video/webm" });
  showClip(blob);
  upload(blob, "recording.webm");
}

// ---- start ----------------------------------------------------------------------------------

async function loadConfig() {
  try {
    const response = await fetch("/api/config");
    state.config = await response.json();
  } catch (err) {
    setTimeout(loadConfig, 3000);
    return;
  }
  const cfg = state.config;
  $("untrained").hidden = !cfg.untrained;
  const note = $("upload-note");
  if (cfg.upload) {
    note.textContent = `MP4, AVI, MOV, MKV or WebM up to ${(cfg.max_upload_bytes / 2 ** 20).toFixed(0)} MB · model ${cfg.upload_model}`;
  } else {
    note.textContent = "Uploads are off on this device (slr-web was started without --model).";
    $("record").disabled = true;
  }
  checkModelMatch();
}

function start() {
  loadConfig();
  connectEvents();
  setInterval(updateLink, 1000);
  $("copy").addEventListener("click", copyTranscript);
  $("clear").addEventListener("click", clearTranscript);
  $("file").addEventListener("change", (event) => chooseFile(event.target.files[0]));
  $("send").addEventListener("click", () => state.clipFile && upload(state.clipFile, state.clipFile.name));
  $("record").addEventListener("click", () => record().catch((err) => clipError(String(err))));
  $("preview-on").addEventListener("change", () => setPreview(previewWanted()));
  document.addEventListener("visibilitychange", () => setPreview(previewWanted()));
  setPreview(previewWanted());
}

document.addEventListener("DOMContentLoaded", start);
