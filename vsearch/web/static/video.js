// A video's page: play from the moment's start (?t=), mark the moment (?t= to ?end=) and the best
// segment (?seg=) on the bar, list the other segments.
"use strict";
const $ = (id) => document.getElementById(id);
const id = location.pathname.split("/").pop();
const p = new URLSearchParams(location.search);
const start = parseFloat(p.get("t") || "0");
const end = parseFloat(p.get("end"));  // NaN on links made before moments: the segment alone is marked
const seg = p.get("seg");

// RFC 6381 codec strings for the codecs vsearch records (FFmpeg's names): main profiles, the
// level of 1080p. A browser that answers "" for them cannot play the file, whatever it says of
// the bare container ("maybe" for video/mp4 even without an HEVC decoder).
const CODECS = {
  h264: "avc1.640028", hevc: "hvc1.1.6.L93.B0", vp9: "vp09.00.40.08", vp8: "vp8", av1: "av01.0.08M.08",
  mpeg4: "mp4v.20.9", theora: "theora",
};
const NAMES = { h264: "H.264", hevc: "HEVC (H.265)", vp9: "VP9", vp8: "VP8", av1: "AV1", mpeg4: "MPEG-4 Part 2", theora: "Theora" };

// Why this browser cannot play the file, or "" when it may (the error event decides then).
function playability(player, mime, codec) {
  if (player.canPlayType(mime) === "") return `This browser cannot play ${mime} files (${codec || "unknown codec"})`;
  const c = CODECS[codec];
  if (c && player.canPlayType(`${mime}; codecs="${c}"`) === "") return `This browser cannot play ${NAMES[codec]} video (${codec} in ${mime})`;
  return "";
}

function mediaError(e) {
  const names = { 1: "playback aborted", 2: "network error", 3: "the video could not be decoded", 4: "format not supported" };
  return e ? names[e.code] || `error ${e.code}` : "unknown error";
}

function picture(src, alt) {
  const img = document.createElement("img");
  img.src = src;
  img.srcset = `${src} 2x`;  // thumbnails are stored at twice a card's width: sharp on HiDPI screens
  img.alt = alt;
  return img;
}

function fmt(t) {
  const s = Math.floor(t), m = Math.floor(s / 60);
  return `${String(m).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

fetch(`/api/video/${id}`).then((r) => r.json()).then((v) => {
  if (v.error) { $("title").textContent = v.error; return; }
  document.title = `vsearch · ${v.name}`;
  $("title").textContent = v.name;
  $("facts").textContent = `${v.path} · ${fmt(v.duration)} · ${v.width}×${v.height} · ${v.codec || "?"}${v.exists ? "" : " · file missing"}`;
  // The server sends Referrer-Policy: no-referrer, so the results page leaves its URL here instead.
  const results = sessionStorage.getItem("vsearch.results");
  if (results && results.startsWith("/")) $("back").href = results;
  const current = v.segments.find((s) => String(s.segment_id) === seg) || v.segments.find((s) => s.start <= start && start < s.end);
  const mark = (el, a, b) => {
    const d = v.duration > 0 ? v.duration : 1, lo = Math.min(Math.max(a, 0), d), hi = Math.min(Math.max(b, lo), d);
    el.style.left = `${(100 * lo) / d}%`;
    el.style.width = `${(100 * (hi - lo)) / d}%`;
    el.hidden = false;
  };
  if (current) {
    mark($("range-mark"), current.start, current.end);
    $("range-text").textContent = `matched ${fmt(current.start)}–${fmt(current.end)}`;
  }
  if (Number.isFinite(end) && end > start) {
    mark($("moment-mark"), start, end);
    const same = current && fmt(start) === fmt(current.start) && fmt(end) === fmt(current.end);
    $("range-text").textContent = current && !same
      ? `moment ${fmt(start)}–${fmt(end)} · best segment ${fmt(current.start)}–${fmt(current.end)}`
      : `matched ${fmt(start)}–${fmt(end)}`;
  }
  const player = $("player");
  const fallback = (why) => {
    if (!$("fallback").hidden) return;
    player.removeAttribute("src");
    $("player-box").hidden = true;
    $("fallback").hidden = false;
    $("fallback-why").textContent = why;
    for (const s of v.segments) { $("strip").append(picture(s.thumb, fmt(s.start))); }
  };
  const verdict = playability(player, v.mime, v.codec);
  if (!v.exists) {
    fallback(`The file is no longer on disk: ${v.path}`);
  } else if (verdict) {
    fallback(`${verdict}; here are the segments as pictures. Open the file in a player: ${v.path}`);
  } else {
    // canPlayType can only say "maybe": the element's own error is the final word.
    player.addEventListener("error", () => {
      const e = player.error;
      fallback(`This browser could not play the file (${mediaError(e)}, ${v.codec || "unknown codec"}); here are the segments as pictures. Open the file in a player: ${v.path}`);
    }, { once: true });
    player.src = `/media/${id}`;
    player.addEventListener("loadedmetadata", () => { player.currentTime = start; }, { once: true });
    player.play().catch(() => {});
  }
  for (const s of v.segments) {
    const li = document.createElement("li");
    if (current && s.segment_id === current.segment_id) li.className = "current";
    li.innerHTML = `<a href="/v/${id}?t=${s.start}&seg=${s.segment_id}"><img loading="lazy" alt="" src="${s.thumb}" srcset="${s.thumb} 2x"></a><span>${fmt(s.start)}–${fmt(s.end)}</span>`;
    $("segments").append(li);
  }
});
