// Redaction before export (#/redact and #/redact/<job>), for investigators (unmask + export).
//
//   #/redact        choose an encrypted original and give a reason: the gateway decrypts it
//                   (audited) into a private job and analyses it; your jobs are listed below.
//   #/redact/<job>  the analysis' progress, then: a frame slider with the redacted preview of
//                   the current frame, the tracks with their thumbnails and time spans (click
//                   one to select it), the mode, style and reason, and Export: an MP4 and its
//                   signed manifest, checked by the gateway. Also: a trim (set start / end
//                   from the slider's frame), merges of selected tracks, a split of a track
//                   at the current frame (parts <id>a, <id>b), and manual regions drawn on
//                   the preview as rectangles (dragged) or polygons (clicked point by point),
//                   one keyframe per frame drawn at; a polygon is dragged to move it at
//                   another frame (its keyframes keep the same points).
//
// All of it is one selection request (SelectionRequest in redact_routes.py, the selection
// file of `veil redact` as JSON), sent alike to the preview, to POST .../selection (the
// tracks after merges and splits) and to the export.
//
// Pictures (previews, thumbnails) are fetched and drawn on canvases, as the mask editor does:
// the page's Content-Security-Policy allows images from the gateway only, and no blob: URLs.
// They show unmasked people, so the server sends them with Cache-Control: no-store.

import { api, del, get, post, seg } from "./api.js";
import { attempt, every, flash, fmtBytes, fmtTime, h, onLeave, select } from "./ui.js";

const POLL_MS = 500;
const PREVIEW_DELAY_MS = 120; // a dragged slider asks for the frame it rests on, not each one

const MODES = [
  ["mask-selected", "Mask the selected tracks"],
  ["mask-all-except", "Mask everything except the selected tracks"],
];

export async function viewRedact(main, jobId) {
  if (jobId) await viewJob(main, jobId);
  else await viewJobs(main);
}

// -- the list of jobs and a new one ------------------------------------------------------------

async function viewJobs(main) {
  const originals = await get("/api/originals");
  originals.sort((a, b) => Date.parse(b.start) - Date.parse(a.start));
  const original = h(
    "select",
    { id: "redact-original", required: true },
    originals.map((o) =>
      h(
        "option",
        { value: JSON.stringify([o.camera_id, o.name]) },
        `${o.camera_id} · ${fmtTime(o.start)} · ${fmtBytes(o.size)}`,
      ),
    ),
  );
  const reason = h("input", {
    id: "redact-reason",
    required: true,
    maxlength: 500,
    autocomplete: "off",
    placeholder: "case or request number",
  });
  const error = h("p", { class: "error", id: "redact-error", hidden: true, role: "alert" });
  const start = h("button", { type: "submit", id: "redact-start" }, "Decrypt and analyse");
  const form = h(
    "form",
    { class: "card", id: "redact-new" },
    h("h2", {}, "New redaction"),
    h(
      "p",
      { class: "muted" },
      "The original is decrypted for you only, into a private folder of the gateway, and " +
        "analysed for people, faces and other moving objects. The decryption is written to " +
        "the audit log with your name and reason.",
    ),
    originals.length
      ? h(
          "div",
          { class: "row" },
          h("label", {}, "Original segment", original),
          h("label", { class: "grow" }, "Reason", reason),
        )
      : h("p", { class: "muted" }, "There are no encrypted originals yet."),
    error,
    h("div", { class: "buttons" }, start),
  );
  start.disabled = !originals.length;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const [cameraId, name] = JSON.parse(original.value);
    start.disabled = true;
    const job = await attempt(
      () => post("/api/redact/jobs", { camera_id: cameraId, name, reason: reason.value }),
      error,
    );
    start.disabled = false;
    if (job) location.hash = `#/redact/${seg(job.id)}`;
  });

  const body = h("tbody");
  main.append(
    h("h1", {}, "Redaction before export"),
    form,
    h("h2", {}, "Your redaction jobs"),
    h(
      "table",
      { class: "table", id: "redact-jobs" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Created", "Camera", "Segment start", "Reason", "State", "Exports", ""].map((t) =>
            h("th", {}, t),
          ),
        ),
      ),
      body,
    ),
  );

  async function refresh() {
    const jobs = await get("/api/redact/jobs");
    body.replaceChildren(
      ...jobs.map((job) =>
        h(
          "tr",
          { dataset: { job: job.id, state: job.state } },
          h("td", {}, fmtTime(job.created_at)),
          h("td", {}, job.camera_id),
          h("td", {}, fmtTime(job.segment_start)),
          h("td", {}, job.reason),
          h("td", {}, stateText(job)),
          h("td", {}, String(job.exports.length)),
          h(
            "td",
            { class: "buttons" },
            h("a", { href: `#/redact/${seg(job.id)}` }, "Open"),
            h(
              "button",
              {
                type: "button",
                class: "danger",
                onclick: () => deleteJob(job).then(refresh),
              },
              "Delete",
            ),
          ),
        ),
      ),
    );
    if (!jobs.length) {
      body.append(h("tr", {}, h("td", { colSpan: 7, class: "muted" }, "No jobs yet.")));
    }
  }
  await refresh();
  every(2000, () => refresh().catch(() => {}));
}

function stateText(job) {
  if (job.state === "analysing") {
    const total = job.frames_total ? ` of ${job.frames_total}` : "";
    return `analysing: ${job.frames_done}${total} frames`;
  }
  if (job.state === "failed") return `failed: ${job.error}`;
  return `ready: ${job.tracks} track(s)`;
}

async function deleteJob(job) {
  if (!confirm("Delete this job and its decrypted original? Its exports are deleted too.")) {
    return false;
  }
  const done = await attempt(() => del(`/api/redact/jobs/${seg(job.id)}`));
  if (done) flash("The job and its decrypted original were deleted.", "ok");
  return Boolean(done);
}

// -- one job -------------------------------------------------------------------------------------

async function viewJob(main, jobId) {
  const base = `/api/redact/jobs/${seg(jobId)}`;
  let job = await get(base);
  const state = h("p", { id: "redact-state", dataset: { state: job.state } });
  const progress = h("progress", { id: "redact-progress", max: 1, value: 0 });
  const progressCard = h("section", { class: "card" }, state, progress);
  const removeButton = h(
    "button",
    { type: "button", class: "danger", id: "redact-delete" },
    "Delete job",
  );
  removeButton.addEventListener("click", async () => {
    if (await deleteJob(job)) location.hash = "#/redact";
  });
  main.append(
    h(
      "div",
      { class: "camera-head" },
      h("h1", {}, `Redaction of ${job.camera_id} · ${fmtTime(job.segment_start)}`),
      h("span", { class: "spacer" }),
      h("a", { href: "#/redact" }, "All jobs"),
      removeButton,
    ),
    h(
      "p",
      { class: "details" },
      h("span", { class: "kv" }, "Reason ", h("b", {}, job.reason)),
      h("span", { class: "kv" }, "Segment ", h("b", {}, job.segment)),
      h("span", { class: "kv" }, "Created ", h("b", {}, fmtTime(job.created_at))),
    ),
    progressCard,
  );

  function showState() {
    state.dataset.state = job.state;
    const hint = job.hint ? ` (${job.hint})` : "";
    state.textContent =
      job.state === "failed" ? `The analysis failed: ${job.error}${hint}` : stateText(job);
    state.className = job.state === "failed" ? "error" : "";
    progress.hidden = job.state !== "analysing";
    if (job.frames_total) {
      progress.max = job.frames_total;
      progress.value = job.frames_done;
    } else {
      progress.removeAttribute("value"); // indeterminate: the container did not say
    }
  }
  showState();

  // Poll until the analysis is done (the view is ready at once: the page shows progress).
  let left = false;
  let timer = null;
  onLeave(() => {
    left = true;
    clearTimeout(timer);
  });
  const follow = async () => {
    if (left) return;
    if (job.state === "analysing") {
      timer = setTimeout(
        () =>
          attempt(async () => {
            job = await get(base);
            if (left) return;
            showState();
            await follow();
          }),
        POLL_MS,
      );
      return;
    }
    if (job.state !== "ready") return;
    const tracks = await get(`${base}/tracks`);
    if (left) return;
    progressCard.hidden = true;
    buildEditor(main, job, tracks, base);
  };
  await follow();
}

// Refs in the server's order (selection.py _ref_key): by their number, then by name.
function byRef(a, b) {
  const na = Number.parseInt(String(a), 10);
  const nb = Number.parseInt(String(b), 10);
  return na !== nb ? na - nb : String(a).localeCompare(String(b));
}

function buildEditor(main, job, tracks, base) {
  const frames = job.frames_total;
  const fps = job.fps || 25;
  const seconds = (frame) => (frame / fps).toFixed(1);
  const frameNow = () => Number(slider.value);

  // -- what is chosen: the request's fields (SelectionRequest in redact_routes.py)
  const chosen = new Set(); // the refs of the selected tracks ("3", or a split part "4b")
  const merges = []; // [[3, 9], ...]: one object, named by the smallest id
  const splits = []; // [{track, frame}]: parts <id>a before the frame, <id>b from it
  // [{name, keyframes: [{frame, box: [x0, y0, x1, y1]} or {frame, polygon: [[x, y], ...]}]}],
  // in the video's pixels; one shape per region, set by its first keyframe.
  const regions = [];
  let current = -1; // the region a drawn rectangle adds a keyframe to (-1: a new one)
  let regionNumber = 0;
  const trim = { start: null, end: null }; // inclusive frames, null: the video's own end
  // The tracks after merges and splits, as the server resolved them (POST .../selection).
  let resolved = tracks.map((t) => ({
    ref: String(t.id),
    kind: t.kind,
    first_frame: t.first_frame,
    last_frame: t.last_frame,
    sources: [t.id],
    thumbnail_url: t.thumbnail_url,
  }));
  const bestFrame = new Map(tracks.map((t) => [t.id, t.best_frame]));

  // -- the preview and its frame slider
  const canvas = h("canvas", {
    id: "redact-preview",
    class: "redact-preview",
    width: job.width,
    height: job.height,
    title:
      "Drag a rectangle (or click a polygon's points) to add a keyframe of a manual region " +
      "at this frame",
  });
  const ctx = canvas.getContext("2d");
  const slider = h("input", {
    type: "range",
    id: "redact-frame",
    min: 0,
    max: frames - 1,
    value: 0,
    step: 1,
  });
  const frameLabel = h("span", { id: "redact-frame-label", class: "muted" });
  const step = (delta) => {
    slider.value = String(Math.min(frames - 1, Math.max(0, frameNow() + delta)));
    frameChanged();
  };
  const trimBand = h("div", { class: "redact-trim-band", id: "redact-trim-band" });
  const keyMarks = h("div", { class: "redact-keys", id: "redact-keys" });
  const timeline = h(
    "div",
    { class: "redact-timeline", id: "redact-timeline" },
    trimBand,
    keyMarks,
    slider,
  );
  const trimLabel = h("span", { id: "redact-trim-label", class: "muted" });
  const trimClear = h(
    "button",
    {
      type: "button",
      class: "secondary",
      id: "redact-trim-clear",
      onclick: () => setTrim(null, null),
    },
    "Clear trim",
  );

  // -- the choices
  const mode = select("mode", MODES.map(([v]) => v), "mask-selected", { id: "redact-mode" });
  for (const option of mode.options) {
    option.textContent = MODES.find(([v]) => v === option.value)[1];
  }
  const style = select("style", ["fill", "mosaic", "blur"], "fill", { id: "redact-style" });
  const color = h("input", { type: "color", id: "redact-color", value: "#000000" });
  const margin = select("margin", ["small", "medium", "large"], "medium", {
    id: "redact-margin",
  });
  const labels = h("input", { type: "checkbox", id: "redact-labels", checked: true });
  const reason = h("input", {
    id: "redact-export-reason",
    maxlength: 500,
    autocomplete: "off",
    value: job.reason,
  });
  const summary = h("p", { id: "redact-summary", class: "muted" });
  const exportButton = h("button", { type: "button", id: "redact-export" }, "Export");
  const exportError = h("p", { class: "error", id: "redact-export-error", hidden: true });
  const exportsList = h("ul", { id: "redact-exports", class: "redact-exports" });

  // -- the manual regions
  const regionList = h("ul", { id: "redact-regions", class: "redact-regions" });
  const newRegion = h(
    "button",
    {
      type: "button",
      class: "secondary",
      id: "redact-region-new",
      onclick: () => {
        current = -1;
        renderRegions();
        drawPreview();
      },
    },
    "New region",
  );
  // The shape of a new region: a rectangle is dragged; a polygon is clicked point by point
  // and closed on its first point (or with Enter), Escape drops it.
  const regionShape = h(
    "select",
    { id: "redact-region-shape", "aria-label": "Shape of a new region" },
    h("option", { value: "box" }, "Rectangle"),
    h("option", { value: "polygon" }, "Polygon"),
  );

  // -- the tracks, merges and splits
  const list = h("ul", { id: "redact-tracks", class: "redact-tracks" });
  const mergeButton = h(
    "button",
    { type: "button", class: "secondary", id: "redact-merge", onclick: mergeChosen },
    "Merge the selected tracks",
  );
  const edits = h("ul", { id: "redact-edits", class: "redact-edits" });
  const tracksError = h("p", { class: "error", id: "redact-tracks-error", hidden: true });

  main.append(
    h(
      "div",
      { class: "redact-layout" },
      h(
        "section",
        { class: "card" },
        canvas,
        timeline,
        h(
          "div",
          { class: "row" },
          h("button", { type: "button", class: "secondary", onclick: () => step(-1) }, "◀ Frame"),
          h("button", { type: "button", class: "secondary", onclick: () => step(1) }, "Frame ▶"),
          frameLabel,
          h("span", { class: "spacer" }),
          h("label", { class: "check" }, labels, "Outline the tracks"),
        ),
        h(
          "div",
          { class: "row" },
          h(
            "button",
            {
              type: "button",
              class: "secondary",
              id: "redact-trim-start",
              // A start after the end (or an end before the start) clears the other.
              onclick: () => setTrim(frameNow(), trim.end < frameNow() ? null : trim.end),
            },
            "Set start",
          ),
          h(
            "button",
            {
              type: "button",
              class: "secondary",
              id: "redact-trim-end",
              onclick: () => setTrim(trim.start > frameNow() ? null : trim.start, frameNow()),
            },
            "Set end",
          ),
          trimClear,
          trimLabel,
        ),
      ),
      h(
        "section",
        { class: "card" },
        h("h2", {}, "Redaction"),
        h("label", {}, "Mode", mode),
        h(
          "div",
          { class: "row" },
          h("label", {}, "Style", style),
          h("label", {}, "Colour", color),
          h("label", {}, "Margin", margin),
        ),
        summary,
        h("h3", {}, "Manual regions"),
        h(
          "p",
          { class: "muted" },
          "Drag a rectangle on the picture, or click a polygon's points and close it on its " +
            "first point: a keyframe of the chosen region at this frame (or of a new region). " +
            "At another frame, drag a polygon to move it there. Between keyframes the region " +
            "moves linearly; it is masked in both modes from its first keyframe to its last.",
        ),
        regionList,
        h("div", { class: "buttons" }, newRegion, h("label", {}, "Shape ", regionShape)),
        h("label", {}, "Reason for the export (in the signed manifest and the audit log)", reason),
        exportError,
        h("div", { class: "buttons" }, exportButton),
        h("h3", {}, "Exports"),
        exportsList,
      ),
    ),
    h(
      "section",
      { class: "card" },
      h("h2", { id: "redact-tracks-title" }),
      h(
        "p",
        { class: "muted" },
        "Click a track or its picture to select it; “Show” moves the preview to its best view; " +
          "“Split” cuts the track under the timeline's cursor in two at the current frame. " +
          "Select two or more tracks of one object and merge them.",
      ),
      h("div", { class: "buttons" }, mergeButton),
      edits,
      tracksError,
      list,
    ),
  );

  // -- the tracks ------------------------------------------------------------------------------

  function renderTracks() {
    const title = main.querySelector("#redact-tracks-title");
    title.textContent = `Tracks (${resolved.length})`;
    list.replaceChildren(...resolved.map(trackItem));
    updateMergeButton();
    edits.replaceChildren(
      ...merges.map((group, i) =>
        h(
          "li",
          { dataset: { merge: group.join(",") } },
          `Tracks ${group.join(", ")} merged (as ${[...group].sort(byRef)[0]}) `,
          h("button", { type: "button", class: "secondary", onclick: () => unmerge(i) }, "Undo"),
        ),
      ),
      ...splits.map((s, i) =>
        h(
          "li",
          { dataset: { split: `${s.track}@${s.frame}` } },
          `Track ${s.track} split at frame ${s.frame} `,
          h("button", { type: "button", class: "secondary", onclick: () => unsplit(i) }, "Undo"),
        ),
      ),
    );
    updateSplitButtons();
  }

  function trackItem(track) {
    const thumb = h("canvas", { class: "thumb", width: 48, height: 64 });
    const first = track.first_frame;
    const last = track.last_frame;
    const bar = h("span", { class: "span-bar" });
    bar.style.left = `${(first / frames) * 100}%`;
    bar.style.width = `${Math.max(0.5, ((last - first + 1) / frames) * 100)}%`;
    const on = chosen.has(track.ref);
    const merged = track.sources.length > 1 ? ` (merged ${track.sources.join("+")})` : "";
    const splitButton = h(
      "button",
      {
        type: "button",
        class: "secondary split",
        title: "Cut this track in two at the current frame",
        onclick: () => splitAt(track),
      },
      "Split",
    );
    const item = h(
      "li",
      {
        class: on ? "track selected" : "track",
        dataset: { track: track.ref, kind: track.kind, first: String(first), last: String(last) },
      },
      h(
        "button",
        {
          type: "button",
          class: "track-toggle",
          "aria-pressed": String(on),
          title: "Select or unselect this track",
          onclick: () => toggle(track, item),
        },
        thumb,
        h(
          "span",
          { class: "track-text" },
          h("b", {}, `#${track.ref} ${track.kind}${merged}`),
          h(
            "span",
            { class: "muted" },
            `frames ${first}–${last} (${seconds(first)}–${seconds(last + 1)} s)`,
          ),
          h("span", { class: "span-track" }, bar),
        ),
      ),
      h(
        "span",
        { class: "track-actions" },
        h(
          "button",
          {
            type: "button",
            class: "secondary show",
            onclick: () => {
              const best = bestFrame.get(track.sources[0]);
              const inside = best !== undefined && best >= first && best <= last;
              slider.value = String(inside ? best : first);
              frameChanged();
            },
          },
          "Show",
        ),
        splitButton,
      ),
    );
    if (track.thumbnail_url) drawThumbnail(thumb, track.thumbnail_url);
    return item;
  }

  // Merged: two or more tracks or split parts of one kind (a track that followed two people
  // is split, and each part merged with the rest of its person).
  function updateMergeButton() {
    const items = resolved.filter((t) => chosen.has(t.ref));
    const kinds = new Set(items.map((t) => t.kind));
    mergeButton.disabled = items.length < 2 || kinds.size > 1;
    mergeButton.title = "Select two or more tracks (or split parts) of one kind";
  }

  function updateSplitButtons() {
    const f = frameNow();
    for (const item of list.children) {
      const button = item.querySelector("button.split");
      const inside = Number(item.dataset.first) < f && f <= Number(item.dataset.last);
      button.disabled = !inside;
      button.textContent = inside ? `Split at ${f}` : "Split";
    }
  }

  function toggle(track, item) {
    const ref = track.ref;
    if (chosen.has(ref)) chosen.delete(ref);
    else chosen.add(ref);
    const on = chosen.has(ref);
    item.classList.toggle("selected", on);
    item.querySelector(".track-toggle").setAttribute("aria-pressed", String(on));
    updateMergeButton();
    choicesChanged();
  }

  // Merges and splits change the tracks: the server resolves them (and refuses bad ones),
  // the list is rebuilt and the selected tracks follow their new refs.
  async function restructure(change, undo) {
    tracksError.hidden = true;
    change();
    const info = await attempt(() => post(`${base}/selection`, selection()), tracksError);
    if (!info) {
      undo();
      return;
    }
    const before = resolved;
    resolved = info.tracks;
    const refs = new Set(resolved.map((t) => t.ref));
    for (const ref of [...chosen]) {
      if (refs.has(ref)) continue;
      chosen.delete(ref);
      const old = before.find((t) => t.ref === ref);
      const sources = new Set(old ? old.sources : []);
      for (const t of resolved) {
        if (t.sources.some((s) => sources.has(s))) chosen.add(t.ref);
      }
    }
    renderTracks();
    choicesChanged();
  }

  function mergeChosen() {
    // Whole tracks go as ids, split parts ("4b") as refs: the server names the group by
    // its first member in this order (byRef).
    const ids = resolved
      .filter((t) => chosen.has(t.ref))
      .map((t) => (/^\d+$/.test(t.ref) ? Number(t.ref) : t.ref));
    if (ids.length < 2) return;
    restructure(
      () => merges.push(ids),
      () => merges.pop(),
    );
  }

  function unmerge(i) {
    const [group] = merges.splice(i, 1);
    restructure(
      () => {},
      () => merges.splice(i, 0, group),
    );
  }

  function splitAt(track) {
    const split = { track: Number.parseInt(track.ref, 10), frame: frameNow() };
    // Another cut renames the track's parts (4b becomes 4c...): a merge naming one of them
    // would then join another part than the one chosen.
    const partOf = (ref) =>
      Number.parseInt(String(ref), 10) === split.track && !/^\d+$/.test(String(ref));
    if (merges.some((group) => group.some(partOf))) {
      tracksError.textContent =
        `Undo the merge of a part of track ${split.track} before splitting it again.`;
      tracksError.hidden = false;
      return;
    }
    restructure(
      () => splits.push(split),
      () => splits.pop(),
    );
  }

  function unsplit(i) {
    const [split] = splits.splice(i, 1);
    restructure(
      () => {},
      () => splits.splice(i, 0, split),
    );
  }

  // -- the trim ----------------------------------------------------------------------------------

  function setTrim(start, end) {
    trim.start = start;
    trim.end = end;
    showTrim();
    choicesChanged();
  }

  function showTrim() {
    const first = trim.start ?? 0;
    const last = trim.end ?? frames - 1;
    timeline.dataset.trimStart = String(first);
    timeline.dataset.trimEnd = String(last);
    trimBand.style.left = `${(first / frames) * 100}%`;
    trimBand.style.width = `${((last - first + 1) / frames) * 100}%`;
    const trimmed = trim.start !== null || trim.end !== null;
    timeline.classList.toggle("trimmed", trimmed);
    trimClear.disabled = !trimmed;
    trimLabel.textContent = trimmed
      ? `Exported: frames ${first}–${last} (${seconds(first)}–${seconds(last + 1)} s)`
      : `Exported: all ${frames} frames`;
  }

  // -- the manual regions ------------------------------------------------------------------------

  // A keyframe's points: a rectangle's four corners, or the polygon's own.
  const pointsOf = (key) =>
    key.polygon || [
      [key.box[0], key.box[1]],
      [key.box[2], key.box[1]],
      [key.box[2], key.box[3]],
      [key.box[0], key.box[3]],
    ];
  const isPolygon = (region) => region.keyframes.some((k) => k.polygon);

  // The region's points at frame f, moved linearly between keyframes (as the server does);
  // null outside its first and last keyframes.
  function pointsAt(region, f) {
    const keys = region.keyframes;
    if (!keys.length || f < keys[0].frame || f > keys[keys.length - 1].frame) return null;
    for (let i = 0; i + 1 < keys.length; i += 1) {
      const a = keys[i];
      const b = keys[i + 1];
      if (a.frame <= f && f <= b.frame) {
        const t = (f - a.frame) / (b.frame - a.frame);
        const pb = pointsOf(b);
        return pointsOf(a).map(([x, y], j) => [x + (pb[j][0] - x) * t, y + (pb[j][1] - y) * t]);
      }
    }
    return pointsOf(keys[keys.length - 1]);
  }

  // shape: {box} or {polygon}. A new region is started when none is chosen, or when the
  // chosen one has the other shape.
  function addKeyframe(shape) {
    const f = frameNow();
    const region = regions[current];
    if (!region || isPolygon(region) !== Boolean(shape.polygon)) {
      regionNumber += 1;
      regions.push({ name: `region-${regionNumber}`, keyframes: [] });
      current = regions.length - 1;
    }
    const keys = regions[current].keyframes.filter((k) => k.frame !== f);
    keys.push({ frame: f, ...shape });
    keys.sort((a, b) => a.frame - b.frame);
    regions[current].keyframes = keys;
    regionsChanged();
  }

  function regionsChanged() {
    renderRegions();
    choicesChanged();
  }

  function renderRegions() {
    const f = frameNow();
    regionList.replaceChildren(
      ...regions.map((region, i) => {
        const keys = region.keyframes.map((k) => k.frame);
        const name = h("input", {
          class: "region-name",
          value: region.name,
          maxlength: 100,
          "aria-label": "Region name",
        });
        name.addEventListener("change", () => {
          region.name = name.value.trim() || region.name;
          regionsChanged();
        });
        const here = keys.includes(f);
        return h(
          "li",
          {
            class: i === current ? "region selected" : "region",
            dataset: {
              region: String(i),
              name: region.name,
              keyframes: keys.join(","),
              shape: isPolygon(region) ? "polygon" : "box",
            },
          },
          name,
          h(
            "span",
            { class: "muted" },
            ` frames ${keys[0]}–${keys[keys.length - 1]}, keyframes at ${keys.join(", ")} `,
          ),
          h(
            "span",
            { class: "buttons" },
            h(
              "button",
              {
                type: "button",
                class: "secondary region-select",
                "aria-pressed": String(i === current),
                onclick: () => {
                  current = i;
                  renderRegions();
                  drawPreview();
                },
              },
              i === current ? "Chosen" : "Choose",
            ),
            h(
              "button",
              {
                type: "button",
                class: "secondary region-key-delete",
                disabled: !here || keys.length < 2,
                title: "Remove this region's keyframe at the current frame",
                onclick: () => {
                  region.keyframes = region.keyframes.filter((k) => k.frame !== f);
                  regionsChanged();
                },
              },
              "Remove keyframe here",
            ),
            h(
              "button",
              {
                type: "button",
                class: "danger region-delete",
                onclick: () => {
                  regions.splice(i, 1);
                  if (current === i) current = -1;
                  else if (current > i) current -= 1;
                  regionsChanged();
                },
              },
              "Delete",
            ),
          ),
        );
      }),
    );
    if (!regions.length) {
      regionList.append(h("li", { class: "muted" }, "No manual regions."));
    }
    // The chosen region's keyframes, marked on the timeline.
    const region = regions[current];
    keyMarks.replaceChildren(
      ...(region ? region.keyframes : []).map((k) => {
        const mark = h("span", { class: "redact-key", title: `keyframe at frame ${k.frame}` });
        mark.style.left = `${((k.frame + 0.5) / frames) * 100}%`;
        return mark;
      }),
    );
  }

  // Drawing on the preview, in the video's pixels: a drag draws a rectangle, or moves the
  // chosen polygon region to this frame; in polygon mode a click adds a point, and a click on
  // the first point (or Enter) closes the polygon.
  let drag = null; // {from, to, move: the chosen polygon's points at this frame, or null}
  let sketch = []; // the polygon being clicked, [[x, y], ...]
  const CLOSE_PX = 10; // a click this close to the first point (in screen pixels) closes it
  const MOVED_PX = 3; // a press moved less than this is a click, not a drag
  const pixel = (event) => {
    const r = canvas.getBoundingClientRect();
    const x = ((event.clientX - r.left) / r.width) * canvas.width;
    const y = ((event.clientY - r.top) / r.height) * canvas.height;
    return [
      Math.min(canvas.width, Math.max(0, Math.round(x))),
      Math.min(canvas.height, Math.max(0, Math.round(y))),
    ];
  };
  const screenScale = () => canvas.getBoundingClientRect().width / canvas.width;
  const dragBox = (d) => {
    const [ax, ay] = d.from;
    const [bx, by] = d.to;
    return [Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by)];
  };
  const clampPoint = ([x, y]) => [
    Math.min(canvas.width, Math.max(0, Math.round(x))),
    Math.min(canvas.height, Math.max(0, Math.round(y))),
  ];
  const movedPolygon = (d) => {
    const dx = d.to[0] - d.from[0];
    const dy = d.to[1] - d.from[1];
    return d.move.map(([x, y]) => clampPoint([x + dx, y + dy]));
  };
  function closeSketch() {
    // A keyframe of the chosen polygon region needs its number of points; else a new region.
    const region = regions[current];
    if (region && isPolygon(region) && region.keyframes[0].polygon.length !== sketch.length) {
      current = -1;
    }
    if (sketch.length >= 3) addKeyframe({ polygon: sketch });
    sketch = [];
    drawPreview();
  }
  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    const region = regions[current];
    // Moving a polygon: from its points at this frame, or its nearest keyframe's.
    const keys = region ? region.keyframes : [];
    const f = Math.min(Math.max(frameNow(), keys[0]?.frame ?? 0), keys.at(-1)?.frame ?? 0);
    const move = region && isPolygon(region) && !sketch.length ? pointsAt(region, f) : null;
    drag = { from: pixel(event), to: pixel(event), move };
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drag) return;
    drag.to = pixel(event);
    drawPreview();
  });
  const endDrag = (event) => {
    if (!drag) return;
    drag.to = pixel(event);
    const moved = Math.hypot(drag.to[0] - drag.from[0], drag.to[1] - drag.from[1]);
    const click = moved * screenScale() < MOVED_PX;
    const done = drag;
    drag = null;
    if (click && (regionShape.value === "polygon" || sketch.length)) {
      const [x, y] = done.to;
      const first = sketch[0];
      if (first && Math.hypot(x - first[0], y - first[1]) * screenScale() <= CLOSE_PX) {
        closeSketch();
      } else if (sketch.length < 64) {
        sketch.push([x, y]);
        drawPreview();
      }
      return;
    }
    if (click) {
      drawPreview();
      return;
    }
    if (done.move) {
      addKeyframe({ polygon: movedPolygon(done) });
      return;
    }
    const box = dragBox(done);
    if (box[2] - box[0] >= 3 && box[3] - box[1] >= 3) addKeyframe({ box });
    else drawPreview();
  };
  canvas.addEventListener("pointerup", endDrag);
  canvas.addEventListener("pointercancel", () => {
    drag = null;
    drawPreview();
  });
  canvas.tabIndex = 0;
  canvas.addEventListener("keydown", (event) => {
    if (!sketch.length) return;
    if (event.key === "Enter") closeSketch();
    else if (event.key === "Escape") {
      sketch = [];
      drawPreview();
    } else return;
    event.preventDefault();
  });

  // -- the request -------------------------------------------------------------------------------

  function selection() {
    const sel = {
      mode: mode.value,
      tracks: [...chosen],
      style: style.value,
      color: color.value,
      margin: margin.value,
      merges,
      splits,
      regions: regions.map((r) => ({
        name: r.name,
        keyframes: r.keyframes.map((k) =>
          k.polygon ? { frame: k.frame, polygon: k.polygon } : { frame: k.frame, box: k.box },
        ),
      })),
    };
    if (trim.start !== null) sel.start_frame = trim.start;
    if (trim.end !== null) sel.end_frame = trim.end;
    return sel;
  }

  function choicesChanged() {
    const n = chosen.size;
    const r = regions.length ? ` ${regions.length} manual region(s) are masked too.` : "";
    summary.textContent =
      (mode.value === "mask-selected"
        ? `${n} track(s) selected: they are masked, the rest of the picture stays.`
        : `${n} track(s) selected: they stay visible, everything else is masked.`) + r;
    schedulePreview();
  }

  function frameChanged() {
    const f = frameNow();
    frameLabel.textContent = `Frame ${f} of ${frames} · ${(f / fps).toFixed(2)} s`;
    updateSplitButtons();
    renderRegions();
    schedulePreview();
  }

  // -- the preview: one request at a time, the latest choice wins
  let timer = null;
  let running = false;
  let again = false;
  let picture = null; // the last preview (an ImageBitmap), under the regions' outlines
  function schedulePreview() {
    clearTimeout(timer);
    timer = setTimeout(loadPreview, PREVIEW_DELAY_MS);
  }
  onLeave(() => {
    clearTimeout(timer);
    if (picture) picture.close();
  });

  // The picture, the regions' outlines at this frame (the chosen one solid), and the
  // rectangle being dragged, polygon being moved or polygon being clicked.
  function outline(points, closed) {
    ctx.beginPath();
    points.forEach(([x, y], j) => (j ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    if (closed) ctx.closePath();
    ctx.stroke();
  }
  function drawPreview() {
    if (picture) ctx.drawImage(picture, 0, 0, canvas.width, canvas.height);
    const f = Number(canvas.dataset.frame ?? slider.value);
    const width = Math.max(1, Math.round(canvas.width / 320));
    regions.forEach((region, i) => {
      const points = pointsAt(region, f);
      if (!points) return;
      ctx.lineWidth = width * (i === current ? 2 : 1);
      ctx.setLineDash(region.keyframes.some((k) => k.frame === f) ? [] : [6 * width, 4 * width]);
      ctx.strokeStyle = i === current ? "#ffd400" : "#ffffff";
      outline(points, true);
    });
    ctx.lineWidth = width;
    ctx.setLineDash([4 * width, 3 * width]);
    ctx.strokeStyle = "#4da3ff";
    if (drag && drag.move) outline(movedPolygon(drag), true);
    else if (drag && !sketch.length && regionShape.value === "box") {
      const [x0, y0, x1, y1] = dragBox(drag);
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    }
    if (sketch.length) {
      outline(sketch, false);
      ctx.fillStyle = "#4da3ff";
      for (const [x, y] of sketch) {
        ctx.fillRect(x - 2 * width, y - 2 * width, 4 * width, 4 * width);
      }
    }
    canvas.dataset.sketch = String(sketch.length);
    ctx.setLineDash([]);
  }

  async function loadPreview() {
    if (running) {
      again = true;
      return;
    }
    running = true;
    const sel = selection();
    const frame = slider.value;
    try {
      const reply = await api(
        "POST",
        `${base}/preview.jpg`,
        { ...sel, frame: Number(frame), labels: labels.checked },
        { raw: true },
      );
      const bitmap = await createImageBitmap(await reply.blob());
      if (picture) picture.close();
      picture = bitmap;
      canvas.dataset.frame = frame;
      drawPreview();
      canvas.dataset.tracks = sel.tracks.join(",");
      canvas.dataset.mode = sel.mode;
      canvas.dataset.regions = String(sel.regions.length);
      canvas.dataset.trim = `${sel.start_frame ?? ""}-${sel.end_frame ?? ""}`;
      canvas.dataset.previews = String(Number(canvas.dataset.previews || 0) + 1);
    } catch (error) {
      flash(String(error), "error");
    } finally {
      running = false;
      if (again) {
        again = false;
        loadPreview();
      }
    }
  }

  // -- exporting
  function showExport(e) {
    const verified = h("span", { class: "muted verify" }, "checking…");
    const span =
      e.first_frame !== null && e.first_frame !== undefined
        ? `frames ${e.first_frame}–${e.last_frame}`
        : `${e.frames} frames`;
    const regionText = e.regions && e.regions.length ? `, region(s) ${e.regions.join(", ")}` : "";
    exportsList.prepend(
      h(
        "li",
        { dataset: { export: String(e.number) } },
        h("b", {}, `#${e.number}`),
        ` ${e.mode}, track(s) ${e.tracks.join(", ") || "none"}${regionText}, ${span}, ` +
          `by ${e.exported_by}: `,
        h("a", { href: e.video_url, download: e.output, class: "export-video" }, e.output),
        " · ",
        h("a", { href: e.manifest_url, download: "", class: "export-manifest" }, "manifest (JSON)"),
        " · ",
        h(
          "a",
          { href: e.manifest_html_url, download: "", class: "export-manifest-html" },
          "manifest (page)",
        ),
        " ",
        verified,
      ),
    );
    get(e.verify_url)
      .then((result) => {
        verified.textContent = result.ok ? "✔ verified" : `✘ ${result.message}`;
        verified.className = result.ok ? "verify ok" : "verify error";
        verified.title = result.message;
      })
      .catch((error) => {
        verified.textContent = `✘ ${error}`;
        verified.className = "verify error";
      });
  }

  exportButton.addEventListener("click", async () => {
    exportError.hidden = true;
    exportButton.disabled = true;
    exportButton.textContent = "Exporting…";
    const done = await attempt(
      () => post(`${base}/exports`, { ...selection(), reason: reason.value }),
      exportError,
    );
    exportButton.disabled = false;
    exportButton.textContent = "Export";
    if (done) {
      showExport(done);
      flash(`Exported ${done.output} (${done.frames} frames), signed and audited.`, "ok");
    }
  });

  for (const change of [mode, style, color, margin, labels]) {
    change.addEventListener("change", choicesChanged);
  }
  slider.addEventListener("input", frameChanged);
  for (const e of job.exports) showExport(e);
  renderTracks();
  renderRegions();
  showTrim();
  choicesChanged();
  frameChanged();
}

async function drawThumbnail(canvas, url) {
  try {
    const reply = await api("GET", url, undefined, { raw: true });
    const bitmap = await createImageBitmap(await reply.blob());
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    canvas.getContext("2d").drawImage(bitmap, 0, 0);
    bitmap.close();
    canvas.dataset.loaded = "true";
  } catch (error) {
    console.warn("thumbnail:", error);
  }
}
