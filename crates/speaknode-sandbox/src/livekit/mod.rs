//! The sandbox's stand-in for LiveKit: join tokens now, the `/rtc` signalling and media later.

pub mod token;
