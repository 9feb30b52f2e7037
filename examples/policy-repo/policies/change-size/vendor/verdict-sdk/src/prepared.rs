//! Settings prepared once per binding instead of once per evaluation.
//!
//! Why: a binding's settings are the same for every evaluation, but every
//! evaluation runs in a fresh instance, so a policy that parses its settings
//! in `evaluate` pays for the parse (serde_json, defaults, compiled globs or
//! calendars) on every decision: for the built-ins, most of what they do.
//!
//! The host pre-initialises a binding's component: it calls the `preinit`
//! export (see [`crate::export!`]) with the binding's settings, which runs
//! `validate_settings` and so [`prepared`], then snapshots the instance's
//! memory. Every evaluation of that binding starts from the snapshot, a
//! fresh instance whose memory already holds the prepared settings.
//!
//! Without a snapshot (another host, `cargo test`, an evaluation whose
//! settings differ from the pre-initialised ones) [`prepared`] prepares them
//! on the spot: the same value, only slower. Preparing must therefore be a
//! pure function of the settings document.

use std::any::Any;
use std::cell::RefCell;

/// The settings document last prepared and what it was prepared into.
struct Entry {
    doc: String,
    /// Leaked on purpose: it lives as long as the instance, which lives for
    /// one evaluation (and at most one is leaked per instance, natively per
    /// distinct document in a test run).
    value: &'static dyn Any,
}

thread_local! {
    // A component instance is single-threaded; natively (unit tests running
    // in parallel) each thread keeps its own.
    static LAST: RefCell<Option<Entry>> = const { RefCell::new(None) };
}

/// `prepare(doc)`, computed once per settings document and type: a later
/// call with the same document (a pre-initialised instance, or a second
/// call in one instance) returns the same value without preparing again.
/// Errors are not kept: a document that fails is prepared (and fails) again.
pub fn prepared<T: 'static>(
    doc: &str,
    prepare: fn(&str) -> Result<T, String>,
) -> Result<&'static T, String> {
    let hit = LAST.with_borrow(|last| {
        last.as_ref()
            .filter(|e| e.doc == doc)
            .and_then(|e| e.value.downcast_ref::<T>())
    });
    if let Some(value) = hit {
        return Ok(value);
    }
    let value: &'static T = Box::leak(Box::new(prepare(doc)?));
    LAST.with_borrow_mut(|last| {
        *last = Some(Entry {
            doc: doc.to_string(),
            value,
        })
    });
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        static CALLS: Cell<u32> = const { Cell::new(0) };
    }

    fn count(doc: &str) -> Result<usize, String> {
        CALLS.set(CALLS.get() + 1);
        match doc {
            "bad" => Err("bad settings".into()),
            _ => Ok(doc.len()),
        }
    }

    #[test]
    fn prepares_once_per_document() {
        CALLS.set(0);
        assert_eq!(prepared("{}", count), Ok(&2));
        assert_eq!(prepared("{}", count), Ok(&2));
        assert_eq!(CALLS.get(), 1);
        assert_eq!(prepared("{\"a\":1}", count), Ok(&7));
        assert_eq!(CALLS.get(), 2);
        // Errors are not kept.
        assert!(prepared("bad", count).is_err());
        assert!(prepared("bad", count).is_err());
        assert_eq!(CALLS.get(), 4);
    }

    #[test]
    fn another_type_on_the_same_document_is_prepared_for_itself() {
        fn text(doc: &str) -> Result<String, String> {
            Ok(doc.to_uppercase())
        }
        assert_eq!(prepared("abc", count), Ok(&3));
        assert_eq!(prepared("abc", text).map(String::as_str), Ok("ABC"));
    }
}
