//! proxy-wasm shared data: a key-value store shared by every instance of the process, with
//! compare-and-swap versions, as Envoy keeps one per VM id.

use std::collections::HashMap;
use std::sync::Mutex;

type Entries = HashMap<Vec<u8>, (Vec<u8>, u32)>;

#[derive(Debug, Default)]
pub struct SharedData {
    /// Values with their versions, and the last version handed out.
    entries: Mutex<(Entries, u32)>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SetOutcome {
    Stored,
    CasMismatch,
}

impl SharedData {
    /// The value and its version (`cas`), if the key exists.
    pub fn get(&self, key: &[u8]) -> Option<(Vec<u8>, u32)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.0.get(key).cloned()
    }

    /// Stores `value`. A non-zero `cas` must match the current version; a missing key is
    /// created whatever the `cas` (as Envoy does).
    pub fn set(&self, key: &[u8], value: &[u8], cas: u32) -> SetOutcome {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (map, next) = &mut *entries;
        *next = next.wrapping_add(1).max(1);
        let version = *next;
        match map.get_mut(key) {
            Some((_, current)) if cas != 0 && cas != *current => SetOutcome::CasMismatch,
            Some(entry) => {
                *entry = (value.to_vec(), version);
                SetOutcome::Stored
            }
            None => {
                map.insert(key.to_vec(), (value.to_vec(), version));
                SetOutcome::Stored
            }
        }
    }
}
