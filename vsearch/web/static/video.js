// A video's page: play from the matched second, mark the range, list the other segments.
"use strict";
const $ = (id) => document.getElementById(id);
const id = location.pathname.split("/").pop();
const p = new URLSearchParams(location.search);
const start = parseFloat(p.get("t") || "0");
const seg = p.get("seg");

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
  if (current) {
    $("range-mark").style.left = `${(100 * current.start) / v.duration}%`;
    $("range-mark").style.width = `${(100 * (current.end - current.start)) / v.duration}%`;
    $("range-text").textContent = `matched ${fmt(current.start)}–${fmt(current.end)}`;
  }
  const player = $("player");
  const playable = player.canPlayType(v.mime) !== "";
  if (!playable || !v.exists) {
    $("player-box").hidden = true;
    $("fallback").hidden = false;
    $("fallback-why").textContent = v.exists
      ? `This browser cannot play ${v.mime} files (${v.codec}); here are the segments as pictures. Open the file in a player: ${v.path}`
      : `The file is no longer on disk: ${v.path}`;
    for (const s of v.segments) { const img = document.createElement("img"); img.src = s.thumb; img.alt = fmt(s.start); $("strip").append(img); }
  } else {
    player.src = `/media/${id}`;
    player.addEventListener("loadedmetadata", () => { player.currentTime = start; }, { once: true });
    player.play().catch(() => {});
  }
  for (const s of v.segments) {
    const li = document.createElement("li");
    if (current && s.segment_id === current.segment_id) li.className = "current";
    li.innerHTML = `<a href="/v/${id}?t=${s.start}&seg=${s.segment_id}"><img loading="lazy" alt="" src="${s.thumb}"></a><span>${fmt(s.start)}–${fmt(s.end)}</span>`;
    $("segments").append(li);
  }
});
