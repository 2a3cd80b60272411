// Shared pieces of the page: building elements, messages, the session, and the clean-up
// work of the current view.

import { ApiError } from "./api.js";

/**
 * Create an element: h("div", {class: "x", onclick: fn, dataset: {a: "1"}}, "text", child).
 * Text is always added as text (never parsed as HTML), so server data cannot inject markup.
 * Boolean and number attributes are set as properties (disabled, checked, width...).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key in el && typeof value !== "string") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : value);
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** A <select> of plain string options. */
export function select(name, options, value, attrs = {}) {
  return h(
    "select",
    { name, ...attrs },
    options.map((o) => h("option", { value: o, selected: o === value }, o)),
  );
}

export function fmtTime(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

export function fmtBytes(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} kB`;
  return `${n} B`;
}

let flashTimer = null;
/** A message at the top of the page; errors stay until the next message. */
export function flash(text, kind = "info") {
  const box = $("#flash");
  box.textContent = text;
  box.className = `flash ${kind}`;
  box.hidden = false;
  clearTimeout(flashTimer);
  if (kind !== "error") flashTimer = setTimeout(() => (box.hidden = true), 4000);
}

/** An error as one line for the user. */
export const errorText = (error) => (error instanceof ApiError ? error.toString() : String(error));

// -- the session ------------------------------------------------------------------------------

/** Who is logged in: `me` is the reply of GET /api/me (username, role, scopes), or null. */
export const session = { me: null };

/** May the user do this? (The server checks again: this only shapes the page.) */
export const can = (scope) => Boolean(session.me && session.me.scopes.includes(scope));

/**
 * Run an async action; an error reply becomes a message (in `target`, or a flash).
 * 401 means the session ended: back to the login form.
 */
export async function attempt(action, target = null) {
  try {
    return await action();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      session.me = null;
      location.hash = "#/login";
      return undefined;
    }
    if (target) {
      target.textContent = errorText(error);
      target.hidden = false;
    } else {
      flash(errorText(error), "error");
    }
    return undefined;
  }
}

// -- the current view's clean-up --------------------------------------------------------------

const cleanups = [];

/** Work to do when the current view is left (close live streams, stop timers). */
export function onLeave(fn) {
  cleanups.push(fn);
}

/** Run (and forget) the clean-up work of the view being left. */
export function leaveView() {
  for (const fn of cleanups.splice(0)) {
    try {
      fn();
    } catch (error) {
      console.warn(error);
    }
  }
}

/** A timer that stops when the view is left. */
export function every(ms, fn) {
  const timer = setInterval(fn, ms);
  onLeave(() => clearInterval(timer));
  return timer;
}
