//! Cooperative cancellation of long calls.
//!
//! A caller (the CLI on Ctrl-C, the Python binding on `KeyboardInterrupt`, a mobile app's cancel
//! button) wraps work in [`scope`] with a check; the engine's loops call [`checkpoint`] between
//! units of work (a decoded token, a generated frame, an encoder or codec chunk), which fails with
//! [`Error::Cancelled`] once a check says so. Checks are thread-scoped, so nothing has to be
//! threaded through every signature, and one engine can serve several callers on several threads,
//! each with its own cancellation.
//!
//! Checkpoints sit only in the calling thread's loops (never inside rayon-parallel kernels), so a
//! call stops within one unit of work.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{Error, Result};

/// A shareable cancel flag: clone it, hand one clone to the work ([`scope`]'s check via
/// [`CancelToken::scope`]) and call [`CancelToken::cancel`] from any thread.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests cancellation: the work running under this token fails at its next checkpoint.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Clears the flag so the token can be reused for the next call.
    pub fn reset(&self) {
        self.0.store(false, Ordering::Relaxed);
    }

    /// Runs `f` on this thread with this token as a cancellation check.
    pub fn scope<T>(&self, f: impl FnOnce() -> T) -> T {
        let token = self.clone();
        scope(move || token.is_cancelled(), f)
    }
}

type Check = Box<dyn Fn() -> bool>;

thread_local! {
    static CHECKS: RefCell<Vec<Check>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with `is_cancelled` installed as a cancellation check on the current thread; nested
/// scopes add up (any check that fires cancels). The check is removed when `f` returns or panics.
pub fn scope<T>(is_cancelled: impl Fn() -> bool + 'static, f: impl FnOnce() -> T) -> T {
    crate::scoped::with_pushed(&CHECKS, Box::new(is_cancelled), f)
}

/// Fails with [`Error::Cancelled`] if a check of the current thread's scopes fires.
pub fn checkpoint() -> Result<()> {
    // A check could itself call back into the engine (it must not, but a re-entrant borrow would
    // panic), so a busy registry counts as "not cancelled".
    let cancelled = CHECKS.with(|c| match c.try_borrow() {
        Ok(checks) => checks.iter().any(|check| check()),
        Err(_) => false,
    });
    if cancelled {
        Err(Error::Cancelled)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_passes_without_scope() {
        assert!(checkpoint().is_ok());
    }

    #[test]
    fn token_cancels_inside_its_scope_only() {
        let token = CancelToken::new();
        token.scope(|| {
            assert!(checkpoint().is_ok());
            token.cancel();
            assert!(matches!(checkpoint(), Err(Error::Cancelled)));
        });
        // The scope is gone: other work on this thread is unaffected.
        assert!(checkpoint().is_ok());
        token.reset();
        token.scope(|| assert!(checkpoint().is_ok()));
    }

    #[test]
    fn nested_scopes_and_other_threads() {
        let outer = CancelToken::new();
        let inner = CancelToken::new();
        outer.scope(|| {
            inner.scope(|| {
                outer.cancel();
                assert!(checkpoint().is_err());
                // Another thread has no scope of its own.
                std::thread::spawn(|| assert!(checkpoint().is_ok()))
                    .join()
                    .unwrap();
            });
            assert!(checkpoint().is_err());
        });
        assert!(checkpoint().is_ok());
    }

    #[test]
    fn scope_is_removed_after_a_panic() {
        let token = CancelToken::new();
        token.cancel();
        let r = std::panic::catch_unwind(|| token.scope(|| panic!("boom")));
        assert!(r.is_err());
        assert!(checkpoint().is_ok());
    }
}
