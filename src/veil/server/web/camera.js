// One camera (#/camera/<id>): its live masked picture, the mask editor on a live snapshot,
// the dynamic masking settings, and the unmasked view with its reason prompt.
//
// The page is made of three panels that share little:
//   - maskingPanel: editor + settings form + Save / Revert / Reset background;
//   - unmaskPanel: the "Unmasked view…" button, its dialog, the original picture and its end;
//   - approvalsPanel: requests of other investigators waiting for a second person.

import { ApiError, api, get, post, put, seg } from "./api.js";
import { PolygonEditor, configParts, shapesFromConfig } from "./editor.js";
import { openLive } from "./live.js";
import { $, attempt, can, errorText, every, flash, h, onLeave, select, session } from "./ui.js";

const METHODS = [
  ["motion", "Motion"],
  ["humans", "People"],
  ["faces", "Faces"],
  ["background", "Background (all but people)"],
];
const STYLES = ["fill", "mosaic", "blur", "silhouette"];
const MARGINS = ["small", "medium", "large", "12px", "10%"];
const TOOLS = [
  ["select", "Select / move"],
  ["mask", "Draw static mask"],
  ["include", "Draw include area"],
  ["exclude", "Draw exclude area"],
];

export async function viewCamera(main, cameraId) {
  const camera = await get(`/api/cameras/${seg(cameraId)}`);
  const config = await get(`/api/cameras/${seg(cameraId)}/masking`);

  const liveBox = h("div", { class: "live", id: "live" });
  liveBox.style.aspectRatio = `${camera.width} / ${camera.height}`; // the camera's shape
  const liveState = h("span", { class: "badge subtle", id: "live-transport" });
  const stateBadge = h("span", { class: "badge", id: "camera-state" }, camera.state);
  const masking = maskingPanel(camera, config);
  const unmask = unmaskPanel(camera);

  main.append(
    h(
      "div",
      { class: "camera-head" },
      h("h1", {}, camera.name),
      stateBadge,
      h("a", { href: "#/recordings", class: "muted" }, "recordings"),
    ),
    h(
      "div",
      { class: "camera-layout" },
      h(
        "section",
        { class: "card" },
        h("h2", {}, "Live (masked) ", liveState),
        liveBox,
        unmask,
        can("unmask") ? approvalsPanel(cameraId) : null,
        h("h2", { class: "spaced" }, "Dynamic masking"),
        masking.settings,
      ),
      masking.editor,
    ),
  );

  const live = openLive(liveBox, cameraId, { onState: (text) => (liveState.textContent = text) });
  onLeave(() => live.close());
  every(5000, async () => {
    const fresh = await get(`/api/cameras/${seg(cameraId)}`).catch(() => null);
    if (fresh) stateBadge.textContent = fresh.state;
  });
}

// -- masks and settings -----------------------------------------------------------------------

/** The editor card and the settings form; returns {editor, settings} elements. */
function maskingPanel(camera, initial) {
  const cameraPath = `/api/cameras/${seg(camera.id)}`;
  const mayConfigure = can("configure");
  let config = initial;

  const canvas = h(
    "canvas",
    {
      id: "editor-canvas",
      width: camera.width,
      height: camera.height,
      class: "editor",
      "aria-label": "Mask editor on a live masked snapshot",
    },
  );
  const props = h("div", { class: "props", id: "shape-props" });
  const maskError = h("div", { class: "error", id: "masking-error", hidden: true, role: "alert" });
  const dirtyNote = h("span", { class: "muted", id: "dirty-note" });
  const settings = h("form", { class: "dynamic", id: "dynamic-form" });
  const toolButtons = TOOLS.map(([tool, label]) =>
    h("button", { type: "button", class: "tool", dataset: { tool }, disabled: !mayConfigure }, label),
  );
  const saveButton = h(
    "button",
    { type: "button", id: "save-masking", disabled: !mayConfigure },
    "Save",
  );
  const revertButton = h(
    "button",
    { type: "button", class: "secondary", id: "revert-masking", disabled: !mayConfigure },
    "Revert",
  );
  const resetButton = h(
    "button",
    { type: "button", class: "secondary", id: "reset-background", disabled: !mayConfigure },
    "Reset background",
  );

  const card = h(
    "section",
    { class: "card" },
    h("h2", {}, "Masks"),
    h(
      "p",
      { class: "muted" },
      mayConfigure
        ? "Pick a tool, click to add points, double-click to close. Drag points to move them; Delete removes the selected polygon. Double-click an edge to add a point."
        : `Your role (${session.me.role}) may look but not change masks: saving needs the operator role.`,
    ),
    h("div", { class: "toolbar", role: "toolbar" }, toolButtons),
    canvas,
    props,
    maskError,
    h("div", { class: "buttons" }, saveButton, revertButton, resetButton, dirtyNote),
  );

  // -- the editor and its tools
  const editor = new PolygonEditor(canvas, { readOnly: !mayConfigure });
  const markDirty = (dirty = true) => (dirtyNote.textContent = dirty ? "Unsaved changes" : "");
  const showTool = () => {
    for (const b of toolButtons) b.classList.toggle("active", b.dataset.tool === editor.tool);
  };
  for (const b of toolButtons) {
    b.addEventListener("click", () => {
      editor.setTool(b.dataset.tool);
      showTool();
    });
  }
  editor.addEventListener("toolchange", showTool);
  editor.addEventListener("change", () => markDirty());
  editor.addEventListener("select", () => renderProps(props, editor, mayConfigure, markDirty));
  settings.addEventListener("input", () => markDirty());
  showTool();

  const load = (newConfig) => {
    config = newConfig;
    editor.setShapes(shapesFromConfig(config, camera.width, camera.height));
    renderSettings(settings, config.dynamic, mayConfigure);
    markDirty(false);
  };
  load(config);

  // -- save, revert, reset background
  saveButton.addEventListener("click", async () => {
    maskError.hidden = true;
    saveButton.disabled = true;
    try {
      load(await put(`${cameraPath}/masking`, editedConfig(config, editor, settings)));
      flash("Saved: the new masking is live.", "ok");
      refreshSnapshot();
    } catch (error) {
      // Refused: the running configuration is unchanged. Show the server's reason; a
      // validation error's detail names the setting and what is wrong with it.
      const invalid = error instanceof ApiError && error.status === 422 && error.errors.length > 0;
      maskError.replaceChildren(
        h("strong", {}, "Not saved: "),
        invalid ? error.detail : errorText(error),
      );
      if (invalid && error.errors.length > 1) {
        maskError.append(
          h("ul", {}, error.errors.map((e) => h("li", {}, `${e.loc.join(".")}: ${e.msg}`))),
        );
      }
      maskError.hidden = false;
    } finally {
      saveButton.disabled = !mayConfigure;
    }
  });
  revertButton.addEventListener("click", () =>
    attempt(async () => {
      maskError.hidden = true;
      load(await get(`${cameraPath}/masking`));
    }),
  );
  resetButton.addEventListener("click", () =>
    attempt(async () => {
      await post(`${cameraPath}/reset-background`, {});
      flash("Background reset: motion masking learns the scene again.", "ok");
    }),
  );

  // -- the live (masked) snapshot under the editor, refreshed every second
  let busy = false;
  async function refreshSnapshot() {
    if (busy) return;
    busy = true;
    try {
      const reply = await api("GET", `${cameraPath}/snapshot.jpg`, undefined, { raw: true });
      editor.setBackground(await createImageBitmap(await reply.blob()));
      canvas.dataset.snapshots = String(Number(canvas.dataset.snapshots || 0) + 1);
    } catch (error) {
      console.warn("snapshot:", error);
    } finally {
      busy = false;
    }
  }
  refreshSnapshot();
  every(1000, refreshSnapshot);

  return { editor: card, settings };
}

/** The properties of the selected polygon (name, style, colour... for a static mask). */
function renderProps(props, editor, mayConfigure, markDirty) {
  const shape = editor.selected;
  props.replaceChildren();
  if (!shape) {
    const count = (kind) => editor.shapes.filter((s) => s.kind === kind).length;
    props.append(
      h(
        "p",
        { class: "muted" },
        `${count("mask")} static mask(s), ${count("include")} include and ${count("exclude")} exclude area(s). Click a polygon to edit it.`,
      ),
    );
    return;
  }
  const remove = h(
    "button",
    {
      type: "button",
      class: "secondary",
      id: "delete-shape",
      disabled: !mayConfigure,
      onclick: () => editor.deleteSelected(),
    },
    "Delete",
  );
  if (shape.kind !== "mask") {
    props.append(
      h(
        "div",
        { class: "row" },
        h("strong", {}, shape.kind === "include" ? "Include area" : "Exclude area"),
        remove,
      ),
    );
    return;
  }
  const p = shape.props;
  const update = (key, value) => {
    p[key] = value;
    markDirty();
    editor.render();
  };
  const input = (id, attrs, key, read = (e) => e.target.value) =>
    h("input", { id, disabled: !mayConfigure, oninput: (e) => update(key, read(e)), ...attrs });
  props.append(
    h(
      "div",
      { class: "row" },
      h("label", {}, "Name", input("mask-name", { value: p.name, maxlength: 64 }, "name")),
      h(
        "label",
        {},
        "Style",
        select(
          "style",
          STYLES,
          p.style || "fill",
          {
            id: "mask-style",
            disabled: !mayConfigure,
            onchange: (e) => update("style", e.target.value),
          },
        ),
      ),
      h(
        "label",
        {},
        "Colour",
        input("mask-color", { type: "color", value: p.color || "#000000" }, "color"),
      ),
      // Only the setting of the chosen style matters (mosaic cell or blur radius, pixels).
      h(
        "label",
        { class: "narrow" },
        "Cell (px)",
        input(
          "mask-cell",
          { type: "number", min: 4, max: 512, value: String(p.cell_size ?? 24) },
          "cell_size",
          (e) => Number(e.target.value),
        ),
      ),
      h(
        "label",
        { class: "narrow" },
        "Blur (px)",
        input(
          "mask-blur",
          { type: "number", min: 4, max: 512, value: String(p.blur_radius ?? 24) },
          "blur_radius",
          (e) => Number(e.target.value),
        ),
      ),
      h(
        "label",
        { class: "check" },
        h(
          "input",
          {
            id: "mask-enabled",
            type: "checkbox",
            checked: p.enabled !== false,
            disabled: !mayConfigure,
            onchange: (e) => update("enabled", e.target.checked),
          },
        ),
        "Enabled",
      ),
      remove,
    ),
  );
}

/** The dynamic masking settings form (its field names are the configuration's keys). */
function renderSettings(form, d, mayConfigure) {
  const sensitivityOut = h("output", { id: "sensitivity-value" }, String(d.sensitivity));
  const number = (name, attrs, value) =>
    h("input", { type: "number", name, step: "any", value: String(value), ...attrs });
  form.replaceChildren(
    h(
      "fieldset",
      { disabled: !mayConfigure },
      h("legend", {}, "Methods"),
      METHODS.map(
        ([m, label]) => h(
          "label",
          { class: "check" },
          h(
            "input",
            { type: "checkbox", name: "methods", value: m, checked: d.methods.includes(m) },
          ),
          label,
        ),
      ),
    ),
    h(
      "fieldset",
      { disabled: !mayConfigure, class: "grid-form" },
      h("legend", {}, "Settings"),
      h(
        "label",
        {},
        "Sensitivity ",
        sensitivityOut,
        h(
          "input",
          {
            type: "range",
            name: "sensitivity",
            min: 0,
            max: 100,
            step: 1,
            value: String(d.sensitivity),
            oninput: (e) => (sensitivityOut.textContent = e.target.value),
          },
        ),
      ),
      h(
        "label",
        {},
        "Background merge time (s)",
        number("background_merge_time", { min: 0.1 }, d.background_merge_time),
      ),
      h(
        "label",
        {},
        "Margin",
        h("input", { name: "margin", list: "margin-presets", value: d.margin }),
        h("datalist", { id: "margin-presets" }, MARGINS.map((v) => h("option", { value: v }))),
      ),
      h("label", {}, "Hold time (s)", number("hold_time", { min: 0, max: 60 }, d.hold_time)),
      h("label", {}, "Style", select("style", STYLES, d.style)),
      h("label", {}, "Colour", h("input", { type: "color", name: "color", value: d.color })),
      h(
        "label",
        {},
        "Mosaic cell (px)",
        number("cell_size", { min: 4, max: 512, step: 1 }, d.cell_size),
      ),
      h(
        "label",
        {},
        "Blur radius (px)",
        number("blur_radius", { min: 4, max: 512, step: 1 }, d.blur_radius),
      ),
    ),
  );
}

/** The configuration as edited: the loaded one with the page's changes on top (keys the page
 * does not show, such as learning_time or the person detector, are kept as they were). */
function editedConfig(config, editor, settingsForm) {
  const form = new FormData(settingsForm);
  const num = (name) => {
    const value = form.get(name);
    return value === "" || value === null ? null : Number(value);
  };
  const parts = configParts(editor.shapes);
  return {
    ...config,
    masks: parts.masks,
    dynamic: {
      ...config.dynamic,
      methods: form.getAll("methods"),
      sensitivity: num("sensitivity"),
      background_merge_time: num("background_merge_time"),
      margin: String(form.get("margin") || "").trim(),
      hold_time: num("hold_time"),
      style: form.get("style"),
      color: form.get("color"),
      cell_size: num("cell_size"),
      blur_radius: num("blur_radius"),
      include: parts.include,
      exclude: parts.exclude,
    },
  };
}

// -- the unmasked view ------------------------------------------------------------------------

/**
 * The "Unmasked view…" button, the status line and the original picture. The button is
 * there for everyone: the server decides, and a refusal is shown (and audited).
 */
function unmaskPanel(camera) {
  const cameraId = camera.id;
  const button = h(
    "button",
    { type: "button", class: "danger", id: "unmask-button" },
    "Unmasked view…",
  );
  const statusBox = h("div", { id: "unmask-status", hidden: true, role: "alert" });
  const box = h("div", { class: "live unmasked", id: "unmasked-live", hidden: true });
  box.style.aspectRatio = `${camera.width} / ${camera.height}`;
  let live = null;
  let grant = null;
  let watch = null;

  const status = (content, kind) => {
    statusBox.replaceChildren(...[].concat(content));
    statusBox.className = `notice ${kind}`;
    statusBox.hidden = false;
  };
  const close = () => {
    clearInterval(watch);
    watch = null;
    if (live) live.close();
    live = null;
    box.hidden = true;
    box.replaceChildren();
  };
  const ended = () => {
    close();
    grant = null;
    status("The unmasked view has ended (its time ran out or it was ended).", "info");
  };
  onLeave(() => {
    close();
    // Leaving the page ends the view (best effort: the grant expires anyway).
    if (grant) post(`/api/unmask/${grant.id}/end`, {}).catch(() => {});
  });

  function show(active) {
    close();
    grant = active;
    const end = h(
      "button",
      { type: "button", class: "secondary", id: "unmask-end" },
      "End unmasked view",
    );
    const until = active.expires_at ? new Date(active.expires_at).toLocaleTimeString() : "?";
    status(
      [
        h("strong", {}, "UNMASKED VIEW"),
        ` — reason: ${active.reason} — until ${until}. This view is audited. `,
        end,
      ],
      "danger",
    );
    const banner = h("div", { class: "unmasked-banner" }, "ORIGINAL — NOT MASKED");
    box.append(banner);
    box.hidden = false;
    live = openLive(box, cameraId, {
      unmasked: true,
      onState: (text) => (banner.textContent = `ORIGINAL — NOT MASKED (${text})`),
      onEnded: ended,
    });
    // The gateway stops sending the original when the grant ends; the page also takes the
    // last picture away at once (no frozen original left on screen): it checks every 2 s.
    const expires = active.expires_at ? Date.parse(active.expires_at) : null;
    watch = setInterval(async () => {
      if (expires !== null && Date.now() >= expires) return ended();
      const grants = await get("/api/unmask?status=active").catch(() => null);
      if (grants && grant === active && !grants.some((g) => g.id === active.id)) ended();
    }, 2000);
    end.addEventListener("click", () =>
      attempt(async () => {
        await post(`/api/unmask/${active.id}/end`, {});
        close();
        grant = null;
        status("Unmasked view ended.", "info");
      }),
    );
  }

  function waitForApproval(pending) {
    status(`Request #${pending.id} is waiting for a second investigator to approve it…`, "info");
    const timer = every(2000, async () => {
      const grants = await get("/api/unmask").catch(() => []);
      const mine = grants.find((g) => g.id === pending.id);
      if (!mine || mine.status === "pending") return;
      clearInterval(timer);
      if (mine.status === "active") show(mine);
      else status(`Request #${pending.id} was ${mine.status}.`, "refusal");
    });
  }

  // The dialog is part of index.html (one for the page); its handlers are this camera's.
  const dialog = $("#unmask-dialog");
  button.addEventListener("click", () => {
    $("#unmask-reason").value = "";
    dialog.showModal();
  });
  $("#unmask-cancel").onclick = () => dialog.close();
  $("#unmask-form").onsubmit = async (event) => {
    event.preventDefault();
    const reason = $("#unmask-reason").value.trim();
    const minutes = Number($("#unmask-minutes").value) || null;
    if (!reason) return;
    dialog.close();
    try {
      const requested = await post(`/api/cameras/${seg(cameraId)}/unmask`, { reason, minutes });
      if (requested.status === "active") show(requested);
      else if (requested.status === "pending") waitForApproval(requested);
      else status(`The request is ${requested.status}.`, "info");
    } catch (error) {
      if (error instanceof ApiError && error.status === 403) {
        status(
          [
            h("strong", {}, "Refused: "),
            `you may not see this camera unmasked. ${error.detail}. `,
            "Only investigators with the unmask permission can open the original view.",
          ],
          "refusal",
        );
      } else {
        status(errorText(error), "refusal");
      }
    }
  };

  return h("div", {}, h("div", { class: "buttons" }, button), statusBox, box);
}

// -- approvals --------------------------------------------------------------------------------

/** Requests by other investigators for this camera, waiting for a second person. */
function approvalsPanel(cameraId) {
  const box = h("div", { id: "approvals" });
  const decide = (grant, verb) =>
    attempt(() => post(`/api/unmask/${grant.id}/${verb}`, {}).then(refresh));
  async function refresh() {
    const pending = await get("/api/unmask?status=pending").catch(() => []);
    const others = pending.filter(
      (g) => g.camera_id === cameraId && g.username !== session.me.username,
    );
    box.replaceChildren(
      ...(others.length ? [h("h3", {}, "Waiting for approval")] : []),
      ...others.map((g) =>
        h(
          "div",
          { class: "row" },
          `#${g.id} ${g.username}: “${g.reason}” `,
          h("button", { type: "button", onclick: () => decide(g, "approve") }, "Approve"),
          h(
            "button",
            { type: "button", class: "secondary", onclick: () => decide(g, "deny") },
            "Deny",
          ),
        ),
      ),
    );
  }
  refresh();
  every(5000, refresh);
  return box;
}
