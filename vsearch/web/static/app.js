// The search page: the URL is the state (?q=, ?like=, k, segments, filters), results render without a reload.
"use strict";
const $ = (id) => document.getElementById(id);
const PAGE = 24;
// Filter fields: URL / API parameter -> form input. Each is carried in the URL and sent to the API.
const FILTERS = { not: "f-not", in: "f-in", min_duration: "f-min", max_duration: "f-max", after: "f-after", before: "f-before" };
let state = { q: "", like: null, segments: false, offset: 0, image: null, filters: {} };

function readFilters() {
  const f = {};
  for (const [key, id] of Object.entries(FILTERS)) { const v = $(id).value.trim(); if (v) f[key] = v; }
  return f;
}

function showFilters(f) {
  for (const [key, id] of Object.entries(FILTERS)) $(id).value = f[key] || "";
  $("refine").open = Object.keys(f).length > 0;
}

function addFilters(params, f) {
  for (const [key, v] of Object.entries(f)) if (!(state.like && key === "not")) params.set(key, v);
}

function fmt(t) {
  const s = Math.floor(t), m = Math.floor(s / 60);
  return `${String(m).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

// The moment when the search refined the hit (its segment widened to the neighbours that match as
// well), else the segment itself.
function moment(hit) {
  return hit.moment_start == null ? [hit.start, hit.end] : [hit.moment_start, hit.moment_end];
}

function card(hit) {
  const [a, b] = moment(hit);
  const best = fmt(a) === fmt(hit.start) && fmt(b) === fmt(hit.end) ? "" : ` <span class="best">(best ${fmt(hit.start)}–${fmt(hit.end)})</span>`;
  const el = document.createElement("article");
  el.className = "card";
  el.dataset.path = hit.path;
  el.dataset.segment = hit.segment_id;
  el.innerHTML = `
    <a class="thumb" href="${hit.page}"><img loading="lazy" alt="" src="${hit.thumb}" srcset="${hit.thumb} 2x"></a>
    <div class="body">
      <a class="name" href="${hit.page}"></a>
      <span class="folder"></span>
      <span class="meta"><span class="moment">${fmt(a)}–${fmt(b)}</span>${best} · score ${hit.score.toFixed(3)}${hit.missing ? ' · <b class="missing">file missing</b>' : ""}</span>
      <button class="like" type="button">More like this</button>
    </div>`;
  el.querySelector(".name").textContent = hit.name;
  el.querySelector(".folder").textContent = hit.folder;
  el.querySelector("img").alt = `${hit.name} at ${fmt(a)}`;
  el.querySelector(".like").addEventListener("click", () => go({ q: "", like: hit.segment_id, offset: 0 }));
  return el;
}

function url() {
  const p = new URLSearchParams();
  if (state.like) p.set("like", state.like); else if (state.q) p.set("q", state.q);
  if (state.segments) p.set("segments", "1");
  addFilters(p, state.filters);
  return p.toString() ? `/?${p}` : "/";
}

// Each search gets a number; a response that arrives after a newer search began is dropped, so a slow
// answer to an old query never replaces the results of the current one. #results carries aria-busy
// while a search is in flight (screen readers announce it; tests wait on it).
let generation = 0;

async function run(append) {
  const mine = ++generation;
  $("results").setAttribute("aria-busy", "true");
  try {
    await search(append, mine);
  } finally {
    if (mine === generation) $("results").setAttribute("aria-busy", "false");
  }
}

async function search(append, mine) {
  sessionStorage.setItem("vsearch.results", location.pathname + location.search);  // the video page's "back"
  const params = new URLSearchParams({ k: PAGE, offset: state.offset, segments: state.segments ? "1" : "0" });
  addFilters(params, state.filters);
  let resp;
  if (state.image) {
    if (state.q) params.set("q", state.q);  // words and picture together: one query
    const body = new FormData();
    body.append("file", state.image);
    resp = await fetch(`/api/image?${params}`, { method: "POST", body });
  } else if (state.like) {
    resp = await fetch(`/api/like/${state.like}?${params}`);
  } else if (state.q) {
    params.set("q", state.q);
    resp = await fetch(`/api/search?${params}`);
  } else {
    $("results").replaceChildren(); $("summary").textContent = ""; $("more").hidden = true;
    return;
  }
  const data = await resp.json();
  if (mine !== generation) return;  // a newer search has begun: its results win
  if (!resp.ok) { $("summary").textContent = data.error; $("results").replaceChildren(); $("more").hidden = true; return; }
  if (data.warnings && data.warnings.length && !data.hits.length) { $("summary").textContent = data.warnings.join(" "); $("results").replaceChildren(); $("more").hidden = true; return; }
  const what = state.image ? (state.q ? `the image with “${state.q}”` : "the image") : state.like ? "more like this" : `“${data.query}”`;
  const shown = (append ? $("results").children.length : 0) + data.hits.length;
  $("summary").textContent = `${what}: ${shown} ${state.segments ? "segments" : "videos (best segment each)"} of ${data.searched} segments searched · ${Math.round(data.took_ms)} ms`;
  const cards = data.hits.map(card);
  if (append) $("results").append(...cards); else $("results").replaceChildren(...cards);
  $("more").hidden = !data.more;
}

function go(change, push = true) {
  Object.assign(state, { image: null }, change);
  $("q").value = state.q || "";
  $("segments").checked = state.segments;
  if (push) history.pushState(null, "", url());
  run(false);
}

function fromUrl() {
  const p = new URLSearchParams(location.search);
  const filters = {};
  for (const key of Object.keys(FILTERS)) if (p.get(key)) filters[key] = p.get(key);
  state = { q: p.get("q") || "", like: p.get("like"), segments: p.get("segments") === "1", offset: 0, image: null, filters };
  $("q").value = state.q; $("segments").checked = state.segments; showFilters(filters);
  run(false);
}

$("search").addEventListener("submit", (e) => {
  e.preventDefault();
  const change = { q: $("q").value.trim(), like: null, offset: 0, filters: readFilters() };
  if (state.image) { Object.assign(state, change); history.pushState(null, "", "/"); run(false); }  // refine the picture's search
  else go(change);
});
$("segments").addEventListener("change", () => go({ segments: $("segments").checked, offset: 0 }));
$("more").addEventListener("click", () => { state.offset += PAGE; run(true); });
$("image").addEventListener("change", () => { if ($("image").files[0]) searchImage($("image").files[0]); });
function searchImage(file) {
  // The words already typed stay: picture and words form one query ("this picture, at night").
  Object.assign(state, { image: file, q: $("q").value.trim(), like: null, offset: 0, filters: readFilters() });
  history.pushState(null, "", "/"); run(false);
}
document.addEventListener("dragover", (e) => { e.preventDefault(); $("drop").hidden = false; });
document.addEventListener("dragleave", (e) => { if (!e.relatedTarget) $("drop").hidden = true; });
document.addEventListener("drop", (e) => {
  e.preventDefault(); $("drop").hidden = true;
  const f = e.dataTransfer.files[0];
  if (f && f.type.startsWith("image/")) searchImage(f);
});
window.addEventListener("popstate", fromUrl);
fromUrl();
