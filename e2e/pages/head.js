// Page script of the head.html fixture: runs in <head> right after the loader, before <body>
// exists, and calls window.SpeakNode at once: open() by default, or the method named by the
// query's "action" (e.g. ?action=destroy).
const action = new URLSearchParams(location.search).get("action") ?? "open";
window.SpeakNode[action]();
