// The fault panel: buttons on the emulator's fault API (/_emulator/..., lpm.emulator.control),
// plus the restart on the SQLite file (the UI's own endpoint).

import { $, clear, clock, h, short } from "./dom.js";
import { fetchJson } from "./ums.js";

const CONTROL = "/_emulator";
const API = location.pathname.replace(/\/$/, "") + "/api";

export class FaultPanel {
  constructor(app) {
    this.app = app;
    for (const button of document.querySelectorAll("[data-fault]")) {
      button.addEventListener("click", () => this.fire(button.dataset.fault, button));
    }
    $("#fault-restart").addEventListener("click", () => this.restart());
  }

  setup(config) {
    this.config = config;
    $("#faults-off").hidden = config.faults;
    for (const button of document.querySelectorAll("[data-fault]")) button.disabled = !config.faults;
    const restart = $("#fault-restart");
    restart.disabled = !config.db;
    $("#restart-help").textContent = config.db
      ? `Stops the emulator and starts it again on ${config.db}: every socket closes, clients reconnect, the world comes back from the file.`
      : "Available when the emulator keeps its world in a SQLite file (lpm emulator --db FILE --ui).";
    this.refreshState();
  }

  // Targets: everyone, a dialect, each agent, each connected consumer.
  update(state) {
    const account = state.accounts[0];
    if (!account) return;
    const select = $("#fault-target");
    const options = [
      ["all", "Every socket"],
      ["dialect:brand", "Brand sockets (agents and bots)"],
      ["dialect:consumer", "Consumer sockets"],
    ];
    for (const a of account.agents) options.push([`user:${a.user_id}`, `${a.name} (${a.login})${a.sockets ? "" : ", not connected"}`]);
    const consumers = new Set();
    for (const c of account.conversations) {
      if (c.stage === "OPEN" && !consumers.has(c.consumer.id)) {
        consumers.add(c.consumer.id);
        options.push([`consumer:${c.consumer.id}`, `Consumer ${short(c.consumer.id)} (${c.consumer.kind})`]);
      }
    }
    const key = JSON.stringify(options);
    if (select.dataset.drawn === key) return;
    select.dataset.drawn = key;
    const chosen = select.value;
    clear(select);
    for (const [value, label] of options) select.append(h("option", { value, text: label }));
    if (options.some(([value]) => value === chosen)) select.value = chosen;
  }

  filters(forTokens = false) {
    const [kind, id] = $("#fault-target").value.split(/:(.*)/s);
    if (kind === "user") return { user_id: id };
    if (kind === "consumer") return { consumer_id: id };
    if (kind === "dialect" && !forTokens) return { dialect: id };
    return {};
  }

  number(id, fallback) {
    const value = Number($(id).value);
    return Number.isFinite(value) ? value : fallback;
  }

  async fire(kind, button) {
    const count = Math.max(1, Math.round(this.number("#fault-count", 1)));
    const delay = Math.max(0, this.number("#fault-delay", 1));
    const status = Math.round(this.number("#fault-status", 503));
    const calls = {
      drop: ["sockets/drop", this.filters()],
      close: ["sockets/close", { ...this.filters(), code: Number($("#fault-code").value) }],
      expire: ["tokens/expire", this.filters(true)],
      delay: ["requests", { count, action: "delay", delay }],
      refuse: ["requests", { count, action: "refuse", status }],
      swallow: ["requests", { count, action: "drop" }],
      "http-refuse": ["http", { target: $("#fault-http-target").value, count, action: "refuse", status }],
      "http-delay": ["http", { target: $("#fault-http-target").value, count, action: "delay", delay }],
      rings: ["rings/expire", {}],
      stall: ["upgrades/stall", { count: 1 }],
      release: ["upgrades/release", {}],
      reset: ["reset", {}],
    };
    const [path, body] = calls[kind];
    try {
      const answer = await fetchJson(`${CONTROL}/${path}`, { method: "POST", body });
      this.note(`${button.textContent}: ${JSON.stringify(answer)}`, kind);
    } catch (error) {
      this.note(`${button.textContent} failed: ${error.message}`, "error");
    }
    this.refreshState();
  }

  async restart() {
    try {
      const answer = await fetchJson(`${API}/restart`, { method: "POST", body: {} });
      this.note(`Restarting on ${answer.db}…`, "restart");
    } catch (error) {
      this.note(`Restart refused: ${error.message}`, "error");
    }
  }

  note(text, kind) {
    $("#fault-log").prepend(h("li", { dataset: { kind } }, h("span", { class: "when", text: clock(Date.now()) }), " ", text));
  }

  async refreshState() {
    if (!this.config || !this.config.faults) return;
    try {
      const state = await fetchJson(`${CONTROL}/state`);
      $("#fault-state").textContent = JSON.stringify(state.faults, null, 2);
    } catch (error) {
      $("#fault-state").textContent = `(not available: ${error.message})`;
    }
  }
}
