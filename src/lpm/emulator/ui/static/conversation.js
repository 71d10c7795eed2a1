// The conversation view: the transcript with every message, participant change, transfer, ring,
// dialog and survey; the inspector (the exact frames sent and received for a line, copyable as
// JSON); the exports (JSON with the frames, readable text).

import { $, clear, clock, copyText, h, short } from "./dom.js";
import { renderContent, renderQuickReplies } from "./cards.js";
import { fetchJson } from "./ums.js";
import { redraw } from "./overview.js";

const API = location.pathname.replace(/\/$/, "") + "/api";

function describe(entry) {
  if (!entry.event) return entry.text;
  const event = entry.event;
  if (event.type === "AcceptStatusEvent") return `${event.status} ${(event.sequenceList || []).join(", ")}`;
  if (event.type === "RichContentEvent") return "structured content";
  if (event.contentType === "hosted/file" && event.message) return `image ${event.message.fileType}: ${event.message.caption || ""}`;
  if (typeof event.message === "string") return event.message;
  return event.contentType || event.type;
}

export class ConversationView {
  constructor(app) {
    this.app = app;
    this.id = null;
    this.chosen = null;
    this.frames = [];
    this.refreshing = null;
    $("#inspector-copy").addEventListener("click", () => this.copy());
  }

  // The list of conversations (from the overview state).
  update(state) {
    const account = state.accounts[0];
    if (!account) return;
    const list = $("#cv-list");
    const key = JSON.stringify([this.id, account.conversations.map((c) => [c.id, c.stage, c.skill])]);
    redraw(list, key, () => {
      clear(list);
      if (!account.conversations.length) list.append(h("li", { class: "empty", text: "No conversation yet." }));
      for (const c of account.conversations) {
        list.append(
          h(
            "li",
            {},
            h("a", {
              href: `#/conversations/${c.id}`,
              "aria-current": c.id === this.id ? "page" : undefined,
              text: `${short(c.id)} ${c.stage === "OPEN" ? "open" : "closed"}, ${c.skill}`,
              dataset: { focusKey: `l-${c.id}` },
            }),
          ),
        );
      }
    });
  }

  changed(ids) {
    if (this.id && ids.includes(this.id)) this.refresh();
  }

  async show(id) {
    if (id !== this.id) {
      this.id = id;
      this.chosen = null;
      this.frames = [];
      clear($("#inspector-frames"));
      $("#inspector-what").textContent = "No line chosen.";
      $("#inspector-copy").disabled = true;
    }
    $("#cv-empty").hidden = Boolean(id);
    $("#cv-body").hidden = !id;
    if (id) await this.refresh(true);
  }

  refresh(now = false) {
    if (!this.id) return Promise.resolve();
    if (this.refreshing && !now) return this.refreshing;
    const id = this.id;
    this.refreshing = (async () => {
      await new Promise((resolve) => setTimeout(resolve, now ? 0 : 100));
      try {
        const data = await fetchJson(`${API}/conversations/${encodeURIComponent(id)}`);
        if (id === this.id) this.render(data);
      } catch (error) {
        $("#cv-meta").textContent = `Could not load the conversation: ${error.message}`;
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  render(data) {
    const conv = data.conversation;
    $("#cv-title").textContent = `Conversation ${conv.id}`;
    const people = conv.participants
      .filter((p) => p.role !== "CONSUMER")
      .map((p) => `${p.name} (${p.role}${p.dialog === "MAIN" ? "" : ` in ${p.dialog}`}${p.dialog_state === "OPEN" ? "" : ", dialog closed"})`);
    $("#cv-meta").textContent =
      `Stage ${conv.stage}, skill ${conv.skill}, consumer ${short(conv.consumer.id)} (${conv.consumer.kind}). ` +
      (people.length ? `Participants: ${people.join(", ")}.` : "No agent yet.") +
      (conv.csat ? ` CSAT ${conv.csat}/5.` : "");
    $("#cv-export-json").href = `${API}/conversations/${conv.id}/export.json`;
    $("#cv-export-text").href = `${API}/conversations/${conv.id}/export.txt`;
    const list = $("#cv-lines");
    redraw(list, JSON.stringify([conv.id, data.entries.length, conv.last_update, this.chosen]), () => {
      clear(list);
      for (const entry of data.entries) list.append(this.line(entry));
    });
  }

  line(entry) {
    const who = entry.who ? `${entry.who.name} (${entry.who.role})` : "";
    const where = entry.dialog_type && entry.dialog_type !== "MAIN" ? ` [${entry.dialog_type}]` : "";
    const button = h(
      "button",
      {
        type: "button",
        class: `line-button kind-${entry.kind}`,
        "aria-pressed": String(entry.n === this.chosen),
        dataset: { n: entry.n, kind: entry.kind, focusKey: `e-${entry.n}` },
        onclick: () => this.inspect(entry),
      },
      h("span", { class: "when", text: clock(entry.t) }),
      " ",
      who ? h("span", { class: "who", text: `${who}${where}: ` }) : null,
      h("span", { class: "what", text: describe(entry) }),
    );
    const item = h("li", { class: `entry kind-${entry.kind}` }, button);
    const event = entry.event;
    if (event && event.type === "RichContentEvent") item.append(renderContent(event.content));
    if (event && event.quickReplies) item.append(renderQuickReplies(event.quickReplies));
    return item;
  }

  async inspect(entry) {
    this.chosen = entry.n;
    for (const b of document.querySelectorAll("#cv-lines .line-button")) {
      b.setAttribute("aria-pressed", String(Number(b.dataset.n) === entry.n));
    }
    $("#inspector-what").textContent = `Line ${entry.n + 1}: ${describe(entry)}`;
    $("#inspector-copied").textContent = "";
    const list = clear($("#inspector-frames"));
    try {
      const data = await fetchJson(`${API}/conversations/${encodeURIComponent(this.id)}/entries/${entry.n}/frames`);
      this.frames = data.frames;
      if (!data.frames.length) {
        list.append(h("li", { class: "empty", text: "No frame: this happened without a WebSocket exchange (or before the UI watched)." }));
      }
      for (const frame of data.frames) list.append(this.frame(frame));
      $("#inspector-copy").disabled = !data.frames.length;
    } catch (error) {
      list.append(h("li", { class: "error", text: `Could not load the frames: ${error.message}` }));
    }
  }

  frame(frame) {
    const arrow = frame.direction === "in" ? "received from" : "sent to";
    return h(
      "li",
      { class: `frame frame-${frame.direction}`, dataset: { type: frame.type, direction: frame.direction } },
      h(
        "p",
        { class: "frame-head" },
        h("span", { class: "dir", text: frame.direction === "in" ? "IN" : "OUT" }),
        " ",
        h("strong", { text: frame.type || frame.kind }),
        ` ${arrow} ${frame.socket.who} (${frame.socket.dialect} #${frame.socket.id}) at ${clock(frame.time)}`,
      ),
      h("pre", { class: "json", text: JSON.stringify(frame.frame, null, 2) }),
    );
  }

  async copy() {
    const text = JSON.stringify(
      this.frames.map((f) => ({ direction: f.direction, time: f.time, socket: f.socket, frame: f.frame })),
      null,
      2,
    );
    const ok = await copyText(text);
    $("#inspector-copied").textContent = ok ? `Copied ${this.frames.length} frames as JSON.` : "The browser refused to copy.";
  }
}
