/* Renders /api/v1/openapi.json into the reference page. Builds DOM nodes with textContent only
   (nothing from the document is parsed as HTML), and no inline script: the CSP forbids it. */
"use strict";

(function () {
  const METHODS = ["get", "post", "put", "patch", "delete"];

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    for (const child of children || []) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function resolve(doc, node, depth) {
    // Inline #/components/... references so each operation reads on its own (bounded depth).
    if (depth > 8 || node === null || typeof node !== "object") return node;
    if (Array.isArray(node)) return node.map((item) => resolve(doc, item, depth + 1));
    if (typeof node.$ref === "string" && node.$ref.startsWith("#/")) {
      let target = doc;
      for (const part of node.$ref.slice(2).split("/")) target = target ? target[part] : undefined;
      return resolve(doc, target, depth + 1);
    }
    const out = {};
    for (const [key, value] of Object.entries(node)) out[key] = resolve(doc, value, depth + 1);
    return out;
  }

  function anchor(method, path) {
    return "op-" + method + "-" + path.replace(/[^A-Za-z0-9]+/g, "-");
  }

  function typeOf(schema) {
    if (!schema) return "";
    if (schema.const !== undefined) return JSON.stringify(schema.const);
    if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
    let type = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type || "";
    if (schema.type === "array" && schema.items) type = typeOf(schema.items) + "[]";
    if (schema.format) type += " (" + schema.format + ")";
    const bounds = [];
    if (schema.minimum !== undefined) bounds.push("≥ " + schema.minimum);
    if (schema.maximum !== undefined) bounds.push("≤ " + schema.maximum);
    if (schema.maxLength !== undefined) bounds.push("≤ " + schema.maxLength + " chars");
    if (schema.default !== undefined) bounds.push("default " + JSON.stringify(schema.default));
    return bounds.length ? type + ", " + bounds.join(", ") : type;
  }

  function parameterTable(parameters) {
    const rows = parameters.map((p) =>
      el("tr", {}, [
        el("td", {}, [el("code", { text: p.name })]),
        el("td", { text: p.in + (p.required ? ", required" : "") }),
        el("td", { text: typeOf(p.schema) }),
        el("td", { text: p.description || "" }),
      ])
    );
    const head = el("tr", {}, ["name", "in", "type", "description"].map((t) => el("th", { text: t })));
    return el("table", {}, [el("thead", {}, [head]), el("tbody", {}, rows)]);
  }

  function propertyTable(schema) {
    const required = new Set(schema.required || []);
    const rows = Object.entries(schema.properties || {}).map(([name, prop]) =>
      el("tr", {}, [
        el("td", {}, [el("code", { text: name })]),
        el("td", { text: required.has(name) ? "required" : "optional" }),
        el("td", { text: typeOf(prop) }),
        el("td", { text: prop.description || "" }),
      ])
    );
    const head = el("tr", {}, ["field", "", "type", "description"].map((t) => el("th", { text: t })));
    return el("table", {}, [el("thead", {}, [head]), el("tbody", {}, rows)]);
  }

  function operation(doc, path, method, op, pathParameters) {
    const parts = [
      el("h3", { id: anchor(method, path) }, [
        el("span", { class: "method method-" + method, text: method.toUpperCase() }),
        el("code", { text: path }),
      ]),
      el("p", { text: op.summary || "" }),
    ];
    if (op.description) parts.push(el("p", { class: "muted", text: op.description }));
    const security = op.security || doc.security || [];
    const schemes = security.flatMap((req) => Object.keys(req));
    parts.push(el("p", { class: "muted", text: "Authentication: " + (schemes.length ? schemes.join(" or ") : "none") }));
    const parameters = [...pathParameters, ...(op.parameters || [])];
    if (parameters.length) parts.push(el("h4", { text: "Parameters" }), parameterTable(parameters));
    if (op.requestBody) {
      for (const [mediaType, media] of Object.entries(op.requestBody.content || {})) {
        parts.push(el("h4", { text: "Body (" + mediaType + ")" }));
        if (media.schema && media.schema.properties) parts.push(propertyTable(media.schema));
      }
    }
    parts.push(el("h4", { text: "Responses" }));
    const rows = Object.entries(op.responses || {}).map(([status, response]) => {
      const media = response.content && response.content["application/json"];
      const cell = el("td", {}, [el("p", { text: response.description || "" })]);
      if (media && media.schema && media.schema.properties && status.startsWith("2")) {
        cell.append(propertyTable(media.schema));
      }
      return el("tr", {}, [el("td", {}, [el("code", { text: status })]), cell]);
    });
    parts.push(el("table", {}, [el("tbody", {}, rows)]));
    return el("section", { class: "op" }, parts);
  }

  function render(raw) {
    const doc = resolve(raw, raw, 0);
    document.getElementById("title").textContent = (doc.info.title || "API") + " API reference";
    document.title = doc.info.title + " API reference";
    const content = document.getElementById("content");
    const toc = document.getElementById("toc");
    content.append(el("p", { text: doc.info.description || "" }));
    const tags = (raw.tags || []).map((t) => t.name);
    for (const tag of tags) {
      const section = el("section", { id: "tag-" + tag }, [el("h2", { text: tag })]);
      const description = (raw.tags.find((t) => t.name === tag) || {}).description;
      if (description) section.append(el("p", { class: "muted", text: description }));
      const links = el("ul");
      for (const [path, item] of Object.entries(doc.paths)) {
        for (const method of METHODS) {
          const op = item[method];
          if (!op || !(op.tags || []).includes(tag)) continue;
          section.append(operation(doc, path, method, op, item.parameters || []));
          links.append(el("li", {}, [el("a", { href: "#" + anchor(method, path), text: method.toUpperCase() + " " + path })]));
        }
      }
      content.append(section);
      toc.append(el("h2", { text: tag }), links);
    }
    document.getElementById("status").textContent = "OpenAPI " + doc.openapi + ", version " + doc.info.version + ".";
  }

  function fail(error) {
    const status = document.getElementById("status");
    status.textContent = "Could not load the OpenAPI document: " + error;
    status.className = "error";
  }

  fetch("/api/v1/openapi.json", { headers: { Accept: "application/json" } })
    .then((response) => {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    })
    .then(render)
    .catch(fail);
})();
