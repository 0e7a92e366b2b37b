//! The widget's icons, inline SVG paths: no image files, fonts or requests, and they take
//! the text colour (`fill: currentColor`), so themes and forced colours recolour them.

use leptos::prelude::*;

use crate::Mode;

const MIC: &str = "M12 15a3 3 0 0 0 3-3V6a3 3 0 1 0-6 0v6a3 3 0 0 0 3 3Zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.92V21h2v-2.08A7 7 0 0 0 19 12h-2Z";
const CHAT: &str =
    "M6 4h12a2 2 0 0 1 2 2v9a2 2 0 0 1-2 2h-7l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2Zm2 5v2h8V9H8Z";
const CLOSE: &str =
    "M6.4 5 5 6.4 10.6 12 5 17.6 6.4 19l5.6-5.6 5.6 5.6 1.4-1.4-5.6-5.6L19 6.4 17.6 5 12 10.6Z";
const THUMB: &str = "M2 21h4V9H2v12Zm20-11a2 2 0 0 0-2-2h-6.3l1-4.6v-.3c0-.4-.2-.8-.5-1.1L13.2 1 6.6 7.6C6.2 8 6 8.5 6 9v10a2 2 0 0 0 2 2h9c.8 0 1.5-.5 1.8-1.2l3-7c.1-.3.2-.5.2-.8v-2Z";

/// The launcher's icon: a speech bubble when the widget only chats, a microphone when it
/// can listen.
pub fn launcher(mode: Mode) -> impl IntoView {
    let path = match mode {
        Mode::Text => CHAT,
        Mode::Voice | Mode::Hybrid => MIC,
    };
    view! {
        <svg class="sn-launcher-icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
            <path d=path />
        </svg>
    }
}

pub fn close() -> impl IntoView {
    view! {
        <svg class="sn-icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
            <path d=CLOSE />
        </svg>
    }
}

/// Thumbs up, or down (the same hand turned by the stylesheet).
pub fn thumb(down: bool) -> impl IntoView {
    view! {
        <svg
            class=if down { "sn-icon sn-icon-down" } else { "sn-icon" }
            viewBox="0 0 24 24"
            aria-hidden="true"
            focusable="false"
        >
            <path d=THUMB />
        </svg>
    }
}
