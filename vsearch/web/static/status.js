// The status page: what the store holds, and the files that failed to index.
"use strict";
fetch("/api/status").then(r => r.json()).then(s => {
  const rows = [
    ["store", s.store],
    ["encoder", s.encoder ? `${s.encoder.name} (${s.encoder.family}), ${s.encoder.dim}-d, ${s.encoder.frames} frames, ${s.encoder.image_size} px` : "none yet"],
    ["videos", s.videos], ["segments", s.segments], ["index", `${s.index.kind}, file at generation ${s.index.file_generation} (store ${s.generation})` + (s.index.problem ? ` — damaged: ${s.index.problem}` : "")],
    ["last indexing run", s.last_run ? `${s.last_run.status} at ${s.last_run.started_at}: ` + Object.entries(s.last_run.counts).map(([k, v]) => `${k} ${v}`).join(", ") : "none"],
    ["failures", s.failures],
  ];
  const t = document.getElementById("status");
  for (const [k, v] of rows) {
    const tr = t.insertRow();
    tr.dataset.key = k;
    tr.insertCell().textContent = k;
    tr.insertCell().textContent = v;
  }
  const ul = document.getElementById("failures");
  for (const f of s.failure_list || []) { const li = document.createElement("li"); li.textContent = `${f.path}: ${f.reason}`; ul.append(li); }
  if (!(s.failure_list || []).length) ul.innerHTML = "<li>none</li>";
});
