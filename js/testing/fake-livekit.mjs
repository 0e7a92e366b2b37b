// A stand-in for the parts of livekit-client the voice bridge uses, for the bridge's unit
// tests (js/voice-bridge.test.mjs bundles the bridge against this file instead of the SDK).
// Names and values mirror livekit-client 2.23.0's exports; the room is driven by the test.

export const ConnectionErrorReason = {
  NotAllowed: 0,
  ServerUnreachable: 1,
  InternalError: 2,
  Cancelled: 3,
  LeaveRequest: 4,
  Timeout: 5,
  WebSocket: 6,
  ServiceNotFound: 7,
};

export class ConnectionError extends Error {
  constructor(message, reason, status) {
    super(message);
    this.name = "ConnectionError";
    this.reason = reason;
    this.status = status;
  }
}

// protobuf-es enums map both ways, as the SDK's do.
export const DisconnectReason = {};
for (const [name, value] of Object.entries({
  UNKNOWN_REASON: 0,
  CLIENT_INITIATED: 1,
  DUPLICATE_IDENTITY: 2,
  SERVER_SHUTDOWN: 3,
  PARTICIPANT_REMOVED: 4,
  ROOM_DELETED: 5,
  STATE_MISMATCH: 6,
  JOIN_FAILURE: 7,
  MIGRATION: 8,
  SIGNAL_CLOSE: 9,
  ROOM_CLOSED: 10,
  USER_UNAVAILABLE: 11,
  USER_REJECTED: 12,
  SIP_TRUNK_FAILURE: 13,
  CONNECTION_TIMEOUT: 14,
})) {
  DisconnectReason[name] = value;
  DisconnectReason[value] = name;
}

export const ParticipantKind = { STANDARD: 0, INGRESS: 1, EGRESS: 2, SIP: 3, AGENT: 4 };

export const RoomEvent = {
  ConnectionStateChanged: "connectionStateChanged",
  Disconnected: "disconnected",
  ParticipantConnected: "participantConnected",
  ParticipantDisconnected: "participantDisconnected",
  ParticipantAttributesChanged: "participantAttributesChanged",
  TrackSubscribed: "trackSubscribed",
  LocalTrackPublished: "localTrackPublished",
  AudioPlaybackStatusChanged: "audioPlaybackChanged",
  MediaDevicesChanged: "mediaDevicesChanged",
  ActiveDeviceChanged: "activeDeviceChanged",
  MediaDevicesError: "mediaDevicesError",
};

export const Track = {
  Kind: { Audio: "audio", Video: "video" },
  Source: { Microphone: "microphone", Camera: "camera" },
};

/** A remote participant as the SDK describes one. */
export function participant(identity, { kind = ParticipantKind.STANDARD, attributes = {}, audio = [] } = {}) {
  return {
    identity,
    kind,
    attributes,
    audioTrackPublications: new Map(audio.map((track, index) => [`TR_${index}`, { track }])),
  };
}

/** A remote audio track wrapping a stand-in MediaStreamTrack. */
export function audioTrack(id) {
  return { kind: Track.Kind.Audio, mediaStreamTrack: { id, kind: "audio" } };
}

/** A stand-in browser MediaStreamTrack: live until stopped. */
export function mediaTrack(id) {
  return {
    id,
    kind: "audio",
    readyState: "live",
    stop() {
      this.readyState = "ended";
    },
  };
}

/**
 * The SDK's LocalAudioTrack as the bridge uses it: stop() stops the MediaStreamTrack it holds
 * at the time (a device switch swaps that one), and the pre-connect buffer is a flag.
 */
export class LocalAudioTrack {
  constructor(id) {
    this.kind = Track.Kind.Audio;
    this.source = Track.Source.Microphone;
    this.mediaStreamTrack = mediaTrack(id);
    this.preConnectBuffer = false;
    this.isMuted = false;
  }

  startPreConnectBuffer() {
    this.preConnectBuffer = true;
  }

  stop() {
    this.mediaStreamTrack.stop();
  }
}

export class Room {
  /** Every room created, newest last. */
  static rooms = [];
  static devices = [{ deviceId: "default", label: "Default", kind: "audioinput" }];

  static async getLocalDevices(kind, requestPermissions) {
    Room.listed = { kind, requestPermissions };
    return Room.devices;
  }

  constructor(options) {
    this.options = options;
    this.listeners = new Map();
    this.textHandlers = new Map();
    this.remoteParticipants = new Map();
    this.canPlaybackAudio = true;
    this.calls = [];
    // What the test makes connect(), the permission prompt (getUserMedia), muting and
    // switching devices do.
    this.connectOutcome = Promise.resolve();
    this.capture = () => Promise.resolve();
    this.micOutcome = () => Promise.resolve();
    this.switchOutcome = () => Promise.resolve();
    /** The published microphone (a LocalAudioTrack or a test's stand-in). */
    this.micTrack = null;
    /** Every LocalAudioTrack createTracks made, whether or not it was published. */
    this.created = [];
    this.closed = false;
    const room = this;
    this.localParticipant = {
      // As LocalParticipant.setTrackEnabled: mute or unmute what is published, else create
      // a track and publish it (with the pre-connect buffer when the publish defaults ask).
      async setMicrophoneEnabled(on, ...options) {
        room.calls.push(["setMicrophoneEnabled", on, ...options]);
        if (room.micTrack || !on) {
          await room.micOutcome(on);
          if (room.micTrack) room.micTrack.isMuted = !on;
          return;
        }
        const tracks = await this.createTracks({ audio: options[0] ?? true });
        if (room.options.publishDefaults?.preConnectBuffer) tracks[0].startPreConnectBuffer();
        await this.publishTrack(tracks[0]);
      },
      async createTracks(options) {
        room.calls.push(["createTracks", options]);
        await room.capture(options);
        const track = new LocalAudioTrack(`mic-${room.created.length + 1}`);
        room.created.push(track);
        return [track];
      },
      // The SDK defers a publication until the join completes; into a room that has been
      // disconnected it waits (15 s in the SDK, here for ever) with the track still live.
      async publishTrack(track, options) {
        room.calls.push(["publishTrack", track.mediaStreamTrack.id, options]);
        await room.connectOutcome;
        if (room.closed) return new Promise(() => {});
        room.micTrack = track;
        const publication = { source: Track.Source.Microphone, track };
        room.emit(RoomEvent.LocalTrackPublished, publication);
        return publication;
      },
      getTrackPublication(source) {
        return source === Track.Source.Microphone && room.micTrack ? { track: room.micTrack } : undefined;
      },
      async sendText(text, options) {
        room.calls.push(["sendText", text, options]);
        return { id: "TS_1", topic: options.topic };
      },
    };
    Room.rooms.push(this);
  }

  on(event, listener) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(listener);
    return this;
  }

  off(event, listener) {
    this.listeners.get(event)?.delete(listener);
    return this;
  }

  /** How many listeners are registered, over all events. */
  listenerCount() {
    let count = 0;
    for (const set of this.listeners.values()) count += set.size;
    return count;
  }

  emit(event, ...args) {
    for (const listener of [...(this.listeners.get(event) ?? [])]) listener(...args);
  }

  registerTextStreamHandler(topic, handler) {
    if (this.textHandlers.has(topic)) throw new Error(`handler for ${topic} already set`);
    this.textHandlers.set(topic, handler);
  }

  unregisterTextStreamHandler(topic) {
    this.textHandlers.delete(topic);
  }

  async connect(url, token, options) {
    this.calls.push(["connect", url, token, options]);
    return this.connectOutcome;
  }

  // As Room.handleDisconnect: the published tracks are unpublished and stopped.
  async disconnect() {
    this.calls.push(["disconnect"]);
    this.closed = true;
    this.micTrack?.stop?.();
    this.micTrack = null;
  }

  async startAudio() {
    this.calls.push(["startAudio"]);
  }

  // As LocalTrack.restartTrack: the old MediaStreamTrack stops, a new one is acquired (the
  // test decides when) and the same LocalAudioTrack holds it from then on.
  async switchActiveDevice(kind, id, exact) {
    this.calls.push(["switchActiveDevice", kind, id, exact]);
    const track = this.micTrack;
    track?.mediaStreamTrack.stop?.();
    await this.switchOutcome(id);
    if (track) track.mediaStreamTrack = mediaTrack(`${id}-1`);
    return true;
  }
}
