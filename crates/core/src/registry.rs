//! Process-wide handles for mappings, so any worker can reach the same memory by an
//! integer it received in a message.
//!
//! Lifetime: the owner (whoever registered the mapping) holds one `Arc`, every open view
//! holds one more. The mapping is unmapped when the owner has released it and every view
//! is closed, exactly once, by `Arc`'s drop. Release and close are idempotent (a map
//! removal), so an explicit close followed by a GC finalizer cannot decrement twice.
//! Arcs are always dropped after the lock is released, because dropping the last one
//! unmaps memory and that must not happen under the registry lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::mem::Mapping;
use crate::{Error, Result};

struct Entry {
    mapping: Weak<Mapping>,
    owner: Option<Arc<Mapping>>,
}

#[derive(Default)]
struct Registry {
    entries: HashMap<u32, Entry>,
    views: HashMap<u32, (u32, Arc<Mapping>)>,
    next_handle: u32,
    next_view: u32,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn registry() -> MutexGuard<'static, Option<Registry>> {
    // A panic while holding the lock leaves only plain maps behind; they stay consistent.
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

fn with<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    let mut g = registry();
    f(g.get_or_insert_with(Registry::default))
}

/// Register a mapping; the caller becomes its owner. Handles are never reused.
pub fn register(mapping: Mapping) -> u32 {
    let arc = Arc::new(mapping);
    with(|r| {
        r.next_handle += 1;
        let h = r.next_handle;
        r.entries.insert(
            h,
            Entry {
                mapping: Arc::downgrade(&arc),
                owner: Some(arc),
            },
        );
        h
    })
}

fn not_found(handle: u32) -> Error {
    Error::NotFound(format!("no live mapping with handle {handle}"))
}

/// Drop the owner's reference. Returns false if it was already released.
pub fn release(handle: u32) -> bool {
    let owner = with(|r| r.entries.get_mut(&handle).and_then(|e| e.owner.take()));
    let released = owner.is_some();
    drop(owner);
    purge(handle);
    released
}

/// Forget the entry once its mapping is gone, so the table does not grow forever.
fn purge(handle: u32) {
    with(|r| {
        if let Some(e) = r.entries.get(&handle) {
            if e.owner.is_none() && e.mapping.strong_count() == 0 {
                r.entries.remove(&handle);
            }
        }
    });
}

/// The mapping behind a handle while anyone (owner or view) still holds it.
pub fn get(handle: u32) -> Result<Arc<Mapping>> {
    with(|r| r.entries.get(&handle).and_then(|e| e.mapping.upgrade()))
        .ok_or_else(|| not_found(handle))
}

/// Open a view: a new reference that keeps the mapping alive until `close_view`.
/// Only a mapping whose owner has not released it can gain views.
pub fn open_view(handle: u32) -> Result<(u32, Arc<Mapping>)> {
    with(|r| {
        let arc = r
            .entries
            .get(&handle)
            .and_then(|e| e.owner.clone())
            .ok_or_else(|| not_found(handle))?;
        r.next_view += 1;
        let id = r.next_view;
        r.views.insert(id, (handle, arc.clone()));
        Ok((id, arc))
    })
}

/// Close a view. Returns false if it was already closed (the second of close + finalizer).
pub fn close_view(view: u32) -> bool {
    let removed = with(|r| r.views.remove(&view));
    match removed {
        Some((handle, arc)) => {
            drop(arc);
            purge(handle);
            true
        }
        None => false,
    }
}

/// The mapping a view refers to, if the view is still open.
pub fn view_mapping(view: u32) -> Option<Arc<Mapping>> {
    with(|r| r.views.get(&view).map(|(_, a)| a.clone()))
}

/// What the registry knows about one handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandleState {
    pub owned: bool,
    pub views: u32,
    /// The memory is still mapped.
    pub live: bool,
}

pub fn state(handle: u32) -> HandleState {
    with(|r| {
        let (owned, live) = r
            .entries
            .get(&handle)
            .map(|e| (e.owner.is_some(), e.mapping.strong_count() > 0))
            .unwrap_or((false, false));
        let views = r.views.values().filter(|(h, _)| *h == handle).count() as u32;
        HandleState { owned, views, live }
    })
}

/// Handles whose owner has not released them, and open views, process-wide.
pub fn counts() -> (u32, u32) {
    with(|r| {
        let owned = r.entries.values().filter(|e| e.owner.is_some()).count() as u32;
        (owned, r.views.len() as u32)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::{HugepagePolicy, Mapping};

    fn region() -> (u32, Weak<Mapping>) {
        let h = register(Mapping::dma(8192, HugepagePolicy::Never).unwrap());
        let w = Arc::downgrade(&get(h).unwrap());
        (h, w)
    }

    #[test]
    fn freed_when_owner_and_all_views_let_go() {
        let (h, weak) = region();
        let (v1, _) = open_view(h).unwrap();
        let (v2, _) = open_view(h).unwrap();
        assert!(release(h));
        assert!(!release(h), "release is idempotent");
        assert!(weak.upgrade().is_some(), "views keep it mapped");
        assert!(open_view(h).is_err(), "no new views after release");
        assert!(close_view(v1));
        assert!(!close_view(v1), "second close is a no-op");
        assert!(weak.upgrade().is_some());
        assert!(close_view(v2));
        assert!(weak.upgrade().is_none(), "freed after the last view");
        assert_eq!(get(h).unwrap_err().code(), "ENOENT");
        assert_eq!(
            state(h),
            HandleState {
                owned: false,
                views: 0,
                live: false
            }
        );
    }

    #[test]
    fn freed_at_release_when_no_views() {
        let (h, weak) = region();
        let (v, _) = open_view(h).unwrap();
        close_view(v);
        assert!(weak.upgrade().is_some());
        release(h);
        assert!(weak.upgrade().is_none());
    }

    #[test]
    fn views_from_many_threads_share_bytes() {
        let (h, weak) = region();
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                std::thread::spawn(move || {
                    let (v, m) = open_view(h).unwrap();
                    // SAFETY: each thread writes its own byte inside the 8 KiB mapping.
                    unsafe { m.as_ptr().add(t as usize).write_volatile(t + 1) };
                    close_view(v);
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let m = get(h).unwrap();
        // SAFETY: reading 4 bytes of the live mapping.
        let bytes = unsafe { std::slice::from_raw_parts(m.as_ptr(), 4) };
        assert_eq!(bytes, &[1, 2, 3, 4]);
        drop(m);
        release(h);
        assert!(weak.upgrade().is_none());
    }
}
