// Type-checks loader/speaknode-widget.d.ts the way a customer's TypeScript uses it (xtask's
// lint stage runs `tsc --noEmit --strict` on this file). Never executed; the @ts-expect-error
// lines prove the declarations reject what the loader would reject.
/// <reference path="../../loader/speaknode-widget.d.ts" />

const element = document.createElement("speaknode-widget");
element.agentId = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
element.sessionUrl = "https://bff.example.com";
element.theme = "dark";
element.position = "top-left";
element.load = "idle";
// @ts-expect-error: not a theme the stylesheet knows
element.theme = "sepia";
document.body.append(element);

const found: SpeakNodeWidgetElement | null = document.querySelector("speaknode-widget");
found?.open().then(() => found.close());

element.addEventListener("speaknode:status", (event) => {
  const status: SpeakNodeStatus = event.detail.status;
  console.log(status);
});
element.addEventListener("speaknode:message", (event) => {
  const role: "agent" | "user" = event.detail.role;
  console.log(role, event.detail.text.toUpperCase(), event.detail.at ?? "no time");
});
document.addEventListener("speaknode:error", (event) => console.log(event.detail.code));
window.addEventListener("speaknode:ended", (event) => console.log(event.detail.status));

const provider: SpeakNodeTokenProvider = async ({ agentId, reason }) => {
  const response = await fetch("/my-widget-token", {
    method: "POST",
    body: JSON.stringify({ agentId, retry: reason === "retry" }),
  });
  const grant = (await response.json()) as { token: string; expires_at: number; agent: { id: string; name: string } };
  return { token: grant.token, expiresAt: grant.expires_at, agent: grant.agent };
};
element.tokenProvider = provider;
SpeakNode.tokenProvider = provider;
SpeakNode.tokenProvider = null;
// @ts-expect-error: a provider must return a promise of a token
element.tokenProvider = () => "token";

const unsubscribe = SpeakNode.on("status", (detail, event) => {
  const status: SpeakNodeStatus = detail.status;
  const same: SpeakNodeStatus = event.detail.status;
  console.log(status === same);
});
unsubscribe();
SpeakNode.on("speaknode:message", (detail) => console.log(detail.text));
SpeakNode.on("ready", (detail) => console.log(detail === null));
// @ts-expect-error: no such event
SpeakNode.on("opened", () => {});
// @ts-expect-error: the detail of "status" has no text
SpeakNode.on("status", (detail) => console.log(detail.text));

void SpeakNode.open();
void SpeakNode.start();
void window.SpeakNode.end();
SpeakNode.destroy();

// A module, as most customer code is; the declarations are global all the same.
export {};
