//! Feeds arbitrary bytes to the state handle decoder: as a raw Java serialization stream, and
//! (when they are UTF-8) as a ConfigMap value in base64. Neither may panic, and whatever decodes
//! must survive an encode/decode round trip unchanged.
#![no_main]

use hakeeper::handle::{self, StateHandle};
use libfuzzer_sys::fuzz_target;

fn check(decoded: Result<StateHandle, handle::HandleError>) {
    if let Ok(h) = decoded {
        assert_eq!(handle::decode(&handle::encode(&h)), Ok(h.clone()));
        assert_eq!(handle::decode_base64(&handle::encode_base64(&h)), Ok(h));
    }
}

fuzz_target!(|data: &[u8]| {
    check(handle::decode(data));
    if let Ok(text) = std::str::from_utf8(data) {
        check(handle::decode_base64(text));
    }
});
