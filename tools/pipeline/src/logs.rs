//! `tracing` logs of the Lambda binaries as JSON lines on stderr (CloudWatch Logs keeps
//! them; stdout carries the EMF metric lines of [`super::metrics`]). The level comes from
//! `AWS_LAMBDA_LOG_LEVEL` (Lambda's advanced logging controls), else `RUST_LOG`, else
//! `info`.

use tracing_subscriber::EnvFilter;

/// The filter for a level setting: `AWS_LAMBDA_LOG_LEVEL`, then `RUST_LOG`, then `info`;
/// a value that is not a filter falls back to `info`.
pub fn filter(var: impl Fn(&str) -> Option<String>) -> EnvFilter {
    let spec = var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|| var("RUST_LOG"))
        .filter(|s| !s.is_empty())
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_else(|| "info".into());
    EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Install the JSON subscriber for the process (once; a second call changes nothing).
pub fn init_json_logs() {
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(std::io::stderr)
        .with_env_filter(filter(|name| std::env::var(name).ok()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_comes_from_lambda_then_rust_log() {
        let f = filter(|n| (n == "AWS_LAMBDA_LOG_LEVEL").then(|| "WARN".to_string()));
        assert_eq!(f.to_string(), "warn");
        let f = filter(|n| (n == "RUST_LOG").then(|| "debug".to_string()));
        assert_eq!(f.to_string(), "debug");
        assert_eq!(filter(|_| None).to_string(), "info");
        assert_eq!(filter(|_| Some("=[".into())).to_string(), "info");
    }

    /// One event through the JSON formatter is one JSON object with its fields flattened.
    #[test]
    fn events_are_json_lines() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(run_id = "r1", merged = 3, "compaction run COMPLETED");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["run_id"], "r1");
        assert_eq!(line["merged"], 3);
        assert_eq!(line["message"], "compaction run COMPLETED");
    }
}
