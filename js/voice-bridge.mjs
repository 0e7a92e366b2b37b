// The widget's bridge to the official LiveKit browser SDK (livekit-client, pinned in
// package.json). The build bundles this file with the SDK into app/voice.mjs (js/bundle.mjs),
// and the widget's wasm imports that only when a call starts (src/voice/livekit.rs), so a
// page view never pays for it.
//
// Rust keeps all state and UI; this file only translates. Everything it reports goes through
// one callback, `onEvent(json, track)`: `json` is a JSON string whose `type` field names the
// event (the schema is in src/voice/livekit.rs, which decodes it), `track` is a
// MediaStreamTrack for the two events that carry one and undefined otherwise. Failed calls
// reject with a JSON string `{"code", "name", "message"}` for the same reason: plain data
// crosses into Rust without reflection.
//
// The bridge never touches the host page's DOM; the SDK itself does in two places (an iOS
// dummy <audio> on document.body, a body click listener while its AudioContext is
// suspended), see ARCHITECTURE.md.
import {
  ConnectionError,
  ConnectionErrorReason,
  DisconnectReason,
  ParticipantKind,
  Room,
  RoomEvent,
  Track,
} from "livekit-client";

/** The text stream topics the widget reads: the agent's captions (of both sides) and chat. */
const TOPICS = ["lk.transcription", "lk.chat"];

/** Participant attributes of LiveKit Agents (livekit/agents, components-js `useAgent`). */
const AGENT_STATE = "lk.agent.state";
const PUBLISH_ON_BEHALF = "lk.publish_on_behalf";

/**
 * Creates a bridge around one Room; one bridge serves one call.
 * @param {(json: string, track?: MediaStreamTrack) => void} onEvent
 */
export function create(onEvent) {
  const room = new Room({
    // One audio track each way: nothing to adapt or to switch layers for.
    adaptiveStream: false,
    dynacast: false,
    // Playback stays on media elements: Chrome's echo canceller only hears audio played
    // through WebRTC's own output path, not through Web Audio.
    webAudioMix: false,
    disconnectOnPageLeave: true,
    audioCaptureDefaults: {
      echoCancellation: true,
      noiseSuppression: true,
      autoGainControl: true,
    },
    // The pre-connect buffer records the first words while the room is still joining and
    // hands them to the agent once it is there. It has to be a publish default: in
    // livekit-client 2.23.0, setMicrophoneEnabled's third argument does not reach the check
    // that starts the buffer (it reads the room's publishDefaults merged with the *capture*
    // options), so passing it there silently records nothing. The bridge's own openMic reads
    // it from here too, as the SDK does.
    publishDefaults: { preConnectBuffer: true },
    // One quick retry of the SDK's own; after that the widget decides (a fresh grant, or an
    // error the visitor can act on) instead of the SDK retrying for half a minute.
    reconnectPolicy: {
      nextRetryDelayInMs: ({ retryCount }) => (retryCount < 1 ? 300 : null),
    },
  });

  // Set first thing in disconnect(): from then on nothing reaches Rust, whose callback is
  // about to be dropped.
  let closed = false;
  let disconnecting = null;
  /** Identity of the participant the widget talks to, once one joined. */
  let agent = null;
  /** Tracks already handed to Rust, so the scans after connecting do not repeat events. */
  const forwarded = new WeakSet();
  /** Microphone operations in flight: their own rejection reports a failure, not the event. */
  let micBusy = 0;
  /** The microphone being opened (permission prompt, then publication), while it is. */
  let opening = null;
  /**
   * Every microphone track this bridge created or switched: what disconnect() must leave
   * stopped. The room stops the tracks it published when it disconnects, but not one that
   * the browser hands over only after that (a permission prompt answered late, a device
   * switch still acquiring), which would keep the microphone recording.
   */
  const micTracks = new Set();
  // Not cleared: a switch still acquiring hands the same track a new MediaStreamTrack after
  // the room stopped it, so it is stopped again when the switch settles (stop is idempotent).
  const stopMicTracks = () => {
    for (const track of micTracks) track.stop();
  };

  const emit = (event, track) => {
    if (closed) return;
    try {
      onEvent(JSON.stringify(event), track);
    } catch (error) {
      // Never throw into the SDK's event emitter (that would break its own bookkeeping);
      // the error still shows in the console.
      queueMicrotask(() => {
        throw error;
      });
    }
  };

  const forward = (type, mediaTrack) => {
    if (mediaTrack && !forwarded.has(mediaTrack)) {
      forwarded.add(mediaTrack);
      emit({ type }, mediaTrack);
    }
  };

  const isAgent = (participant) =>
    participant.kind === ParticipantKind.AGENT && !participant.attributes?.[PUBLISH_ON_BEHALF];

  const noticeAgent = (participant) => {
    if (agent !== null || !isAgent(participant)) return;
    agent = participant.identity;
    emit({ type: "agent_joined", identity: agent });
    const state = participant.attributes?.[AGENT_STATE];
    if (state) emit({ type: "agent_state", state });
  };

  // An avatar worker (an AGENT publishing on the agent's behalf) speaks with the agent's
  // voice, so any AGENT's audio is the agent's.
  const noticeTrack = (track, participant) => {
    if (track?.kind === Track.Kind.Audio && participant.kind === ParticipantKind.AGENT) {
      forward("agent_track", track.mediaStreamTrack);
    }
  };

  const noticeMic = () => {
    const publication = room.localParticipant.getTrackPublication(Track.Source.Microphone);
    forward("mic_track", publication?.track?.mediaStreamTrack);
  };

  const emitPlayback = () => emit({ type: "playback", blocked: !room.canPlaybackAudio });

  const emitDevices = async () => {
    try {
      emit({ type: "devices", devices: await listMics() });
    } catch {
      // enumerateDevices failing leaves the previous list standing; nothing to report.
    }
  };

  // Events that arrive while the room is still connecting are dropped by the SDK
  // (`emitWhenConnected`), so whoever was already there is read once connected.
  const scanRoom = () => {
    for (const participant of room.remoteParticipants.values()) {
      noticeAgent(participant);
      for (const publication of participant.audioTrackPublications.values()) {
        noticeTrack(publication.track, participant);
      }
    }
    noticeMic();
  };

  const listeners = [
    [
      RoomEvent.ConnectionStateChanged,
      (state) => {
        // "disconnected" is reported by RoomEvent.Disconnected, which knows why.
        const link = {
          connecting: "connecting",
          connected: "connected",
          reconnecting: "reconnecting",
          signalReconnecting: "reconnecting",
        }[state];
        if (link) emit({ type: "link", state: link });
      },
    ],
    [
      RoomEvent.Disconnected,
      (reason) => {
        emit({
          type: "link",
          state: "disconnected",
          reason: disconnectReason(reason),
          detail: DisconnectReason[reason ?? DisconnectReason.UNKNOWN_REASON] ?? String(reason),
        });
      },
    ],
    [RoomEvent.ParticipantConnected, noticeAgent],
    [
      RoomEvent.ParticipantDisconnected,
      (participant) => {
        if (participant.identity !== agent) return;
        emit({ type: "agent_left", identity: agent });
        agent = null;
        // A hand-off to another agent already in the room.
        for (const other of room.remoteParticipants.values()) noticeAgent(other);
      },
    ],
    [
      RoomEvent.ParticipantAttributesChanged,
      (changed, participant) => {
        if (participant.identity === agent && AGENT_STATE in changed) {
          emit({ type: "agent_state", state: changed[AGENT_STATE] });
        }
      },
    ],
    [RoomEvent.TrackSubscribed, (track, _publication, participant) => noticeTrack(track, participant)],
    [
      RoomEvent.LocalTrackPublished,
      (publication) => {
        if (publication.source === Track.Source.Microphone) {
          forward("mic_track", publication.track?.mediaStreamTrack);
        }
      },
    ],
    [RoomEvent.AudioPlaybackStatusChanged, emitPlayback],
    [RoomEvent.MediaDevicesChanged, emitDevices],
    [
      // The SDK changed the microphone by itself (the one in use was unplugged, the system
      // default changed): the picker shows the new one, the meter listens to its track.
      RoomEvent.ActiveDeviceChanged,
      (kind, deviceId) => {
        if (kind !== "audioinput") return;
        emit({ type: "device", id: deviceId });
        noticeMic();
      },
    ],
    [
      RoomEvent.MediaDevicesError,
      (error, kind) => {
        if (micBusy === 0 && (kind === undefined || kind === "audioinput")) {
          emit({ type: "mic", name: error?.name ?? "Error", message: String(error?.message ?? "") });
        }
      },
    ],
  ];
  for (const [event, listener] of listeners) room.on(event, listener);

  // Each stream is forwarded chunk by chunk as it arrives (the SDK yields deltas), then once
  // more with `done` and the attributes as they stand after the trailer, which is where an
  // agent marks a caption final.
  const onText = (reader, participantInfo) => {
    const info = reader.info;
    const chunk = (text, done) => ({
      type: "text",
      topic: info.topic,
      stream_id: info.id,
      sender: participantInfo.identity,
      attributes: { ...(reader.info.attributes ?? {}) },
      text,
      done,
    });
    (async () => {
      let aborted = false;
      try {
        for await (const text of reader) emit(chunk(text, false));
      } catch {
        // The sender left or the room closed mid-stream: close the line with what came.
        aborted = true;
      }
      emit(aborted ? { ...chunk("", true), aborted } : chunk("", true));
    })();
  };
  // Registered before connecting: streams that open during the join are not lost.
  for (const topic of TOPICS) room.registerTextStreamHandler(topic, onText);

  const micOp = async (operation) => {
    micBusy += 1;
    try {
      return await operation();
    } catch (error) {
      throw failure("mic", error);
    } finally {
      micBusy -= 1;
      // Whatever the operation acquired after disconnect() was called is stopped here.
      if (closed) stopMicTracks();
    }
  };

  /**
   * Opens and publishes the microphone, as the SDK's setMicrophoneEnabled(true) does when
   * nothing is published yet (LocalParticipant.setTrackEnabled in livekit-client 2.23.0),
   * but with the track in hand between the permission prompt and the publication: if the
   * bridge was disconnected while the prompt was open, the new track is stopped at once
   * instead of waiting (capturing) for a room that is gone. One opening at a time, as the
   * SDK's `pendingPublishing` guard does.
   */
  const openMic = (deviceId) => {
    opening ??= (async () => {
      let tracks = [];
      try {
        tracks = await room.localParticipant.createTracks({ audio: deviceId ? { deviceId } : true });
        for (const track of tracks) micTracks.add(track);
        if (closed) return;
        for (const track of tracks) {
          // What setTrackEnabled does next. startPreConnectBuffer is marked @internal in the
          // SDK's types, but it is the call setTrackEnabled makes for a microphone when the
          // publish defaults ask for the buffer, and publish() sends what it recorded.
          if (room.options.publishDefaults?.preConnectBuffer && track.kind === Track.Kind.Audio) {
            track.startPreConnectBuffer();
          }
        }
        await Promise.all(
          tracks.map((track) => room.localParticipant.publishTrack(track, { source: Track.Source.Microphone })),
        );
      } catch (error) {
        // As setTrackEnabled does: a track that was not published is not kept.
        for (const track of tracks) {
          track.stop();
          micTracks.delete(track);
        }
        throw error;
      } finally {
        opening = null;
        if (closed) stopMicTracks();
      }
    })();
    return opening;
  };

  /** Lets an opening in flight finish (or fail: that one reports itself) first. */
  const afterOpening = () => (opening ?? Promise.resolve()).catch(() => {});

  const micTrack = () => room.localParticipant.getTrackPublication(Track.Source.Microphone)?.track;

  const listMics = async () => {
    // No permission prompt from listing: labels fill in once the microphone is granted.
    const devices = await Room.getLocalDevices("audioinput", false);
    return devices.map((device) => ({ id: device.deviceId, label: device.label }));
  };

  return {
    /**
     * Joins the room; with `mic`, opens the microphone in parallel with the pre-connect
     * buffer on (LiveKit's agent starters do the same), so the first words reach the agent.
     * Resolves once joined, without waiting for the visitor to answer the permission prompt;
     * a microphone failure never fails the join: it becomes a `mic` event.
     */
    async connect(url, token, { mic = false, deviceId = null } = {}) {
      micBusy += 1;
      const micReady = mic ? openMic(deviceId) : Promise.resolve();
      const joining = room.connect(url, token, { autoSubscribe: true });
      // The microphone's outcome is reported once both are known: a failed join fails the
      // pending publication too, and that is not a microphone problem.
      Promise.allSettled([micReady, joining]).then(([opened, joined]) => {
        micBusy -= 1;
        if (joined.status === "rejected") return;
        if (opened.status === "rejected") {
          const error = opened.reason;
          emit({ type: "mic", name: error?.name ?? "Error", message: String(error?.message ?? "") });
        } else {
          noticeMic();
        }
      });
      try {
        await joining;
      } catch (error) {
        throw connectFailure(error);
      }
      scanRoom();
      emitPlayback();
    },

    /** Mutes or unmutes; opens the microphone if it never was (a text-first start). */
    setMic(on) {
      return micOp(async () => {
        // The SDK would wait for its own opening in flight; this one is the bridge's.
        await afterOpening();
        if (on && micTrack() === undefined) {
          await openMic();
        } else {
          // Mute or unmute the published track (nothing to do if off and never opened).
          await room.localParticipant.setMicrophoneEnabled(on);
        }
        noticeMic();
      });
    },

    /** Switches to another microphone; a new MediaStreamTrack goes to Rust for the meter. */
    switchMic(id) {
      return micOp(async () => {
        // The switch acquires a new MediaStreamTrack for this track: if disconnect() comes
        // first, the room stops the track before the new one arrives, so micOp stops it again.
        const track = micTrack();
        if (track) micTracks.add(track);
        const switched = await room.switchActiveDevice("audioinput", id, true);
        if (!switched) throw Object.assign(new Error("device not switched"), { name: "NotFoundError" });
        noticeMic();
      });
    },

    async listMics() {
      try {
        return JSON.stringify(await listMics());
      } catch (error) {
        throw failure("sdk", error);
      }
    },

    /** Unblocks playback; must run inside a click. */
    async startAudio() {
      try {
        await room.startAudio();
      } catch (error) {
        throw failure("sdk", error);
      }
      emitPlayback();
    },

    /** Sends a typed message to the agent (LiveKit Agents read `lk.chat`). */
    async sendChat(text) {
      try {
        await room.localParticipant.sendText(text, { topic: "lk.chat" });
      } catch (error) {
        throw failure("sdk", error);
      }
    },

    /**
     * Leaves the room and unregisters everything this bridge registered; idempotent. No
     * event reaches Rust once this is called, not even the SDK's own "disconnected".
     */
    disconnect() {
      if (disconnecting === null) {
        closed = true;
        for (const [event, listener] of listeners) room.off(event, listener);
        for (const topic of TOPICS) room.unregisterTextStreamHandler(topic);
        // Then stop what the room did not: a track still waiting to be published.
        disconnecting = room
          .disconnect()
          .catch(() => {})
          .then(stopMicTracks);
      }
      return disconnecting;
    },
  };
}

/** A rejection Rust can read: `{"code", "name", "message"}` as a JSON string. */
function failure(code, error) {
  return JSON.stringify({
    code,
    name: String(error?.name ?? "Error"),
    message: String(error?.message ?? error ?? ""),
  });
}

/** Why `room.connect` failed, in the widget's terms. */
function connectFailure(error) {
  if (!(error instanceof ConnectionError)) return failure("sdk", error);
  switch (error.reason) {
    case ConnectionErrorReason.NotAllowed:
    // The server turned the join away while it was being made.
    case ConnectionErrorReason.LeaveRequest:
      return failure("refused", error);
    case ConnectionErrorReason.Timeout:
      return failure("timeout", error);
    case ConnectionErrorReason.ServerUnreachable:
    case ConnectionErrorReason.WebSocket:
    case ConnectionErrorReason.InternalError:
    case ConnectionErrorReason.ServiceNotFound:
      return error.status === 401 || error.status === 403
        ? failure("refused", error)
        : failure("unreachable", error);
    default:
      return failure("sdk", error);
  }
}

/** The SDK's DisconnectReason, in the widget's terms. */
function disconnectReason(reason) {
  switch (reason) {
    case DisconnectReason.CLIENT_INITIATED:
      return "left";
    case DisconnectReason.ROOM_DELETED:
    case DisconnectReason.ROOM_CLOSED:
    case DisconnectReason.PARTICIPANT_REMOVED:
      return "room_closed";
    // What the SDK turns a refused join (ConnectionErrorReason.NotAllowed) into. JOIN_FAILURE
    // is what it turns an unreachable server into, so that one is a network problem.
    case DisconnectReason.USER_REJECTED:
      return "refused";
    // Another connection took this identity (the same visitor in another tab): trying again
    // on its own would only take it back, so the widget waits for the visitor to ask.
    case DisconnectReason.DUPLICATE_IDENTITY:
      return "replaced";
    default:
      return "network";
  }
}
