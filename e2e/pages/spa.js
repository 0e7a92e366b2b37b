// Page script of the SPA fixture (spa.html): routes between views with history.pushState and
// shows <speaknode-widget> on the "help" view only. The widget's attributes come from the
// query string (agent-id, session-url, lang, theme, position, load, mode), so one page serves
// every variant the tests need; agent and BFF default to the stack's.
const ATTRIBUTES = ["agent-id", "session-url", "lang", "theme", "position", "load", "mode"];
const DEFAULTS = { "agent-id": "{{AGENT_ID}}", "session-url": "{{BFF_URL}}" };

function widget(params) {
  const element = document.createElement("speaknode-widget");
  for (const name of ATTRIBUTES) {
    const value = params.get(name) ?? DEFAULTS[name];
    if (value != null) element.setAttribute(name, value);
  }
  return element;
}

function render() {
  const params = new URLSearchParams(location.search);
  const view = params.get("view") ?? "home";
  document.getElementById("title").textContent = view === "help" ? "Help" : "Home";
  const current = document.querySelector("speaknode-widget");
  if (view === "help" && !current) document.body.append(widget(params));
  if (view !== "help" && current) current.remove();
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-view]");
  if (!link) return;
  event.preventDefault();
  const url = new URL(location.href);
  url.searchParams.set("view", link.dataset.view);
  history.pushState(null, "", url);
  render();
});
addEventListener("popstate", render);
// After load, as an app adds its components once it has booted.
addEventListener("load", render);
