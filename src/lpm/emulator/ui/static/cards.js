// Structured content and quick replies, rendered as cards: a small renderer of our own for the
// element shapes of LivePerson's structured-content JSON (the json-pollock schema): text, button,
// image, map, vertical and horizontal layouts, carousels, and quickReplies.
//
// Why not json-pollock itself: it is an npm package shipped as a built bundle, and this UI has
// no build step and loads nothing from outside; a few dozen lines that build DOM nodes (text as
// text, never HTML; links limited to http(s), mailto and tel) are enough for the shapes bots
// send, and safe by construction.
//
// Images load only from this origin or data: URLs (the page's Content-Security-Policy allows
// nothing else); any other image shows as a link instead.

import { h } from "./dom.js";

const SAFE_LINK = /^(https?:|mailto:|tel:)/i;
const COLOR = /^(#[0-9a-f]{3,8}|rgba?\([0-9., %]+\)|[a-z]{3,20})$/i;

function styled(el, style) {
  if (!style || typeof style !== "object") return el;
  if (style.bold) el.classList.add("sc-bold");
  if (style.italic) el.classList.add("sc-italic");
  if (["small", "medium", "large"].includes(style.size)) el.classList.add(`sc-${style.size}`);
  if (typeof style.color === "string" && COLOR.test(style.color)) el.style.color = style.color;
  const background = style["background-color"];
  if (typeof background === "string" && COLOR.test(background)) el.style.backgroundColor = background;
  return el;
}

export function localImage(url) {
  if (typeof url !== "string") return false;
  if (/^data:image\//i.test(url) || url.startsWith("blob:")) return true;
  try {
    return new URL(url, location.href).origin === location.origin;
  } catch (_) {
    return false;
  }
}

// The first action of a click that the page can perform, for a label.
function describeClick(click) {
  const actions = (click && click.actions) || [];
  return actions.map((a) => a.type).join(", ");
}

// options.onAction(click, element): a button (or clickable image) was used; without it the
// card is inert (the transcript shows what the consumer saw, without acting).
export function renderContent(content, options = {}) {
  const node = render(content, options, 0);
  return h("div", { class: "sc-card" }, node);
}

function render(el, options, depth) {
  if (!el || typeof el !== "object" || depth > 20) return null;
  switch (el.type) {
    case "vertical":
    case "horizontal":
      return h(
        "div",
        { class: `sc-${el.type}` },
        (el.elements || []).map((child) => render(child, options, depth + 1)),
      );
    case "carousel":
      return h(
        "div",
        { class: "sc-carousel", role: "group", "aria-label": "Carousel" },
        (el.elements || []).map((child) => h("div", { class: "sc-card" }, render(child, options, depth + 1))),
      );
    case "text":
      return styled(h("p", { class: "sc-text", title: el.tooltip, text: String(el.text ?? "") }), el.style);
    case "button":
      return button(el, options);
    case "image":
      return image(el, options);
    case "map":
      return h("p", { class: "sc-map", text: `Map: ${el.la}, ${el.lo}${el.tooltip ? ` (${el.tooltip})` : ""}` });
    default:
      return h("code", { class: "sc-unknown", text: `[${el.type || "element"}]` });
  }
}

function button(el, options) {
  const title = String(el.title ?? "");
  if (!options.onAction) {
    return styled(h("span", { class: "sc-button inert", title: describeClick(el.click), text: title }), el.style);
  }
  return styled(
    h("button", {
      type: "button",
      class: "sc-button",
      title: el.tooltip || undefined,
      text: title,
      onclick: () => options.onAction(el.click || {}, el),
    }),
    el.style,
  );
}

function image(el, options) {
  const alt = el.caption || el.tooltip || "";
  if (!localImage(el.url)) {
    const url = String(el.url || "");
    return h(
      "p",
      { class: "sc-image-blocked" },
      "Image not loaded (the UI loads nothing from outside): ",
      SAFE_LINK.test(url) ? h("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: url }) : url,
    );
  }
  const img = h("img", { class: "sc-image", src: el.url, alt });
  if (el.click && options.onAction) {
    return h("button", { type: "button", class: "sc-image-button", onclick: () => options.onAction(el.click, el) }, img);
  }
  return img;
}

// Quick replies: a row of buttons (inert without options.onAction).
export function renderQuickReplies(quickReplies, options = {}) {
  const replies = (quickReplies && quickReplies.replies) || [];
  return h(
    "div",
    { class: "quick-replies", role: "group", "aria-label": "Quick replies" },
    replies.map((reply) => button({ ...reply, style: reply.style }, options)),
  );
}

// What a click does on the consumer's side: the text to publish (publishText), links to open.
export function clickActions(click) {
  const out = { text: null, links: [], metadata: (click && click.metadata) || null };
  for (const action of (click && click.actions) || []) {
    if (action.type === "publishText" && typeof action.text === "string") out.text = action.text;
    if ((action.type === "link" || action.type === "navigate") && typeof action.uri === "string" && SAFE_LINK.test(action.uri)) {
      out.links.push(action.uri);
    }
  }
  return out;
}
