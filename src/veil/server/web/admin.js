// The admin pages: the audit log with its chain verification (#/audit), and users (#/users).

import { get, patch, post, seg } from "./api.js";
import { attempt, flash, fmtTime, h, select, session } from "./ui.js";

// -- audit log --------------------------------------------------------------------------------

export async function viewAudit(main) {
  const result = h("div", { id: "verify-result", hidden: true, role: "status" });
  const filter = h("input", { id: "audit-action", placeholder: "action, e.g. unmask.view" });
  const tbody = h("tbody");
  const verify = h("button", { type: "button", id: "verify-chain" }, "Verify chain");
  main.append(
    h("h1", {}, "Audit log"),
    h(
      "div",
      { class: "row" },
      filter,
      h(
        "button",
        { type: "button", class: "secondary", onclick: () => attempt(refresh) },
        "Filter",
      ),
      verify,
    ),
    result,
    h(
      "table",
      { class: "table", id: "audit-table" },
      h(
        "thead",
        {},
        h("tr", {}, ["#", "Time", "Who", "Action", "Target", "Details"].map((t) => h("th", {}, t))),
      ),
      tbody,
    ),
  );

  async function refresh() {
    const action = filter.value.trim();
    const entries = await get(
      `/api/audit?limit=500${action ? `&action=${encodeURIComponent(action)}` : ""}`,
    );
    tbody.replaceChildren(
      ...entries.map((e) =>
        h(
          "tr",
          { dataset: { action: e.action } },
          h("td", {}, String(e.seq)),
          h("td", {}, fmtTime(e.time)),
          h("td", {}, e.actor),
          h("td", {}, e.action),
          h("td", {}, e.target),
          h(
            "td",
            { class: "details" },
            Object.entries(e.details).map(
              ([k, v]) => h(
                "span",
                { class: "kv" },
                h("b", {}, `${k}: `),
                typeof v === "object" ? JSON.stringify(v) : String(v),
              ),
            ),
          ),
        ),
      ),
    );
  }
  filter.addEventListener("keydown", (e) => e.key === "Enter" && attempt(refresh));
  verify.addEventListener("click", () =>
    attempt(async () => {
      const r = await get("/api/audit/verify");
      result.hidden = false;
      result.className = r.ok ? "notice ok" : "notice refusal";
      result.textContent = r.ok
        ? `Chain intact: ${r.entries} entries${r.keyed ? " (keyed)" : ""}, head ${String(r.head_hash || "").slice(0, 16)}…`
        : `Chain BROKEN at entry #${r.first_bad_seq}: ${r.problem}`;
    }),
  );
  await refresh();
}

// -- users ------------------------------------------------------------------------------------

const ROLES = ["viewer", "operator", "investigator", "admin"];

export async function viewUsers(main) {
  const tbody = h("tbody");
  const form = h(
    "form",
    { class: "row", id: "user-create" },
    h(
      "input",
      {
        name: "username",
        id: "new-username",
        placeholder: "user name",
        required: true,
        maxlength: 64,
      },
    ),
    h(
      "input",
      {
        name: "password",
        id: "new-password",
        type: "password",
        placeholder: "password",
        required: true,
        autocomplete: "new-password",
      },
    ),
    select("role", ROLES, "viewer", { id: "new-role" }),
    h("button", { type: "submit", id: "create-user" }, "Create user"),
  );
  const error = h("p", { class: "error", id: "users-error", hidden: true, role: "alert" });
  main.append(
    h("h1", {}, "Users"),
    h("section", { class: "card" }, h("h2", {}, "New user"), form, error),
    h(
      "table",
      { class: "table", id: "users-table" },
      h(
        "thead",
        {},
        h("tr", {}, ["User", "Role", "Status", "Created", ""].map((t) => h("th", {}, t))),
      ),
      tbody,
    ),
  );

  async function refresh() {
    const users = await get("/api/users");
    tbody.replaceChildren(
      ...users.map((u) => {
        const role = select("role", ROLES, u.role, {
          class: "user-role",
          disabled: u.username === session.me.username,
          onchange: (e) => change(u.username, { role: e.target.value }),
        });
        const toggle = h(
          "button",
          {
            type: "button",
            class: "secondary user-toggle",
            disabled: u.username === session.me.username,
            onclick: () => change(u.username, { disabled: !u.disabled }),
          },
          u.disabled ? "Enable" : "Disable",
        );
        return h(
          "tr",
          { dataset: { user: u.username } },
          h("td", {}, u.username),
          h("td", {}, role),
          h("td", { class: "user-status" }, u.disabled ? "disabled" : "active"),
          h("td", {}, fmtTime(u.created_at)),
          h("td", {}, toggle),
        );
      }),
    );
  }

  async function change(username, body) {
    error.hidden = true;
    await attempt(async () => {
      await patch(`/api/users/${seg(username)}`, body);
      flash(`User ${username} updated.`, "ok");
    }, error);
    await refresh();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const data = new FormData(form);
    await attempt(async () => {
      await post(
        "/api/users",
        { username: data.get("username"), password: data.get("password"), role: data.get("role") },
      );
      form.reset();
      flash(`User ${data.get("username")} created.`, "ok");
      await refresh();
    }, error);
  });
  await refresh();
}

