// Pan-tilt-zoom controls on the camera page: an arrow pad and a joystick, zoom buttons, the
// position, presets and "go to mask" (the API is /api/cameras/<id>/ptz, see ptz_routes.py).
//
// Use it from a view:            import { mountPTZ } from "./ptz.js";
//                                await mountPTZ(cameraId, anchorElement);   // after anchor
// or load it once as a module (<script type="module" src="/web/ptz.js">): it then adds the
// panel under the live picture of every camera page whose camera has PTZ (a camera without
// it answers 404 and gets no panel).
//
// Holding an arrow, the joystick or a zoom button sends ONVIF continuous moves with a short
// timeout, renewed while held, and a stop on release: if the page goes away mid-move, the
// camera stops by itself within a second. Arrow keys on the pad (and Enter on a button) step
// by a quarter of the field of view with relative moves. Moving needs the "configure" scope;
// other users see the position and the presets only (the server checks again).

import { ApiError, del, get, post, put, seg } from "./api.js";
import { attempt, can, errorText, flash, h, onLeave } from "./ui.js";

const HOLD_TIMEOUT_S = 1.0; // each continuous move lasts this long unless renewed
const RENEW_MS = 500; // renewed this often while a control is held
const POLL_MS = 500; // the position is read this often
const JOYSTICK_SEND_MS = 120; // at most one joystick command per this many ms

const DIRECTIONS = [
  ["up-left", -1, 1, "\u2196"],
  ["up", 0, 1, "\u2191"],
  ["up-right", 1, 1, "\u2197"],
  ["left", -1, 0, "\u2190"],
  ["stop", 0, 0, "\u25a0"],
  ["right", 1, 0, "\u2192"],
  ["down-left", -1, -1, "\u2199"],
  ["down", 0, -1, "\u2193"],
  ["down-right", 1, -1, "\u2198"],
];

/** Set style properties through the CSSOM (allowed by the page's CSP, unlike style="..."). */
function css(el, props) {
  Object.assign(el.style, props);
  return el;
}

const fmt = (value, digits = 1) => Number(value).toFixed(digits);

/**
 * The PTZ panel of one camera. `status` is GET /api/cameras/<id>/ptz/status; `liveBox`, if
 * given, is the live picture's container: the masks' outlines are drawn over it, and new
 * scene masks are drawn on it. Returns {element, close()}.
 */
export function ptzPanel(cameraId, status, liveBox = null) {
  const base = `/api/cameras/${seg(cameraId)}/ptz`;
  const mayMove = can("configure") && status.virtual;
  let hfov = status.hfov_deg;
  let closed = false;
  let held = null; // {velocity: [x, y, z], timer} while a control is held

  // -- the pieces
  const readout = h("span", { id: "ptz-position", class: "badge subtle" }, "");
  const moving = h("span", { id: "ptz-moving", class: "badge" }, "");
  const error = h("div", { class: "error", id: "ptz-error", hidden: true, role: "alert" });
  const speed = h("input", {
    type: "range",
    id: "ptz-speed",
    min: "0.05",
    max: "1",
    step: "0.05",
    value: "0.5",
    disabled: !mayMove,
    "aria-label": "Speed",
  });
  const pad = css(
    h("div", { id: "ptz-pad", role: "group", "aria-label": "Pan and tilt", tabindex: "0" }),
    { display: "grid", gridTemplateColumns: "repeat(3, 2.5rem)", gap: "0.25rem" },
  );
  for (const [name, dx, dy, label] of DIRECTIONS) {
    const button = h(
      "button",
      {
        type: "button",
        class: name === "stop" ? "secondary" : "",
        dataset: { ptz: name },
        disabled: !mayMove,
        title: name === "stop" ? "Stop" : `Move ${name}`,
        "aria-label": name === "stop" ? "Stop" : `Move ${name}`,
      },
      label,
    );
    css(button, { padding: "0.35rem 0", minWidth: "2.5rem", touchAction: "none" });
    if (name === "stop") {
      button.addEventListener("click", () => stop());
    } else {
      holdToMove(button, () => [dx, dy, 0]);
      button.addEventListener("click", (event) => {
        if (event.detail === 0) step(dx, dy, 0); // keyboard: one step
      });
    }
    pad.append(button);
  }
  pad.addEventListener("keydown", (event) => {
    const keys = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] };
    const dir = keys[event.key];
    if (!dir || !mayMove) return;
    event.preventDefault();
    step(dir[0], dir[1], 0);
  });

  const zoomIn = h(
    "button",
    { type: "button", id: "ptz-zoom-in", disabled: !mayMove, "aria-label": "Zoom in" },
    "+",
  );
  const zoomOut = h(
    "button",
    { type: "button", id: "ptz-zoom-out", disabled: !mayMove, "aria-label": "Zoom out" },
    "\u2212",
  );
  holdToMove(zoomIn, () => [0, 0, 1]);
  holdToMove(zoomOut, () => [0, 0, -1]);
  zoomIn.addEventListener("click", (event) => event.detail === 0 && step(0, 0, 1));
  zoomOut.addEventListener("click", (event) => event.detail === 0 && step(0, 0, -1));

  const joystick = makeJoystick();

  // -- presets
  const presetList = h("ul", { id: "ptz-presets", class: "muted" });
  const presetName = h("input", {
    id: "ptz-preset-name",
    placeholder: "Preset name",
    maxlength: "64",
    disabled: !mayMove,
    autocomplete: "off",
  });
  const presetSave = h(
    "button",
    { type: "button", id: "ptz-preset-save", class: "secondary", disabled: !mayMove },
    "Save preset",
  );
  presetSave.addEventListener("click", () =>
    run(async () => {
      await post(`${base}/presets`, { name: presetName.value.trim() });
      presetName.value = "";
      flash("Preset saved", "ok");
      await loadPresets();
    }),
  );

  // -- go to mask
  const maskSelect = h("select", { id: "ptz-mask-select", disabled: !mayMove, "aria-label": "Mask" });
  const goToMask = h(
    "button",
    { type: "button", id: "ptz-go-to-mask", class: "secondary", disabled: !mayMove },
    "Go to mask",
  );
  goToMask.addEventListener("click", () =>
    run(async () => {
      if (!maskSelect.value) return;
      await post(`${base}/go-to-mask`, { name: maskSelect.value });
      await refresh();
    }),
  );

  // -- drawing a scene mask on the live picture, and the masks' outlines over it
  const overlay = liveBox ? makeOverlay() : null;
  const showMasks = h("input", { type: "checkbox", id: "ptz-show-masks", checked: true });
  const maskName = h("input", {
    id: "ptz-mask-name",
    placeholder: "New mask name",
    maxlength: "64",
    disabled: !mayMove || !overlay,
    autocomplete: "off",
  });
  const drawButton = h(
    "button",
    { type: "button", id: "ptz-draw", class: "secondary", disabled: !mayMove || !overlay },
    "Draw scene mask",
  );
  drawButton.addEventListener("click", () => overlay && overlay.startDrawing());
  showMasks.addEventListener("change", () => overlay && overlay.redraw());

  const element = h(
    "div",
    { id: "ptz-panel", class: "ptz", dataset: { camera: cameraId } },
    h("h2", { class: "spaced" }, "Pan, tilt, zoom ", readout, " ", moving),
    status.virtual
      ? null
      : h("p", { class: "muted" }, "This camera's head is moved by its own controls."),
    css(
      h(
        "div",
        { class: "row" },
        pad,
        joystick.element,
        css(h("div", {}, zoomIn, zoomOut), { display: "flex", flexDirection: "column", gap: "0.25rem" }),
        h("label", {}, "Speed", speed),
      ),
      { alignItems: "center", gap: "1rem", flexWrap: "wrap" },
    ),
    error,
    h("h3", {}, "Presets"),
    presetList,
    h("div", { class: "buttons" }, presetName, presetSave),
    h("h3", {}, "Scene masks"),
    h("div", { class: "buttons" }, maskSelect, goToMask),
    overlay
      ? h(
          "div",
          { class: "buttons" },
          maskName,
          drawButton,
          h("label", { class: "check" }, showMasks, "Show on the picture"),
        )
      : null,
    overlay
      ? h(
          "p",
          { class: "muted", id: "ptz-draw-help" },
          "Draw scene mask: click the corners on the live picture, double-click to close " +
            "(Escape cancels). The mask is fixed to the scene: it follows every move.",
        )
      : null,
  );

  // -- commands
  // Commands go one after the other (a stop never overtakes a move still on its way).
  let queue = Promise.resolve();

  function run(action) {
    const next = queue.then(async () => {
      error.hidden = true;
      try {
        return await action();
      } catch (failure) {
        if (failure instanceof ApiError && failure.status === 401) return undefined;
        error.textContent = errorText(failure);
        error.hidden = false;
        return undefined;
      }
    });
    queue = next.catch(() => undefined);
    return next;
  }

  const velocity = ([x, y, z]) => {
    const s = Number(speed.value);
    return { pan: x * s, tilt: y * s, zoom: z * s, space: "generic", timeout_s: HOLD_TIMEOUT_S };
  };

  function startHold(getVelocity) {
    if (!mayMove) return;
    endHold(false);
    const send = () => run(() => post(`${base}/continuous-move`, velocity(getVelocity())));
    held = { timer: setInterval(send, RENEW_MS), getVelocity };
    send();
  }

  function endHold(sendStop = true) {
    if (!held) return;
    clearInterval(held.timer);
    held = null;
    if (sendStop) stop();
  }

  function holdToMove(button, getVelocity) {
    button.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      button.setPointerCapture?.(event.pointerId);
      startHold(getVelocity);
    });
    for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
      button.addEventListener(type, () => endHold());
    }
  }

  async function stop() {
    await run(() => post(`${base}/stop`, {}));
    await refresh();
  }

  async function step(dx, dy, dz) {
    // A quarter of the field of view (pan/tilt), a tenth of the zoom range.
    await run(() =>
      post(`${base}/relative-move`, { pan: (dx * hfov) / 4, tilt: (dy * hfov) / 4, zoom: dz / 10 }),
    );
    await refresh();
  }

  function makeJoystick() {
    const size = 96;
    const knob = css(h("div", { class: "ptz-knob" }), {
      position: "absolute",
      width: "28px",
      height: "28px",
      borderRadius: "50%",
      background: "currentColor",
      left: `${size / 2 - 14}px`,
      top: `${size / 2 - 14}px`,
      pointerEvents: "none",
      opacity: "0.6",
    });
    const area = css(
      h("div", { id: "ptz-joystick", role: "slider", "aria-label": "Joystick", title: "Drag to move" }, knob),
      {
        position: "relative",
        width: `${size}px`,
        height: `${size}px`,
        borderRadius: "50%",
        border: "2px solid currentColor",
        touchAction: "none",
        cursor: mayMove ? "grab" : "not-allowed",
        opacity: mayMove ? "1" : "0.4",
      },
    );
    let vector = [0, 0, 0];
    let lastSent = 0;
    const place = (x, y) => {
      knob.style.left = `${size / 2 - 14 + (x * size) / 2}px`;
      knob.style.top = `${size / 2 - 14 - (y * size) / 2}px`;
    };
    const update = (event) => {
      const box = area.getBoundingClientRect();
      let x = (event.clientX - box.left - box.width / 2) / (box.width / 2);
      let y = -(event.clientY - box.top - box.height / 2) / (box.height / 2);
      const r = Math.hypot(x, y);
      if (r > 1) [x, y] = [x / r, y / r];
      vector = [x, y, 0];
      place(x, y);
      sendSoon();
    };
    // At most one command per JOYSTICK_SEND_MS, and always the latest vector last.
    let trailing = null;
    const sendSoon = () => {
      if (!held || trailing) return;
      const wait = Math.max(0, lastSent + JOYSTICK_SEND_MS - performance.now());
      trailing = setTimeout(() => {
        trailing = null;
        if (!held) return;
        lastSent = performance.now();
        run(() => post(`${base}/continuous-move`, velocity(vector)));
      }, wait);
    };
    area.addEventListener("pointerdown", (event) => {
      if (!mayMove || event.button !== 0) return;
      area.setPointerCapture?.(event.pointerId);
      update(event);
      startHold(() => vector);
      lastSent = performance.now();
    });
    area.addEventListener("pointermove", (event) => held && update(event));
    for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
      area.addEventListener(type, () => {
        if (!held) return;
        vector = [0, 0, 0];
        place(0, 0);
        endHold();
      });
    }
    return { element: area };
  }

  function makeOverlay() {
    const canvas = css(h("canvas", { id: "ptz-overlay", "aria-label": "Scene masks" }), {
      position: "absolute",
      inset: "0",
      width: "100%",
      height: "100%",
      pointerEvents: "none",
      zIndex: "2",
    });
    liveBox.append(canvas);
    let outlines = [];
    let drawing = null; // {points: [[x, y]...], position} while drawing

    const size = () => {
      const box = canvas.getBoundingClientRect();
      const ratio = window.devicePixelRatio || 1;
      const w = Math.max(1, Math.round(box.width * ratio));
      const h2 = Math.max(1, Math.round(box.height * ratio));
      if (canvas.width !== w || canvas.height !== h2) {
        canvas.width = w;
        canvas.height = h2;
      }
      return [w, h2];
    };

    function path(g, points, w, h2) {
      g.beginPath();
      points.forEach(([x, y], i) => (i ? g.lineTo(x * w, y * h2) : g.moveTo(x * w, y * h2)));
    }

    function redraw() {
      const [w, h2] = size();
      const g = canvas.getContext("2d");
      g.clearRect(0, 0, w, h2);
      g.lineWidth = 2 * (window.devicePixelRatio || 1);
      if (showMasks.checked) {
        for (const o of outlines) {
          g.setLineDash(o.active ? [] : [6, 4]);
          g.strokeStyle = o.active ? "#ffffff" : "#bbbbbb";
          path(g, o.polygon, w, h2);
          g.closePath();
          g.stroke();
        }
      }
      if (drawing) {
        g.setLineDash([]);
        g.strokeStyle = "#ffd400";
        g.fillStyle = "#ffd400";
        path(g, drawing.points, w, h2);
        g.stroke();
        for (const [x, y] of drawing.points) g.fillRect(x * w - 3, y * h2 - 3, 6, 6);
      }
      canvas.dataset.outlines = String(outlines.length);
    }

    const point = (event) => {
      const box = canvas.getBoundingClientRect();
      return [(event.clientX - box.left) / box.width, (event.clientY - box.top) / box.height];
    };

    canvas.addEventListener("click", (event) => {
      if (!drawing) return;
      const [x, y] = point(event);
      const last = drawing.points[drawing.points.length - 1];
      const box = canvas.getBoundingClientRect();
      if (last && Math.hypot((x - last[0]) * box.width, (y - last[1]) * box.height) < 4) return;
      drawing.points.push([x, y]);
      redraw();
    });
    canvas.addEventListener("dblclick", (event) => {
      if (!drawing) return;
      event.preventDefault();
      finish();
    });
    const onKey = (event) => {
      if (event.key === "Escape" && drawing) stopDrawing();
    };
    window.addEventListener("keydown", onKey);

    async function startDrawing() {
      const name = maskName.value.trim();
      if (!name) {
        error.textContent = "Name the new mask first.";
        error.hidden = false;
        maskName.focus();
        return;
      }
      // The corners are converted at the position the picture shows: hold the camera still.
      await stop();
      const status = await run(() => get(`${base}/status`));
      if (!status) return;
      drawing = { name, points: [], position: status.position };
      canvas.style.pointerEvents = "auto";
      canvas.style.cursor = "crosshair";
      canvas.dataset.drawing = "true";
      drawButton.disabled = true;
      redraw();
    }

    function stopDrawing() {
      drawing = null;
      canvas.style.pointerEvents = "none";
      canvas.style.cursor = "";
      delete canvas.dataset.drawing;
      drawButton.disabled = !mayMove;
      redraw();
    }

    async function finish() {
      const { name, points, position } = drawing;
      if (points.length < 3) {
        error.textContent = "A mask needs at least 3 corners.";
        error.hidden = false;
        return;
      }
      stopDrawing();
      await run(async () => {
        const masks = await get(`${base}/masks`);
        const kept = masks.filter((m) => m.name !== name);
        await put(`${base}/masks`, {
          masks: [...kept, { name, color: "#000000", drawn: { polygon: points, position } }],
        });
        maskName.value = "";
        flash(`Scene mask ${name} saved`, "ok");
        await loadMasks();
        await refreshOutlines();
      });
    }

    async function refreshOutlines() {
      try {
        const view = await get(`${base}/masks/view`);
        outlines = view.outlines;
      } catch {
        outlines = [];
      }
      redraw();
    }

    function close() {
      window.removeEventListener("keydown", onKey);
      canvas.remove();
    }

    return { startDrawing, redraw, refreshOutlines, close };
  }

  // -- reading
  function show(info) {
    const p = info.position;
    readout.textContent = `pan ${fmt(p.pan_deg)}\u00b0 tilt ${fmt(p.tilt_deg)}\u00b0 zoom ${fmt(p.zoom, 2)}`;
    readout.dataset.pan = String(p.pan_deg);
    readout.dataset.tilt = String(p.tilt_deg);
    readout.dataset.zoom = String(p.zoom);
    moving.textContent = info.moving === null ? "unknown" : info.moving ? "moving" : "";
    element.dataset.moving = String(Boolean(info.moving));
  }

  async function refresh() {
    if (closed) return;
    try {
      const fresh = await get(`${base}/status`);
      hfov = fresh.hfov_deg;
      show(fresh);
      if (overlay) await overlay.refreshOutlines();
    } catch {
      // The next poll tries again; a 401 already sent the page to the login form.
    }
  }

  async function loadPresets() {
    const presets = await get(`${base}/presets`);
    presetList.replaceChildren(
      ...presets.map((preset) => {
        const go = h(
          "button",
          { type: "button", class: "secondary", dataset: { token: preset.token }, disabled: !mayMove },
          preset.name,
        );
        go.addEventListener("click", () =>
          run(async () => {
            await post(`${base}/presets/${seg(preset.token)}/goto`, {});
            await refresh();
          }),
        );
        const remove = h(
          "button",
          {
            type: "button",
            class: "secondary",
            dataset: { remove: preset.token },
            disabled: !mayMove,
            "aria-label": `Remove preset ${preset.name}`,
          },
          "\u00d7",
        );
        remove.addEventListener("click", () =>
          run(async () => {
            await del(`${base}/presets/${seg(preset.token)}`);
            await loadPresets();
          }),
        );
        return h("li", { dataset: { preset: preset.name } }, go, " ", remove);
      }),
    );
  }

  async function loadMasks() {
    const masks = await get(`${base}/masks`);
    maskSelect.replaceChildren(...masks.map((m) => h("option", { value: m.name }, m.name)));
    goToMask.disabled = !mayMove || masks.length === 0;
  }

  show(status);
  attempt(loadPresets);
  attempt(loadMasks);
  const poll = setInterval(refresh, POLL_MS);
  const release = () => endHold();
  window.addEventListener("blur", release);

  function close() {
    if (closed) return;
    closed = true;
    clearInterval(poll);
    window.removeEventListener("blur", release);
    endHold();
    if (overlay) overlay.close();
  }

  element.dataset.ready = "true";
  return { element, close };
}

/**
 * Add the PTZ panel after `anchor` when camera `cameraId` has PTZ; returns the panel or
 * null. `liveBox` is the live picture's container (default: `anchor`, as on the camera
 * page, whose live picture is #live). The panel closes (timers, held moves, the overlay)
 * when the view is left.
 */
export async function mountPTZ(cameraId, anchor, liveBox = anchor) {
  let status;
  try {
    status = await get(`/api/cameras/${seg(cameraId)}/ptz/status`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null; // no PTZ
    throw error;
  }
  if (!anchor.isConnected) return null; // the view was left meanwhile
  const panel = ptzPanel(cameraId, status, liveBox);
  anchor.after(panel.element);
  onLeave(panel.close);
  return panel;
}

// -- automatic mounting on the camera page ----------------------------------------------------

let mounting = false;

async function autoMount() {
  const main = document.getElementById("view");
  if (!main || main.dataset.ready !== "camera" || mounting) return;
  if (main.querySelector("#ptz-panel")) return;
  const [, name, id] = location.hash.replace(/^#\/?/, "/").split("/");
  const anchor = main.querySelector("#live");
  if (name !== "camera" || !id || !anchor) return;
  mounting = true;
  try {
    await attempt(() => mountPTZ(decodeURIComponent(id), anchor));
  } finally {
    mounting = false;
  }
}

function watch() {
  const main = document.getElementById("view");
  if (!main) return;
  new MutationObserver(autoMount).observe(main, {
    attributes: true,
    attributeFilter: ["data-ready"],
  });
  autoMount();
}

if (typeof document !== "undefined") {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", watch);
  else watch();
}
