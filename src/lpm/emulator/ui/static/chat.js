// The consumer's web chat: a LivePerson web client on the consumer WebSocket API v3.
//
// CSDS for the hosts; an identity from the IdP (legacy signup, an unauthenticated connector's
// anonymous/authorize + authenticate, or an authenticated connector's authenticate with an
// id_token the brand signed); the socket with InitConnection (the browser form: the JWT and the
// client properties in headers of the first request); SubscribeExConversations for the
// conversation's state; SubscribeMessagingEvents for each dialog; PublishEvent for text, quick
// replies, structured-content clicks, files (after GenerateURLForUploadFile and a PUT to the
// storage), typing (ChatStateEvent) and read receipts (AcceptStatusEvent); UpdateConversationField
// to close and to rate (CSATRate).  Lost sockets are reconnected with back-off, with a fresh
// identity token after 4401/4407.

import { $, clear, clock, composer, h, say } from "./dom.js";
import { clickActions, localImage, renderContent, renderQuickReplies } from "./cards.js";
import { SocketClient, discover, fetchJson, httpScheme, jwtClaims, wsScheme } from "./ums.js";

const FEATURES = ["PHOTO_SHARING", "QUICK_REPLIES", "AUTO_MESSAGES", "MULTI_DIALOG", "FILE_SHARING", "RICH_CONTENT"];
const BRAND_ROLES = new Set(["ASSIGNED_AGENT", "AGENT", "MANAGER", "READER"]);
const TYPING_IDLE = 3000;
const FILE_TYPES = { "image/png": "PNG", "image/jpeg": "JPG", "image/gif": "GIF" };

export class ConsumerChat extends SocketClient {
  constructor(app) {
    super(app, $("#chat-status"));
    this.root = $("#view-chat");
    this.log = $("#chat-log");
    this.typingLine = $("#chat-typing");
    this.quick = $("#chat-quick");
    this.input = $("#chat-input");
    this.reset();
    $("#chat-start").addEventListener("click", () => this.start());
    $("#chat-send").addEventListener("click", () => this.sendText());
    composer(this.input, () => this.sendText(), () => this.typing());
    $("#chat-file").addEventListener("change", (event) => this.upload(event.target));
    $("#chat-close").addEventListener("click", () => this.closeConversation());
    $("#chat-leave").addEventListener("click", () => this.leave());
    $("#chat-identity").addEventListener("change", () => this.identityChanged());
    $("#chat-csat-send").addEventListener("click", () => this.sendCsat());
    for (const button of this.root.querySelectorAll("[data-rate]")) {
      button.addEventListener("click", () => this.pickRate(Number(button.dataset.rate)));
    }
    for (const button of this.root.querySelectorAll("[data-resolved]")) {
      button.addEventListener("click", () => this.pickResolved(button.dataset.resolved === "yes"));
    }
  }

  reset() {
    this.conversation = null; // the latest ExConversation result of the current conversation
    this.subscribed = new Set(); // dialog ids subscribed to
    this.shown = new Map(); // "dialogId:sequence" -> message element
    this.typingWho = null; // who the typing line is about
    this.present = new Map(); // brand participant id -> role
    this.names = new Map(); // PID -> nickname
    this.typingState = "ACTIVE";
    this.typingTimer = null;
    this.rate = 0;
    this.resolved = null;
    this.surveyAnnounced = new Set();
    this.closedShown = null;
  }

  // ---------------------------------------------------------------- setup

  setup(config) {
    this.config = config;
    const account = config.accounts[0];
    this.accountId = account.account_id;
    const identity = clear($("#chat-identity"));
    for (const c of account.connectors) {
      if (c.kind === "authenticated" && !c.can_sign) continue;
      const label = c.kind === "authenticated" ? "authenticated" : "unauthenticated";
      identity.append(h("option", { value: `connector:${c.id}`, text: `Connector ${c.id} ${c.name} (${label})` }));
    }
    identity.append(h("option", { value: "signup", text: "Anonymous (legacy signup)" }));
    const skill = clear($("#chat-skill"));
    for (const s of account.skills) skill.append(h("option", { value: s.id, text: `${s.id} ${s.name}` }));
    skill.append(h("option", { value: "-1", text: "-1 any skill" }));
    this.identityChanged();
    this.controls(false);
  }

  connector() {
    const value = $("#chat-identity").value;
    if (!value.startsWith("connector:")) return null;
    const id = value.slice("connector:".length);
    return this.config.accounts[0].connectors.find((c) => c.id === id) || null;
  }

  identityChanged() {
    const connector = this.connector();
    $("#chat-sub-field").hidden = !(connector && connector.kind === "authenticated");
  }

  controls(inConversation) {
    for (const id of ["#chat-input", "#chat-send", "#chat-file", "#chat-close"]) $(id).disabled = !inConversation;
    $("#chat-start").disabled = inConversation || this.busy;
    $("#chat-leave").hidden = !this.socket;
  }

  system(text, kind = "system") {
    const item = h("li", { class: `line ${kind}` }, h("span", { class: "when", text: clock(Date.now()) }), " ", text);
    this.log.append(item);
    this.scroll();
    return item;
  }

  scroll() {
    this.log.scrollTop = this.log.scrollHeight;
  }

  // ---------------------------------------------------------------- identity

  async authenticate(refresh = false) {
    const hosts = this.hosts;
    const base = `${httpScheme()}//${hosts.idp}/api/account/${this.accountId}`;
    const connector = this.connector();
    if (!connector) {
      if (this.token && refresh) this.system("The anonymous identity expired: signing up again (a new consumer).");
      const data = await fetchJson(`${base}/signup`, { method: "POST" });
      return data.jwt;
    }
    let idToken;
    if (connector.kind === "unauthenticated") {
      // The anonymous token, refreshed when there is one: the same consumer again.
      const body = this.anonymous ? { id_token: this.anonymous } : {};
      const data = await fetchJson(`${base}/anonymous/authorize`, { method: "POST", body });
      this.anonymous = data.token;
      idToken = data.token;
    } else {
      const sub = $("#chat-sub").value.trim() || "web-customer";
      const data = await fetchJson(`${location.pathname.replace(/\/$/, "")}/api/id-token`, {
        method: "POST",
        body: { account_id: this.accountId, connector_id: connector.id, sub },
      });
      idToken = data.id_token;
    }
    const data = await fetchJson(`${base}/app/${encodeURIComponent(connector.id)}/authenticate?v=3.0`, {
      method: "POST",
      body: { id_token: idToken },
    });
    return data.token;
  }

  // ---------------------------------------------------------------- connection

  async start() {
    if (this.busy) return;
    this.busy = true;
    this.controls(false);
    try {
      if (!this.socket) {
        say(this.status, "Discovering the hosts (CSDS)…");
        this.hosts = await discover(this.accountId);
        say(this.status, "Getting an identity from the IdP…");
        this.token = await this.authenticate();
        this.me = jwtClaims(this.token).sub;
        await this.connect();
      }
      await this.openConversation();
    } catch (error) {
      say(this.status, `Could not start: ${error.message}`);
      this.system(`Could not start: ${error.message}`, "error");
    } finally {
      this.busy = false;
      this.controls(Boolean(this.conversation && this.openDialog()));
    }
  }

  async connect() {
    const url = `${wsScheme()}//${this.hosts.asyncMessagingEnt}/ws_api/account/${this.accountId}/messaging/consumer?v=3`;
    const socket = await this.openSocket(url, "GetClock");
    const props = {
      type: ".ams.headers.ClientProperties",
      deviceFamily: "DESKTOP",
      os: "OTHER",
      integration: "WEB_SDK",
      integrationVersion: "lpm-emulator-ui",
      features: FEATURES,
    };
    await socket.request("InitConnection", undefined, {
      headers: [props, { type: ".ams.headers.ConsumerAuthentication", jwt: this.token }],
    });
    this.subscribed.clear();
    // The subscription's first notification is the snapshot: an open conversation to resume.
    const snapshot = new Promise((resolve) => {
      this.snapshotArrived = resolve;
      setTimeout(resolve, 5000);
    });
    await socket.request("cqm.SubscribeExConversations", { stage: ["OPEN"] });
    await snapshot;
    say(this.status, `Connected as consumer ${String(this.me).slice(0, 8)}`);
    this.controls(Boolean(this.conversation && this.openDialog()));
  }

  lost({ code, reason, byUs }) {
    this.socket = null;
    this.controls(false);
    if (byUs) return;
    this.system(`Connection lost (code ${code}${reason ? `, ${reason}` : ""}); reconnecting…`, "warning");
    say(this.status, `Connection lost (code ${code}); reconnecting…`);
    this.reconnect(code);
  }

  async renew(lastCode) {
    if (lastCode === 4401 || lastCode === 4407 || lastCode === 1008) {
      this.token = await this.authenticate(true);
      this.me = jwtClaims(this.token).sub;
    }
  }

  reconnected() {
    this.system("Reconnected; the conversation goes on.", "success");
  }

  leave() {
    this.left = true;
    if (this.socket) this.socket.close();
    this.socket = null;
    this.token = null;
    this.anonymous = null;
    this.reset();
    clear(this.log);
    clear(this.quick);
    this.typingLine.textContent = "";
    $("#chat-csat").hidden = true;
    say(this.status, "Left. Start a conversation to chat again.");
    this.left = false;
    this.controls(false);
  }

  // ---------------------------------------------------------------- conversation

  async openConversation() {
    if (this.conversation && this.conversation.conversationDetails.stage === "OPEN") return;
    const skillId = $("#chat-skill").value;
    say(this.status, "Opening a conversation…");
    $("#chat-csat").hidden = true;
    const response = await this.socket.request("cm.ConsumerRequestConversation", {
      brandId: this.accountId,
      skillId,
      channelType: "MESSAGING",
      ttrDefName: "NORMAL",
      conversationContext: { type: "SharkContext", lang: navigator.language || "en-US" },
    });
    this.conversationId = response.body.conversationId;
    this.root.dataset.conversationId = this.conversationId;
    this.system(`Conversation ${this.conversationId.slice(0, 8)} opened on skill ${skillId}; waiting for an agent…`);
    say(this.status, "Waiting for an agent…");
  }

  openDialog() {
    const details = this.conversation && this.conversation.conversationDetails;
    if (!details) return null;
    return (details.dialogs || []).find((d) => d.state === "OPEN") || null;
  }

  notification(frame) {
    if (frame.type === "cqm.ExConversationChangeNotification") {
      for (const change of frame.body.changes || []) this.conversationChange(change);
      if (this.snapshotArrived) {
        this.snapshotArrived();
        this.snapshotArrived = null;
      }
    } else if (frame.type === "ms.MessagingEventNotification") {
      for (const change of frame.body.changes || []) this.event(change);
    }
  }

  conversationChange(change) {
    const result = change.result;
    if (!result || !result.conversationDetails) return;
    if (this.conversationId && result.convId !== this.conversationId) {
      if (change.type !== "UPSERT" || result.conversationDetails.stage !== "OPEN") return;
    }
    if (!this.conversationId) {
      if (change.type !== "UPSERT" || result.conversationDetails.stage !== "OPEN") return;
      this.conversationId = result.convId;
      this.root.dataset.conversationId = this.conversationId;
      this.system(`Conversation ${result.convId.slice(0, 8)} resumed.`);
    }
    const previous = this.conversation;
    if (previous && previous.conversationDetails.metaDataLastUpdateTs > result.conversationDetails.metaDataLastUpdateTs) {
      return; // an older state arriving late
    }
    this.conversation = result;
    const details = result.conversationDetails;
    for (const dialog of details.dialogs || []) {
      if (dialog.state === "OPEN" && !this.subscribed.has(dialog.dialogId)) {
        this.subscribed.add(dialog.dialogId);
        this.socket
          .request("ms.SubscribeMessagingEvents", { dialogId: dialog.dialogId, conversationId: result.convId, fromSeq: 0 })
          .catch((error) => this.system(`Subscribing to the dialog failed: ${error.message}`, "error"));
      }
      if (dialog.dialogType === "POST_SURVEY" && dialog.state === "OPEN" && !this.surveyAnnounced.has(dialog.dialogId)) {
        this.surveyAnnounced.add(dialog.dialogId);
        this.system("The conversation ended; a short survey follows. Answer below.", "survey");
        this.root.dataset.survey = "open";
      }
    }
    this.participants(details);
    const open = this.openDialog();
    const closed = change.type === "DELETE" || details.stage === "CLOSE";
    if (closed && this.closedShown !== result.convId) {
      this.closedShown = result.convId;
      this.conversationEnded(details);
    } else if (!closed) {
      say(this.status, open && open.dialogType === "POST_SURVEY" ? "Survey" : this.assignedName() ? `Chatting with ${this.assignedName()}` : "Waiting for an agent…");
    }
    this.controls(Boolean(open) && !closed);
  }

  assignedName() {
    for (const [id, role] of this.present) if (role === "ASSIGNED_AGENT" || role === "AGENT") return this.names.get(id) || "an agent";
    return null;
  }

  participants(details) {
    const open = (details.dialogs || []).find((d) => d.state === "OPEN");
    const now = new Map();
    for (const p of (open && open.participantsDetails) || []) {
      if (BRAND_ROLES.has(p.role)) now.set(p.id, p.role);
    }
    for (const [id, role] of now) {
      if (this.present.get(id) === role) continue;
      this.name(id).then((name) => this.system(`${name} joined (${role.toLowerCase().replace("_", " ")})`, "participant"));
    }
    for (const [id, role] of this.present) {
      if (!now.has(id) && details.stage === "OPEN") {
        this.name(id).then((name) => this.system(`${name} left`, "participant"));
      }
    }
    this.present = now;
  }

  async name(pid) {
    if (this.names.has(pid)) return this.names.get(pid);
    let name = "Agent";
    try {
      const response = await this.socket.request("userprofile.GetUserProfile", { userId: pid });
      const body = response.body || {};
      name = body.nickName || [body.firstName, body.lastName].filter(Boolean).join(" ") || "Agent";
    } catch (_) {
      // keep the generic name
    }
    this.names.set(pid, name);
    return name;
  }

  conversationEnded(details) {
    clear(this.quick);
    this.typingLine.textContent = "";
    delete this.root.dataset.survey;
    const reason = details.closeReason ? ` by the ${details.closeReason.toLowerCase()}` : "";
    this.system(`Conversation closed${reason}.`, "closed");
    say(this.status, "Conversation closed. Rate it below, or start a new one.");
    this.root.dataset.closed = this.conversationId;
    this.rate = 0;
    this.resolved = null;
    for (const b of this.root.querySelectorAll("[data-rate], [data-resolved]")) b.setAttribute("aria-pressed", "false");
    $("#chat-csat-done").textContent = "";
    $("#chat-csat").hidden = false;
    this.endedId = this.conversationId;
    this.conversationId = null;
    this.conversation = null;
    this.present.clear();
    this.controls(false);
  }

  // ---------------------------------------------------------------- messages

  event(change) {
    const event = change.event || {};
    const own = change.originatorId === this.me;
    const key = `${change.dialogId}:${change.sequence}`;
    if (event.type === "ChatStateEvent") {
      if (own) return;
      const who = change.originatorId;
      if (event.chatState === "COMPOSING") {
        this.typingWho = who;
        this.name(who).then((name) => {
          if (this.typingWho === who) this.typingLine.textContent = `${name} is typing…`;
        });
      } else if (this.typingWho === who) {
        this.typingWho = null;
        this.typingLine.textContent = "";
      }
      return;
    }
    if (event.type === "AcceptStatusEvent") {
      if (own) return;
      for (const seq of event.sequenceList || []) {
        const el = this.shown.get(`${change.dialogId}:${seq}`);
        if (el && el.classList.contains("own")) this.receipt(el, event.status);
      }
      return;
    }
    if (event.type !== "ContentEvent" && event.type !== "RichContentEvent") return;
    if (this.shown.has(key)) return; // a replay, or the echo of a message sent from here
    const el = this.message(change, own);
    this.shown.set(key, el);
    if (!own) {
      if (this.typingWho === change.originatorId) {
        this.typingWho = null;
        this.typingLine.textContent = "";
      }
      const dialog = this.openDialog();
      if (dialog && dialog.dialogId === change.dialogId && typeof change.sequence === "number") {
        this.publish(change.dialogId, { type: "AcceptStatusEvent", status: "READ", sequenceList: [change.sequence] }).catch(() => {});
      }
      clear(this.quick);
      if (event.quickReplies) this.quick.append(renderQuickReplies(event.quickReplies, { onAction: (click) => this.clicked(click, change) }));
    }
  }

  message(change, own) {
    const event = change.event;
    const item = h("li", {
      class: `line message ${own ? "own" : "brand"}`,
      dataset: { dialog: change.dialogId, sequence: change.sequence ?? "" },
    });
    const who = h("span", { class: "who", text: own ? "You" : "…" });
    if (!own) this.name(change.originatorId).then((name) => (who.textContent = name));
    const body = h("div", { class: "body" });
    this.fillBody(body, event, change, own);
    item.append(h("div", { class: "meta" }, who, " ", h("span", { class: "when", text: clock(change.serverTimestamp || Date.now()) })), body);
    if (own) item.append(h("span", { class: "receipt", text: "Sent" }));
    this.log.append(item);
    this.scroll();
    return item;
  }

  fillBody(body, event, change, own) {
    if (event.type === "RichContentEvent") {
      body.append(renderContent(event.content, own ? {} : { onAction: (click) => this.clicked(click, change) }));
    } else if (event.contentType === "hosted/file" && event.message && typeof event.message === "object") {
      this.file(body, event.message);
    } else if (typeof event.message === "string") {
      body.append(h("p", { class: "text", text: event.message }));
    } else {
      body.append(h("p", { class: "text", text: `[${event.contentType}]` }));
    }
  }

  async file(body, message) {
    const caption = message.caption ? h("p", { class: "caption", text: message.caption }) : null;
    const holder = h("figure", { class: "file" });
    if (message.preview && localImage(message.preview)) holder.append(h("img", { src: message.preview, alt: "", class: "preview" }));
    if (caption) holder.append(h("figcaption", {}, caption));
    body.append(holder);
    try {
      const response = await this.socket.request("ms.GenerateURLForDownloadFile", { relativePath: message.relativePath });
      const url = storageUrl(this.hosts.swift, response.body);
      const img = h("img", { src: url, alt: message.caption || "shared image", class: "shared" });
      const preview = holder.querySelector("img.preview");
      if (preview) preview.replaceWith(img);
      else holder.prepend(img);
    } catch (error) {
      holder.append(h("p", { class: "error", text: `Download URL refused: ${error.message}` }));
    }
  }

  receipt(el, status) {
    const rank = { ACCEPT: 1, READ: 2, ACCESS: 2, ACTION: 2 };
    const current = el.dataset.receipt;
    if (current && (rank[current] || 0) >= (rank[status] || 0)) return;
    el.dataset.receipt = status;
    const label = status === "READ" ? "Read" : status === "ACCEPT" ? "Delivered" : status.toLowerCase();
    const span = el.querySelector(".receipt");
    if (span) span.textContent = label;
  }

  async publish(dialogId, event, metadata) {
    const body = { dialogId, conversationId: this.conversation ? this.conversation.convId : this.conversationId, event };
    const response = await this.socket.request("ms.PublishEvent", body, metadata ? { metadata } : {});
    return response.body && response.body.sequence;
  }

  async sendText(text = null, metadata = null) {
    const message = text ?? this.input.value.trim();
    if (!message) return;
    const dialog = this.openDialog();
    if (!dialog || !this.socket) return;
    if (text === null) this.input.value = "";
    clear(this.quick);
    const event = { type: "ContentEvent", contentType: "text/plain", message };
    const item = this.ownPending(event, dialog.dialogId);
    try {
      const sequence = await this.publish(dialog.dialogId, event, metadata);
      this.placed(item, dialog.dialogId, sequence);
      this.typing(true);
    } catch (error) {
      item.classList.add("failed");
      item.querySelector(".receipt").textContent = `Not sent: ${error.message}`;
    }
  }

  ownPending(event, dialogId) {
    const item = this.message({ event, dialogId, originatorId: this.me, serverTimestamp: Date.now() }, true);
    return item;
  }

  placed(item, dialogId, sequence) {
    const key = `${dialogId}:${sequence}`;
    item.dataset.sequence = sequence;
    if (this.shown.has(key) && this.shown.get(key) !== item) {
      // The echo came first and was shown: keep one.
      this.shown.get(key).remove();
    }
    this.shown.set(key, item);
  }

  // A quick reply or a structured-content button.
  async clicked(click, change) {
    const { text, links, metadata } = clickActions(click);
    for (const link of links) window.open(link, "_blank", "noopener");
    if (metadata && typeof change.sequence === "number") {
      // The click itself, as LivePerson clients report it: ACTION on the message, with its metadata.
      this.publish(change.dialogId, { type: "AcceptStatusEvent", status: "ACTION", sequenceList: [change.sequence] }, metadata).catch(() => {});
    }
    if (text) await this.sendText(text, metadata || null);
  }

  typing(stop = false) {
    const dialog = this.openDialog();
    if (!dialog || !this.socket) return;
    clearTimeout(this.typingTimer);
    if (stop || !this.input.value) {
      if (this.typingState !== "ACTIVE") this.chatState(dialog.dialogId, "ACTIVE");
      return;
    }
    if (this.typingState !== "COMPOSING") this.chatState(dialog.dialogId, "COMPOSING");
    this.typingTimer = setTimeout(() => this.chatState(dialog.dialogId, "ACTIVE"), TYPING_IDLE);
  }

  chatState(dialogId, state) {
    this.typingState = state;
    this.publish(dialogId, { type: "ChatStateEvent", chatState: state }).catch(() => {});
  }

  async upload(input) {
    const file = input.files && input.files[0];
    input.value = "";
    const dialog = this.openDialog();
    if (!file || !dialog) return;
    const fileType = FILE_TYPES[file.type];
    if (!fileType) {
      this.system(`${file.name}: only PNG, JPEG and GIF images can be shared`, "error");
      return;
    }
    try {
      say(this.status, `Uploading ${file.name}…`);
      const response = await this.socket.request("ms.GenerateURLForUploadFile", { fileSize: String(file.size), fileType });
      const url = storageUrl(this.hosts.swift, response.body);
      const put = await fetch(url, { method: "PUT", body: file, headers: { "Content-Type": file.type } });
      if (put.status !== 201) throw new Error(`the storage answered ${put.status}`);
      const message = { caption: file.name, relativePath: response.body.relativePath, fileType };
      const preview = await thumbnail(file);
      if (preview) message.preview = preview;
      const event = { type: "ContentEvent", contentType: "hosted/file", message };
      const item = this.ownPending(event, dialog.dialogId);
      const sequence = await this.publish(dialog.dialogId, event);
      this.placed(item, dialog.dialogId, sequence);
      say(this.status, `Sent ${file.name}`);
    } catch (error) {
      this.system(`Could not send ${file.name}: ${error.message}`, "error");
    }
  }

  async closeConversation() {
    const dialog = this.openDialog();
    if (!dialog || !this.socket) return;
    const field =
      dialog.dialogType === "MAIN"
        ? { field: "ConversationStateField", conversationState: "CLOSE" }
        : { field: "DialogChange", type: "UPDATE", dialog: { dialogId: dialog.dialogId, state: "CLOSE", closedCause: "Closed by consumer" } };
    try {
      await this.socket.request("cm.UpdateConversationField", { conversationId: this.conversation.convId, conversationField: [field] });
    } catch (error) {
      this.system(`Could not close: ${error.message}`, "error");
    }
  }

  // ---------------------------------------------------------------- CSAT

  pickRate(rate) {
    this.rate = rate;
    for (const b of this.root.querySelectorAll("[data-rate]")) b.setAttribute("aria-pressed", String(Number(b.dataset.rate) === rate));
  }

  pickResolved(resolved) {
    this.resolved = resolved;
    for (const b of this.root.querySelectorAll("[data-resolved]")) b.setAttribute("aria-pressed", String((b.dataset.resolved === "yes") === resolved));
  }

  async sendCsat() {
    const done = $("#chat-csat-done");
    if (!this.rate) {
      done.textContent = "Pick a rating from 1 to 5 first.";
      return;
    }
    if (!this.socket || !this.endedId) return;
    try {
      await this.socket.request("cm.UpdateConversationField", {
        conversationId: this.endedId,
        conversationField: [
          {
            field: "CSATRate",
            csatRate: this.rate,
            csatResolutionConfirmation: this.resolved === true,
            status: this.resolved === null ? "PARTIALLY_FILLED" : "FILLED",
          },
        ],
      });
      done.textContent = `Thank you: you rated the conversation ${this.rate} out of 5.`;
      this.root.dataset.csat = String(this.rate);
    } catch (error) {
      done.textContent = `The rating was refused: ${error.message}`;
    }
  }
}

export function storageUrl(host, generated) {
  const params = new URLSearchParams(generated.queryParams || {});
  return `${httpScheme()}//${host}${generated.relativePath}?${params}`;
}

// A small JPEG preview of an image (data URL, well under the 30 KB the platform allows).
async function thumbnail(file) {
  try {
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(1, 96 / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    const url = canvas.toDataURL("image/jpeg", 0.7);
    return url.length < 30000 ? url : null;
  } catch (_) {
    return null;
  }
}
