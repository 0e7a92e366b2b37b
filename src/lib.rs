//! The SpeakNode web widget: what end users see when they talk to a SpeakNode agent.
//!
//! The page loads a small loader (`loader/speaknode-widget.js`) that paints a launcher and
//! imports this crate's wasm only on intent; the loader then calls [`mount`] with the element
//! inside its Shadow DOM. Everything the widget knows comes from the BFF through
//! [`client::Backend`]; it never sees a platform token.
//!
//! - `session`: the conversation state machine and transcript (plain Rust, unit-tested).
//! - `driver`: mint → start → follow, writing into the session signal.
//! - `client`: the BFF seam and its `fetch` implementation.
//! - `ui`: Leptos components.
//! - `i18n`: every user-visible string.
//! - `events`: the DOM events the host page can listen to.

pub mod client;
pub mod driver;
pub mod events;
pub mod i18n;
pub mod session;
pub mod ui;

use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;

use leptos::mount::mount_to;
use leptos::prelude::*;
use wasm_bindgen::prelude::*;

use crate::client::{Backend, FetchBackend};
use crate::driver::Pacing;
use crate::session::Session;

/// What the page configured, read from the loader's options object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub agent_id: String,
    /// The BFF's base URL, absolute or relative to the page.
    pub session_url: String,
    pub lang: Option<String>,
}

impl Options {
    /// Reads `{ agentId, sessionUrl, lang }`; a missing or empty required value is an error
    /// the loader shows in the console, naming the attribute to fix.
    pub fn from_js(options: &JsValue) -> Result<Self, String> {
        let get = |key: &str| {
            js_sys::Reflect::get(options, &JsValue::from_str(key))
                .ok()
                .and_then(|value| value.as_string())
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        Ok(Self {
            agent_id: get("agentId").ok_or("SpeakNode widget: set data-agent-id (or agent-id)")?,
            session_url: get("sessionUrl")
                .ok_or("SpeakNode widget: set data-session-url (or session-url)")?,
            lang: get("lang"),
        })
    }
}

/// A mounted widget, as the loader holds it.
#[wasm_bindgen]
pub struct WidgetHandle {
    open: RwSignal<bool>,
    session: RwSignal<Session>,
    start: Rc<dyn Fn()>,
    // Dropping the handle unmounts the view and disposes every signal, which also stops the
    // driver's loop at its next step.
    mounted: Option<Box<dyn Any>>,
}

#[wasm_bindgen]
impl WidgetHandle {
    /// Opens the panel (starting a conversation if none has started).
    pub fn open(&self) {
        // `try_set` hands the value back only when the widget was destroyed.
        if self.open.try_set(true).is_none() && self.idle() {
            (self.start)();
        }
    }

    fn idle(&self) -> bool {
        self.session
            .try_with_untracked(|s| s.phase == session::Phase::Idle)
            == Some(true)
    }

    /// Closes the panel; the conversation goes on.
    pub fn close(&self) {
        let _ = self.open.try_set(false);
    }

    /// Starts a conversation unless one is running.
    pub fn start(&self) {
        (self.start)();
    }

    /// Removes everything the widget rendered and stops its work.
    pub fn destroy(&mut self) {
        self.mounted.take();
    }
}

/// Mounts the widget into `container`, an element inside the loader's shadow root. The loader
/// has already adopted `style/speaknode-widget.css` into that root.
#[wasm_bindgen]
pub fn mount(container: web_sys::HtmlElement, options: &JsValue) -> Result<WidgetHandle, JsError> {
    console_error_panic_hook::set_once();
    let options = Options::from_js(options).map_err(|message| JsError::new(&message))?;
    let backend: Rc<dyn Backend> = Rc::new(FetchBackend::new(&options.session_url));
    Ok(mount_with(container, backend, options, Pacing::default()))
}

/// Mounts with any backend: the production path uses `fetch`, tests script the BFF.
pub fn mount_with(
    container: web_sys::HtmlElement,
    backend: Rc<dyn Backend>,
    options: Options,
    pacing: Pacing,
) -> WidgetHandle {
    type Parts = (RwSignal<bool>, RwSignal<Session>, Rc<dyn Fn()>);
    let parts: Rc<RefCell<Option<Parts>>> = Rc::default();
    let slot = Rc::clone(&parts);
    let messages = i18n::Messages::for_lang(options.lang.as_deref());
    let target = container.clone();
    let mounted = mount_to(container, move || {
        let session = RwSignal::new(Session::default());
        let open = RwSignal::new(false);
        events::report(target, session, open, messages);
        let agent_id = options.agent_id.clone();
        let start: Rc<dyn Fn()> = Rc::new(move || {
            if session.try_with_untracked(Session::is_busy) == Some(false) {
                leptos::task::spawn_local(driver::run(
                    Rc::clone(&backend),
                    agent_id.clone(),
                    session,
                    pacing,
                ));
            }
        });
        let on_start = {
            let start = Rc::clone(&start);
            UnsyncCallback::new(move |()| start())
        };
        *slot.borrow_mut() = Some((open, session, start));
        view! { <ui::Widget session open messages on_start /> }
    });
    let (open, session, start) = parts
        .borrow_mut()
        .take()
        .expect("mount_to runs the view closure before it returns");
    WidgetHandle {
        open,
        session,
        start,
        mounted: Some(Box::new(mounted)),
    }
}
