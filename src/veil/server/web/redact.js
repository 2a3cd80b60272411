// Redaction before export (#/redact and #/redact/<job>), for investigators (unmask + export).
//
//   #/redact        choose an encrypted original and give a reason: the gateway decrypts it
//                   (audited) into a private job and analyses it; your jobs are listed below.
//   #/redact/<job>  the analysis' progress, then: a frame slider with the redacted preview of
//                   the current frame, the tracks with their thumbnails and time spans (click
//                   one to select it), the mode, style and reason, and Export: an MP4 and its
//                   signed manifest, checked by the gateway.
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

function buildEditor(main, job, tracks, base) {
  const frames = job.frames_total;
  const fps = job.fps || 25;
  const chosen = new Set(); // the refs of the selected tracks
  const seconds = (frame) => (frame / fps).toFixed(1);

  // -- the preview and its frame slider
  const canvas = h("canvas", {
    id: "redact-preview",
    class: "redact-preview",
    width: job.width,
    height: job.height,
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
    slider.value = String(Math.min(frames - 1, Math.max(0, Number(slider.value) + delta)));
    frameChanged();
  };
  const timeline = h("div", { class: "redact-timeline" }, slider);

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

  // -- the tracks
  const list = h("ul", { id: "redact-tracks", class: "redact-tracks" });
  for (const track of tracks) list.append(trackItem(track));

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
      h("h2", {}, `Tracks (${tracks.length})`),
      h(
        "p",
        { class: "muted" },
        "Click a track or its picture to select it; “Show” moves the preview to its best view.",
      ),
      list,
    ),
  );

  function trackItem(track) {
    const thumb = h("canvas", { class: "thumb", width: 48, height: 64 });
    const first = track.first_frame;
    const last = track.last_frame;
    const bar = h("span", { class: "span-bar" });
    bar.style.left = `${(first / frames) * 100}%`;
    bar.style.width = `${Math.max(0.5, ((last - first + 1) / frames) * 100)}%`;
    const item = h(
      "li",
      { class: "track", dataset: { track: String(track.id), kind: track.kind } },
      h(
        "button",
        {
          type: "button",
          class: "track-toggle",
          "aria-pressed": "false",
          title: "Select or unselect this track",
          onclick: () => toggle(track, item),
        },
        thumb,
        h(
          "span",
          { class: "track-text" },
          h("b", {}, `#${track.id} ${track.kind}`),
          h(
            "span",
            { class: "muted" },
            `frames ${first}–${last} (${seconds(first)}–${seconds(last + 1)} s)`,
          ),
          h("span", { class: "span-track" }, bar),
        ),
      ),
      h(
        "button",
        {
          type: "button",
          class: "secondary show",
          onclick: () => {
            slider.value = String(track.best_frame >= 0 ? track.best_frame : first);
            frameChanged();
          },
        },
        "Show",
      ),
    );
    if (track.thumbnail_url) drawThumbnail(thumb, track.thumbnail_url);
    return item;
  }

  function toggle(track, item) {
    const ref = String(track.id);
    if (chosen.has(ref)) chosen.delete(ref);
    else chosen.add(ref);
    const on = chosen.has(ref);
    item.classList.toggle("selected", on);
    item.querySelector(".track-toggle").setAttribute("aria-pressed", String(on));
    choicesChanged();
  }

  function selection() {
    return {
      mode: mode.value,
      tracks: [...chosen],
      style: style.value,
      color: color.value,
      margin: margin.value,
    };
  }

  function choicesChanged() {
    const n = chosen.size;
    summary.textContent =
      mode.value === "mask-selected"
        ? `${n} track(s) selected: they are masked, the rest of the picture stays.`
        : `${n} track(s) selected: they stay visible, everything else is masked.`;
    schedulePreview();
  }

  function frameChanged() {
    const f = Number(slider.value);
    frameLabel.textContent = `Frame ${f} of ${frames} · ${(f / fps).toFixed(2)} s`;
    schedulePreview();
  }

  // -- the preview: one request at a time, the latest choice wins
  let timer = null;
  let running = false;
  let again = false;
  function schedulePreview() {
    clearTimeout(timer);
    timer = setTimeout(loadPreview, PREVIEW_DELAY_MS);
  }
  onLeave(() => clearTimeout(timer));

  async function loadPreview() {
    if (running) {
      again = true;
      return;
    }
    running = true;
    const sel = selection();
    const params = new URLSearchParams({
      frame: slider.value,
      mode: sel.mode,
      tracks: sel.tracks.join(","),
      style: sel.style,
      color: sel.color,
      margin: sel.margin,
      labels: String(labels.checked),
    });
    try {
      const reply = await api("GET", `${base}/preview.jpg?${params}`, undefined, { raw: true });
      const bitmap = await createImageBitmap(await reply.blob());
      ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      bitmap.close();
      canvas.dataset.frame = slider.value;
      canvas.dataset.tracks = sel.tracks.join(",");
      canvas.dataset.mode = sel.mode;
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
    exportsList.prepend(
      h(
        "li",
        { dataset: { export: String(e.number) } },
        h("b", {}, `#${e.number}`),
        ` ${e.mode}, track(s) ${e.tracks.join(", ") || "none"}, ${e.frames} frames, ` +
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
