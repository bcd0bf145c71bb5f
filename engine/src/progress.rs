//! Progress of model loading, reported to whoever asked for it.
//!
//! Loading a checkpoint reads its JSON configuration, its tokenizer and its weights; with large
//! weights (or slow storage, as on a phone) that takes seconds, and a front end wants to show it.
//! Like [`crate::cancel`], reporting is thread-scoped: a caller wraps a load in [`scope`] with a
//! callback, and the loaders on that thread call [`report`] as they go, so no loader signature has
//! to carry a callback. Without a scope, [`report`] does nothing.
//!
//! What is reported:
//! * [`LoadStage::Config`] once per JSON file parsed (config.json, generation_config.json, ...),
//! * [`LoadStage::Tokenizer`] when the tokenizer files are read,
//! * [`LoadStage::Weights`] while tensors are read from a set of weight files, with the fraction
//!   of that set's bytes read so far (a model can have several sets, e.g. a TTS talker and its
//!   speech tokenizer; each goes from 0 to at most 1; tensors a model does not use are never read,
//!   so a set can end below 1),
//! * [`LoadStage::Ready`] (fraction 1) by the front end when the model is usable.

use std::cell::RefCell;
use std::rc::Rc;

/// The part of a model load a [`LoadProgress`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoadStage {
    /// A JSON configuration file was read.
    Config,
    /// The tokenizer files are being read.
    Tokenizer,
    /// Tensors are being read from a set of weight files.
    Weights,
    /// The model is loaded and usable.
    Ready,
}

impl LoadStage {
    pub fn as_str(self) -> &'static str {
        match self {
            LoadStage::Config => "config",
            LoadStage::Tokenizer => "tokenizer",
            LoadStage::Weights => "weights",
            LoadStage::Ready => "ready",
        }
    }
}

/// One progress report.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadProgress {
    pub stage: LoadStage,
    /// Fraction of the stage done, in `[0, 1]` (for [`LoadStage::Weights`]: of the current set
    /// of weight files, by bytes).
    pub fraction: f32,
    /// The file (or first file of a set) the report is about; empty for [`LoadStage::Ready`].
    pub file: String,
}

type Reporter = Rc<dyn Fn(&LoadProgress)>;

thread_local! {
    static REPORTERS: RefCell<Vec<Reporter>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with `on_progress` receiving the load progress reports of the current thread; nested
/// scopes all receive them. The callback is removed when `f` returns or panics.
pub fn scope<T>(on_progress: impl Fn(&LoadProgress) + 'static, f: impl FnOnce() -> T) -> T {
    crate::scoped::with_pushed(&REPORTERS, Rc::new(on_progress), f)
}

/// True when a scope of the current thread listens (lets loaders skip building reports).
pub fn is_active() -> bool {
    REPORTERS.with(|r| r.try_borrow().map(|r| !r.is_empty()).unwrap_or(false))
}

/// Sends a report to the current thread's scopes (nothing without one).
pub fn report(stage: LoadStage, fraction: f32, file: impl Into<String>) {
    // Clone the callbacks out of the registry so a callback may itself load (and report).
    let reporters: Vec<Reporter> = REPORTERS.with(|r| match r.try_borrow() {
        Ok(r) => r.clone(),
        Err(_) => Vec::new(),
    });
    if reporters.is_empty() {
        return;
    }
    let progress = LoadProgress {
        stage,
        fraction: if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        },
        file: file.into(),
    };
    for r in reporters {
        r(&progress);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn reports_reach_the_scope_only() {
        report(LoadStage::Config, 0.5, "outside");
        assert!(!is_active());
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = Rc::clone(&seen);
        scope(
            move |p| s.borrow_mut().push(p.clone()),
            || {
                assert!(is_active());
                report(LoadStage::Weights, 2.0, "model.safetensors");
                report(LoadStage::Ready, f32::NAN, "");
            },
        );
        assert!(!is_active());
        report(LoadStage::Config, 0.5, "after");
        let seen = seen.borrow();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].stage, LoadStage::Weights);
        assert_eq!(seen[0].fraction, 1.0);
        assert_eq!(seen[0].file, "model.safetensors");
        assert_eq!(seen[1].fraction, 0.0);
    }

    #[test]
    fn a_callback_may_report_again_and_other_threads_are_separate() {
        let count = Rc::new(RefCell::new(0));
        let c = Rc::clone(&count);
        scope(
            move |p| {
                *c.borrow_mut() += 1;
                if p.stage == LoadStage::Config {
                    report(LoadStage::Tokenizer, 0.0, "nested");
                }
            },
            || {
                report(LoadStage::Config, 0.0, "config.json");
                std::thread::spawn(|| assert!(!is_active())).join().unwrap();
            },
        );
        assert_eq!(*count.borrow(), 2);
    }
}
