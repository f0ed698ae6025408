/* Starts Swagger UI (static/vendor/swagger-ui, pinned in vendor/package.json, copied by
   `make vendor`) on /api/v1/openapi.json. A file of its own: the CSP allows no inline script. */
"use strict";

(function () {
  const status = document.getElementById("docs-status");

  // Swagger UI's own dark theme is switched by a class on <html>; follow the system setting.
  const dark = window.matchMedia("(prefers-color-scheme: dark)");
  function followScheme() {
    document.documentElement.classList.toggle("dark-mode", dark.matches);
  }
  followScheme();
  dark.addEventListener("change", followScheme);

  function fail(message) {
    status.textContent = message + " The document itself is at /api/v1/openapi.json.";
    status.classList.add("docs-error");
  }

  if (typeof window.SwaggerUIBundle !== "function") {
    fail("The reference renderer did not load.");
    return;
  }

  fetch("/api/v1/openapi.json", { headers: { Accept: "application/json" } })
    .then(function (response) {
      if (!response.ok) throw new Error("The OpenAPI document answered " + response.status + ".");
      return response.json();
    })
    .then(function (spec) {
      // "Try it out" sends requests to the server chosen from `servers`: the document names the
      // configured public base URL. The CSP lets this page connect to its own origin only, so
      // when the page was reached under another address of the server (localhost instead of
      // 127.0.0.1, say), that address comes first.
      const here = window.location.origin;
      const servers = Array.isArray(spec.servers) ? spec.servers : [];
      if (!servers.some(function (s) { return String(s.url).replace(/\/+$/, "") === here; })) {
        spec.servers = [{ url: here, description: "This page's server" }].concat(servers);
      }
      window.ui = window.SwaggerUIBundle({
        spec: spec,
        dom_id: "#swagger-ui",
        presets: [window.SwaggerUIBundle.presets.apis],
        layout: "BaseLayout",
        deepLinking: true,
        docExpansion: "list",
        defaultModelsExpandDepth: 0,
        defaultModelExpandDepth: 2,
        displayRequestDuration: true,
        filter: true,
        // Curl lines for every request tried.
        requestSnippetsEnabled: true,
        // Never ask validator.swagger.io (another origin; the CSP would refuse its badge anyway).
        validatorUrl: null,
        // A token typed into "Authorize" lives in this page only, never in localStorage.
        persistAuthorization: false,
        onComplete: function () {
          status.hidden = true;
        },
      });
    })
    .catch(function (error) {
      fail(error.message || String(error));
    });
})();
