// The Veil web page: a single page with hash routes.
//
//   #/login            log in
//   #/cameras          the grid of live masked cameras              (cameras.js)
//   #/camera/<id>      one camera: live view, mask editor, dynamic
//                      masking settings, the unmasked view           (camera.js)
//   #/recordings       masked recordings on a timeline              (recordings.js)
//   #/redact[/<job>]   redaction of an encrypted original           (redact.js)
//   #/audit            the audit log and its chain verification      (admin.js)
//   #/users            users and roles                               (admin.js)
//
// Each view renders into <main id="view"> and registers clean-up work (closing live
// streams, stopping timers) that runs when the route changes. When a view has rendered,
// <main> gets data-ready="<view>" (the browser tests wait for it).

import { ApiError, get, post, setCsrfToken } from "./api.js";
import { viewAudit, viewUsers } from "./admin.js";
import { viewCamera } from "./camera.js";
import { viewCameras } from "./cameras.js";
import { viewRecordings } from "./recordings.js";
import { viewRedact } from "./redact.js";
import { $, attempt, can, errorText, h, leaveView, session } from "./ui.js";

const routes = {
  login: viewLogin,
  cameras: viewCameras,
  camera: viewCamera,
  recordings: viewRecordings,
  redact: viewRedact,
  audit: viewAudit,
  users: viewUsers,
};

// -- session ----------------------------------------------------------------------------------

function showSession() {
  const me = session.me;
  $("#nav").hidden = !me;
  $("#logout").hidden = !me;
  $("#whoami").textContent = me ? `${me.username} (${me.role || me.method})` : "";
  for (const link of document.querySelectorAll("#nav a[data-scope]")) {
    link.hidden = !can(link.dataset.scope);
  }
}

/** Who is logged in (a session cookie from an earlier visit), with the CSRF token. */
async function loadMe() {
  try {
    session.me = await get("/api/me");
    setCsrfToken(session.me.csrf_token);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
    session.me = null;
    setCsrfToken(null);
  }
  showSession();
}

async function logout() {
  await attempt(() => post("/api/logout", {}));
  session.me = null;
  setCsrfToken(null);
  showSession();
  location.hash = "#/login";
}

// -- routing ----------------------------------------------------------------------------------

async function route() {
  leaveView();
  showSession(); // the session may have ended meanwhile (a 401 sends the page to #/login)
  const [name, ...args] = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (!session.me && name !== "login") {
    location.hash = "#/login";
    return;
  }
  const known = name in routes;
  const view = known ? routes[name] : session.me ? viewCameras : viewLogin;
  const main = $("#view");
  main.replaceChildren();
  delete main.dataset.ready;
  main.dataset.view = known ? name : "cameras";
  for (const link of document.querySelectorAll("#nav a")) {
    const route = link.dataset.route;
    link.classList.toggle("active", route === name || (name === "camera" && route === "cameras"));
  }
  await attempt(() => view(main, ...args));
  main.dataset.ready = main.dataset.view;
}

// -- log in -----------------------------------------------------------------------------------

function viewLogin(main) {
  const error = h("p", { class: "error", id: "login-error", hidden: true, role: "alert" });
  const form = h(
    "form",
    { class: "card login", id: "login-form" },
    h("h1", {}, "Log in to Veil"),
    h(
      "label",
      {},
      "User name",
      h(
        "input",
        { name: "username", id: "login-username", autocomplete: "username", required: true },
      ),
    ),
    h(
      "label",
      {},
      "Password",
      h(
        "input",
        {
          name: "password",
          id: "login-password",
          type: "password",
          autocomplete: "current-password",
          required: true,
        },
      ),
    ),
    error,
    h("button", { type: "submit", id: "login-submit" }, "Log in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const data = new FormData(form);
    try {
      session.me = await post(
        "/api/login",
        { username: data.get("username"), password: data.get("password") },
      );
      setCsrfToken(session.me.csrf_token);
      showSession();
      location.hash = "#/cameras";
    } catch (failure) {
      // Wrong password (401), too many failures (429, with when to try again), ...
      error.textContent = errorText(failure);
      error.hidden = false;
    }
  });
  main.append(form);
  $("#login-username").focus();
}

// -- start ------------------------------------------------------------------------------------

async function start() {
  $("#logout").addEventListener("click", logout);
  window.addEventListener("hashchange", route);
  window.addEventListener("veil:unauthorized", () => {
    if (!session.me) return;
    session.me = null;
    setCsrfToken(null);
    location.hash = "#/login";
  });
  await attempt(loadMe);
  let wanted = location.hash;
  if (!wanted || wanted === "#/" || (session.me && wanted === "#/login")) {
    wanted = session.me ? "#/cameras" : "#/login";
  }
  if (wanted !== location.hash) location.hash = wanted; // the hashchange event routes
  else await route();
}

start();
