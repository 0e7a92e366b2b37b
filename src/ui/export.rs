//! "Download transcript": the conversation as a plain-text file, one line per turn
//! (`[HH:MM] Speaker: text`), saved through a Blob URL the widget revokes right after.

use std::time::Duration;

use speaknode_api::Turn;
use wasm_bindgen::{JsCast, JsValue};

use crate::i18n::Messages;
use crate::ui::clock;

/// The file's name: `speaknode-conversation-<id>.txt`, with anything but letters, digits,
/// `-` and `_` in the id replaced, so no id can steer the name or its extension.
pub fn file_name(conversation_id: &str) -> String {
    let id: String = conversation_id
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("speaknode-conversation-{id}.txt")
}

/// The transcript as text: one `[HH:MM] Speaker: text` line per turn, on the clock
/// `offset` gives for each instant. A turn without a readable time has no bracket; an
/// interrupted one is marked as on screen.
pub fn transcript_text(
    turns: &[Turn],
    agent_name: &str,
    messages: &Messages,
    offset: impl Fn(i64) -> i32,
) -> String {
    let mut text = String::new();
    for turn in turns {
        if let Some(at) = turn.at.as_deref().and_then(clock::parse_rfc3339) {
            text.push('[');
            text.push_str(&clock::hh_mm(at, offset(at)));
            text.push_str("] ");
        }
        text.push_str(&messages.speaker(turn.role, agent_name));
        text.push_str(": ");
        // Line breaks inside a turn would read as new turns; continuation lines are indented.
        text.push_str(&turn.text.trim().replace('\n', "\n    "));
        if turn.interrupted {
            text.push(' ');
            text.push_str(messages.interrupted);
        }
        text.push('\n');
    }
    text
}

/// Saves `text` as a file named `name`: a Blob URL behind a temporary `<a download>` in
/// `parent` (inside the shadow root, so the page never sees it), clicked and removed. The
/// URL is revoked on the next task, once the browser has taken the download.
pub fn save(parent: &web_sys::Element, name: &str, text: &str) -> Result<(), JsValue> {
    let document = parent
        .owner_document()
        .ok_or_else(|| JsValue::from_str("no document"))?;
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("text/plain;charset=utf-8");
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob)?;
    let link: web_sys::HtmlAnchorElement = document.create_element("a")?.unchecked_into();
    link.set_href(&url);
    link.set_download(name);
    // `hidden`, not a style attribute: a strict style-src forbids inline styles.
    link.set_hidden(true);
    parent.append_child(&link)?;
    link.click();
    link.remove();
    leptos::prelude::set_timeout(
        move || {
            let _ = web_sys::Url::revoke_object_url(&url);
        },
        Duration::ZERO,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::{DE, EN};
    use speaknode_api::Role;

    fn turn(id: &str, role: Role, text: &str, at: Option<&str>) -> Turn {
        Turn {
            id: id.into(),
            role,
            text: text.into(),
            at: at.map(Into::into),
            interrupted: false,
        }
    }

    #[test]
    fn one_line_per_turn_with_time_and_speaker() {
        let mut cut = turn(
            "3",
            Role::Agent,
            "Yes, in three",
            Some("2026-11-29T08:31:00Z"),
        );
        cut.interrupted = true;
        let turns = [
            turn(
                "1",
                Role::Agent,
                "Hi! **How** can I help?",
                Some("2026-11-29T08:30:01Z"),
            ),
            turn(
                "2",
                Role::User,
                "Do you ship\nto Norway?",
                Some("2026-11-29T08:30:59Z"),
            ),
            cut,
            turn("4", Role::Unknown, "Noted.", None),
        ];
        assert_eq!(
            transcript_text(&turns, "Ava", &EN, |_| 60),
            "[09:30] Ava: Hi! **How** can I help?\n\
             [09:30] You: Do you ship\n    to Norway?\n\
             [09:31] Ava: Yes, in three (interrupted)\n\
             Ava: Noted.\n"
        );
        assert!(transcript_text(&turns, "Ava", &DE, |_| 0).contains("[08:30] Sie: Do you ship"));
        assert_eq!(transcript_text(&[], "Ava", &EN, |_| 0), "");
    }

    #[test]
    fn the_file_name_carries_the_conversation_id_and_nothing_else() {
        assert_eq!(file_name("conv-1_A"), "speaknode-conversation-conv-1_A.txt");
        assert_eq!(
            file_name("../../etc/passwd.exe"),
            "speaknode-conversation-______etc_passwd_exe.txt"
        );
    }
}
