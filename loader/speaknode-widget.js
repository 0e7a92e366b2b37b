/*! SpeakNode widget loader: <speaknode-widget> and window.SpeakNode (speaknode-widget.d.ts) */
/* Defines <speaknode-widget> and window.SpeakNode, paints the launcher at once and loads the
   widget's WebAssembly on intent, when the browser is idle, or at once (load="intent" |
   "idle" | "eager"). Release builds ship it minified (loader/minify.mjs).

   Embed with one tag:
     <script src="/speaknode-widget.js" data-agent-id="…" data-session-url="https://bff…" async></script>
   or with the element (after this script is on the page):
     <speaknode-widget agent-id="…" session-url="https://bff…"></speaknode-widget> */
(function () {
  "use strict";

  // Where the widget's time on the page starts, for the page's own measurements (and the bench).
  if (window.performance && performance.mark) performance.mark("speaknode-widget:loader");

  var TAG = "speaknode-widget";
  var script = document.currentScript;
  // A second copy of the loader on the page hands its tag to the first and does nothing else.
  var SHARED = typeof Symbol === "function" ? Symbol.for("speaknode-widget.loader") : "__speaknodeWidgetLoader";
  if (window[SHARED]) {
    if (script) window[SHARED].embed(script);
    return;
  }

  // Every asset is resolved next to this file, wherever the site hosts it.
  var base = new URL(".", script && script.src ? script.src : document.baseURI);
  var APP_URL = new URL("app/speaknode-widget.js", base).href;
  var WASM_URL = new URL("app/speaknode-widget_bg.wasm", base);
  var CSS_URL = new URL("speaknode-widget.css", base).href;

  var ATTRIBUTES = ["agent-id", "session-url", "mode", "theme", "lang", "position", "load"];
  // The same, as element properties: agentId, sessionUrl, …
  var PROPERTIES = ATTRIBUTES.map(function (attribute) {
    return attribute.replace(/-(\w)/g, function (_, letter) { return letter.toUpperCase(); });
  });
  // A different agent, BFF, mode or language is a different widget: these remount the app.
  // theme and position are pure CSS (:host([theme=…]), :host([position=…])).
  var REMOUNT = { "agent-id": true, "session-url": true, mode: true, lang: true };
  // The launcher's label until the app has loaded; the same as the app's (src/i18n.rs; the
  // end-to-end tests compare them). Escaped, so a page in another encoding reads them right.
  var LABELS = { en: "Talk to us", de: "Mit uns sprechen", ar: "\u062a\u062d\u062f\u0651\u062b \u0645\u0639\u0646\u0627" };
  var INTENT = ["pointerenter", "focus", "touchstart"];
  var SVG = "http://www.w3.org/2000/svg";
  // The launcher's icons (src/ui/icons.rs): a speech bubble when the widget only chats.
  var MIC = "M12 15a3 3 0 0 0 3-3V6a3 3 0 1 0-6 0v6a3 3 0 0 0 3 3Zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.92V21h2v-2.08A7 7 0 0 0 19 12h-2Z";
  var CHAT = "M6 4h12a2 2 0 0 1 2 2v9a2 2 0 0 1-2 2h-7l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2Zm2 5v2h8V9H8Z";

  // The app and the stylesheet are loaded once per page and shared by every element.
  var app = null;
  var appModule = null;
  function loadApp() {
    if (!app) {
      // import() and instantiateStreaming compile off the main thread.
      app = import(APP_URL).then(function (module) {
        return module.default({ module_or_path: WASM_URL }).then(function () {
          appModule = module;
          return module;
        });
      });
      app.catch(function () { app = null; });
    }
    return app;
  }

  var sheet = null;
  var sheetValue = null;
  function loadSheet() {
    if (!sheet) {
      sheet = fetch(CSS_URL)
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status + " for " + CSS_URL);
          return response.text();
        })
        .then(function (text) {
          var css = new CSSStyleSheet();
          css.replaceSync(text);
          sheetValue = css;
          return css;
        });
      sheet.catch(function () { sheet = null; });
    }
    return sheet;
  }

  function fail(element, error) {
    console.error("SpeakNode widget:", error);
    element.dispatchEvent(new CustomEvent("speaknode:error", {
      bubbles: true, composed: true, detail: { code: "load_failed", message: String(error && error.message || error) },
    }));
  }

  function label(lang) {
    var primary = (lang || "").split(/[-_]/)[0].toLowerCase();
    return LABELS[primary] || LABELS.en;
  }

  /** Whether sessionStorage holds a running conversation of this agent (the wasm writes it). */
  function resumable(agentId) {
    try {
      var saved = agentId && JSON.parse(window.sessionStorage.getItem("speaknode-widget:" + agentId));
      return !!saved && typeof saved.expiresAt === "number" && saved.expiresAt * 1000 > Date.now();
    } catch (error) {
      // Sandboxed iframes and disabled storage throw; nothing to resume then.
      return false;
    }
  }

  var globalProvider = null;

  class SpeakNodeWidget extends HTMLElement {
    static get observedAttributes() { return ATTRIBUTES; }

    constructor() {
      super();
      this._generation = 0;
      this._alive = false;
      this._handle = null;
      this._mounting = null;
      this._open = false;
      this._provider = null;
      this._idle = null;
      this._waiting = null;
    }

    connectedCallback() {
      // Moved within the page: the disconnection's teardown was not needed.
      if (this._alive) return;
      this._alive = true;
      // A framework may set properties (tokenProvider, agentId, …) before this class was
      // defined; they are then the instance's own and hide the class's setters: take them over.
      var upgraded = PROPERTIES.concat(["tokenProvider"]);
      for (var i = 0; i < upgraded.length; i += 1) {
        if (Object.prototype.hasOwnProperty.call(this, upgraded[i])) {
          var value = this[upgraded[i]];
          delete this[upgraded[i]];
          this[upgraded[i]] = value;
        }
      }
      var generation = ++this._generation;
      var root = this.shadowRoot || this.attachShadow({ mode: "open" });
      var self = this;
      loadSheet().then(function (css) {
        if (self._generation !== generation || self._handle) return;
        root.adoptedStyleSheets = [css];
        self._paintLauncher();
      }, function (error) {
        if (self._generation === generation) fail(self, error);
      });
      var waiting = this._waiting;
      this._waiting = null;
      if (waiting) waiting(this._mount());
      else this._schedule();
    }

    disconnectedCallback() {
      var self = this;
      // Removing the element removes everything: the app, its requests, listeners, timers. A
      // move (disconnect then connect in the same task) keeps the widget as it is.
      queueMicrotask(function () { if (!self.isConnected) self._teardown(); });
    }

    attributeChangedCallback(name, previous, value) {
      if (previous === value || !this._alive) return;
      if (name === "load") {
        if (!this._handle && !this._mounting) this._schedule();
      } else if (REMOUNT[name]) {
        // A mount in flight reads the attributes when the app arrives, so it needs nothing.
        if (this._handle) this._remount();
        else if (this._placeholder && (name === "lang" || name === "mode")) {
          // The placeholder follows, so it stays the launcher the app will draw.
          this._placeholder.remove();
          this._placeholder = null;
          this._paintLauncher();
        }
      }
    }

    /** Opens the panel, loading the widget first if needed. */
    open() {
      var self = this;
      this._open = true;
      return this._act(function (handle) { if (self._open) handle.open(); }, true);
    }

    /** Closes the panel; the conversation goes on. */
    close() {
      this._open = false;
      return this._act(function (handle) { handle.close(); }, false);
    }

    /** Starts a conversation unless one is running, loading the widget first if needed. */
    start() {
      return this._act(function (handle) { handle.start(); }, true);
    }

    /** Ends the running conversation, if any. */
    end() {
      return this._act(function (handle) {
        if (typeof handle.end === "function") handle.end();
      }, resumable(this.getAttribute("agent-id")));
    }

    /** Stops the widget and removes it from the page. */
    destroy() {
      this._teardown();
      // Calls still waiting for <body> settle (with no widget) rather than hang.
      var waiting = this._waiting;
      this._waiting = null;
      if (waiting) waiting(Promise.resolve(null));
      // The tag's element may still be waiting for <body>: it must not arrive after this.
      this._destroyed = true;
      if (this === embedded) embedded = null;
      this.remove();
    }

    get tokenProvider() { return this._provider; }

    set tokenProvider(provider) {
      if (provider != null && typeof provider !== "function") throw new TypeError("SpeakNode: tokenProvider must be a function");
      this._provider = provider || null;
      this._providerChanged();
    }

    _lang() { return this.getAttribute("lang") || document.documentElement.lang || null; }

    _currentProvider() { return this._provider || globalProvider; }

    /** Whether a token provider appeared or went away since the app was mounted: the app
     *  chose between it and the BFF's mint then, so it is mounted again. */
    _providerChanged() {
      if (this._handle && this._mountedWithProvider !== !!this._currentProvider()) this._remount();
    }

    /** Runs `action` on the app's handle now, or once the app is mounted; loads the app
     *  first when `load` is set, and otherwise does nothing while it is not loading. */
    _act(action, load) {
      var self = this;
      var run = function () {
        var handle = self._handle;
        if (handle) action(handle);
      };
      if (this._handle) {
        run();
        return Promise.resolve();
      }
      if (!this._mounting && !this._waiting && !load) return Promise.resolve();
      return this._mount().then(run);
    }

    /** Loads the app according to the load attribute (or at once, to resume a conversation). */
    _schedule() {
      this._cancelIdle();
      if (this._handle || this._mounting) return;
      var load = this.getAttribute("load");
      if (load === "eager" || resumable(this.getAttribute("agent-id"))) {
        this._mount();
      } else if (load === "idle") {
        var self = this;
        var go = function () { self._idle = null; self._mount(); };
        this._idle = window.requestIdleCallback
          ? { idle: window.requestIdleCallback(go, { timeout: 4000 }) }
          : { timer: window.setTimeout(go, 1000) };
      }
    }

    _cancelIdle() {
      var idle = this._idle;
      this._idle = null;
      if (idle && idle.idle) window.cancelIdleCallback(idle.idle);
      if (idle && idle.timer) window.clearTimeout(idle.timer);
    }

    /** Loads and mounts the app; resolves with its handle, or null if it failed or the
     *  element went away meanwhile. */
    _mount() {
      var self = this;
      if (this._handle) return Promise.resolve(this._handle);
      if (this._mounting) return this._mounting;
      if (!this._alive) {
        // Not on the page yet (the tag's element waits for <body>): mount once connected.
        var earlier = this._waiting;
        return new Promise(function (resolve) {
          self._waiting = function (mounted) {
            if (earlier) earlier(mounted);
            resolve(mounted);
          };
        });
      }
      this._cancelIdle();
      var generation = this._generation;
      var mounting = Promise.all([loadApp(), loadSheet()]).then(function () {
        if (self._generation !== generation) return null;
        self._mounting = null;
        return self._mountNow();
      }).catch(function (error) {
        if (self._generation !== generation) return null;
        self._mounting = null;
        fail(self, error);
        return null;
      });
      this._mounting = mounting;
      return mounting;
    }

    /** Mounts the loaded app into a fresh container in place of the launcher placeholder. */
    _mountNow() {
      var root = this.shadowRoot;
      root.adoptedStyleSheets = [sheetValue];
      var self = this;
      var container = document.createElement("div");
      container.className = "sn-root";
      // The app reports its panel's state; a remount keeps the panel open when it was.
      container.addEventListener("speaknode:open", function () { self._open = true; });
      container.addEventListener("speaknode:close", function () { self._open = false; });
      var focused = !!this._placeholder && root.activeElement !== null;
      var provider = this._currentProvider();
      root.appendChild(container);
      var handle;
      try {
        handle = appModule.mount(container, {
          agentId: this.getAttribute("agent-id"),
          sessionUrl: this.getAttribute("session-url"),
          lang: this._lang(),
          mode: this.getAttribute("mode"),
          // Looked up at every call, so a page may replace its provider at any time.
          tokenProvider: provider ? function (request) {
            return Promise.resolve(request).then(function () {
              var current = self._currentProvider();
              if (!current) throw new Error("SpeakNode: the tokenProvider was removed");
              return current(request);
            });
          } : null,
        });
      } catch (error) {
        container.remove();
        throw error;
      }
      this._mountedWithProvider = !!provider;
      if (this._placeholder) {
        this._placeholder.remove();
        this._placeholder = null;
      }
      this._handle = handle;
      this._container = container;
      if (focused) {
        var launcher = container.querySelector('[part~="launcher"]');
        if (launcher) launcher.focus();
      }
      this.dispatchEvent(new CustomEvent("speaknode:ready", { bubbles: true, composed: true }));
      return handle;
    }

    _remount() {
      // A conversation saved for this agent resumes with the panel as it was; otherwise an
      // open panel is shown again, without starting anything (the visitor may have been
      // reading an ended conversation or an error).
      var reopen = this._open && !resumable(this.getAttribute("agent-id"));
      this._unmount();
      try {
        var handle = this._mountNow();
        if (reopen) handle.show();
      } catch (error) {
        this._paintLauncher();
        fail(this, error);
      }
    }

    _unmount() {
      var handle = this._handle;
      this._handle = null;
      if (handle) {
        try {
          // destroy() stops the app's requests and streams; free() releases its memory.
          handle.destroy();
          handle.free();
        } catch (error) {
          console.error("SpeakNode widget:", error);
        }
      }
      if (this._container) this._container.remove();
      this._container = null;
    }

    _teardown() {
      if (!this._alive) return;
      this._alive = false;
      // Pending loads check the generation and do nothing once it has moved on.
      this._generation += 1;
      this._mounting = null;
      this._open = false;
      this._cancelIdle();
      this._unmount();
      this._placeholder = null;
      if (this.shadowRoot) {
        this.shadowRoot.replaceChildren();
        this.shadowRoot.adoptedStyleSheets = [];
      }
    }

    /** The launcher as the app draws it (src/ui/mod.rs; the end-to-end tests compare them),
     *  built node by node (no innerHTML, so pages that enforce Trusted Types accept it); it
     *  loads the app on intent and opens on click. */
    _paintLauncher() {
      if (this._placeholder || this._handle) return;
      var self = this;
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sn-launcher";
      button.setAttribute("part", "launcher");
      button.setAttribute("data-testid", "sn-launcher");
      button.setAttribute("aria-label", label(this._lang()));
      button.setAttribute("aria-haspopup", "dialog");
      button.setAttribute("aria-expanded", "false");
      var svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("class", "sn-launcher-icon");
      svg.setAttribute("viewBox", "0 0 24 24");
      svg.setAttribute("aria-hidden", "true");
      svg.setAttribute("focusable", "false");
      var path = document.createElementNS(SVG, "path");
      path.setAttribute("d", (this.getAttribute("mode") || "").trim().toLowerCase() === "text" ? CHAT : MIC);
      svg.appendChild(path);
      button.appendChild(svg);
      var warm = function () { loadApp().catch(function () {}); };
      INTENT.forEach(function (type) { button.addEventListener(type, warm, { once: true, passive: true }); });
      button.addEventListener("click", function () { self.open(); });
      var wrapper = document.createElement("div");
      wrapper.className = "sn-widget";
      wrapper.appendChild(button);
      this.shadowRoot.appendChild(wrapper);
      this._placeholder = wrapper;
    }
  }

  // Attributes as properties too (element.theme = "dark"), which frameworks prefer.
  ATTRIBUTES.forEach(function (attribute, index) {
    var property = PROPERTIES[index];
    if (property === "lang") return; // HTMLElement already reflects lang.
    Object.defineProperty(SpeakNodeWidget.prototype, property, {
      get: function () { return this.getAttribute(attribute); },
      set: function (value) {
        if (value == null) this.removeAttribute(attribute);
        else this.setAttribute(attribute, value);
      },
    });
  });

  if (!customElements.get(TAG)) customElements.define(TAG, SpeakNodeWidget);

  // The one-tag embed: the script's data attributes become the element's attributes.
  var embedded = null;
  function embed(tag) {
    var agentId = tag.getAttribute("data-agent-id");
    // The same snippet pasted twice makes one widget.
    if (!agentId || embedded && embedded.getAttribute("agent-id") === agentId) return;
    var element = document.createElement(TAG);
    ATTRIBUTES.forEach(function (attribute) {
      var value = tag.getAttribute("data-" + attribute);
      if (value !== null) element.setAttribute(attribute, value);
    });
    if (!embedded) embedded = element;
    var attach = function () { if (!element._destroyed) document.body.appendChild(element); };
    if (document.body) attach();
    else document.addEventListener("DOMContentLoaded", attach, { once: true });
  }

  /** The page's widget: the tag's, or else the first element in the document. */
  function widget() {
    if (embedded && embedded.isConnected) return embedded;
    return document.querySelector(TAG) || embedded;
  }

  function call(method) {
    return function () {
      var element = widget();
      return element ? element[method]() : Promise.resolve();
    };
  }

  var api = {
    open: call("open"),
    close: call("close"),
    start: call("start"),
    end: call("end"),
    destroy: function () {
      var element = widget();
      if (element) element.destroy();
    },
    /** Listens to a widget event ("open" or "speaknode:open"…) on the document; returns the
     *  function that stops listening. The callback gets the event's detail and the event. */
    on: function (name, callback) {
      var type = String(name).indexOf("speaknode:") === 0 ? String(name) : "speaknode:" + name;
      var listener = function (event) { callback(event.detail, event); };
      document.addEventListener(type, listener);
      return function () { document.removeEventListener(type, listener); };
    },
  };
  Object.defineProperty(api, "tokenProvider", {
    enumerable: true,
    get: function () { return globalProvider; },
    set: function (provider) {
      if (provider != null && typeof provider !== "function") throw new TypeError("SpeakNode: tokenProvider must be a function");
      globalProvider = provider || null;
      document.querySelectorAll(TAG).forEach(function (element) {
        if (element._providerChanged) element._providerChanged();
      });
    },
  });

  window[SHARED] = { embed: embed };
  if (window.SpeakNode === undefined) window.SpeakNode = api;
  else console.warn("SpeakNode widget: window.SpeakNode is already defined; the loader leaves it as it is.");

  if (script) embed(script);
})();
