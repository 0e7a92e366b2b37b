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
//! - `voice`: the LiveKit room seam (voice and typed chat in a call).

pub mod client;
pub mod driver;
pub mod events;
pub mod i18n;
pub mod resume;
pub mod session;
pub mod ui;
pub mod voice;

use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;

use leptos::mount::mount_to;
use leptos::prelude::*;
use wasm_bindgen::prelude::*;

use crate::client::{Backend, FetchBackend};
use crate::driver::{Driver, Pacing, VoiceFactory};
use crate::session::Session;

/// What the page configured, read from the loader's options object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options {
    pub agent_id: String,
    /// The BFF's base URL, absolute or relative to the page.
    pub session_url: String,
    pub lang: Option<String>,
    /// `voice`, `text` or `hybrid` (the default): which ways of talking the widget offers.
    pub mode: Mode,
}

/// Which ways of talking the widget offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    Voice,
    Text,
    #[default]
    Hybrid,
}

impl Mode {
    /// Reads the `mode` attribute; anything unknown is the default, never an error.
    pub fn parse(value: Option<&str>) -> Self {
        match value.map(str::trim).map(str::to_ascii_lowercase).as_deref() {
            Some("voice") => Self::Voice,
            Some("text") => Self::Text,
            _ => Self::Hybrid,
        }
    }
}

impl Options {
    /// Reads `{ agentId, sessionUrl, lang, mode }`; a missing or empty required value is an
    /// error the loader shows in the console, naming the attribute to fix.
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
            mode: Mode::parse(get("mode").as_deref()),
        })
    }

    /// The page's `tokenProvider` function, if it set one.
    fn token_provider(options: &JsValue) -> Result<Option<js_sys::Function>, String> {
        let value = js_sys::Reflect::get(options, &JsValue::from_str("tokenProvider"))
            .unwrap_or(JsValue::UNDEFINED);
        if value.is_undefined() || value.is_null() {
            return Ok(None);
        }
        value
            .dyn_into::<js_sys::Function>()
            .map(Some)
            .map_err(|_| "SpeakNode widget: tokenProvider must be a function".to_owned())
    }
}

/// A mounted widget, as the loader holds it.
#[wasm_bindgen]
pub struct WidgetHandle {
    open: RwSignal<bool>,
    driver: Driver,
    // Dropping the handle unmounts the view and disposes every signal; the driver's tasks
    // are aborted with it.
    mounted: Option<Box<dyn Any>>,
}

#[wasm_bindgen]
impl WidgetHandle {
    /// Opens the panel (starting a conversation if none has started).
    pub fn open(&self) {
        // `try_set` hands the value back only when the widget was destroyed.
        if self.open.try_set(true).is_none() {
            self.driver.start_if_idle();
        }
    }

    /// Shows the panel without starting anything (the loader's remount of an open panel).
    pub fn show(&self) {
        let _ = self.open.try_set(true);
    }

    /// Closes the panel; the conversation goes on.
    pub fn close(&self) {
        let _ = self.open.try_set(false);
    }

    /// Starts a conversation unless one is running.
    pub fn start(&self) {
        self.driver.start();
    }

    /// Ends the running conversation.
    pub fn end(&self) {
        self.driver.end();
    }

    /// Removes everything the widget rendered and stops its work: no timer, request or
    /// stream is left behind.
    pub fn destroy(&mut self) {
        // The call's room is left here, before the view goes: nothing outlives destroy().
        self.driver.stop();
        self.mounted.take();
    }
}

/// Mounts the widget into `container`, an element inside the loader's shadow root. The loader
/// has already adopted `style/speaknode-widget.css` into that root.
#[wasm_bindgen]
pub fn mount(container: web_sys::HtmlElement, options: &JsValue) -> Result<WidgetHandle, JsError> {
    console_error_panic_hook::set_once();
    let provider = Options::token_provider(options).map_err(|message| JsError::new(&message))?;
    let options = Options::from_js(options).map_err(|message| JsError::new(&message))?;
    let backend: Rc<dyn Backend> =
        Rc::new(FetchBackend::new(&options.session_url).with_token_provider(provider));
    Ok(mount_with(container, backend, options, Pacing::default()))
}

/// How the widget joins calls: livekit-client through the bridge, one transport per room
/// connection. Nothing is loaded until a transport connects. (Without a factory a
/// conversation that offers a call shows it as unavailable; `mount_with_voice` takes
/// `None` for that.)
fn production_voice() -> Option<VoiceFactory> {
    Some(Rc::new(|| {
        Rc::new(voice::livekit::LiveKitJs::new()) as Rc<dyn voice::VoiceTransport>
    }))
}

/// Mounts with any backend: the production path uses `fetch`, tests script the BFF. Calls
/// use the production transport.
pub fn mount_with(
    container: web_sys::HtmlElement,
    backend: Rc<dyn Backend>,
    options: Options,
    pacing: Pacing,
) -> WidgetHandle {
    mount_with_voice(container, backend, production_voice(), options, pacing)
}

/// Mounts with any backend and any voice transport (tests script both).
pub fn mount_with_voice(
    container: web_sys::HtmlElement,
    backend: Rc<dyn Backend>,
    voice: Option<VoiceFactory>,
    options: Options,
    pacing: Pacing,
) -> WidgetHandle {
    type Parts = (RwSignal<bool>, Driver);
    let parts: Rc<RefCell<Option<Parts>>> = Rc::default();
    let slot = Rc::clone(&parts);
    let messages = i18n::Messages::for_lang(options.lang.as_deref());
    let target = container.clone();
    let mounted = mount_to(container, move || {
        let session = RwSignal::new(Session::default());
        let open = RwSignal::new(false);
        let driver = Driver::new(backend, &options.agent_id, session, open, pacing)
            .with_voice(voice, options.mode);
        events::report(target, session, open, messages);
        driver.resume_stored();
        // Each open or close is remembered, so the next page reopens the panel as it was.
        Effect::new({
            let driver = driver.clone();
            move |_| {
                open.track();
                driver.remember_open();
            }
        });
        // Cleanups must be `Send`; the driver never leaves this thread, which the wrapper
        // checks at run time.
        on_cleanup({
            let driver = send_wrapper::SendWrapper::new(driver.clone());
            move || driver.stop()
        });
        let actions = ui::Actions::new(&driver);
        *slot.borrow_mut() = Some((open, driver));
        view! { <ui::Widget session open messages mode=options.mode actions /> }
    });
    let (open, driver) = parts
        .borrow_mut()
        .take()
        .expect("mount_to runs the view closure before it returns");
    WidgetHandle {
        open,
        driver,
        mounted: Some(Box::new(mounted)),
    }
}
