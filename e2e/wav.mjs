// The fake microphone, its sound and its Chromium flags, shared by the end-to-end tests and
// the bench: a module of its own because e2e/livekit-conformance.test.mjs also runs without
// xtask's SN_* variables, which support.mjs requires on import.

/** Chromium flags for a fake microphone that plays the WAV at `wavPath` in a loop, with the
 *  permission prompt answered (`fakeUi`) or left to the page's permission state. */
export function fakeMicArgs(wavPath, { fakeUi = true } = {}) {
  return [
    ...(fakeUi ? ["--use-fake-ui-for-media-stream"] : []),
    "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${wavPath}`,
  ];
}

/** A 48 kHz mono 16-bit WAV of a `hz` sine at −6 dBFS, `seconds` long: Chromium's fake
 *  microphone (`--use-file-for-fake-audio-capture`) loops it. */
export function sineWav(hz, seconds) {
  return burstWav(hz, seconds, 0);
}

/** A 48 kHz mono 16-bit WAV of a `hz` sine at −6 dBFS for `on` seconds, then `off` seconds of
 *  silence: looped by the fake microphone, a visitor who speaks, pauses, and speaks again. */
export function burstWav(hz, on, off) {
  const rate = 48_000;
  const voiced = Math.round(rate * on);
  const samples = voiced + Math.round(rate * off);
  const buffer = Buffer.alloc(44 + samples * 2);
  buffer.write("RIFF", 0);
  buffer.writeUInt32LE(36 + samples * 2, 4);
  buffer.write("WAVEfmt ", 8);
  buffer.writeUInt32LE(16, 16);
  buffer.writeUInt16LE(1, 20);
  buffer.writeUInt16LE(1, 22);
  buffer.writeUInt32LE(rate, 24);
  buffer.writeUInt32LE(rate * 2, 28);
  buffer.writeUInt16LE(2, 32);
  buffer.writeUInt16LE(16, 34);
  buffer.write("data", 36);
  buffer.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < voiced; i++) {
    buffer.writeInt16LE(Math.round(0.5 * 32767 * Math.sin((2 * Math.PI * hz * i) / rate)), 44 + i * 2);
  }
  return buffer;
}
