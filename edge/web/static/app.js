// slovo-edge dashboard. Plain JS, no build step, no external requests: everything comes from this device.
//
// Everything that arrives (daemon messages relayed by slr-web, API answers) is validated before it is
// shown, and shown only as text: no HTML and no CSS selector is ever built from a message field.
// Every string comes from the language's catalogue (/static/i18n/<lang>.json).
"use strict";

const $ = (id) => document.getElementById(id);
const HAND_EDGES = [[0, 1], [1, 2], [2, 3], [3, 4], [0, 5], [5, 6], [6, 7], [7, 8], [5, 9], [9, 10], [10, 11],
  [11, 12], [9, 13], [13, 14], [14, 15], [15, 16], [13, 17], [17, 18], [18, 19], [19, 20], [0, 17]];
const POSE_EDGES = [[11, 12], [11, 13], [13, 15], [12, 14], [14, 16], [11, 23], [12, 24], [23, 24], [15, 17],
  [15, 19], [15, 21], [17, 19], [16, 18], [16, 20], [16, 22], [18, 20]];
// Distinct colours per part (tests look for them on the canvas).
const COLOURS = { pose: "#3d8bff", left_hand: "#00e676", right_hand: "#ff9100", lips: "#ff1744" };
const LANG = document.documentElement.lang === "en" ? "en" : "ru";
const CAMERA_STATES = ["ok", "connecting", "lost", "eof"];
const DAEMON_STATES = ["starting", "running", "idle", "stopping"];
const MAX_LABEL = 200;

const state = {
  config: null,
  minConfidence: 0.5,
  staleMs: 5000,
  lastStatusAt: 0, // viewer's clock, when the daemon sent the newest status (slr-web says how old it is)
  daemonState: null,
  lastPrediction: null, // { top, at } of the newest prediction shown
  daemonModel: null,
  transcript: new Map(), // entry id (a number from slr-web) -> entry
  uploading: false,
  clipFile: null,
  previewBroken: false,
  captions: null, // the last long video's subtitles: { srt, vtt }
  trackUrl: null,
  timelineTotal: 0, // seconds the episode timeline spans
};
// Figures for tests and benchmarks/bench_web.py (read through WebDriver).
window.slrStats = { signLatencyMs: [], previewFrames: 0, previewPoints: 0, rejected: 0, spoken: [] };

// ---- strings and formats ------------------------------------------------------------------------

let T = {};
function t(key, params = {}) {
  const template = Object.prototype.hasOwnProperty.call(T, key) ? T[key] : key;
  return template.replace(/\{([a-z0-9_]+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}
const numberFormats = new Map();
function num(value, digits) {
  if (!numberFormats.has(digits)) {
    numberFormats.set(digits, new Intl.NumberFormat(LANG, { minimumFractionDigits: digits, maximumFractionDigits: digits }));
  }
  return numberFormats.get(digits).format(value);
}
const pct = (p) => t("percent", { n: num(p * 100, 0) });
const pct1 = (p) => t("percent", { n: num(p * 100, 1) });
const ms = (value) => (value === null || value === undefined ? "—" : t("unit_ms", { n: num(value, value < 10 ? 1 : 0) }));
function mb(bytes) {
  const value = bytes / 2 ** 20; // one decimal below 10 MB unless it is a whole number ("1 MB", "1,5 MB")
  return t("unit_mb", { n: num(value, value < 10 && Math.round(value * 10) % 10 !== 0 ? 1 : 0) });
}
function clock(msSinceEpoch) {
  return new Date(msSinceEpoch).toLocaleTimeString(LANG, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}
// How long ago, in the largest unit that says it ("40 s", "3 min", "2 h 5 min").
function age(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return t("age_s", { n: s });
  if (s < 3600) return t("age_m", { m: Math.floor(s / 60) });
  return t("age_h", { h: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
}
function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? t("duration_hm", { h, m }) : t("duration_ms", { m, s: s % 60 });
}

// ---- validation: only these shapes are ever shown ------------------------------------------------

const isNum = (x) => typeof x === "number" && Number.isFinite(x);
const isCount = (x) => Number.isSafeInteger(x) && x >= 0;
const isProb = (x) => isNum(x) && x >= 0 && x <= 1;
const isText = (x) => typeof x === "string";
const optNum = (x) => x === null || x === undefined || (isNum(x) && x >= 0);
const text = (x) => x.slice(0, MAX_LABEL);

function validTopK(list) {
  if (!Array.isArray(list) || list.length === 0) return null;
  const out = [];
  for (const e of list.slice(0, 10)) {
    if (!e || !isText(e.label) || !isCount(e.index) || !isProb(e.prob)) return null;
    out.push({ label: text(e.label), index: e.index, prob: e.prob });
  }
  return out;
}

function validPrediction(m) {
  const topK = m && validTopK(m.top_k);
  if (!topK || !isNum(m.window_start) || !isNum(m.window_end) || !isCount(m.frames_used)) return null;
  if (!isNum(m.inference_ms) || !optNum(m.latency_ms) || !isText(m.model) || !isNum(m.ts)) return null;
  return { topK, duration: Math.max(0, m.window_end - m.window_start), frames: m.frames_used,
    inferenceMs: m.inference_ms, latencyMs: isNum(m.latency_ms) ? m.latency_ms : null, model: text(m.model), ts: m.ts };
}

function validStatus(m) {
  if (!m || !CAMERA_STATES.includes(m.camera) || !DAEMON_STATES.includes(m.state) || !isText(m.source)) return null;
  const counts = [m.dropped_frames, m.errors && m.errors.extraction, m.errors && m.errors.inference, m.errors && m.errors.frames];
  if (!counts.every(isCount) || !isNum(m.capture_fps) || !isNum(m.extraction_fps) || !isNum(m.uptime_s)) return null;
  if (![m.inference_p50_ms, m.latency_p50_ms, m.latency_p95_ms].every(optNum) || typeof m.idle !== "boolean") return null;
  if (!m.model || !isText(m.model.name) || !isText(m.model.sha256)) return null;
  if (m.age_s !== undefined && !(isNum(m.age_s) && m.age_s >= 0)) return null;
  return m;
}

function validPoints(points) {
  if (points === null) return true;
  return Array.isArray(points) && points.length <= 64
    && points.every((p) => Array.isArray(p) && p.length === 2 && isNum(p[0]) && isNum(p[1]));
}

function validPreview(m) {
  if (!m || !isText(m.jpeg) || !isCount(m.width) || !isCount(m.height)) return null;
  if (m.width < 1 || m.width > 640 || m.height < 1 || m.height > 640 || !m.keypoints) return null;
  const kp = m.keypoints;
  return ["pose", "left_hand", "right_hand", "lips"].every((part) => validPoints(kp[part])) ? m : null;
}

function validEntry(e) {
  if (!e || !isCount(e.id) || !isNum(e.ts) || !isText(e.label) || !isProb(e.prob)) return null;
  if (e.kind !== "segment" && e.kind !== "sign") return null;
  return { id: e.id, ts: e.ts, label: text(e.label), prob: e.prob, kind: e.kind };
}

// ---- rendering helpers --------------------------------------------------------------------------

function confidenceClass(p) {
  return p >= state.minConfidence ? "hi" : p >= state.minConfidence / 2 ? "mid" : "lo";
}

function el(tag, className, content) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (content !== undefined) node.textContent = content;
  return node;
}

function renderBars(list, topK) {
  const items = topK.slice(0, 5).map((entry) => {
    const cls = confidenceClass(entry.prob);
    const label = el("span", `label ${cls}`, entry.label);
    label.lang = "ru"; // the glosses are Russian words, on the English page too
    const track = el("span", "track");
    const fill = el("span", `fill ${cls}`);
    fill.style.width = `${Math.max(0, Math.min(100, entry.prob * 100)).toFixed(1)}%`;
    track.append(fill);
    const li = el("li");
    li.append(label, track, el("span", `pct ${cls}`, pct1(entry.prob)));
    return li;
  });
  list.replaceChildren(...items);
}

function verdict(prob) {
  const params = { pct: pct(prob), threshold: pct(state.minConfidence) };
  return t(prob >= state.minConfidence ? "verdict_sure" : "verdict_unsure", params);
}

function showHeadline(labelEl, verdictEl, top) {
  labelEl.textContent = top.label;
  labelEl.lang = "ru";
  const sure = top.prob >= state.minConfidence;
  labelEl.className = `top-label ${sure ? "hi" : "unsure"}`;
  verdictEl.textContent = verdict(top.prob);
  verdictEl.className = `verdict ${sure ? "sure" : "unsure"}`;
  fitText(labelEl);
}

// A word is never broken inside (a phone is narrower than "разочарованный" at headline size):
// lines break only between words, and a word wider than its box makes the font smaller until it fits.
function fitText(node) {
  node.style.fontSize = "";
  node.style.overflowWrap = "";
  if (!node.clientWidth) return;
  let size = parseFloat(getComputedStyle(node).fontSize);
  const smallest = 14;
  while (node.scrollWidth > node.clientWidth && size > smallest) {
    size = Math.max(smallest, size * 0.9);
    node.style.fontSize = `${size}px`;
  }
  // Longer than any word (a hostile label): broken at the edge rather than widening the page.
  if (node.scrollWidth > node.clientWidth) node.style.overflowWrap = "anywhere";
}

function reject(what) {
  window.slrStats.rejected += 1;
  console.warn("ignored a malformed message:", what);
}

// ---- live ---------------------------------------------------------------------------------------

function onPrediction(raw) {
  const msg = validPrediction(raw);
  if (!msg) return reject("prediction");
  state.lastPrediction = { top: msg.topK[0], at: msg.ts * 1000 };
  showHeadline($("top-label"), $("verdict"), msg.topK[0]);
  renderBars($("top5"), msg.topK);
  $("pred-meta").textContent = t("pred_time", { time: clock(msg.ts * 1000) });
  $("st-window").textContent = t("pred_meta", {
    duration: t("unit_s", { n: num(msg.duration, 1) }),
    frames: msg.frames,
    inference: ms(msg.inferenceMs),
    latency: ms(msg.latencyMs),
  });
  if (liveness() !== "live") showOldWord();
  return undefined;
}

function onStatus(raw) {
  const msg = validStatus(raw);
  if (!msg) return reject("status");
  // A status replayed to a new page carries its age: an old one must not look like news.
  state.lastStatusAt = Date.now() - (isNum(msg.age_s) ? msg.age_s * 1000 : 0);
  state.daemonState = msg.state;
  state.daemonModel = { name: text(msg.model.name), sha256: msg.model.sha256 };
  $("st-state").textContent = t(`state_${msg.state}`);
  const camera = $("st-camera");
  camera.textContent = t(`camera_${msg.camera}`);
  camera.className = msg.camera === "ok" ? "hi" : "lo";
  $("st-source").textContent = text(msg.source);
  $("st-capture").textContent = t("unit_fps", { n: num(msg.capture_fps, 1) });
  $("st-extraction").textContent = t("unit_fps", { n: num(msg.extraction_fps, 1) });
  $("st-dropped").textContent = String(msg.dropped_frames);
  $("st-idle").textContent = t(msg.idle ? "idle_yes" : "idle_no");
  $("st-inference").textContent = ms(msg.inference_p50_ms);
  $("st-latency").textContent = `${ms(msg.latency_p50_ms)} / ${ms(msg.latency_p95_ms)}`;
  $("st-model").textContent = t("model_value", { name: state.daemonModel.name, sha: state.daemonModel.sha256.slice(0, 12) });
  $("st-uptime").textContent = duration(msg.uptime_s);
  $("st-errors").textContent = t("errors_value", msg.errors);
  checkModelMatch();
  updateLink();
  return undefined;
}

function checkModelMatch() {
  const cfg = state.config;
  const banner = $("model-mismatch");
  if (!cfg || !cfg.upload_model_sha256 || !state.daemonModel) return;
  const differs = cfg.upload_model_sha256 !== state.daemonModel.sha256;
  banner.hidden = !differs;
  banner.textContent = differs ? t("mismatch_banner", { upload: String(cfg.upload_model), live: state.daemonModel.name }) : "";
}

let eventsOpen = false;
function liveness() {
  if (!eventsOpen) return "unreachable";
  if (!state.lastStatusAt || Date.now() - state.lastStatusAt > state.staleMs) return "stale";
  return state.daemonState === "stopping" ? "stopping" : "live";
}

// Once the data is not live, the headline says it is the last word, and when it was recognised.
function showOldWord() {
  const last = state.lastPrediction;
  if (!last) return;
  const node = $("verdict");
  node.textContent = t("last_word", { time: clock(last.at) });
  node.className = "verdict unsure";
}

function updateLink() {
  const now = liveness();
  const pill = $("link");
  const [key, cls] = { unreachable: ["link_unreachable", "bad"], stale: ["link_not_responding", "warn"],
    stopping: ["link_stopping", "warn"], live: ["link_live", "ok"] }[now];
  pill.textContent = t(key);
  pill.className = `pill ${cls}`;
  // The newest data's time and age, on the viewer's clock from slr-web's age: honest from the first status.
  const since = state.lastStatusAt
    ? { time: clock(state.lastStatusAt), age: age((Date.now() - state.lastStatusAt) / 1000) } : null;
  $("st-last").textContent = since ? t("last_value", since) : "—";
  // Every live panel says how old its data is once it is no longer live.
  let note = t("stale_never");
  if (since) note = t(state.daemonState === "stopping" ? "stopped_at" : "stale_since", since);
  if (now !== "live") {
    showOldWord();
  } else if (state.lastPrediction) {
    const sure = state.lastPrediction.top.prob >= state.minConfidence;
    $("verdict").textContent = verdict(state.lastPrediction.top.prob);
    $("verdict").className = `verdict ${sure ? "sure" : "unsure"}`;
  }
  for (const panel of document.querySelectorAll(".live-panel")) {
    panel.classList.toggle("stale", now !== "live");
    const stale = panel.querySelector(".stale-note");
    stale.hidden = now === "live";
    stale.textContent = now === "live" ? "" : note;
  }
}

function connectEvents() {
  const source = new EventSource("/api/events");
  const parse = (handler) => (event) => {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch (err) {
      reject(event.type);
      return;
    }
    try {
      handler(data);
    } catch (err) {
      console.error("event handler failed", err);
    }
  };
  source.addEventListener("prediction", parse(onPrediction));
  source.addEventListener("status", parse(onStatus));
  source.addEventListener("transcript-all", parse(onTranscriptAll));
  source.addEventListener("transcript", parse(onTranscriptEntry));
  source.addEventListener("transcript-clear", parse(onTranscriptClear));
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

// ---- transcript: kept by slr-web for every viewer ---------------------------------------------

function onTranscriptAll(msg) {
  if (!msg || !Array.isArray(msg.entries)) return reject("transcript-all");
  state.transcript.clear();
  for (const raw of msg.entries) {
    const entry = validEntry(raw);
    if (entry) state.transcript.set(entry.id, entry);
    else reject("transcript entry");
  }
  renderTranscript();
  return undefined;
}

function onTranscriptEntry(raw) {
  const entry = validEntry(raw);
  if (!entry) return reject("transcript entry");
  if (state.transcript.has(entry.id)) return undefined;
  state.transcript.set(entry.id, entry);
  renderTranscript();
  if (entry.prob >= state.minConfidence) speak(entry.label);
  requestAnimationFrame(() => {
    window.slrStats.signLatencyMs.push(Date.now() - entry.ts * 1000);
  });
  return undefined;
}

function onTranscriptClear() {
  state.transcript.clear();
  renderTranscript();
}

function sortedEntries() {
  return [...state.transcript.values()].sort((a, b) => a.ts - b.ts || a.id - b.id);
}

function renderTranscript() {
  const showLow = $("show-low").checked;
  const all = sortedEntries();
  const low = all.filter((e) => e.prob < state.minConfidence).length;
  const shown = all.filter((e) => showLow || e.prob >= state.minConfidence).reverse(); // newest first
  const items = shown.map((entry) => {
    const li = el("li", entry.prob >= state.minConfidence ? "" : "low");
    const at = new Date(entry.ts * 1000);
    const time = el("time", "", clock(entry.ts * 1000));
    time.dateTime = at.toISOString();
    const word = el("span", "word", entry.label);
    word.lang = "ru";
    li.append(time, word, el("span", "meta", pct(entry.prob)));
    return li;
  });
  $("transcript").replaceChildren(...items);
  $("transcript-note").textContent = t("transcript_note", { threshold: pct(state.minConfidence), hidden: low });
}

// What copy and download take: the entries the list shows (the unsure ones too while they are shown).
function transcriptText() {
  const showLow = $("show-low").checked;
  return sortedEntries()
    .filter((e) => showLow || e.prob >= state.minConfidence)
    .map((e) => t("transcript_line", { time: clock(e.ts * 1000), word: e.label, pct: pct(e.prob) }))
    .join("\n");
}

async function copyTranscript() {
  const body = transcriptText();
  const msg = $("copy-msg");
  if (!body) {
    msg.textContent = t("copy_empty");
    return;
  }
  try {
    await navigator.clipboard.writeText(body);
  } catch (err) {
    const area = document.createElement("textarea");
    area.value = body;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  msg.textContent = t("copy_done");
}

function downloadTranscript() {
  const body = transcriptText();
  if (!body) {
    $("copy-msg").textContent = t("download_empty");
    return;
  }
  saveFile(`${body}\n`, t("transcript_filename"), "text/plain;charset=utf-8");
  $("copy-msg").textContent = t("download_done");
}

function saveFile(body, filename, type) {
  const url = URL.createObjectURL(new Blob([body], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function askClear() {
  $("clear-dialog").showModal();
  $("clear-cancel").focus();
}

async function confirmClear() {
  $("clear-dialog").close();
  $("clear").focus();
  try {
    const response = await fetch("/api/transcript", { method: "DELETE", credentials: "same-origin" });
    if (!response.ok) throw new Error(String(response.status));
    onTranscriptClear(); // the server's event tells the other viewers
    $("copy-msg").textContent = t("cleared_msg");
  } catch (err) {
    $("copy-msg").textContent = t("clear_failed", { error: err.message || String(err) });
  }
}

// ---- speech: read new entries aloud (the browser's speech synthesis, a Russian voice) ---------

function russianVoice() {
  const voices = window.speechSynthesis ? window.speechSynthesis.getVoices() : [];
  return voices.find((v) => /^ru([-_]|$)/i.test(v.lang)) || null;
}

const SPEAK_KEY = "slovo-edge.speak";

// The speech switch is this browser's choice: kept across reloads (and false if storage is off).
function rememberSpeak() {
  try {
    localStorage.setItem(SPEAK_KEY, $("speak").checked ? "1" : "0");
  } catch (err) {
    // private mode or storage off: the switch still works for this page
  }
  updateSpeakNote();
}

function restoreSpeak() {
  try {
    $("speak").checked = localStorage.getItem(SPEAK_KEY) === "1";
  } catch (err) {
    $("speak").checked = false;
  }
  updateSpeakNote();
}

function updateSpeakNote() {
  const note = $("speak-note");
  if (!$("speak").checked) {
    note.textContent = "";
    return;
  }
  if (!window.speechSynthesis || !window.SpeechSynthesisUtterance) {
    note.textContent = t("speak_no_support");
    return;
  }
  const voice = russianVoice();
  note.textContent = voice ? t("speak_on", { voice: voice.name }) : t("speak_no_voice");
}

function speak(word) {
  if (!$("speak").checked || !window.speechSynthesis) return;
  const voice = russianVoice();
  if (!voice) return;
  try {
    const utterance = new SpeechSynthesisUtterance(word);
    utterance.voice = voice;
    utterance.lang = voice.lang;
    window.speechSynthesis.speak(utterance);
    window.slrStats.spoken.push(word);
  } catch (err) {
    console.warn("speech failed", err); // the transcript itself must not stop
  }
}

// ---- camera preview -----------------------------------------------------------------------------

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

async function onPreview(raw) {
  const msg = validPreview(raw);
  if (!msg) {
    reject("preview");
    return;
  }
  if (!previewWanted()) return;
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
  const hands = [kp.left_hand && t("hand_left"), kp.right_hand && t("hand_right")].filter(Boolean);
  $("preview-meta").textContent = t("preview_meta", {
    w: msg.width, h: msg.height, hands: hands.length ? hands.join(" + ") : t("hands_none"), points: drawn,
  });
}

function setPreview(on) {
  const canvas = $("preview");
  canvas.hidden = !$("preview-on").checked; // off: no frozen frame left on screen
  if (on && !preview) {
    preview = new EventSource("/api/preview");
    preview.addEventListener("preview", (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (err) {
        reject("preview");
        return;
      }
      onPreview(data).catch(console.error);
    });
  } else if (!on && preview) {
    preview.close(); // the daemon stops making frames once nobody watches
    preview = null;
  }
  if (!$("preview-on").checked) {
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
    $("preview-meta").textContent = t("camera_off");
  }
}

function previewWanted() {
  return $("preview-on").checked && !document.hidden;
}

// ---- clips: upload and record -------------------------------------------------------------------

function clipMessage(value) {
  $("clip-msg").textContent = value;
}

function clipError(value) {
  const node = $("clip-error");
  node.textContent = value;
  node.hidden = !value;
}

function clipWarning(value) {
  const node = $("clip-warning");
  node.textContent = value;
  node.hidden = !value;
}

function onProgress(msg) {
  if (!state.uploading || !msg || msg.state !== "extracting" || !isCount(msg.done)) return;
  const bar = $("progress");
  bar.hidden = false;
  if (isCount(msg.total) && msg.total > 0) {
    bar.max = msg.total;
    bar.value = Math.min(msg.done, msg.total);
    clipMessage(t("clip_extracting_total", { done: msg.done, total: msg.total }));
  } else {
    bar.removeAttribute("value");
    clipMessage(t("clip_extracting", { done: msg.done }));
  }
}

function resetClipView() {
  const video = $("clip-video");
  video.srcObject = null;
  if (video.src) URL.revokeObjectURL(video.src);
  video.removeAttribute("src");
  video.hidden = true;
  const poster = $("clip-poster");
  poster.removeAttribute("src");
  poster.hidden = true;
  $("clip-preview-note").hidden = true;
  state.previewBroken = false;
  for (const old of video.querySelectorAll("track")) old.remove();
  if (state.trackUrl) URL.revokeObjectURL(state.trackUrl);
  state.trackUrl = null;
  state.captions = null;
  state.timelineTotal = 0;
  showCaption("");
  $("episodes").hidden = true;
}

function showClip(blob) {
  resetClipView();
  const video = $("clip-video");
  video.src = URL.createObjectURL(blob);
  video.hidden = false;
}

function onVideoError() {
  // A file the browser cannot play (MJPEG AVI in Chrome): no dead black box; a poster frame later.
  if (!$("clip-video").getAttribute("src")) return;
  state.previewBroken = true;
  $("clip-video").hidden = true;
  $("clip-preview-note").hidden = false;
}

function chooseFile(file) {
  clipError("");
  clipWarning("");
  $("clip-result").hidden = true;
  $("episodes").hidden = true;
  state.clipFile = null;
  $("send").disabled = true;
  if (!file) return;
  const limit = state.config ? state.config.max_upload_bytes : Infinity;
  if (file.size === 0) {
    clipError(t("clip_empty"));
    return;
  }
  if (file.size > limit) {
    clipError(t("clip_too_big", { size: mb(file.size), limit: mb(limit) }));
    return;
  }
  state.clipFile = file;
  showClip(file);
  $("send").disabled = state.uploading;
  clipMessage(t("clip_ready", { name: text(file.name), size: mb(file.size) }));
}

function validResult(r) {
  const topK = r && validTopK(r.top_k);
  if (!topK || !isCount(r.frames) || !isCount(r.hand_frames) || !isText(r.model)) return null;
  return {
    topK, frames: r.frames, handFrames: r.hand_frames, model: text(r.model),
    fps: isNum(r.clip_fps) ? r.clip_fps : null, resampled: r.resampled === true,
    complete: r.complete !== false, declared: isCount(r.declared_frames) ? r.declared_frames : null,
    poster: isText(r.poster) && r.poster.startsWith("data:image/jpeg;base64,") ? r.poster : null,
  };
}

function showResult(raw) {
  const result = validResult(raw);
  if (!result) {
    clipError(t("err_other", { status: 200 }));
    return;
  }
  const top = $("clip-top");
  const topList = $("clip-top5");
  if (result.handFrames === 0) {
    top.textContent = t("clip_no_hands_headline");
    top.className = "top-label none";
    $("clip-verdict").textContent = "";
    topList.classList.add("dim");
    clipError(t("clip_no_hands"));
  } else {
    showHeadline(top, $("clip-verdict"), result.topK[0]);
    topList.classList.remove("dim");
  }
  renderBars(topList, result.topK);
  $("clip-meta").textContent = t("clip_meta", {
    frames: result.frames,
    fps: result.fps ? t("unit_fps", { n: num(result.fps, 1) }) : t("clip_fps_unknown"),
    hands: result.handFrames,
    resampled: result.resampled ? t("clip_resampled") : "",
    model: result.model,
  });
  showUploadNotes(result);
  $("clip-result").hidden = false;
}

// What every upload result shows besides its own panel: the truncation warning, and a poster frame
// in place of a preview the browser cannot play.
function showUploadNotes(result) {
  if (!result.complete) {
    // A variable-rate file declares a length but no frame count: no "of ? frames".
    clipWarning(result.declared === null ? t("clip_incomplete_length", { decoded: result.frames })
      : t("clip_incomplete", { decoded: result.frames, declared: result.declared }));
  }
  const video = $("clip-video");
  if (result.poster && (state.previewBroken || (video.getAttribute("src") && video.videoWidth === 0))) {
    video.hidden = true;
    $("clip-preview-note").hidden = true;
    const poster = $("clip-poster");
    poster.src = result.poster;
    poster.hidden = false;
  }
}

// ---- long videos: episodes, timeline, captions (slr-predict --segments --srt --vtt) -------------------

function validCaptions(r) {
  if (!r || !Array.isArray(r.segments) || !Array.isArray(r.cues) || !isText(r.srt) || !isText(r.vtt)) return null;
  if (!isCount(r.frames) || !isText(r.model)) return null;
  const episodes = [];
  for (const s of r.segments.slice(0, 5000)) {
    const topK = s && validTopK(s.top_k);
    if (!topK || !isNum(s.start) || !isNum(s.end) || s.start < 0 || s.end < s.start) return null;
    episodes.push({ start: s.start, end: s.end, top: topK[0] });
  }
  return {
    episodes, cues: r.cues.length, srt: r.srt, vtt: r.vtt, frames: r.frames,
    complete: r.complete !== false, declared: isCount(r.declared_frames) ? r.declared_frames : null,
    poster: isText(r.poster) && r.poster.startsWith("data:image/jpeg;base64,") ? r.poster : null,
  };
}

function timecode(seconds) {
  const m = Math.floor(seconds / 60);
  const sec = seconds - m * 60;
  return `${m}:${sec < 10 ? "0" : ""}${num(Math.floor(sec * 10) / 10, 1)}`;
}

function seek(start) {
  const video = $("clip-video");
  if (video.hidden || !video.getAttribute("src")) return;
  video.currentTime = start;
  video.play().catch(() => {});
}

// Captions are drawn by the page under the video, at a size that reads on a phone (the browser's own
// scale with the video's height: ~10 px on a portrait clip). In full screen the browser draws them.
function showCaption(value) {
  const node = $("caption-text");
  node.textContent = value;
  node.hidden = !value;
}

function captionMode() {
  const video = $("clip-video");
  const full = document.fullscreenElement === video;
  for (const track of video.textTracks) track.mode = full ? "showing" : "hidden";
  if (full) showCaption("");
}

function onCueChange(event) {
  const cues = event.target.activeCues ? Array.from(event.target.activeCues) : [];
  showCaption(document.fullscreenElement ? "" : cues.map((cue) => cue.text).join("\n"));
}

function attachCaptions(vtt) {
  const video = $("clip-video");
  state.trackUrl = URL.createObjectURL(new Blob([vtt], { type: "text/vtt" }));
  const track = document.createElement("track");
  track.kind = "captions";
  track.srclang = "ru"; // the glosses are Russian words
  track.label = t("captions_track");
  track.src = state.trackUrl;
  track.default = true;
  video.append(track);
  track.track.addEventListener("cuechange", onCueChange);
  captionMode();
}

// The timeline: where the video is (a playhead), a time scale, and a click that goes there.
function updatePlayhead() {
  const head = $("playhead");
  if (!head || !state.timelineTotal) return;
  const at = Math.min(1, Math.max(0, $("clip-video").currentTime / state.timelineTotal));
  head.style.left = `${(100 * at).toFixed(2)}%`;
}

function onTimelineClick(event) {
  const box = $("timeline").getBoundingClientRect();
  if (!state.timelineTotal || box.width <= 0) return;
  const at = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
  seek(at * state.timelineTotal);
  updatePlayhead();
}

function renderScale(total) {
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((share) => {
    const tick = el("span", "tick", timecode(share * total));
    tick.style.left = `${100 * share}%`;
    return tick;
  });
  $("timeline-scale").replaceChildren(...ticks);
}

function showEpisodes(raw) {
  const result = validCaptions(raw);
  if (!result) {
    clipError(t("err_other", { status: 200 }));
    return;
  }
  const video = $("clip-video");
  const last = result.episodes.reduce((end, e) => Math.max(end, e.end), 0);
  const total = Math.max(last, Number.isFinite(video.duration) ? video.duration : 0) || 1;
  const marks = [];
  const items = result.episodes.map((episode) => {
    const sure = episode.top.prob >= state.minConfidence;
    const mark = el("span", `mark ${sure ? "" : "low"}`);
    mark.style.left = `${((100 * episode.start) / total).toFixed(2)}%`;
    mark.style.width = `${Math.max(0.5, (100 * (episode.end - episode.start)) / total).toFixed(2)}%`;
    marks.push(mark);
    const button = el("button", "");
    const word = el("span", "", episode.top.label);
    word.lang = "ru";
    const [before, after] = t("episode_item", {
      start: timecode(episode.start), end: timecode(episode.end), pct: pct(episode.top.prob),
    }).split("{word}");
    const line = el("span"); // one inline run: a flex button would trim the spaces around the word
    line.append(before, word, after ?? "");
    button.append(line);
    button.type = "button";
    button.addEventListener("click", () => seek(episode.start));
    const li = el("li", sure ? "" : "low");
    li.append(button);
    return li;
  });
  const head = el("span", "playhead");
  head.id = "playhead";
  state.timelineTotal = total;
  $("timeline").replaceChildren(...marks, head);
  renderScale(total);
  updatePlayhead();
  $("episode-list").replaceChildren(...items);
  const params = { count: result.episodes.length, cues: result.cues, threshold: pct(state.minConfidence) };
  if (!result.episodes.length) $("episodes-meta").textContent = t("episodes_none");
  else if (!result.cues) $("episodes-meta").textContent = t("episodes_no_cues", params);
  else $("episodes-meta").textContent = t("episodes_meta", params);
  $("caption-downloads").hidden = result.cues === 0; // no file of nothing to offer
  state.captions = result.cues ? { srt: result.srt, vtt: result.vtt } : null;
  for (const old of video.querySelectorAll("track")) old.remove();
  attachCaptions(result.vtt);
  showUploadNotes(result);
  $("episodes").hidden = false;
}

function downloadCaptions(format) {
  if (!state.captions) return;
  const type = format === "srt" ? "application/x-subrip;charset=utf-8" : "text/vtt;charset=utf-8";
  saveFile(state.captions[format], `captions.${format}`, type);
  clipMessage(t("download_done"));
}

// The server's error in this page's language: by its code, else by its status, else a generic line.
// The server's own (English) text is never shown.
const ERROR_CODES = ["bad_upload", "too_slow", "busy", "too_big", "bad_form", "unreadable", "failed", "timeout",
  "uploads_off"];
const ERROR_STATUSES = [400, 409, 413, 415, 422, 504];
function uploadError(status, body) {
  const code = body && isText(body.code) ? body.code : "";
  if (ERROR_CODES.includes(code)) return t(`err_code_${code}`);
  if (ERROR_STATUSES.includes(status)) return t(`err_${status}`);
  return t("err_other", { status });
}

function upload(blob, name, captions = false) {
  state.uploading = true;
  $("send").disabled = true;
  $("record").disabled = true;
  clipError("");
  clipWarning("");
  $("clip-result").hidden = true;
  $("episodes").hidden = true;
  const bar = $("progress");
  bar.hidden = false;
  bar.max = 100;
  bar.value = 0;
  clipMessage(t("clip_uploading"));
  const form = new FormData();
  form.append("file", blob, name);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", captions ? "/api/captions" : "/api/predict");
  xhr.responseType = "json";
  xhr.upload.onprogress = (event) => {
    if (event.lengthComputable) {
      bar.value = (100 * event.loaded) / event.total;
      clipMessage(t("clip_uploading_pct", { pct: pct(event.loaded / event.total) }));
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
      clipMessage(t("clip_done"));
      if (captions) showEpisodes(body);
      else showResult(body);
    } else {
      clipMessage("");
      clipError(uploadError(xhr.status, body));
    }
  };
  xhr.onerror = () => {
    done();
    clipMessage("");
    clipError(t("err_network"));
  };
  xhr.send(form);
}

const sleep = (delay) => new Promise((resolve) => setTimeout(resolve, delay));

async function record() {
  clipError("");
  clipWarning("");
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    clipError(t("rec_need_secure"));
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (err) {
    clipError(t("rec_camera_error", { error: err.message || err.name }));
    return;
  }
  $("record").disabled = true;
  $("send").disabled = true;
  resetClipView();
  const video = $("clip-video");
  video.srcObject = stream;
  video.hidden = false;
  await video.play().catch(() => {});
  const countdown = $("countdown");
  countdown.hidden = false;
  countdown.textContent = "3";
  // The signer must see the countdown: the camera view comes on screen and takes the focus (the
  // record button is disabled meanwhile, and a disabled button's focus would fall to the page).
  $("clip-view").scrollIntoView({ block: "center", behavior: "instant" });
  countdown.focus({ preventScroll: true });
  for (let n = 3; n > 0; n -= 1) {
    countdown.textContent = String(n);
    clipMessage(t("rec_get_ready", { n }));
    await sleep(1000);
  }
  const chunks = [];
  const recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (event) => event.data.size && chunks.push(event.data);
  const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
  recorder.start();
  for (let n = 3; n > 0; n -= 1) {
    countdown.textContent = `● ${n}`;
    clipMessage(t("rec_recording", { n }));
    await sleep(1000);
  }
  recorder.stop();
  await stopped;
  stream.getTracks().forEach((track) => track.stop());
  countdown.hidden = true;
  $("clip").focus({ preventScroll: true }); // the focus stays in the clip section, not on the page body
  const blob = new Blob(chunks, { type: recorder.mimeType || "video/webm" });
  showClip(blob);
  upload(blob, "recording.webm");
}

// ---- start --------------------------------------------------------------------------------------

async function loadConfig() {
  try {
    const response = await fetch("/api/config");
    state.config = await response.json();
  } catch (err) {
    setTimeout(loadConfig, 3000);
    return;
  }
  const cfg = state.config;
  if (isProb(cfg.min_confidence)) state.minConfidence = cfg.min_confidence;
  if (isNum(cfg.status_stale_s) && cfg.status_stale_s > 0) state.staleMs = cfg.status_stale_s * 1000;
  $("untrained").hidden = !cfg.untrained;
  $("untrained-detail").hidden = !cfg.untrained;
  $("logout-form").hidden = cfg.login !== true; // a session to end only when a token is in use
  const note = $("upload-note");
  if (cfg.upload) {
    note.textContent = t("upload_note", { mb: mb(cfg.max_upload_bytes), model: String(cfg.upload_model) });
  } else {
    note.textContent = t("upload_off");
    $("record").disabled = true;
  }
  renderTranscript();
  checkModelMatch();
}

async function loadStrings() {
  try {
    const response = await fetch(`/static/i18n/${LANG}.json`);
    T = await response.json();
  } catch (err) {
    T = {};
  }
}

async function start() {
  await loadStrings();
  await loadConfig();
  connectEvents();
  setInterval(updateLink, 1000);
  $("copy").addEventListener("click", copyTranscript);
  $("download").addEventListener("click", downloadTranscript);
  $("clear").addEventListener("click", askClear);
  $("clear-confirm").addEventListener("click", confirmClear);
  $("clear-cancel").addEventListener("click", () => {
    $("clear-dialog").close();
    $("clear").focus();
  });
  $("show-low").addEventListener("change", renderTranscript);
  $("speak").addEventListener("change", rememberSpeak);
  restoreSpeak();
  if (window.speechSynthesis) window.speechSynthesis.addEventListener("voiceschanged", updateSpeakNote);
  $("file").addEventListener("change", (event) => chooseFile(event.target.files[0]));
  $("send").addEventListener("click", () => {
    if (state.clipFile) upload(state.clipFile, state.clipFile.name, $("captions-mode").checked);
  });
  $("download-srt").addEventListener("click", () => downloadCaptions("srt"));
  $("download-vtt").addEventListener("click", () => downloadCaptions("vtt"));
  $("record").addEventListener("click", () => record().catch((err) => clipError(String(err))));
  $("clip-video").addEventListener("error", onVideoError);
  $("clip-video").addEventListener("timeupdate", updatePlayhead);
  $("timeline").addEventListener("click", onTimelineClick);
  document.addEventListener("fullscreenchange", captionMode);
  $("preview-on").addEventListener("change", () => setPreview(previewWanted()));
  document.addEventListener("visibilitychange", () => setPreview(previewWanted()));
  setPreview(previewWanted());
  updateLink();
}

document.addEventListener("DOMContentLoaded", () => {
  start().catch((err) => console.error("start failed", err));
});
