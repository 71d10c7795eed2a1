// The agent seat: a human agent on the brand WebSocket API (v2.1, the raw shapes node-agent-sdk
// reads), to play the human side of a bot's hand-off.
//
// agentVep login (username and password), the brand socket with the bearer in its path,
// SetAgentState, SubscribeRoutingTasks (rings, accepted or rejected with UpdateRingState),
// SubscribeExConversations for the agent's own conversations, QueryMessages for their history and
// OnlineEventDistribution for live events, PublishEvent for replies, typing and READ receipts,
// UpdateConversationField to transfer (to a skill, or to an agent with SUGGEST) and to close.

import { $, clear, clock, composer, h, say, short } from "./dom.js";
import { renderContent, renderQuickReplies } from "./cards.js";
import { SocketClient, discover, fetchJson, httpScheme, wsScheme } from "./ums.js";

const TYPING_IDLE = 3000;

export class AgentSeat extends SocketClient {
  constructor(app) {
    super(app, $("#agent-status"));
    this.log = $("#agent-log");
    this.input = $("#agent-input");
    this.conversations = new Map(); // convId -> {result, events: Map(key -> raw event), loaded, unread}
    this.rings = new Map(); // ringId -> {ring, task}
    this.selected = null;
    this.typingState = "ACTIVE";
    $("#agent-login").addEventListener("click", () => this.login());
    $("#agent-logout").addEventListener("click", () => this.logout());
    $("#agent-availability").addEventListener("change", (event) => this.setState(event.target.value));
    $("#agent-send").addEventListener("click", () => this.send());
    composer(this.input, () => this.send(), () => this.typing());
    $("#agent-transfer").addEventListener("click", () => this.transfer());
    $("#agent-close").addEventListener("click", () => this.close());
  }

  setup(config) {
    this.config = config;
    const account = config.accounts[0];
    this.accountId = account.account_id;
    const users = clear($("#agent-user"));
    const people = account.users.filter((u) => u.password);
    people.sort((a, b) => Number(a.is_bot) - Number(b.is_bot));
    for (const u of people) {
      users.append(h("option", { value: u.user_id, text: `${u.name} (${u.login}${u.is_bot ? ", bot" : ""})` }));
    }
    const target = clear($("#agent-transfer-target"));
    for (const s of account.skills) target.append(h("option", { value: `skill:${s.id}`, text: `Skill ${s.id} ${s.name}` }));
    for (const u of account.users) target.append(h("option", { value: `agent:${u.user_id}`, text: `Agent ${u.name} (${u.login})` }));
    this.controls();
  }

  user() {
    const id = $("#agent-user").value;
    return this.config.accounts[0].users.find((u) => u.user_id === id);
  }

  oldId() {
    return `${this.accountId}.${this.userId}`;
  }

  controls() {
    const online = Boolean(this.socket);
    $("#agent-login").hidden = online;
    $("#agent-user").disabled = online;
    $("#agent-logout").hidden = !online;
    $("#agent-availability").disabled = !online;
    const conv = this.selected && this.conversations.get(this.selected);
    const mine = Boolean(conv && this.isMine(conv.result) && online);
    $("#agent-conv").hidden = !conv;
    for (const id of ["#agent-input", "#agent-send", "#agent-transfer", "#agent-transfer-target", "#agent-close"]) {
      $(id).disabled = !mine;
    }
  }

  // ---------------------------------------------------------------- connection

  async login() {
    const user = this.user();
    if (!user) return;
    this.left = false;
    try {
      say(this.status, "Discovering the hosts (CSDS)…");
      this.hosts = await discover(this.accountId);
      await this.authenticate(user);
      await this.connect();
      await this.setState($("#agent-availability").value || "ONLINE");
    } catch (error) {
      say(this.status, `Could not log in: ${error.message}`);
    }
    this.controls();
  }

  async authenticate(user) {
    say(this.status, `Logging in as ${user.login}…`);
    const url = `${httpScheme()}//${this.hosts.agentVep}/api/account/${this.accountId}/login?v=1.3`;
    const data = await fetchJson(url, { method: "POST", body: { username: user.login, password: user.password } });
    this.bearer = data.bearer;
    this.csrf = data.csrf;
    this.userId = String((data.config && data.config.userId) || user.user_id);
    this.user_ = user;
  }

  async connect() {
    const url = `${wsScheme()}//${this.hosts.asyncMessagingEnt}/ws_api/account/${this.accountId}/messaging/brand/${this.bearer}?v=2.1`;
    const socket = await this.openSocket(url, ".GetClock");
    // After a reconnect the history is queried again: what was said meanwhile is missing.
    for (const conv of this.conversations.values()) conv.loaded = false;
    this.rings.clear();
    this.renderRings();
    await socket.request(".ams.routing.SubscribeRoutingTasks", {
      brandId: this.accountId,
      agentId: this.oldId(),
      channelType: "MESSAGING",
    });
    await socket.request(".ams.aam.SubscribeExConversations", {
      brandId: this.accountId,
      agentIds: [this.oldId()],
      convState: ["OPEN"],
    });
    say(this.status, `Logged in as ${this.user_.login}`);
    this.controls();
  }

  async setState(availability) {
    if (!this.socket) return;
    try {
      await this.socket.request(".ams.routing.SetAgentState", {
        channels: ["MESSAGING"],
        agentUserId: this.oldId(),
        availability,
      });
      say(this.status, `${this.user_.name} is ${availability}`);
      $("#view-agent").dataset.availability = availability;
    } catch (error) {
      say(this.status, `Could not change the state: ${error.message}`);
    }
  }

  lost({ code, byUs }) {
    this.socket = null;
    this.controls();
    if (byUs || this.left) return;
    say(this.status, `Connection lost (code ${code}); reconnecting…`);
    this.reconnect(code);
  }

  async renew(lastCode) {
    if (lastCode === 4401) await this.authenticate(this.user_);
  }

  reconnected() {
    say(this.status, `Reconnected as ${this.user_.login}`);
  }

  async logout() {
    this.left = true;
    if (this.socket) {
      await this.setState("OFFLINE");
      this.socket.close();
    }
    try {
      await fetchJson(`${httpScheme()}//${this.hosts.agentVep}/api/account/${this.accountId}/logout`, {
        method: "POST",
        body: { csrf: this.csrf },
      });
    } catch (_) {
      // the session ends anyway
    }
    this.socket = null;
    this.conversations.clear();
    this.rings.clear();
    this.selected = null;
    this.renderRings();
    this.renderConversations();
    say(this.status, "Logged out");
    this.controls();
  }

  // ---------------------------------------------------------------- notifications

  notification(frame) {
    const type = frame.type;
    if (type === ".ams.routing.RoutingTaskNotification") {
      for (const change of frame.body.changes || []) this.task(change);
    } else if (type === ".ams.aam.ExConversationChangeNotification") {
      for (const change of frame.body.changes || []) this.conversationChange(change);
    } else if (type === ".ams.ms.OnlineEventDistribution") {
      this.event(frame.body);
    }
  }

  task(change) {
    const task = change.result || {};
    for (const ring of task.ringsDetails || []) {
      if (ring.ringState === "WAITING" && !task.taskCompleted) this.rings.set(ring.ringId, { ring, task });
      else this.rings.delete(ring.ringId);
    }
    this.renderRings();
  }

  renderRings() {
    const list = clear($("#agent-rings"));
    if (!this.rings.size) list.append(h("li", { class: "empty", text: "No conversation is ringing." }));
    for (const { ring, task } of this.rings.values()) {
      const skill = this.skillName(task.skillId);
      list.append(
        h(
          "li",
          { class: "ring", dataset: { conversation: task.conversationId } },
          h("span", { text: `Conversation ${short(task.conversationId)} on ${skill}` }),
          " ",
          h("button", { type: "button", class: "primary", text: "Accept", onclick: () => this.answer(ring.ringId, "ACCEPTED") }),
          " ",
          h("button", { type: "button", text: "Reject", onclick: () => this.answer(ring.ringId, "REJECTED") }),
        ),
      );
    }
  }

  skillName(skillId) {
    const skill = this.config.accounts[0].skills.find((s) => s.id === String(skillId));
    return skill ? `skill ${skill.id} (${skill.name})` : `skill ${skillId}`;
  }

  async answer(ringId, state) {
    const entry = this.rings.get(ringId);
    try {
      await this.socket.request(".ams.routing.UpdateRingState", { ringId, ringState: state });
      if (state === "ACCEPTED" && entry) this.select(entry.task.conversationId);
    } catch (error) {
      say(this.status, `The ring could not be answered: ${error.message}`);
    }
  }

  isMine(result) {
    const details = result && result.conversationDetails;
    if (!details) return false;
    const main = (details.dialogs || []).find((d) => d.dialogType === "MAIN");
    return Boolean(
      main &&
        main.state === "OPEN" &&
        (main.participantsDetails || []).some((p) => p.id === this.oldId() && p.role === "ASSIGNED_AGENT" && p.state === "ACTIVE"),
    );
  }

  conversationChange(change) {
    const result = change.result;
    if (!result) return;
    let conv = this.conversations.get(result.convId);
    if (change.type === "DELETE" || !this.isMine(result)) {
      if (conv) {
        conv.result = result;
        conv.gone = true;
        const why = result.conversationDetails && result.conversationDetails.state === "CLOSE" ? "closed" : "no longer yours";
        if (this.selected === result.convId) this.line(`The conversation is ${why}.`, "system");
      }
    } else {
      if (!conv) {
        conv = { result, events: new Map(), loaded: false, gone: false };
        this.conversations.set(result.convId, conv);
        this.consumerName(result);
      }
      conv.result = result;
      conv.gone = false;
      if (!conv.loaded) this.load(result.convId);
    }
    this.renderConversations();
    this.controls();
  }

  async consumerName(result) {
    const consumers = (result.conversationDetails.participants || {}).CONSUMER || [];
    const conv = this.conversations.get(result.convId);
    conv.consumer = `Consumer ${short(consumers[0])}`;
    if (!consumers[0]) return;
    try {
      const response = await this.socket.request(".ams.userprofile.GetUserProfile", consumers[0]);
      const body = response.body || {};
      const name = [body.firstName, body.lastName].filter(Boolean).join(" ") || body.nickName;
      if (name) conv.consumer = name;
    } catch (_) {
      // keep the id
    }
    this.renderConversations();
  }

  async load(convId) {
    const conv = this.conversations.get(convId);
    conv.loaded = true;
    for (const dialog of conv.result.conversationDetails.dialogs || []) {
      try {
        const response = await this.socket.request(".ams.ms.QueryMessages", {
          dialogId: dialog.dialogId,
          conversationId: convId,
          newerThanSequence: 0,
          maxQuantity: 200,
        });
        for (const event of response.body || []) this.event(event, false);
      } catch (error) {
        say(this.status, `History of ${short(convId)} not loaded: ${error.message}`);
      }
    }
    if (this.selected === convId) this.renderSelected();
  }

  renderConversations() {
    const list = clear($("#agent-convs"));
    const open = [...this.conversations.entries()].filter(([, c]) => !c.gone);
    if (!open.length) list.append(h("li", { class: "empty", text: "No conversation assigned to you." }));
    for (const [id, conv] of open) {
      const skill = this.skillName(conv.result.conversationDetails.skillId);
      list.append(
        h(
          "li",
          {},
          h("button", {
            type: "button",
            class: id === this.selected ? "tab selected" : "tab",
            "aria-pressed": String(id === this.selected),
            text: `${conv.consumer || "Consumer"}, ${skill}${conv.unread ? ` (${conv.unread} new)` : ""}`,
            onclick: () => this.select(id),
          }),
        ),
      );
    }
  }

  select(convId) {
    this.selected = convId;
    const conv = this.conversations.get(convId);
    if (conv) conv.unread = 0;
    this.renderConversations();
    this.renderSelected();
    this.controls();
  }

  renderSelected() {
    const conv = this.conversations.get(this.selected);
    clear(this.log);
    $("#agent-typing").textContent = "";
    if (!conv) return;
    $("#agent-conv-title").textContent = `${conv.consumer || "Consumer"}, conversation ${short(this.selected)}`;
    $("#agent-conv").dataset.conversation = this.selected;
    const events = [...conv.events.values()].sort((a, b) => (a.serverTimestamp || 0) - (b.serverTimestamp || 0));
    for (const event of events) this.renderEvent(event);
    this.readAll(conv);
  }

  event(raw, live = true) {
    const convId = raw.conversationId || raw.dialogId;
    const conv = this.conversations.get(convId);
    if (!conv) return;
    const event = raw.event || {};
    const role = raw.originatorMetadata && raw.originatorMetadata.role;
    if (event.type === "ChatStateEvent") {
      if (role === "CONSUMER" && this.selected === convId) {
        $("#agent-typing").textContent = event.chatState === "COMPOSING" ? `${conv.consumer || "The consumer"} is typing…` : "";
      }
      return;
    }
    const key = `${raw.dialogId}:${raw.sequence}`;
    if (event.type === "AcceptStatusEvent") {
      if (role === "CONSUMER") {
        for (const seq of event.sequenceList || []) {
          const el = this.log.querySelector(`[data-key="${raw.dialogId}:${seq}"]`);
          if (el) {
            el.dataset.receipt = event.status;
            const span = el.querySelector(".receipt");
            if (span) span.textContent = event.status === "READ" ? "Read" : event.status.toLowerCase();
          }
        }
      }
      return;
    }
    if (conv.events.has(key)) return;
    conv.events.set(key, raw);
    if (this.selected === convId) {
      if (role === "CONSUMER") $("#agent-typing").textContent = "";
      this.renderEvent(raw);
      this.readAll(conv);
    } else if (live && role === "CONSUMER") {
      conv.unread = (conv.unread || 0) + 1;
      this.renderConversations();
    }
  }

  renderEvent(raw) {
    const event = raw.event || {};
    const role = (raw.originatorMetadata && raw.originatorMetadata.role) || "";
    const own = raw.originatorId === this.oldId();
    const whoEl = h("span", { class: "who", text: own ? "You" : role === "CONSUMER" ? "Consumer" : role.toLowerCase().replace("_", " ") });
    if (!own && role !== "CONSUMER" && raw.originatorPId) {
      this.agentName(raw.originatorPId).then((name) => (whoEl.textContent = `${name} (${role.toLowerCase().replace("_", " ")})`));
    }
    const body = h("div", { class: "body" });
    if (event.type === "RichContentEvent") body.append(renderContent(event.content));
    else if (event.contentType === "hosted/file" && event.message) {
      body.append(h("p", { class: "text", text: `[image ${event.message.fileType}: ${event.message.caption || ""}]` }));
      if (event.message.preview && String(event.message.preview).startsWith("data:image/")) {
        body.append(h("img", { class: "preview", src: event.message.preview, alt: event.message.caption || "image preview" }));
      }
    } else body.append(h("p", { class: "text", text: typeof event.message === "string" ? event.message : `[${event.contentType}]` }));
    if (event.quickReplies) body.append(renderQuickReplies(event.quickReplies));
    const item = h(
      "li",
      { class: `line message ${own ? "own" : role === "CONSUMER" ? "brand" : "other"}`, dataset: { key: `${raw.dialogId}:${raw.sequence}` } },
      h("div", { class: "meta" }, whoEl, " ", h("span", { class: "when", text: clock(raw.serverTimestamp) })),
      body,
    );
    if (own) item.append(h("span", { class: "receipt", text: "Sent" }));
    this.log.append(item);
    this.log.scrollTop = this.log.scrollHeight;
  }

  // Another brand user's name, from its profile (GetUserProfile with its PID).
  async agentName(pid) {
    this.names = this.names || new Map();
    if (!this.names.has(pid)) {
      this.names.set(
        pid,
        this.socket
          .request(".ams.userprofile.GetUserProfile", pid)
          .then((response) => (response.body && (response.body.nickName || response.body.firstName)) || short(pid))
          .catch(() => short(pid)),
      );
    }
    return this.names.get(pid);
  }

  line(text, kind) {
    this.log.append(h("li", { class: `line ${kind}` }, h("span", { class: "when", text: clock(Date.now()) }), " ", text));
  }

  readAll(conv) {
    if (!this.socket || conv.gone) return;
    const main = (conv.result.conversationDetails.dialogs || []).find((d) => d.dialogType === "MAIN");
    const unread = [];
    for (const raw of conv.events.values()) {
      const role = raw.originatorMetadata && raw.originatorMetadata.role;
      if (role === "CONSUMER" && raw.dialogId === (main && main.dialogId) && !raw.readByMe && typeof raw.sequence === "number") {
        raw.readByMe = true;
        unread.push(raw.sequence);
      }
    }
    if (unread.length && main && main.state === "OPEN") {
      this.publish(main.dialogId, { type: "AcceptStatusEvent", status: "READ", sequenceList: unread }).catch(() => {});
    }
  }

  // ---------------------------------------------------------------- acting

  mainDialog() {
    const conv = this.conversations.get(this.selected);
    if (!conv) return null;
    return (conv.result.conversationDetails.dialogs || []).find((d) => d.dialogType === "MAIN" && d.state === "OPEN") || null;
  }

  publish(dialogId, event) {
    return this.socket.request(".ams.ms.PublishEvent", { dialogId, conversationId: this.selected, event });
  }

  async send() {
    const text = this.input.value.trim();
    const dialog = this.mainDialog();
    if (!text || !dialog || !this.socket) return;
    this.input.value = "";
    try {
      await this.publish(dialog.dialogId, { type: "ContentEvent", contentType: "text/plain", message: text });
      this.typing(true);
    } catch (error) {
      say(this.status, `Not sent: ${error.message}`);
    }
  }

  typing(stop = false) {
    const dialog = this.mainDialog();
    if (!dialog || !this.socket) return;
    clearTimeout(this.typingTimer);
    const state = stop || !this.input.value ? "ACTIVE" : "COMPOSING";
    if (state !== this.typingState) {
      this.typingState = state;
      this.publish(dialog.dialogId, { type: "ChatStateEvent", chatState: state }).catch(() => {});
    }
    if (state === "COMPOSING") this.typingTimer = setTimeout(() => this.typing(true), TYPING_IDLE);
  }

  async transfer() {
    const conv = this.conversations.get(this.selected);
    if (!conv || !this.socket) return;
    const [kind, id] = $("#agent-transfer-target").value.split(":");
    const fields = [{ field: "ParticipantsChange", type: "REMOVE", role: "ASSIGNED_AGENT", userId: this.oldId() }];
    if (kind === "skill") {
      fields.push({ field: "Skill", type: "UPDATE", skill: id });
    } else {
      fields.push({ field: "ParticipantsChange", type: "SUGGEST", role: "ASSIGNED_AGENT", userId: `${this.accountId}.${id}` });
      fields.push({ field: "Skill", type: "UPDATE", skill: String(conv.result.conversationDetails.skillId) });
    }
    try {
      await this.socket.request(".ams.cm.UpdateConversationField", { conversationId: this.selected, conversationField: fields });
      this.line(`Transferred to ${kind === "skill" ? this.skillName(id) : `agent ${id}`}.`, "system");
    } catch (error) {
      say(this.status, `Transfer refused: ${error.message}`);
    }
  }

  async close() {
    if (!this.selected || !this.socket) return;
    try {
      await this.socket.request(".ams.cm.UpdateConversationField", {
        conversationId: this.selected,
        conversationField: { field: "ConversationStateField", conversationState: "CLOSE" },
      });
      this.line("You closed the conversation.", "system");
    } catch (error) {
      say(this.status, `Close refused: ${error.message}`);
    }
  }
}
