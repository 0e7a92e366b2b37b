//! Keyboard focus while the panel is open: where focus goes on open, how Tab cycles, and
//! the DOM queries behind both.
//!
//! The trap covers the panel and the launcher. The launcher is the panel's own toggle and
//! sits right beside it, so keeping it in the cycle lets keyboard users close the panel the
//! way they opened it; everything else on the page is one Escape away (Escape closes the
//! panel and puts focus back on the launcher, from where Tab leaves the widget as usual).
//! The panel is therefore not `aria-modal`: the page stays usable and reachable.

use wasm_bindgen::JsCast;

use crate::session::{Feedback, Session};

/// Which control gets focus when the panel opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initial {
    /// Start or try again: the one thing to do.
    Start,
    /// The conversation is over: rating it is what is left.
    Rate,
    /// A conversation is running: the first control of the panel. Ending is never the
    /// default, so a stray Enter cannot hang up.
    Close,
}

impl Initial {
    pub fn for_session(session: &Session, can_start: bool) -> Self {
        if session.can_rate() && session.feedback == Feedback::NotSent {
            Self::Rate
        } else if can_start {
            Self::Start
        } else {
            Self::Close
        }
    }

    /// The class of the control, for a query inside the panel.
    pub fn selector(self) -> &'static str {
        match self {
            Self::Start => ".sn-start",
            Self::Rate => ".sn-feedback-up",
            Self::Close => ".sn-close",
        }
    }
}

/// The index Tab (or Shift+Tab with `backwards`) moves to among `count` focusable controls,
/// from the focused one at `current` (`None`: focus is on none of them).
pub fn next_index(current: Option<usize>, count: usize, backwards: bool) -> Option<usize> {
    if count == 0 {
        return None;
    }
    Some(match (current, backwards) {
        (None, false) => 0,
        (None, true) => count - 1,
        (Some(index), false) => (index + 1) % count,
        (Some(index), true) => (index + count - 1) % count,
    })
}

/// What a keyboard user can Tab to, in document order.
const FOCUSABLE: &str = "a[href], button:not([disabled]), textarea:not([disabled]), \
     input:not([disabled]), [tabindex]:not([tabindex=\"-1\"])";

/// The focusable controls inside `scope` that are rendered (a control hidden by the
/// stylesheet, like the launcher behind a full-screen panel, is skipped).
pub fn focusable(scope: &web_sys::Element) -> Vec<web_sys::HtmlElement> {
    let Ok(nodes) = scope.query_selector_all(FOCUSABLE) else {
        return Vec::new();
    };
    (0..nodes.length())
        .filter_map(|index| nodes.item(index))
        .filter_map(|node| node.dyn_into::<web_sys::HtmlElement>().ok())
        .filter(|element| element.get_client_rects().length() > 0)
        .collect()
}

/// Moves focus for a Tab press inside `scope`; returns whether it did (and so whether the
/// browser's own move must be prevented).
pub fn cycle(
    scope: &web_sys::Element,
    from: Option<&web_sys::EventTarget>,
    backwards: bool,
) -> bool {
    let controls = focusable(scope);
    let current = from.and_then(|target| {
        controls
            .iter()
            .position(|control| AsRef::<web_sys::EventTarget>::as_ref(control) == target)
    });
    match next_index(current, controls.len(), backwards) {
        Some(index) => {
            let _ = controls[index].focus();
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Phase;
    use speaknode_api::{ConversationStatus, Rating};

    #[test]
    fn tab_cycles_forwards_and_backwards_and_wraps() {
        assert_eq!(next_index(Some(0), 3, false), Some(1));
        assert_eq!(next_index(Some(2), 3, false), Some(0), "wraps to the first");
        assert_eq!(next_index(Some(0), 3, true), Some(2), "wraps to the last");
        assert_eq!(next_index(Some(1), 3, true), Some(0));
        assert_eq!(next_index(None, 3, false), Some(0));
        assert_eq!(next_index(None, 3, true), Some(2));
        assert_eq!(next_index(None, 0, false), None);
        assert_eq!(next_index(Some(0), 1, false), Some(0));
    }

    #[test]
    fn focus_on_open_goes_to_what_there_is_to_do() {
        let idle = Session::default();
        assert_eq!(Initial::for_session(&idle, true), Initial::Start);
        let running = Session {
            phase: Phase::Live(ConversationStatus::Active),
            ..Session::default()
        };
        assert_eq!(Initial::for_session(&running, false), Initial::Close);
        let over = Session {
            phase: Phase::Live(ConversationStatus::Completed),
            ..Session::default()
        };
        assert_eq!(
            Initial::for_session(&over, true),
            Initial::Rate,
            "rating before starting over"
        );
        let rated = Session {
            feedback: Feedback::Sent(Rating::Up),
            ..over
        };
        assert_eq!(Initial::for_session(&rated, true), Initial::Start);
    }
}
