//! Thread-scoped registries: the one mechanism behind [`crate::cancel`] and [`crate::progress`].
//! A caller pushes an entry (a cancel check, a progress callback) for the duration of a closure;
//! the engine's loops on that thread consult the entries, so no signature carries them.

use std::cell::RefCell;
use std::thread::LocalKey;

/// Runs `f` with `entry` pushed on the thread-local stack `key`; the entry is popped when `f`
/// returns or panics.
pub(crate) fn with_pushed<E: 'static, T>(
    key: &'static LocalKey<RefCell<Vec<E>>>,
    entry: E,
    f: impl FnOnce() -> T,
) -> T {
    struct Pop<E: 'static>(&'static LocalKey<RefCell<Vec<E>>>);
    impl<E: 'static> Drop for Pop<E> {
        fn drop(&mut self) {
            self.0.with(|c| {
                c.borrow_mut().pop();
            });
        }
    }
    key.with(|c| c.borrow_mut().push(entry));
    let _pop = Pop(key);
    f()
}
