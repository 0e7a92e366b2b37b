//! Rating a finished conversation: thumbs up or down, an optional comment, and a thank-you
//! once the platform has it.

use leptos::html;
use leptos::prelude::*;
use speaknode_api::{MAX_FEEDBACK_COMMENT_CHARS, Rating};

use crate::i18n::Messages;
use crate::session::{Feedback, Session};
use crate::ui::icons;

/// What the visitor has chosen and typed but not sent. It lives with the widget, not the
/// panel, so closing and reopening the panel keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedbackDraft {
    pub rating: Option<Rating>,
    pub comment: String,
}

impl FeedbackDraft {
    /// Keeps the comment within what the BFF accepts, counted as it counts (characters).
    pub fn set_comment(&mut self, text: &str) {
        self.comment = text.chars().take(MAX_FEEDBACK_COMMENT_CHARS).collect();
    }

    /// The rating to show as pressed: the one on its way, else the one chosen.
    pub fn shown(&self, feedback: &Feedback) -> Option<Rating> {
        match feedback {
            Feedback::Sending(rating) | Feedback::Sent(rating) => Some(*rating),
            Feedback::NotSent => self.rating,
        }
    }

    /// What to send: the rating and the comment if there is one, or `None` before a rating
    /// is chosen.
    pub fn request(&self) -> Option<(Rating, Option<String>)> {
        let comment = Some(self.comment.trim().to_owned()).filter(|c| !c.is_empty());
        self.rating.map(|rating| (rating, comment))
    }
}

/// The rating form, replaced by a thank-you once the rating is sent.
#[component]
pub fn FeedbackForm(
    session: RwSignal<Session>,
    draft: RwSignal<FeedbackDraft>,
    messages: &'static Messages,
    on_send: UnsyncCallback<(Rating, Option<String>)>,
) -> impl IntoView {
    let thanks = NodeRef::<html::P>::new();
    // Sending removes the form, and with it the focused button; the thank-you takes focus
    // then, so keyboard and screen-reader users are not dropped at the top of the page.
    let focus_thanks = StoredValue::new(false);
    let sent = move || session.with(|s| matches!(s.feedback, Feedback::Sent(_)));
    let sending = move || session.with(|s| matches!(s.feedback, Feedback::Sending(_)));
    let pressed = move |rating: Rating| {
        session.with(|s| draft.with(|d| d.shown(&s.feedback))) == Some(rating)
    };
    let can_send = move || !sending() && draft.with(|d| d.rating.is_some());
    let choose = move |rating: Rating| {
        if !sending() {
            draft.update(|d| d.rating = Some(rating));
        }
    };
    let send = move |_| {
        if !can_send() {
            return;
        }
        if let Some(request) = draft.with_untracked(FeedbackDraft::request) {
            focus_thanks.set_value(true);
            on_send.run(request);
        }
    };
    Effect::new(move |_| {
        if let Some(thanks) = thanks.get()
            && focus_thanks.get_value()
        {
            focus_thanks.set_value(false);
            let _ = thanks.focus();
        }
    });

    let rate_button = move |rating: Rating| {
        let (class, test_id, label) = match rating {
            Rating::Up => (
                "sn-rate sn-feedback-up",
                "sn-feedback-up",
                messages.feedback_up,
            ),
            Rating::Down => (
                "sn-rate sn-feedback-down",
                "sn-feedback-down",
                messages.feedback_down,
            ),
        };
        view! {
            <button
                type="button"
                class=class
                data-testid=test_id
                aria-label=label
                title=label
                aria-pressed=move || pressed(rating).to_string()
                on:click=move |_| choose(rating)
            >
                {icons::thumb(rating == Rating::Down)}
            </button>
        }
    };
    let form = move || {
        view! {
            <p class="sn-feedback-title" id="sn-feedback-title">{messages.feedback_prompt}</p>
            <div class="sn-rating" role="group" aria-labelledby="sn-feedback-title">
                {rate_button(Rating::Up)}
                {rate_button(Rating::Down)}
            </div>
            <label class="sn-label" for="sn-feedback-comment">
                {messages.feedback_comment}
            </label>
            <textarea
                id="sn-feedback-comment"
                part="input"
                class="sn-comment"
                data-testid="sn-feedback-comment"
                rows="2"
                maxlength=MAX_FEEDBACK_COMMENT_CHARS.to_string()
                prop:value=move || draft.with(|d| d.comment.clone())
                on:input=move |event| draft.update(|d| d.set_comment(&event_target_value(&event)))
            ></textarea>
            // Unavailable but still focusable (aria-disabled, not disabled): a button that
            // disables itself on click would throw the visitor's focus away.
            <button
                type="button"
                class="sn-button sn-send"
                data-testid="sn-feedback-send"
                aria-disabled=move || (!can_send()).then_some("true")
                on:click=send
            >
                {move || if sending() { messages.feedback_sending } else { messages.feedback_send }}
            </button>
        }
    };

    view! {
        <div class="sn-feedback" data-testid="sn-feedback">
            <Show when=sent fallback=form>
                <p
                    class="sn-thanks"
                    data-testid="sn-feedback-thanks"
                    role="status"
                    tabindex="-1"
                    node_ref=thanks
                >
                    {messages.feedback_thanks}
                </p>
            </Show>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_sent_before_a_rating_is_chosen() {
        let mut draft = FeedbackDraft::default();
        draft.set_comment("nice");
        assert_eq!(draft.request(), None);
        draft.rating = Some(Rating::Up);
        assert_eq!(draft.request(), Some((Rating::Up, Some("nice".into()))));
    }

    #[test]
    fn a_blank_comment_is_no_comment_and_a_long_one_is_cut_by_characters() {
        let mut draft = FeedbackDraft {
            rating: Some(Rating::Down),
            ..FeedbackDraft::default()
        };
        draft.set_comment("  \n ");
        assert_eq!(draft.request(), Some((Rating::Down, None)));
        draft.set_comment(&"ü".repeat(1500));
        assert_eq!(draft.comment.chars().count(), MAX_FEEDBACK_COMMENT_CHARS);
    }

    #[test]
    fn the_pressed_thumb_is_the_one_on_its_way() {
        let draft = FeedbackDraft {
            rating: Some(Rating::Up),
            ..FeedbackDraft::default()
        };
        assert_eq!(draft.shown(&Feedback::NotSent), Some(Rating::Up));
        assert_eq!(
            draft.shown(&Feedback::Sending(Rating::Down)),
            Some(Rating::Down)
        );
        assert_eq!(FeedbackDraft::default().shown(&Feedback::NotSent), None);
    }
}
