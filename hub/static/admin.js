/**
 * The admin page at `/admin` (docs/operations.md, "Admin page"): signs in with an admin token or an API key,
 * follows `admin:overview` over the hub's own socket and SDK, and shows every node's connections, channels,
 * traffic, errors and closes; it kicks a client, publishes a test message and opens a channel's details.
 *
 * The credential is kept in this tab's session storage, sent only in the Authorization header of
 * `POST /admin/login` (same origin), which answers the token the socket signs in with. Never in a URL.
 */

import { Hub } from "/hub.js";
import { Cluster, isAdminType } from "/static/admin_cluster.js";
import { RateChart, formatRate } from "/static/admin_chart.js";
import { ChannelView, renderTables } from "/static/admin_view.js";

const OVERVIEW = "admin:overview";
const STORAGE_KEY = "hub.admin.credential";
const CREDENTIAL_RE = /^[\x21-\x7e]{1,8192}$/; // what an Authorization header carries: printable ASCII, no spaces

const $ = (id) => document.getElementById(id);

class LoginError extends Error {
  /** @param {string} message @param {boolean} retryable the hub could not be asked, or failed: try again */
  constructor(message, retryable) {
    super(message);
    this.retryable = retryable;
  }
}

/** Trade the credential for the socket's token (POST /admin/login); LoginError with the hub's reason. */
async function login(credential) {
  let response;
  try {
    response = await fetch("/admin/login", {
      method: "POST",
      headers: { Authorization: `Bearer ${credential}` },
      cache: "no-store",
      credentials: "same-origin",
    });
  } catch (error) {
    throw new LoginError(`The hub did not answer (${error?.message ?? error}).`, true);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // no JSON: the status says enough
  }
  if (!response.ok) {
    const detail = typeof body?.detail === "string" ? body.detail : `HTTP ${response.status}`;
    throw new LoginError(detail, response.status >= 500);
  }
  return body;
}

// ---- the page's state -----------------------------------------------------------------------------------

const cluster = new Cluster();
const charts = {
  in: new RateChart($("chart-in"), $("legend-in")),
  out: new RateChart($("chart-out"), $("legend-out")),
};
const admin = { hub: null, cluster, charts, channel: null, info: null };
globalThis.hubAdmin = admin; // for the browser console and the tests

let sampler = null;
let samplerMs = 0;
let renderPending = false;

function showState(state, label = state) {
  $("admin-state").dataset.state = state;
  $("admin-state").querySelector(".state-label").textContent = label;
  document.body.dataset.hubState = state;
}

function showView(view) {
  document.body.dataset.view = view;
  $("login-view").hidden = view !== "login";
  $("admin-view").hidden = view !== "admin";
  $("sign-out").hidden = view !== "admin";
}

function toast(text, kind = "ok") {
  const el = $("toast");
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (el.hidden = true), 5000);
}

function render() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => {
    renderPending = false;
    $("total-nodes").textContent = String(cluster.nodes.size);
    $("total-connections").textContent = String(cluster.connections);
    $("total-channels").textContent = String(cluster.channels.length);
    $("total-in").textContent = formatRate(cluster.total("in"));
    $("total-out").textContent = formatRate(cluster.total("out"));
    renderTables(cluster, { kick: openKick, open: (channel) => admin.channel.open(channel) });
  });
}

/** One chart sample per reporting interval: every live node's latest rates, summed. */
function sample() {
  cluster.prune();
  const group = $("chart-group").value;
  charts.in.push(cluster.rates("in", group));
  charts.out.push(cluster.rates("out", group));
  render();
  if (cluster.intervalMs !== samplerMs) startSampler();
}

function startSampler() {
  clearInterval(sampler);
  samplerMs = cluster.intervalMs;
  sampler = setInterval(sample, samplerMs);
}

function onReport(stats) {
  if (!cluster.report(stats)) return;
  if (sampler === null) startSampler();
  render();
}

// ---- signing in and out ---------------------------------------------------------------------------------

function signOut(message = "") {
  sessionStorage.removeItem(STORAGE_KEY);
  const hub = admin.hub;
  admin.hub = null;
  admin.channel?.close();
  hub?.close("signed out");
  clearInterval(sampler);
  sampler = null;
  cluster.nodes.clear();
  showView("login");
  showState("closed", "signed out");
  $("admin-me").textContent = "";
  const error = $("login-error");
  error.textContent = message;
  error.hidden = !message;
  $("credential").value = "";
  $("credential").focus();
}

/** Open the socket with `credential` (its first token already fetched, when the form just signed in). */
function start(credential, firstToken = null) {
  let fresh = firstToken;
  const hub = new Hub({
    token: async () => {
      if (fresh) {
        const token = fresh;
        fresh = null;
        return token;
      }
      try {
        return (await login(credential)).token;
      } catch (error) {
        if (!error.retryable) queueMicrotask(() => signOut(error.message)); // refused: retrying cannot help
        throw error;
      }
    },
  });
  admin.hub = hub;
  hub.on("state", ({ state }) => showState(state));
  hub.on("open", ({ me }) => {
    $("admin-me").textContent = me ? me.name : "";
  });
  hub.on("closed", (detail) => {
    if (admin.hub === hub && detail.cause !== "client") {
      signOut(`The hub closed the connection: ${detail.reason || detail.code}`);
    }
  });
  hub.subscribe(OVERVIEW, {
    onSnapshot: (stats) => stats && onReport(stats),
    events: { "admin.stats": (stats) => onReport(stats) },
    onError: (error) => {
      if (!error.retrying) signOut(`${error.message} (${error.code})`);
    },
  });
  admin.channel = new ChannelView(hub, OVERVIEW);
  showView("admin");
  hub.connect();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const credential = $("credential").value.trim();
  const error = $("login-error");
  if (!CREDENTIAL_RE.test(credential)) {
    error.textContent = credential
      ? "A token or API key is printable ASCII without spaces."
      : "Paste an admin token or an API key first.";
    error.hidden = false;
    return;
  }
  $("login-submit").disabled = true;
  try {
    const { token } = await login(credential);
    sessionStorage.setItem(STORAGE_KEY, credential);
    error.hidden = true;
    start(credential, token);
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
  } finally {
    $("login-submit").disabled = false;
  }
});

$("sign-out").addEventListener("click", () => signOut());

$("chart-group").addEventListener("change", () => {
  charts.in.clear();
  charts.out.clear();
});

// ---- kick ------------------------------------------------------------------------------------------------

let kickTarget = null;

function openKick(client) {
  kickTarget = client;
  $("kick-target").textContent = `${client.name ?? "?"} (${client.user ?? "no user"}), client ${client.client} on ${client.node}`;
  $("kick-dialog").showModal();
}

$("kick-cancel").addEventListener("click", () => $("kick-dialog").close());

$("kick-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("kick-dialog").close();
  const target = kickTarget;
  if (!target || !admin.hub) return;
  const code = Number($("kick-code").value);
  const reason = $("kick-reason").value;
  try {
    const { closed } = await admin.hub.publish(OVERVIEW, "admin.kick", { client: target.client, code, reason });
    toast(closed ? `Closed ${target.client} with ${code}.` : `${target.client} was already gone.`);
  } catch (error) {
    toast(`Not closed: ${error.message}`, "error");
  }
});

// ---- publish ---------------------------------------------------------------------------------------------

function fillTypes() {
  const namespace = $("publish-channel").value.split(":")[0];
  const select = $("publish-type");
  const current = select.value;
  const types = (admin.info?.channels?.[namespace]?.messages ?? []).filter((type) => !isAdminType(type));
  select.replaceChildren(...types.map((type) => new Option(type, type, false, type === current)));
}

$("publish-channel").addEventListener("input", fillTypes);

$("publish-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = $("publish-result");
  result.dataset.kind = "";
  let data;
  try {
    data = JSON.parse($("publish-data").value || "{}");
  } catch (error) {
    result.dataset.kind = "error";
    result.textContent = `The data is not JSON: ${error.message}`;
    return;
  }
  const message = { channel: $("publish-channel").value.trim(), type: $("publish-type").value, data };
  try {
    const reply = await admin.hub.publish(OVERVIEW, "admin.publish", message);
    result.dataset.kind = "ok";
    result.textContent = `Published ${reply.type} on ${reply.channel}` +
      (reply.reply == null ? "." : `; the plugin answered ${JSON.stringify(reply.reply).slice(0, 300)}`);
  } catch (error) {
    result.dataset.kind = "error";
    const details = (error.details ?? []).map((d) => `${(d.loc ?? []).join(".")}: ${d.msg}`).join("; ");
    result.textContent = `Refused (${error.code}): ${error.message}${details ? ` ${details}` : ""}`;
  }
});

// ---- start -----------------------------------------------------------------------------------------------

fetch("/api/info", { cache: "no-store" })
  .then((response) => response.json())
  .then((info) => {
    admin.info = info;
    fillTypes();
  })
  .catch(() => {}); // the type list stays empty: the hub still says what it accepts when publishing

const stored = sessionStorage.getItem(STORAGE_KEY);
if (stored) start(stored);
else signOut();
