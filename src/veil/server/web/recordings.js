// Masked recordings on a timeline (#/recordings): each finished segment is a block placed by
// its start time; clicking one plays the masked MP4.

import { get, seg } from "./api.js";
import { every, fmtBytes, fmtTime, h, onLeave } from "./ui.js";

const WINDOWS = [
  ["fit", "fit to recordings (last 24 h)"],
  ["1", "last hour"],
  ["6", "last 6 hours"],
  ["24", "last 24 hours"],
  ["168", "last 7 days"],
];

export async function viewRecordings(main) {
  const cameras = await get("/api/cameras");
  const cameraSelect = h(
    "select",
    { id: "rec-camera" },
    cameras.map((c) => h("option", { value: c.id }, c.name)),
  );
  const windowSelect = h(
    "select",
    { id: "rec-window" },
    WINDOWS.map(([v, label]) => h("option", { value: v }, label)),
  );
  const timeline = h("div", { class: "timeline", id: "timeline" });
  const axis = h("div", { class: "axis" });
  const player = h(
    "video",
    {
      id: "rec-player",
      controls: true,
      muted: true,
      playsInline: true,
      class: "recording",
      hidden: true,
    },
  );
  const caption = h("p", { class: "muted", id: "rec-caption" });
  main.append(
    h("h1", {}, "Recordings (masked)"),
    h(
      "div",
      { class: "row" },
      h("label", {}, "Camera ", cameraSelect),
      h("label", {}, "Show ", windowSelect),
      h("button", { type: "button", class: "secondary", onclick: () => refresh() }, "Refresh"),
    ),
    h("section", { class: "card" }, timeline, axis, caption, player),
  );

  async function refresh() {
    const cameraId = cameraSelect.value;
    const segments = await get(`/api/recordings?camera=${seg(cameraId)}`);
    const starts = segments.map((s) => Date.parse(s.start));
    // A segment lasts until the next one starts; the usual length caps it (gaps show).
    const gaps = starts.slice(1).map(
      (t, i) => t - starts[i],
    ).filter((d) => d > 0).sort((a, b) => a - b);
    const usual = gaps.length ? gaps[Math.floor(gaps.length / 2)] : 10e3;
    let now = Date.now();
    let t0;
    if (windowSelect.value === "fit") {
      // Zoom to the recordings of the last 24 hours, from the first one to the end of the last.
      const recent = starts.filter((t) => t >= now - 24 * 3600e3);
      t0 = recent.length ? recent[0] : now - 3600e3;
      if (recent.length) now = Math.max(t0 + 1000, recent[recent.length - 1] + usual);
    } else {
      t0 = now - Number(windowSelect.value) * 3600e3;
    }
    timeline.replaceChildren();
    let shown = 0;
    segments.forEach((s, i) => {
      const start = starts[i];
      const end = Math.min(start + usual, i + 1 < starts.length ? starts[i + 1] : start + usual);
      if (end < t0) return;
      shown++;
      const left = ((Math.max(start, t0) - t0) / (now - t0)) * 100;
      const width = Math.max(0.15, ((end - Math.max(start, t0)) / (now - t0)) * 100);
      const block = h("button", {
        type: "button",
        class: "segment",
        title: `${fmtTime(s.start)} · ${fmtBytes(s.size)}`,
        dataset: { name: s.name },
        onclick: () => play(cameraId, s, block),
      });
      block.style.left = `${left}%`;
      block.style.width = `${width}%`;
      timeline.append(block);
    });
    axis.replaceChildren(
      ...[0, 0.25, 0.5, 0.75, 1].map((f) => {
        const short = now - t0 < 600e3; // under ten minutes: show seconds
        const when = new Date(t0 + f * (now - t0));
        const tick = h(
          "span",
          {},
          when.toLocaleTimeString(
            [],
            { hour: "2-digit", minute: "2-digit", second: short ? "2-digit" : undefined },
          ),
        );
        tick.style.left = `${f * 100}%`;
        return tick;
      }),
    );
    caption.textContent = shown ? `${shown} segment(s). Click one to play it.` : "No recordings in this time window.";
  }

  function play(cameraId, segment, block) {
    for (const b of timeline.querySelectorAll(".segment.playing")) b.classList.remove("playing");
    block.classList.add("playing");
    player.hidden = false;
    player.src = `/api/recordings/${seg(cameraId)}/${seg(segment.name)}`;
    player.play().catch(() => {});
    caption.textContent = `Playing ${segment.name} (${fmtTime(segment.start)})`;
  }

  cameraSelect.addEventListener("change", refresh);
  windowSelect.addEventListener("change", refresh);
  await refresh();
  every(10000, () => refresh().catch(() => {}));
  onLeave(() => {
    player.removeAttribute("src");
    player.load();
  });
}

