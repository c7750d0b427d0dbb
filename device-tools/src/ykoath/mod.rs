//! YKOATH, the YubiKey OATH applet, over PC/SC: `apdu` (encoding, status
//! words, TLVs), `session` (reader choice, exclusive access, SELECT,
//! SEND REMAINING chaining, access-code VALIDATE), `applet` (the commands).

pub mod apdu;
pub mod applet;
pub mod session;

pub use applet::{Credential, HashAlgorithm, OathKind};
pub use session::{DeviceInfo, OathError, OathSession};
