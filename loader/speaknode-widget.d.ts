// Type declarations for the SpeakNode widget loader (speaknode-widget.js): the
// <speaknode-widget> element, the window.SpeakNode global, the token provider and the DOM
// events. A script file of global declarations, as the loader is a plain script: reference it
// with `/// <reference path="speaknode-widget.d.ts" />` or list it in tsconfig's "files".

/** What the widget asks a token provider for. */
interface SpeakNodeTokenRequest {
  /** The agent the widget talks to (its agent-id attribute). */
  agentId: string;
  /** "start" for a new conversation, "retry" after a failed attempt. */
  reason: "start" | "retry";
}

/** A scoped widget token, as the BFF's `POST /v1/sessions` mints it. */
interface SpeakNodeToken {
  token: string;
  /** When the token stops being accepted, in seconds since the Unix epoch. */
  expiresAt: number;
  agent: { id: string; name: string };
}

/** Supplies widget tokens instead of the BFF's mint endpoint (e.g. from the site's own
 *  authenticated endpoint). Called at every start and every retry. */
type SpeakNodeTokenProvider = (request: SpeakNodeTokenRequest) => Promise<SpeakNodeToken>;

/** A conversation's status as the widget reports it. */
type SpeakNodeStatus = "Connecting" | "Pending" | "Dispatching" | "Active" | "Completed" | "Failed" | "Unknown";

interface SpeakNodeMessageDetail {
  /** Stable across updates of the same turn. */
  id: string;
  role: "agent" | "user";
  text: string;
  /** RFC 3339 timestamp, when known. */
  at: string | null;
}

interface SpeakNodeErrorDetail {
  /** A stable code: the BFF's error codes, or "load_failed" when the widget could not load. */
  code: string;
  /** A readable sentence in the widget's language. */
  message: string;
}

/** The widget's DOM events. They bubble and cross the Shadow DOM, so they reach listeners on
 *  the element, the document and the window. */
interface SpeakNodeEventMap {
  /** The app has loaded and mounted (the loader sends it; once per mount). */
  "speaknode:ready": CustomEvent<null>;
  "speaknode:open": CustomEvent<Record<string, never>>;
  "speaknode:close": CustomEvent<Record<string, never>>;
  "speaknode:status": CustomEvent<{ status: SpeakNodeStatus }>;
  "speaknode:message": CustomEvent<SpeakNodeMessageDetail>;
  "speaknode:error": CustomEvent<SpeakNodeErrorDetail>;
  "speaknode:ended": CustomEvent<{ status: SpeakNodeStatus }>;
}

/** An event's name with or without its "speaknode:" prefix, as SpeakNode.on() takes it. */
type SpeakNodeEventName = keyof SpeakNodeEventMap | SpeakNodeShortName<keyof SpeakNodeEventMap>;
type SpeakNodeShortName<K> = K extends `speaknode:${infer Short}` ? Short : never;
type SpeakNodeFullName<N> = N extends keyof SpeakNodeEventMap ? N : `speaknode:${N & string}`;
type SpeakNodeEventOf<N extends SpeakNodeEventName> = SpeakNodeEventMap[SpeakNodeFullName<N> & keyof SpeakNodeEventMap];

/** What both the element and window.SpeakNode can do. Calls made before the widget's code has
 *  loaded are kept: open() and start() load it. The promises resolve once the call has acted
 *  (failures are reported as a "speaknode:error" event, never as a rejection). */
interface SpeakNodeControls {
  /** Opens the panel (starting a conversation when none runs). */
  open(): Promise<void>;
  /** Closes the panel; the conversation goes on. */
  close(): Promise<void>;
  /** Starts a conversation unless one is running. */
  start(): Promise<void>;
  /** Ends the running conversation, if any. */
  end(): Promise<void>;
  /** Stops the widget (requests, streams, timers) and removes it from the page. */
  destroy(): void;
  /** Supplies widget tokens instead of the BFF's mint endpoint; null to use the BFF. */
  tokenProvider: SpeakNodeTokenProvider | null;
}

interface SpeakNodeWidgetElementEventMap extends HTMLElementEventMap, SpeakNodeEventMap {}

/** `<speaknode-widget>`. Changing agent-id, session-url, mode or lang remounts the widget
 *  (an open panel stays open); theme and position only restyle it. */
interface SpeakNodeWidgetElement extends HTMLElement, SpeakNodeControls {
  /** The agent's id (attribute agent-id; required). */
  agentId: string | null;
  /** The BFF's base URL (attribute session-url; required, a tokenProvider too only mints). */
  sessionUrl: string | null;
  /** Which ways of talking the widget offers (attribute mode; hybrid when absent). */
  mode: "voice" | "text" | "hybrid" | null;
  /** "light", "dark" or "auto" (follows the system); attribute theme. */
  theme: "light" | "dark" | "auto" | null;
  /** Corner of the launcher (attribute position; bottom-right when absent). */
  position: "bottom-right" | "bottom-left" | "top-right" | "top-left" | null;
  /** When the widget's code loads (attribute load): on intent (default: hover, focus, touch,
   *  click or open()), when the browser is idle, or at once. */
  load: "intent" | "idle" | "eager" | null;

  addEventListener<K extends keyof SpeakNodeWidgetElementEventMap>(
    type: K,
    listener: (this: SpeakNodeWidgetElement, event: SpeakNodeWidgetElementEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof SpeakNodeWidgetElementEventMap>(
    type: K,
    listener: (this: SpeakNodeWidgetElement, event: SpeakNodeWidgetElementEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | EventListenerOptions): void;
}

/** window.SpeakNode: acts on the page's widget (the script tag's, or else the first
 *  <speaknode-widget> in the document). Its tokenProvider serves every widget that has none
 *  of its own. */
interface SpeakNodeApi extends SpeakNodeControls {
  /** Listens on the document to a widget event, named with or without "speaknode:"; returns
   *  the function that stops listening. */
  on<N extends SpeakNodeEventName>(
    event: N,
    callback: (detail: SpeakNodeEventOf<N>["detail"], event: SpeakNodeEventOf<N>) => void,
  ): () => void;
}

interface HTMLElementTagNameMap {
  "speaknode-widget": SpeakNodeWidgetElement;
}

interface DocumentEventMap extends SpeakNodeEventMap {}
interface WindowEventMap extends SpeakNodeEventMap {}

declare var SpeakNode: SpeakNodeApi;
