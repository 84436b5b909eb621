//! The Lambda entry points refuse an oversized event with a typed error, before parsing
//! it (the stream processor needs no store for that).

use strata_pipeline::{process_stream_event, LambdaError};
use strata_stream::event::MAX_EVENT_BYTES;

#[test]
fn an_event_beyond_the_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut event = br#"{"Records": ["#.to_vec();
    event.resize(MAX_EVENT_BYTES + 1, b' ');
    let err = process_stream_event(dir.path(), "p", &event).unwrap_err();
    assert!(
        matches!(
            err,
            LambdaError::Stream(strata_stream::EventError::TooLarge { .. })
        ),
        "{err}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
}
