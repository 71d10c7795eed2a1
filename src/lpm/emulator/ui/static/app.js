// The emulator's web UI: routes between the views and keeps the live feed of the overview.

import { $ } from "./dom.js";
import { AgentSeat } from "./agent.js";
import { ConsumerChat } from "./chat.js";
import { ConversationView } from "./conversation.js";
import { FaultPanel } from "./faults.js";
import { Overview } from "./overview.js";
import { fetchJson, wsScheme } from "./ums.js";

const API = location.pathname.replace(/\/$/, "") + "/api";
const VIEWS = ["overview", "chat", "agent", "conversations", "faults"];

class App {
  async start() {
    this.overview = new Overview(this);
    this.chat = new ConsumerChat(this);
    this.agent = new AgentSeat(this);
    this.conversations = new ConversationView(this);
    this.faults = new FaultPanel(this);
    window.addEventListener("hashchange", () => this.route(true));
    this.route(false);
    try {
      this.config = await fetchJson(`${API}/config`);
      this.chat.setup(this.config);
      this.agent.setup(this.config);
      this.faults.setup(this.config);
      document.body.dataset.ready = "true";
    } catch (error) {
      $("#feed-status").textContent = `The emulator did not answer: ${error.message}`;
    }
    this.feed(0);
  }

  // After a restart: what the fault panel shows may have changed (the chat and the seat keep
  // their connections, which reconnect by themselves).
  async reconfigure() {
    this.config = await fetchJson(`${API}/config`);
    this.faults.setup(this.config);
  }

  route(moveFocus) {
    const hash = location.hash.replace(/^#\/?/, "");
    const [name, arg] = hash.split("/");
    const view = VIEWS.includes(name) ? name : "overview";
    for (const v of VIEWS) $(`#view-${v}`).hidden = v !== view;
    for (const link of document.querySelectorAll("[data-nav]")) {
      if (link.dataset.nav === view) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    document.title = `${$(`#view-${view} h1`).textContent} – lpm emulator`;
    if (view === "conversations") this.conversations.show(arg || null);
    if (moveFocus) $(`#view-${view} h1`).focus();
  }

  // The overview feed: a WebSocket pushing the state; reconnects (the emulator may restart).
  feed(attempt) {
    const status = $("#feed-status");
    const ws = new WebSocket(`${wsScheme()}//${location.host}${API}/feed`);
    let opened = false;
    ws.onopen = () => {
      opened = true;
      status.textContent = "Live";
      status.dataset.state = "live";
    };
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type !== "update") return;
      this.state = message.state;
      this.overview.update(message.state, message.log);
      this.conversations.update(message.state);
      this.faults.update(message.state);
      if (message.changed && message.changed.length) this.conversations.changed(message.changed);
    };
    ws.onclose = () => {
      status.textContent = "Disconnected from the emulator; reconnecting…";
      status.dataset.state = "down";
      const delay = Math.min(5000, 250 * 2 ** attempt);
      setTimeout(() => {
        if (opened) this.reconfigure().catch(() => {});
        this.feed(opened ? 0 : attempt + 1);
      }, delay);
    };
  }
}

new App().start();
