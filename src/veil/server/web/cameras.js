// The grid of live masked cameras (#/cameras): one WebRTC (or MJPEG) picture per camera.

import { get, seg } from "./api.js";
import { openLive } from "./live.js";
import { $, every, h, onLeave } from "./ui.js";

export async function viewCameras(main) {
  const cameras = await get("/api/cameras");
  main.append(
    h("h1", {}, "Live cameras"),
    h("p", { class: "muted" }, "Every picture here is masked before it leaves the gateway."),
  );
  if (cameras.length === 0) {
    main.append(h("p", {}, "No cameras are configured."));
    return;
  }
  const grid = h("div", { class: "grid", id: "camera-grid" });
  main.append(grid);
  for (const camera of cameras) {
    const state = h("span", { class: "badge" }, camera.state);
    const transport = h("span", { class: "badge subtle" });
    const picture = h("div", { class: "live", dataset: { camera: camera.id } });
    picture.style.aspectRatio = `${camera.width} / ${camera.height}`;
    const card = h(
      "article",
      { class: "card camera-card", dataset: { camera: camera.id } },
      h(
        "header",
        {},
        h("a", { href: `#/camera/${seg(camera.id)}`, class: "camera-name" }, camera.name),
        state,
        transport,
      ),
      picture,
      h(
        "footer",
        { class: "muted" },
        `${camera.width}×${camera.height} @ ${camera.fps} fps`,
        camera.rtsp_url ? ` · ${camera.rtsp_url}` : "",
      ),
    );
    grid.append(card);
    const live = openLive(
      picture,
      camera.id,
      { onState: (text) => (transport.textContent = text) },
    );
    onLeave(() => live.close());
  }
  // Camera states (live, no-signal) are refreshed every few seconds.
  every(5000, async () => {
    const fresh = await get("/api/cameras").catch(() => null);
    for (const camera of fresh || []) {
      const badge = $(`article[data-camera="${CSS.escape(camera.id)}"] .badge`, grid);
      if (badge) badge.textContent = camera.state;
    }
  });
}
