// The live overview: skills with their queues, agents and bots with state and load, the open
// conversations (and the latest closed) with stage, skill, participants and waiting time, and
// the connection log.  Redrawn from each state the feed pushes; keyboard focus survives a redraw.

import { $, ago, clear, clock, h, short } from "./dom.js";

// Redraw `container` with `draw()` when `key` changed, keeping the focus on the element with the
// same data-focus-key.
export function redraw(container, key, draw) {
  if (container.dataset.drawn === key) return;
  container.dataset.drawn = key;
  const active = document.activeElement;
  const focusKey = active && container.contains(active) ? active.dataset.focusKey : null;
  draw();
  if (focusKey) {
    const again = container.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`);
    if (again) again.focus();
  }
}

function people(conv) {
  const out = [];
  for (const p of conv.participants) {
    if (p.role === "CONSUMER") continue;
    if (p.dialog_state !== "OPEN" && conv.stage === "OPEN") continue;
    const state = p.state === "SUGGESTED" ? ", suggested" : "";
    const where = p.dialog === "MAIN" ? "" : ` in ${p.dialog}`;
    out.push(`${p.name} (${p.role}${state}${where})`);
  }
  const consumer = `consumer ${short(conv.consumer.id)}${conv.consumer.kind ? ` (${conv.consumer.kind})` : ""}`;
  return [consumer, ...out].join(", ");
}

export function waiting(conv) {
  if (conv.stage !== "OPEN") return { since: null, label: "" };
  if (conv.queued_since) return { since: conv.queued_since, label: "in queue" };
  if (conv.awaiting_reply_since) return { since: conv.awaiting_reply_since, label: "for a reply" };
  return { since: null, label: "" };
}

export class Overview {
  constructor(app) {
    this.app = app;
    setInterval(() => this.tick(), 1000);
  }

  update(state, log) {
    const account = state.accounts[0];
    if (!account) return;
    const open = account.conversations.filter((c) => c.stage === "OPEN").length;
    $("#overview-summary").textContent =
      `Account ${account.account_id}: ${open} open conversation${open === 1 ? "" : "s"}, ` +
      `${state.sockets.brand} brand and ${state.sockets.consumer} consumer sockets` +
      (state.restarts ? `, restarted ${state.restarts} time${state.restarts === 1 ? "" : "s"}` : "") +
      ".";
    this.skills(account);
    this.agents(account);
    this.conversations(account);
    if (log && log.length) this.log(log);
    this.tick();
  }

  skills(account) {
    const body = $("#ov-skills tbody");
    redraw(body, JSON.stringify(account.skills), () => {
      clear(body);
      for (const s of account.skills) {
        body.append(
          h(
            "tr",
            { dataset: { skill: s.id } },
            h("th", { scope: "row", text: `${s.id} ${s.name}${s.on_shift ? "" : " (off shift)"}` }),
            h("td", { text: s.survey ? "yes" : "" }),
            h(
              "td",
              {},
              s.queue.length
                ? s.queue.map((id, i) => [i ? ", " : "", h("a", { href: `#/conversations/${id}`, text: short(id), dataset: { focusKey: `q-${id}` } })])
                : "none",
            ),
          ),
        );
      }
    });
  }

  agents(account) {
    const body = $("#ov-agents tbody");
    redraw(body, JSON.stringify(account.agents), () => {
      clear(body);
      for (const a of account.agents) {
        const kind = [a.is_bot ? "bot" : "agent", a.is_manager ? "manager" : ""].filter(Boolean).join(", ");
        body.append(
          h(
            "tr",
            { dataset: { agent: a.login, sockets: a.sockets } },
            h("th", { scope: "row" }, `${a.name} `, h("span", { class: "muted", text: `${a.login} · ${kind}` })),
            h("td", {}, h("span", { class: `state state-${a.availability.toLowerCase()}`, text: a.availability })),
            h("td", { text: a.sockets ? `${a.sockets} connected${a.routing ? ", taking rings" : ""}` : "not connected" }),
            h("td", { text: String(a.load) }),
            h("td", { text: a.rings ? String(a.rings) : "" }),
          ),
        );
      }
    });
  }

  conversations(account) {
    const body = $("#ov-convs tbody");
    const key = JSON.stringify(account.conversations.map((c) => [c.id, c.stage, c.skill, c.participants, c.last_update, c.queued_since, c.awaiting_reply_since]));
    redraw(body, key, () => {
      clear(body);
      if (!account.conversations.length) {
        body.append(h("tr", {}, h("td", { colspan: "6", text: "No conversation yet. Start one in the web chat." })));
      }
      for (const c of account.conversations) {
        const wait = waiting(c);
        body.append(
          h(
            "tr",
            { dataset: { conversation: c.id, stage: c.stage } },
            h("th", { scope: "row" }, h("a", { href: `#/conversations/${c.id}`, text: short(c.id), dataset: { focusKey: `c-${c.id}` } })),
            h("td", { text: c.stage === "OPEN" && c.open_dialog && c.open_dialog !== "MAIN" ? `OPEN (${c.open_dialog})` : c.stage }),
            h("td", { text: c.skill }),
            h("td", { text: people(c) }),
            h("td", { class: "since", dataset: { since: wait.since || "", label: wait.label } }),
            h("td", { text: clock(c.last_update) }),
          ),
        );
      }
    });
  }

  log(lines) {
    const list = $("#ov-log");
    for (const line of lines) {
      list.prepend(h("li", { class: `log-${line.kind}`, dataset: { kind: line.kind } }, h("span", { class: "when", text: clock(line.t) }), " ", line.text));
    }
    while (list.children.length > 200) list.lastElementChild.remove();
  }

  tick() {
    for (const cell of document.querySelectorAll("#ov-convs td.since")) {
      const since = Number(cell.dataset.since);
      cell.textContent = since ? `${ago(since)} ${cell.dataset.label}` : "";
    }
  }
}
