/*! SpeakNode widget loader. Paints the launcher at once and loads the widget's WebAssembly
    only when the visitor shows intent (hover, focus, click) or a page calls open().

    Embed with one tag:
      <script src="/speaknode-widget.js" data-agent-id="…" data-session-url="https://bff…" async></script>
    or with the element (after this script is on the page):
      <speaknode-widget agent-id="…" session-url="https://bff…"></speaknode-widget> */
(function () {
  "use strict";

  var script = document.currentScript;
  // Every asset is resolved next to this file, wherever the site hosts it.
  var base = new URL(".", script && script.src ? script.src : document.baseURI);
  var APP_URL = new URL("app/speaknode-widget.js", base).href;
  var CSS_URL = new URL("speaknode-widget.css", base).href;

  var app = null;
  function loadApp() {
    if (!app) {
      app = import(APP_URL).then(function (module) {
        return module.default({ module_or_path: new URL("app/speaknode-widget_bg.wasm", base) }).then(function () {
          return module;
        });
      });
      app.catch(function () { app = null; });
    }
    return app;
  }

  var sheet = null;
  function loadSheet() {
    if (!sheet) {
      sheet = fetch(CSS_URL)
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.text();
        })
        .then(function (text) {
          var css = new CSSStyleSheet();
          css.replaceSync(text);
          return css;
        });
      sheet.catch(function () { sheet = null; });
    }
    return sheet;
  }

  function fail(element, error) {
    console.error("SpeakNode widget:", error);
    element.dispatchEvent(new CustomEvent("speaknode:error", {
      bubbles: true, composed: true, detail: { code: "load_failed", message: String(error) },
    }));
  }

  var INTENT = ["pointerenter", "focusin", "touchstart"];
  var SVG = "http://www.w3.org/2000/svg";

  // Built node by node rather than through innerHTML, so pages enforcing Trusted Types
  // accept it.
  function micIcon() {
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "sn-launcher-icon");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var path = document.createElementNS(SVG, "path");
    path.setAttribute("d", "M12 15a3 3 0 0 0 3-3V6a3 3 0 1 0-6 0v6a3 3 0 0 0 3 3Zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.92V21h2v-2.08A7 7 0 0 0 19 12h-2Z");
    svg.appendChild(path);
    return svg;
  }

  class SpeakNodeWidget extends HTMLElement {
    static get observedAttributes() { return ["agent-id", "session-url", "lang"]; }

    connectedCallback() {
      if (this._root) return;
      var root = this.attachShadow({ mode: "open" });
      this._root = root;
      this._generation = (this._generation || 0) + 1;
      var generation = this._generation;
      var self = this;
      loadSheet().then(function (css) {
        if (self._generation !== generation) return;
        root.adoptedStyleSheets = [css];
        self._paintLauncher();
      }, function (error) { fail(self, error); });
    }

    disconnectedCallback() {
      // Removing the element removes everything: the mounted app, listeners, timers.
      this._generation += 1;
      if (this._handle) { this._handle.destroy(); this._handle.free(); this._handle = null; }
      if (this._root) { this._root.replaceChildren(); }
      this._root = null;
      this._placeholder = null;
    }

    attributeChangedCallback(name, previous, value) {
      // A changed agent or BFF means a different widget: remount from scratch.
      if (previous === value || !this._handle) return;
      var wasOpen = this._open;
      this.disconnectedCallback();
      this.connectedCallback();
      if (wasOpen) this.open();
    }

    _paintLauncher() {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sn-launcher";
      button.setAttribute("part", "launcher");
      button.setAttribute("data-testid", "sn-launcher");
      button.setAttribute("aria-label", "Talk to us");
      button.setAttribute("aria-expanded", "false");
      button.appendChild(micIcon());
      var self = this;
      var warm = function () { loadApp().catch(function () {}); };
      INTENT.forEach(function (type) { button.addEventListener(type, warm, { once: true, passive: true }); });
      button.addEventListener("click", function () { self.open(); });
      var wrapper = document.createElement("div");
      wrapper.className = "sn-widget";
      wrapper.appendChild(button);
      this._root.appendChild(wrapper);
      this._placeholder = wrapper;
    }

    /** Opens the panel, loading the widget first if needed. */
    open() {
      this._open = true;
      var self = this;
      var generation = this._generation;
      return this._mount(generation).then(function (handle) {
        if (handle && self._open) handle.open();
      }, function (error) { fail(self, error); });
    }

    /** Closes the panel; the conversation goes on. */
    close() {
      this._open = false;
      if (this._handle) this._handle.close();
    }

    _mount(generation) {
      var self = this;
      if (this._handle) return Promise.resolve(this._handle);
      return Promise.all([loadApp(), loadSheet()]).then(function (loaded) {
        if (self._generation !== generation || !self._root) return null;
        if (self._handle) return self._handle;
        var container = document.createElement("div");
        container.className = "sn-root";
        var handle = loaded[0].mount(container, {
          agentId: self.getAttribute("agent-id"),
          sessionUrl: self.getAttribute("session-url"),
          lang: self.getAttribute("lang") || document.documentElement.lang || null,
        });
        if (self._placeholder) { self._placeholder.remove(); self._placeholder = null; }
        self._root.appendChild(container);
        self._handle = handle;
        self.dispatchEvent(new CustomEvent("speaknode:ready", { bubbles: true, composed: true }));
        return handle;
      });
    }
  }

  if (!customElements.get("speaknode-widget")) {
    customElements.define("speaknode-widget", SpeakNodeWidget);
  }

  // The one-tag embed: the script's data attributes become the element's attributes.
  if (script && script.dataset.agentId) {
    var element = document.createElement("speaknode-widget");
    element.setAttribute("agent-id", script.dataset.agentId);
    if (script.dataset.sessionUrl) element.setAttribute("session-url", script.dataset.sessionUrl);
    if (script.dataset.lang) element.setAttribute("lang", script.dataset.lang);
    var attach = function () { document.body.appendChild(element); };
    if (document.body) attach(); else document.addEventListener("DOMContentLoaded", attach, { once: true });
  }
})();
