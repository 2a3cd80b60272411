// The polygon editor: static masks, include areas and exclude areas drawn on a snapshot.
//
// Coordinates are normalised (0..1 across the picture), as the masking configuration wants
// them, so a mask fits any resolution. Interaction:
//   - choose a tool ("Draw mask", "Draw include", "Draw exclude"), click to add points,
//     double-click (or click the first point) to close the polygon (3 points at least);
//     Escape cancels the polygon being drawn;
//   - with any tool, drag a point to move it; in "Select", click inside a polygon to select
//     it and drag it to move it whole; double-click on an edge to insert a point there;
//   - Delete (key or button) removes the selected polygon; with a point selected, Alt+Delete
//     removes just that point (while 3 remain).

export const KINDS = {
  mask: { label: "Static mask", stroke: null, dash: [] },
  include: { label: "Include area", stroke: "#2ecc71", dash: [8, 4] },
  exclude: { label: "Exclude area", stroke: "#ff7a1a", dash: [3, 3] },
};

const HANDLE_PX = 9; // how close (screen pixels) a click must be to grab a point
const SAME_POINT_PX = 4; // a second click this close to the last point is not a new point

const clamp01 = (v) => Math.min(1, Math.max(0, v));
const round4 = (v) => Math.round(v * 10000) / 10000;

/** Is the point (x, y) inside polygon `pts` (even-odd rule)? */
function inside(pts, x, y) {
  let hit = false;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const [xi, yi] = pts[i];
    const [xj, yj] = pts[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) hit = !hit;
  }
  return hit;
}

/** Distance in screen pixels between two normalised points on a canvas box. */
const screenDistance = (a, b, box) =>
  Math.hypot((a[0] - b[0]) * box.width, (a[1] - b[1]) * box.height);

/** A polygon's points rounded to 4 decimals (a tenth of a pixel at 4K). */
const rounded = (points) => points.map(([x, y]) => [round4(x), round4(y)]);

/** Distance from p to segment a-b. */
function segmentDistance(p, a, b) {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const len2 = dx * dx + dy * dy || 1;
  const t = Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2));
  const cx = a[0] + t * dx;
  const cy = a[1] + t * dy;
  return Math.hypot(p[0] - cx, p[1] - cy);
}

/**
 * A shape: { kind: "mask"|"include"|"exclude", points: [[x, y], ...] (normalised),
 *            props: {name, style, color, ...} (masks only), orig: the mask as loaded or null,
 *            geometryChanged: bool }.
 */
export class PolygonEditor extends EventTarget {
  constructor(canvas, { readOnly = false } = {}) {
    super();
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.readOnly = readOnly;
    this.shapes = [];
    this.tool = "select"; // "select" | "mask" | "include" | "exclude"
    this.drawing = null; // the shape being drawn (not closed yet)
    this.selected = null; // a shape
    this.selectedPoint = -1;
    this.drag = null; // { shape, index (-1: whole shape), last: [x, y] }
    this.background = null; // an ImageBitmap of the snapshot
    this.hover = null;
    this.#listen();
  }

  // -- state ------------------------------------------------------------------------------

  setShapes(shapes) {
    this.shapes = shapes;
    this.drawing = null;
    this.select(null);
  }

  setTool(tool) {
    this.tool = tool;
    if (this.drawing) this.#cancelDrawing();
    this.canvas.dataset.tool = tool;
    this.render();
  }

  setBackground(bitmap) {
    if (this.background && this.background.close) this.background.close();
    this.background = bitmap;
    this.render();
  }

  select(shape, point = -1) {
    this.selected = shape;
    this.selectedPoint = point;
    this.dispatchEvent(new Event("select"));
    this.render();
  }

  /** Remove the selected polygon (or, with `pointOnly`, its selected point). */
  deleteSelected(pointOnly = false) {
    if (this.readOnly || !this.selected) return;
    const shape = this.selected;
    if (pointOnly && this.selectedPoint >= 0 && shape.points.length > 3) {
      shape.points.splice(this.selectedPoint, 1);
      shape.geometryChanged = true;
      this.select(shape);
    } else {
      this.shapes = this.shapes.filter((s) => s !== shape);
      this.select(null);
    }
    this.#changed();
  }

  // -- drawing ----------------------------------------------------------------------------

  render() {
    const { ctx, canvas } = this;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (this.background) {
      ctx.drawImage(this.background, 0, 0, canvas.width, canvas.height);
    } else {
      ctx.fillStyle = "#222";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
    }
    for (const shape of this.shapes) this.#drawShape(shape, false);
    if (this.drawing) this.#drawShape(this.drawing, true);
  }

  #drawShape(shape, open) {
    const { ctx, canvas } = this;
    const pts = shape.points.map(([x, y]) => [x * canvas.width, y * canvas.height]);
    if (pts.length === 0) return;
    const kind = KINDS[shape.kind];
    const isSelected = shape === this.selected;
    const color = shape.kind === "mask" ? shape.props.color || "#000000" : kind.stroke;
    ctx.save();
    ctx.beginPath();
    ctx.moveTo(pts[0][0], pts[0][1]);
    for (const [x, y] of pts.slice(1)) ctx.lineTo(x, y);
    if (open && this.hover) ctx.lineTo(this.hover[0] * canvas.width, this.hover[1] * canvas.height);
    if (!open) ctx.closePath();
    if (!open) {
      const disabled = shape.kind === "mask" && shape.props.enabled === false;
      ctx.globalAlpha = disabled ? 0.12 : shape.kind === "mask" ? 0.45 : 0.15;
      ctx.fillStyle = color;
      ctx.fill();
      ctx.globalAlpha = 1;
    }
    ctx.setLineDash(kind.dash);
    ctx.lineWidth = isSelected || open ? 3 : 2;
    ctx.strokeStyle = shape.kind === "mask" ? (isSelected ? "#4da3ff" : "#ffffff") : color;
    ctx.stroke();
    ctx.setLineDash([]);
    if (isSelected || open) {
      pts.forEach(([x, y], i) => {
        ctx.beginPath();
        ctx.arc(x, y, i === this.selectedPoint && isSelected ? 6 : 4.5, 0, 2 * Math.PI);
        ctx.fillStyle = i === this.selectedPoint && isSelected ? "#4da3ff" : "#ffffff";
        ctx.fill();
        ctx.strokeStyle = "#000";
        ctx.lineWidth = 1;
        ctx.stroke();
      });
    }
    const label = shape.kind === "mask" ? shape.props.name : kind.label;
    if (!open && label) {
      ctx.font = `${Math.max(11, canvas.width / 45)}px system-ui, sans-serif`;
      ctx.fillStyle = "#fff";
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 3;
      ctx.strokeText(label, pts[0][0] + 4, pts[0][1] + 14);
      ctx.fillText(label, pts[0][0] + 4, pts[0][1] + 14);
    }
    ctx.restore();
  }

  // -- input ------------------------------------------------------------------------------

  /** The event's position, normalised, and the canvas's box on screen. */
  #point(event) {
    const box = this.canvas.getBoundingClientRect();
    return {
      p: [
        clamp01((event.clientX - box.left) / box.width),
        clamp01((event.clientY - box.top) / box.height),
      ],
      box,
    };
  }

  /** The point of a shape within grabbing distance of `event`, selected shape first. */
  #pointAt(event) {
    const { p, box } = this.#point(event);
    const others = this.shapes.filter((s) => s !== this.selected);
    const order = this.selected ? [this.selected, ...others] : this.shapes;
    for (const shape of order) {
      for (let i = 0; i < shape.points.length; i++) {
        if (screenDistance(shape.points[i], p, box) <= HANDLE_PX) return { shape, index: i };
      }
    }
    return null;
  }

  #shapeAt(p) {
    for (let i = this.shapes.length - 1; i >= 0; i--) {
      if (inside(this.shapes[i].points, p[0], p[1])) return this.shapes[i];
    }
    return null;
  }

  #listen() {
    const c = this.canvas;
    c.tabIndex = 0;
    c.addEventListener("pointerdown", (e) => this.#down(e));
    c.addEventListener("pointermove", (e) => this.#move(e));
    c.addEventListener("pointerup", (e) => this.#up(e));
    c.addEventListener("dblclick", (e) => this.#dblclick(e));
    c.addEventListener("keydown", (e) => this.#key(e));
    c.addEventListener("pointerleave", () => {
      this.hover = null;
      this.render();
    });
  }

  #down(event) {
    if (this.readOnly || event.button !== 0) return;
    this.canvas.focus();
    const { p, box } = this.#point(event);
    if (this.drawing) {
      // Clicking the first point closes the polygon.
      const nearFirst = screenDistance(this.drawing.points[0], p, box) <= HANDLE_PX;
      if (nearFirst && this.drawing.points.length >= 3) {
        this.#finishDrawing();
        return;
      }
      const last = this.drawing.points[this.drawing.points.length - 1];
      const sameAsLast = screenDistance(last, p, box) <= SAME_POINT_PX;
      // The second click of a double-click adds no point: the double-click closes instead.
      if (!sameAsLast) this.drawing.points.push(p);
      this.render();
      return;
    }
    const grabbed = this.#pointAt(event);
    if (grabbed) {
      this.select(grabbed.shape, grabbed.index);
      this.drag = { shape: grabbed.shape, index: grabbed.index, last: p };
      this.canvas.setPointerCapture(event.pointerId);
      return;
    }
    if (this.tool !== "select") {
      this.drawing = this.#newShape(this.tool, p);
      this.render();
      return;
    }
    const shape = this.#shapeAt(p);
    this.select(shape);
    if (shape) {
      this.drag = { shape, index: -1, last: p };
      this.canvas.setPointerCapture(event.pointerId);
    }
  }

  #move(event) {
    const { p } = this.#point(event);
    this.hover = p;
    if (this.drag) {
      const { shape, index } = this.drag;
      if (index >= 0) {
        shape.points[index] = [round4(p[0]), round4(p[1])];
      } else {
        // Move the whole polygon, keeping it on the picture.
        let dx = p[0] - this.drag.last[0];
        let dy = p[1] - this.drag.last[1];
        const xs = shape.points.map((q) => q[0]);
        const ys = shape.points.map((q) => q[1]);
        dx = Math.min(Math.max(dx, -Math.min(...xs)), 1 - Math.max(...xs));
        dy = Math.min(Math.max(dy, -Math.min(...ys)), 1 - Math.max(...ys));
        shape.points = shape.points.map(([x, y]) => [round4(x + dx), round4(y + dy)]);
      }
      this.drag.last = p;
      this.drag.moved = true;
      shape.geometryChanged = true;
      this.render();
    } else if (this.drawing) {
      this.render();
    }
  }

  #up(event) {
    if (this.drag) {
      if (this.canvas.hasPointerCapture(event.pointerId)) {
        this.canvas.releasePointerCapture(event.pointerId);
      }
      const moved = this.drag.moved;
      this.drag = null;
      if (moved) this.#changed();
    }
  }

  #dblclick(event) {
    if (this.readOnly) return;
    event.preventDefault();
    if (this.drawing) {
      if (this.drawing.points.length >= 3) this.#finishDrawing();
      return;
    }
    // Double-click on an edge of the selected polygon: insert a point there.
    const shape = this.selected;
    if (!shape) return;
    const { p, box } = this.#point(event);
    const scaled = (q) => [q[0] * box.width, q[1] * box.height];
    let best = { d: Infinity, i: -1 };
    for (let i = 0; i < shape.points.length; i++) {
      const a = shape.points[i];
      const b = shape.points[(i + 1) % shape.points.length];
      const d = segmentDistance(scaled(p), scaled(a), scaled(b));
      if (d < best.d) best = { d, i };
    }
    if (best.d <= HANDLE_PX && shape.points.length < 64) {
      shape.points.splice(best.i + 1, 0, [round4(p[0]), round4(p[1])]);
      shape.geometryChanged = true;
      this.select(shape, best.i + 1);
      this.#changed();
    }
  }

  #key(event) {
    if (event.key === "Escape" && this.drawing) {
      this.#cancelDrawing();
    } else if ((event.key === "Delete" || event.key === "Backspace") && this.selected) {
      event.preventDefault();
      this.deleteSelected(event.altKey);
    }
  }

  #newShape(kind, p) {
    const shape = { kind, points: [p], props: null, orig: null, geometryChanged: true };
    if (kind === "mask") {
      const names = new Set(this.shapes.filter((s) => s.kind === "mask").map((s) => s.props.name));
      let n = 1;
      while (names.has(`mask-${n}`)) n++;
      shape.props = { ...(this.newMaskProps || {}), name: `mask-${n}`, enabled: true };
    }
    return shape;
  }

  #finishDrawing() {
    const shape = this.drawing;
    shape.points = rounded(shape.points);
    this.drawing = null;
    this.shapes.push(shape);
    this.tool = "select";
    this.canvas.dataset.tool = "select";
    this.dispatchEvent(new Event("toolchange"));
    this.select(shape);
    this.#changed();
  }

  #cancelDrawing() {
    this.drawing = null;
    this.render();
  }

  #changed() {
    this.dispatchEvent(new Event("change"));
    this.render();
  }
}

// -- configuration <-> shapes ---------------------------------------------------------------

/** The editor's shapes for a masking configuration (pixel masks converted for display). */
export function shapesFromConfig(config, width, height) {
  const shapes = [];
  for (const mask of config.masks || []) {
    const sx = mask.units === "pixels" ? 1 / width : 1;
    const sy = mask.units === "pixels" ? 1 / height : 1;
    let points;
    if (mask.rect) {
      const [x, y, w, h] = mask.rect;
      points = [[x, y], [x + w, y], [x + w, y + h], [x, y + h]];
    } else {
      points = mask.polygon;
    }
    const { rect, polygon, units, ...props } = mask;
    shapes.push({
      kind: "mask",
      points: points.map(([x, y]) => [clamp01(x * sx), clamp01(y * sy)]),
      props,
      orig: mask,
      geometryChanged: false,
    });
  }
  for (const kind of ["include", "exclude"]) {
    for (const area of (config.dynamic && config.dynamic[kind]) || []) {
      const points = area.map(([x, y]) => [x, y]);
      shapes.push({ kind, points, props: null, orig: area, geometryChanged: false });
    }
  }
  return shapes;
}

/**
 * The `masks`, `include` and `exclude` parts of a configuration for the editor's shapes.
 * A mask whose geometry was not touched keeps its original form (rect, units); a changed or
 * new one becomes a normalised polygon.
 */
export function configParts(shapes) {
  const masks = shapes
    .filter((s) => s.kind === "mask")
    .map((s) => {
      if (s.orig && !s.geometryChanged) {
        const { rect, polygon, units } = s.orig;
        const geometry = rect ? { rect } : { polygon };
        return { ...s.props, units, ...geometry };
      }
      return { ...s.props, units: "normalized", polygon: rounded(s.points) };
    });
  const area = (kind) => shapes.filter((s) => s.kind === kind).map((s) => rounded(s.points));
  return { masks, include: area("include"), exclude: area("exclude") };
}
