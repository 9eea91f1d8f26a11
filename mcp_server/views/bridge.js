// The view side of MCP Apps (extension io.modelcontextprotocol/ui, revision 2026-01-26): the view talks
// JSON-RPC 2.0 with its host over postMessage. It asks ui/initialize, answers with
// ui/notifications/initialized, then draws each ui/notifications/tool-result (a CallToolResult; the view
// reads its structuredContent) and reports its size with ui/notifications/size-changed so the host can
// fit the iframe. Opened outside a host, it draws window.__TOGAI_RESULT__ (a CallToolResult) if set.
"use strict";

const TogaiView = (() => {
  const PROTOCOL_VERSION = "2026-01-26";
  const pending = new Map();
  let nextId = 1;
  let draw = null;
  let viewName = "togai-engine view";
  let hostContext = {};
  let toolArguments = null;
  let lastResult = null;
  let lastSize = null;
  let initialized = false;

  function post(message) {
    window.parent.postMessage({ jsonrpc: "2.0", ...message }, "*");
  }

  function request(method, params) {
    const id = nextId++;
    post({ id, method, params });
    return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
  }

  function notify(method, params) {
    post({ method, params });
  }

  function locale() {
    return hostContext.locale || navigator.language || "en-US";
  }

  function applyHostContext(context) {
    if (!context) return;
    hostContext = { ...hostContext, ...context };
    const variables = (context.styles && context.styles.variables) || {};
    for (const [name, value] of Object.entries(variables)) {
      if (name.startsWith("--") && value) document.documentElement.style.setProperty(name, value);
    }
    if (context.theme) document.documentElement.dataset.theme = context.theme;
  }

  function textOf(result) {
    const blocks = (result && result.content) || [];
    return blocks.filter((block) => block.type === "text").map((block) => block.text).join("\n");
  }

  function showMessage(kind, text) {
    mount(el("div", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status" }, text));
  }

  function show(result) {
    if (!result) return;
    lastResult = result;
    if (result.isError) {
      showMessage("error", textOf(result) || "The tool call failed.");
    } else if (!result.structuredContent) {
      showMessage("error", "The tool returned no structured result to draw.");
    } else {
      try {
        draw(result.structuredContent, { arguments: toolArguments, locale: locale() });
      } catch (error) {
        showMessage("error", `This result could not be drawn: ${error.message}`);
      }
    }
    document.body.dataset.state = "rendered";
    reportSize();
  }

  function reportSize() {
    if (!initialized) return;
    const box = document.documentElement.getBoundingClientRect();
    const size = { width: Math.ceil(box.width), height: Math.ceil(box.height) };
    if (lastSize && lastSize.width === size.width && lastSize.height === size.height) return;
    lastSize = size;
    notify("ui/notifications/size-changed", size);
  }

  function onMessage(event) {
    if (event.source !== window.parent) return;
    const message = event.data;
    if (!message || message.jsonrpc !== "2.0") return;
    if (message.method === undefined) {
      const waiter = pending.get(message.id);
      if (!waiter) return;
      pending.delete(message.id);
      if (message.error) waiter.reject(new Error(message.error.message || "request failed"));
      else waiter.resolve(message.result || {});
      return;
    }
    const params = message.params || {};
    switch (message.method) {
      case "ui/notifications/tool-input":
        toolArguments = params.arguments || null;
        break;
      case "ui/notifications/tool-result":
        show(params);
        break;
      case "ui/notifications/tool-cancelled":
        showMessage("notice", `The tool call was cancelled${params.reason ? `: ${params.reason}` : "."}`);
        break;
      case "ui/notifications/host-context-changed":
        applyHostContext(params);
        if (lastResult && params.locale) show(lastResult);
        break;
      case "ui/resource-teardown":
      case "ping":
        post({ id: message.id, result: {} });
        break;
      default:
        if (message.id !== undefined) {
          post({ id: message.id, error: { code: -32601, message: `Method not found: ${message.method}` } });
        }
    }
  }

  async function start(name, drawResult) {
    viewName = name;
    draw = drawResult;
    window.addEventListener("message", onMessage);
    if (window.__TOGAI_RESULT__) show(window.__TOGAI_RESULT__);
    if (window.parent === window) {
      if (!window.__TOGAI_RESULT__) {
        showMessage("notice", "This view draws a togai-engine tool result: open it from an MCP host that supports MCP Apps.");
      }
      return;
    }
    try {
      const result = await request("ui/initialize", {
        appCapabilities: { availableDisplayModes: ["inline"] },
        appInfo: { name: viewName, version: "1.0.0" },
        protocolVersion: PROTOCOL_VERSION,
      });
      applyHostContext(result.hostContext);
      notify("ui/notifications/initialized", {});
      initialized = true;
      new ResizeObserver(reportSize).observe(document.documentElement);
      reportSize();
    } catch (error) {
      showMessage("error", `The host refused ui/initialize: ${error.message}`);
    }
  }

  return { start, locale };
})();

// ---- building the page (textContent only: tool data is never parsed as HTML) ----

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// Replaces the page's content; sections that have nothing to show are passed as null and left out.
function mount(...children) {
  const main = document.getElementById("view");
  main.replaceChildren();
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) main.append(child);
  }
}

const SVG_NS = "http://www.w3.org/2000/svg";

function svg(tag, attributes, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// ---- numbers, money and dates ----
// Amounts arrive as exact decimal strings. They are shown digit for digit (only grouped, and given the
// locale's separators and currency sign), never through a float; floats only place things on charts.

const Format = (() => {
  function symbols(locale) {
    const parts = new Intl.NumberFormat(locale).formatToParts(-11111.5);
    const find = (type, fallback) => (parts.find((part) => part.type === type) || { value: fallback }).value;
    return { group: find("group", ","), decimal: find("decimal", "."), minus: find("minusSign", "-") };
  }

  function splitDecimal(text, locale) {
    const value = String(text).trim();
    const negative = value.startsWith("-");
    const digits = negative || value.startsWith("+") ? value.slice(1) : value;
    const [whole, fraction] = digits.split(".");
    const marks = symbols(locale);
    const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, marks.group);
    const body = fraction === undefined ? grouped : `${grouped}${marks.decimal}${fraction}`;
    const isZero = !/[1-9]/.test(digits);
    return { negative: negative && !isZero, body, minus: marks.minus };
  }

  function number(text, locale) {
    if (text === null || text === undefined || text === "") return "—";
    const { negative, body, minus } = splitDecimal(text, locale);
    return negative ? `${minus}${body}` : body;
  }

  function money(text, currency, locale) {
    if (text === null || text === undefined || text === "") return "—";
    const { negative, body, minus } = splitDecimal(text, locale);
    let pattern;
    try {
      pattern = new Intl.NumberFormat(locale, { style: "currency", currency }).formatToParts(1);
    } catch (error) {
      return `${negative ? minus : ""}${body} ${currency}`;
    }
    let out = "";
    let placed = false;
    for (const part of pattern) {
      if (["integer", "group", "decimal", "fraction"].includes(part.type)) {
        if (!placed) out += body;
        placed = true;
      } else {
        out += part.value;
      }
    }
    return negative ? `${minus}${out}` : out;
  }

  // A rate keeps every digit it has, and at least the currency's minor unit: 31 -> $31.00, 0.005 -> $0.005.
  function rate(text, currency, locale) {
    if (text === null || text === undefined || text === "") return "";
    let minor = 2;
    try {
      minor = new Intl.NumberFormat(locale, { style: "currency", currency }).resolvedOptions().minimumFractionDigits;
    } catch (error) {
      // an unknown currency code: two decimals, as money() shows it with its code
    }
    const [whole, fraction = ""] = String(text).split(".");
    const digits = fraction.padEnd(minor, "0");
    return money(digits ? `${whole}.${digits}` : whole, currency, locale);
  }

  function negate(text) {
    const value = String(text);
    if (!/[1-9]/.test(value)) return value;
    return value.startsWith("-") ? value.slice(1) : `-${value}`;
  }

  const DAY = 86400000;

  function isMidnight(date) {
    return date.getUTCHours() === 0 && date.getUTCMinutes() === 0 && date.getUTCSeconds() === 0
      && date.getUTCMilliseconds() === 0;
  }

  function date(iso, locale) {
    if (!iso) return "—";
    return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeZone: "UTC" }).format(new Date(iso));
  }

  function dateTime(iso, locale) {
    if (!iso) return "—";
    return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short", timeZone: "UTC" })
      .format(new Date(iso));
  }

  // An instant as a reader names it: the day alone when it is midnight UTC.
  function moment(iso, locale) {
    return isMidnight(new Date(iso)) ? date(iso, locale) : dateTime(iso, locale);
  }

  // Periods are [start, end) in UTC; a reader expects the last day, so an end at midnight shows the day before.
  function period(startIso, endIso, locale) {
    const start = new Date(startIso);
    const end = new Date(endIso);
    const from = isMidnight(start) ? date(startIso, locale) : dateTime(startIso, locale);
    const to = isMidnight(end) ? date(new Date(end.getTime() - DAY).toISOString(), locale)
      : `${dateTime(endIso, locale)} (exclusive)`;
    return `${from} – ${to}`;
  }

  function decimals(text) {
    const fraction = String(text || "").split(".")[1];
    return fraction ? fraction.length : 0;
  }

  // Exact sum of decimal strings (BigInt in the smallest unit any of them uses).
  function sum(values) {
    const scale = Math.max(0, ...values.map(decimals));
    let total = 0n;
    for (const value of values) {
      const text = String(value).trim();
      const negative = text.startsWith("-");
      const [whole, fraction = ""] = text.replace(/^[-+]/, "").split(".");
      const units = BigInt((whole || "0") + fraction.padEnd(scale, "0"));
      total += negative ? -units : units;
    }
    const negative = total < 0n;
    const digits = (negative ? -total : total).toString().padStart(scale + 1, "0");
    const body = scale ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits;
    return negative ? `-${body}` : body;
  }

  function toFloat(text) {
    const value = Number(text);
    return Number.isFinite(value) ? value : 0;
  }

  return { number, money, rate, negate, date, dateTime, moment, period, sum, toFloat };
})();

// Rounded top of a chart's value axis: 1, 2, 2.5 or 5 times a power of ten.
function niceCeiling(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

function shortNumber(value, locale) {
  return new Intl.NumberFormat(locale, { notation: "compact", maximumFractionDigits: 2 }).format(value);
}
